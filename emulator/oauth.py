"""OAuth M2M token endpoints (client credentials) on oauthlib's server side, plus the
discovery documents (contract §2.2)."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import urllib.parse

from oauthlib.oauth2 import BackendApplicationServer, RequestValidator

from .api import ApiError, route

SUPPORTED_SCOPES = {"all-apis", "sql", "offline_access", "openid", "profile", "email",
                    "clusters", "jobs", "unity-catalog"}


class _Client:
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id


class _Validator(RequestValidator):
    def __init__(self, state) -> None:
        self.state = state

    def client_authentication_required(self, request, *args, **kwargs):
        return True

    def authenticate_client(self, request, *args, **kwargs):
        client_id = client_secret = None
        auth = request.headers.get("Authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
                cid, _, secret = decoded.partition(":")
                client_id = urllib.parse.unquote_plus(cid)
                client_secret = urllib.parse.unquote_plus(secret)
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return False
        else:
            client_id = getattr(request, "client_id", None)
            client_secret = getattr(request, "client_secret", None)
        if not client_id or client_secret is None:
            return False
        with self.state.lock:
            sp = self.state.service_principals.get(client_id)
            if sp is None or not secrets.compare_digest(sp["secret"], client_secret):
                return False
        request.client = _Client(client_id)
        if getattr(request, "client_id", None) not in (None, client_id):
            return False
        request.client_id = client_id
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        return False

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        return grant_type == "client_credentials"

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        return ["all-apis"]

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        return bool(scopes) and all(s in SUPPORTED_SCOPES for s in scopes)

    def save_bearer_token(self, token, request, *args, **kwargs):
        self.state.issue_oauth_token(token["access_token"], request.client_id,
                                     token["expires_in"], request.scopes)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _servers(state):
    """One BackendApplicationServer per state (built lazily, cached on the state)."""
    def expires_in(request):
        lifetime = float(state.config.token_lifetime)
        return int(lifetime) if lifetime.is_integer() else lifetime

    def token_generator(request):
        now = int(state.now())
        header = {"alg": "RS256", "kid": "emulator", "typ": "at+jwt"}
        payload = {"client_id": request.client_id, "sub": request.client_id, "iat": now,
                   "exp": now + int(float(state.config.token_lifetime)), "scope": " ".join(request.scopes or []),
                   "iss": "databricks-emulator", "jti": secrets.token_hex(8)}
        return f"{_b64(header)}.{_b64(payload)}.{secrets.token_urlsafe(32)}"

    def make():
        return BackendApplicationServer(_Validator(state), token_generator=token_generator,
                                        token_expires_in=expires_in)
    return state.area("oauth_server", make)


def _token(req):
    headers = {k: v for k, v in req.headers.items()}
    body = req.raw.decode("utf-8", "replace")
    uri = req.base_url + req.path
    h, payload, status = _servers(req.state).create_token_response(
        uri, http_method=req.method, body=body, headers=headers)
    out_headers = dict(h or {})
    out_headers["Content-Type"] = "application/json"
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        data = {"error": "server_error", "error_description": str(payload)}
    return status, data, out_headers


@route("POST", r"/oidc/v1/token", auth=False, parse_json=False)
def workspace_token(req):
    return _token(req)


@route("POST", r"/oidc/accounts/(?P<account_id>[^/]+)/v1/token", auth=False, parse_json=False)
def account_token(req):
    if req.params["account_id"] != req.state.account_id:
        return 400, {"error": "invalid_request",
                     "error_description": f"Account {req.params['account_id']} not found"}, {}
    return _token(req)


def _discovery(base: str, oidc: str) -> dict:
    return {
        "issuer": oidc,
        "authorization_endpoint": f"{oidc}/v1/authorize",
        "token_endpoint": f"{oidc}/v1/token",
        "jwks_uri": f"{oidc}/jwks.json",
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "response_types_supported": ["code", "id_token"],
        "scopes_supported": ["all-apis", "sql", "offline_access", "openid", "profile", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                  "none"],
        "code_challenge_methods_supported": ["S256"],
    }


@route("GET", r"/oidc/\.well-known/oauth-authorization-server", auth=False)
def workspace_discovery(req):
    return _discovery(req.base_url, req.base_url + "/oidc")


@route("GET", r"/oidc/accounts/(?P<account_id>[^/]+)/\.well-known/oauth-authorization-server", auth=False)
def account_discovery(req):
    if req.params["account_id"] != req.state.account_id:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Account {req.params['account_id']} not found")
    return _discovery(req.base_url, f"{req.base_url}/oidc/accounts/{req.state.account_id}")


@route("GET", r"/\.well-known/databricks-config", auth=False)
def host_metadata(req):
    return {
        "oidc_endpoint": req.base_url + "/oidc",
        "account_id": req.state.account_id,
        "workspace_id": req.state.workspace_id,
        "cloud": req.state.config.cloud,
        "token_federation_default_oidc_audiences": [req.base_url + "/oidc/v1/token"],
    }
