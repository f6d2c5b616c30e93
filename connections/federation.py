"""Databricks workload identity federation: an OIDC token from the workload's identity provider
(GitHub Actions, Kubernetes, any OIDC issuer) exchanged for a Databricks token. No stored secret.

The OIDC token is read from an environment variable (``DATABRICKS_OIDC_TOKEN`` unless another is
named) or a file (a Kubernetes projected service-account token, for example), afresh at every
exchange, because such tokens are short-lived and rotated by whoever writes them. It is exchanged at
the workspace's (or account's) token endpoint with RFC 8693 token exchange, as the Databricks SDK
does (``env-oidc`` / ``file-oidc``)::

    grant_type=urn:ietf:params:oauth:grant-type:token-exchange
    subject_token_type=urn:ietf:params:oauth:token-type:jwt
    subject_token=<the OIDC token>  scope=all-apis  client_id=<the service principal's application ID>

The client id is the service principal the federation policy belongs to; without one, the token is
exchanged under an account-wide federation policy. The Databricks token is cached, renewed before it
expires (re-reading the OIDC token), and renewed once when the API rejects it.
"""
from __future__ import annotations

import os

from ..errors import ConnectorError
from .hosts import oidc_base
from .oauth import (CachedToken, TokenAuth, TokenExchangeClient, check_token, egress, jwt_expiry, parse, plain,
                    raise_for_token_error)
from .service_principal import scope_list

AUTH_TYPE = "workload-identity-federation"
DEFAULT_ENV = "DATABRICKS_OIDC_TOKEN"
HINT = ("Check that a federation policy of the service principal (Client ID) trusts this token's issuer, "
        "subject and audience.")


class OidcTokenSource:
    """Where the OIDC token is read from, every time it is needed."""

    def __init__(self, env: str | None, path: str | None):
        self.env, self.path = env, path

    @property
    def label(self) -> str:
        return f"the file {self.path}" if self.path else f"the environment variable {self.env}"

    def read(self) -> str:
        if self.path:
            try:
                with open(self.path, encoding="utf-8") as fh:
                    token = fh.read().strip()
            except OSError as exc:
                raise ConnectorError("configuration", f"Cannot read the OIDC token file {self.path}: {exc.strerror}",
                                     hint="Mount the identity provider's token at that path, or correct OIDC Token File.") from None
        else:
            token = (os.environ.get(self.env) or "").strip()
        if not token:
            raise ConnectorError("configuration", f"No OIDC token in {self.label}",
                                 hint="Have the CI system or the platform write the workload's OIDC token there "
                                      "(GitHub Actions: request an ID token with the id-token: write permission).")
        return token


class WorkloadIdentity(TokenAuth):
    auth_type = AUTH_TYPE

    def __init__(self, token_url: str, client_id: str | None, source: OidcTokenSource, scopes: list[str]):
        super().__init__()
        self.token_url = token_url
        self.client_id = client_id
        self.source = source
        self.scopes = scopes
        self._subject: list[str] = []           # the OIDC tokens read (masked in logs and errors)
        self.cache = CachedToken(self._exchange)

    def own_secrets(self) -> list[str]:
        return list(self._subject)

    def __repr__(self) -> str:
        return f"WorkloadIdentity(token_url={self.token_url!r}, client_id={self.client_id!r}, oidc_token=****)"

    def _exchange(self):
        import time

        subject = self.source.read()
        self._subject = [subject, *[s for s in self._subject if s != subject]][:3]
        expires = jwt_expiry(subject)
        if expires is not None and expires <= time.time():
            raise ConnectorError("authentication", f"The OIDC token in {self.source.label} has expired",
                                 hint="Have the identity provider write a fresh token there (it is read again on every exchange).")
        session = egress(self.post, TokenExchangeClient(self.client_id), scope=self.scopes)
        session.register_compliance_hook("access_token_response", lambda r: raise_for_token_error(r, hint_credentials=HINT))
        url = plain(session, self.token_url)
        token = parse(session, lambda: session.fetch_token(url, include_client_id=True, subject_token=subject))
        return check_token(token)


def build(fields: dict):
    host, base = oidc_base(fields.get("host", ""), fields.get("account_id"))
    client_id = fields.get("client_id") or None
    if client_id is not None and (not isinstance(client_id, str) or not client_id.strip()):
        raise ConnectorError("configuration", "Client ID must be text", hint="Use the service principal's application ID.")
    env, path = fields.get("oidc_token_env") or None, fields.get("oidc_token_filepath") or None
    bad = [label for label, v in (("OIDC Token Variable", env), ("OIDC Token File", path)) if v is not None and not isinstance(v, str)]
    if bad:
        raise ConnectorError("configuration", f"{' and '.join(bad)} must be text")
    if env and path:
        raise ConnectorError("configuration", "Give OIDC Token Variable or OIDC Token File, not both",
                             hint="Keep the one your CI system or cluster writes the token to.")
    source = OidcTokenSource(env.strip() if env else (None if path else DEFAULT_ENV), path.strip() if path else None)
    source.read()                                   # the token must be there: say so before any request
    auth = WorkloadIdentity(f"{base}/v1/token", client_id.strip() if client_id else None, source,
                            scope_list(fields.get("scopes")))
    return host, auth, fields.get("account_id") or None
