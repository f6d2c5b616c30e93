"""A Microsoft Entra ID (Azure AD) token endpoint, for Azure Databricks service principals.

``POST /<tenant>/oauth2/token`` (v1: ``resource=``) and ``/<tenant>/oauth2/v2.0/token`` (v2:
``scope=<resource>/.default``) with ``grant_type=client_credentials`` and the application's client
id and secret (form body or HTTP Basic) answer as the Microsoft identity platform does: v1 gives
``expires_in`` as a string, errors are ``{"error", "error_description": "AADSTS...", "error_codes"}``.
Point a connection's Authority Host at the emulator to use it.

The resource is the Azure Databricks application (``2ff814a6-3304-4ab8-85cb-cd0e6f879c1d``) or the
Azure management endpoint. A workspace accepts the first as a bearer token when the service
principal is a user of the workspace. One that is not is let in (and added as a user) when the
request also carries ``X-Databricks-Azure-SP-Management-Token`` (a management token of the same
application) and ``X-Databricks-Azure-Workspace-Resource-Id`` naming this workspace's Azure
resource; otherwise the answer is 403. [UNVERIFIED: the exact wording of that 403.]
"""
from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse
import uuid

from .api import ApiError, route
from .oauth import oauth_error, store as oauth_store

AZURE_DATABRICKS = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
MANAGEMENT = ("https://management.core.windows.net/", "https://management.core.usgovcloudapi.net/",
              "https://management.core.chinacloudapi.cn/")


class EntraStore:
    def __init__(self) -> None:
        self.apps: dict = {}            # client id -> {tenant, secret, principal, workspace_user}
        self.tokens: dict = {}          # access token -> {client_id, tenant, resource, expires}
        self.resource_id = (f"/subscriptions/{uuid.uuid4()}/resourceGroups/emulator-rg/providers/"
                            f"Microsoft.Databricks/workspaces/emulator-{secrets.token_hex(3)}")


def store(state) -> EntraStore:
    return state.area("entra", EntraStore)


def add_service_principal(state, tenant_id: str | None = None, workspace_user: bool = True,
                          display_name: str = "emulator-entra-service-principal") -> dict:
    """An Entra ID application (service principal); returns its tenant_id, client_id, client_secret."""
    from .state import Principal, _scim_id

    tenant = tenant_id or str(uuid.uuid4())
    client_id = str(uuid.uuid4())
    secret = secrets.token_urlsafe(6) + "8Q~" + secrets.token_urlsafe(24)     # the shape of an Entra secret
    principal = Principal("service_principal", _scim_id(), client_id, display_name, groups=["users", "admins"])
    with state.lock:
        store(state).apps[client_id] = {"tenant": tenant, "secret": secret, "principal": principal,
                                        "workspace_user": workspace_user}
    return {"tenant_id": tenant, "client_id": client_id, "client_secret": secret}


def _aad_error(status: int, error: str, code: int, text: str):
    status, body, headers = oauth_error(status, error, f"AADSTS{code}: {text}")
    body.update({"error_codes": [code], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                 "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())})
    return status, body, headers


def _token(req, v2: bool):
    tenant = req.params["tenant"]
    form = dict(urllib.parse.parse_qsl(req.raw.decode("utf-8", "replace"), keep_blank_values=True))
    client_id, secret = form.get("client_id"), form.get("client_secret")
    auth = req.header("Authorization") or ""
    if auth[:6].lower() == "basic ":
        try:
            cid, _, sec = base64.b64decode(auth[6:].strip()).decode().partition(":")
            client_id, secret = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(sec)
        except ValueError:
            return _aad_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
    if form.get("grant_type") != "client_credentials":
        return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type "
                          f"'{form.get('grant_type')}'.")
    entra = store(req.state)
    with req.state.lock:
        app = entra.apps.get(client_id or "")
        tenants = {a["tenant"] for a in entra.apps.values()}
    if tenant not in tenants:
        return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
    if app is None or app["tenant"] != tenant:
        return _aad_error(400, "unauthorized_client", 700016, f"Application with identifier '{client_id}' was not "
                          f"found in the directory '{tenant}'.")
    if not secret or not secrets.compare_digest(app["secret"], secret):
        return _aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being "
                          f"sent in the request is the client secret value, not the client secret ID, for a secret "
                          f"added to app '{client_id}'.")
    if v2:
        scope = form.get("scope") or ""
        resource = scope[:-len("/.default")] if scope.endswith("/.default") else None
    else:
        resource = form.get("resource")
    if resource not in (AZURE_DATABRICKS, *MANAGEMENT, *(m.rstrip("/") for m in MANAGEMENT)):
        return _aad_error(400, "invalid_resource", 500011, f"The resource principal named {resource} was not found "
                          f"in the tenant named {tenant}.")
    lifetime = float(req.state.config.entra_token_lifetime)
    now = int(req.state.now())
    header = {"typ": "JWT", "alg": "RS256", "kid": "emulator-entra"}
    claims = {"aud": resource, "iss": f"https://sts.windows.net/{tenant}/", "iat": now, "nbf": now,
              "exp": now + int(lifetime), "appid": client_id, "oid": app["principal"].id, "tid": tenant,
              "sub": app["principal"].id}
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).decode().rstrip("=")  # noqa: E731
    token = f"{enc(header)}.{enc(claims)}.{secrets.token_urlsafe(32)}"
    with req.state.lock:
        entra.tokens[token] = {"client_id": client_id, "tenant": tenant, "resource": resource,
                               "expires": req.state.now() + lifetime}
        oauth_store(req.state).issued["entra"] += 1
        req.state.token_fetches += 1
    seconds = str(int(lifetime))
    body = {"token_type": "Bearer", "expires_in": seconds, "ext_expires_in": seconds, "access_token": token}
    if not v2:
        body.update({"expires_on": str(now + int(lifetime)), "not_before": str(now), "resource": resource})
    return 200, body, {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}


@route("POST", r"/(?P<tenant>[A-Za-z0-9][A-Za-z0-9.-]*)/oauth2/token", auth=False, parse_json=False)
def token_v1(req):
    return _token(req, v2=False)


@route("POST", r"/(?P<tenant>[A-Za-z0-9][A-Za-z0-9.-]*)/oauth2/v2\.0/token", auth=False, parse_json=False)
def token_v2(req):
    return _token(req, v2=True)


def principal_for_token(state, token: str, headers) -> object | None:
    """The workspace principal of an Entra ID bearer token, or None when it is not one. A service
    principal that is not a workspace user needs the management token and resource id headers."""
    entra = store(state)
    lower = {k.lower(): v for k, v in headers.items()}
    with state.lock:
        entry = entra.tokens.get(token)
        if entry is None or entry["expires"] <= state.now() or entry["resource"] != AZURE_DATABRICKS:
            return None
        app = entra.apps.get(entry["client_id"])
        if app is None:
            return None
        if app["workspace_user"]:
            return app["principal"]
        mgmt = entra.tokens.get(lower.get("x-databricks-azure-sp-management-token", ""))
        resource_id = lower.get("x-databricks-azure-workspace-resource-id", "")
        if (mgmt is not None and mgmt["client_id"] == entry["client_id"] and mgmt["expires"] > state.now()
                and mgmt["resource"].rstrip("/") + "/" in MANAGEMENT and resource_id.lower() == entra.resource_id.lower()):
            app["workspace_user"] = True                        # added to the workspace on first use
            return app["principal"]
    raise ApiError(403, "PERMISSION_DENIED",
                   f"The service principal {entry['client_id']} is not a user of this workspace. Add it to the "
                   "workspace, or send X-Databricks-Azure-SP-Management-Token and "
                   "X-Databricks-Azure-Workspace-Resource-Id for a service principal with the Contributor role on it.")
