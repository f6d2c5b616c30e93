"""Helpers shared by the tests."""


def fresh_sp(emulator):
    """A new service principal connection (its own session and token cache)."""
    client_id, secret = emulator.add_service_principal()
    conn = {"type": "service_principal", "token_url": emulator.token_url, "scopes": "all-apis",
            "client_id": client_id, "client_secret": secret}
    if emulator.ca_bundle:
        conn["ca_bundle"] = emulator.ca_bundle
    return conn


def fresh_user(emulator, user="emulator-user@example.com", **kw):
    """A new, independent user login (its own grant, session and token cache)."""
    return emulator.user_login(user, **kw)


def fresh_entra(emulator, workspace_user=True):
    """A new Microsoft Entra ID service principal connection (the emulator as the authority)."""
    conn = {"type": "azure_service_principal", "host": emulator.url, "authority_host": emulator.url,
            **emulator.add_entra_service_principal(workspace_user=workspace_user)}
    if emulator.ca_bundle:
        conn["ca_bundle"] = emulator.ca_bundle
    return conn


def fresh_federation(emulator, token_file=None):
    """A new workload identity federation connection: a service principal with a federation policy
    for the emulator's issuer, and its OIDC token in a file (written here, or ``token_file``)."""
    import os
    import tempfile

    client_id, _ = emulator.add_service_principal("federated")
    emulator.add_federation_policy(client_id)
    if token_file is None:
        fd, token_file = tempfile.mkstemp(prefix="oidc-", suffix=".jwt")
        with os.fdopen(fd, "w") as fh:
            fh.write(emulator.mint_oidc_token(lifetime=3600))
    conn = {"type": "workload_identity_federation", "host": emulator.url, "client_id": client_id,
            "oidc_token_filepath": token_file}
    if emulator.ca_bundle:
        conn["ca_bundle"] = emulator.ca_bundle
    return conn


FRESH = {"service_principal": fresh_sp, "oauth_user": fresh_user, "azure_service_principal": fresh_entra,
         "workload_identity_federation": fresh_federation}


def fresh(emulator, kind):
    """A new connection of ``kind`` with its own session (a PAT has no token cache: the shared one)."""
    if kind == "personal_access_token":
        return emulator.connections()[kind]
    return FRESH[kind](emulator)
