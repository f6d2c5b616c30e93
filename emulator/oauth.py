"""Databricks OAuth on oauthlib's server side (contract §2.2), plus the discovery documents.

* ``POST /oidc/v1/token`` (and the account form ``/oidc/accounts/<id>/v1/token``) answers every
  grant the connector uses: ``client_credentials`` (service principals, HTTP Basic or form
  credentials), ``authorization_code`` (a user login: PKCE S256 required, the redirect URI must
  match the one authorized, a code is good once and for ``authorization_code_lifetime``),
  ``refresh_token`` (a new access token; with ``rotate_refresh_tokens`` a new refresh token too,
  and the old one stops working), and RFC 8693 token exchange (workload identity federation, in
  federation.py).
* ``GET /oidc/v1/authorize`` shows a consent page (a person picks who signs in and allows or
  denies; ``POST`` answers it) and then redirects to the client's redirect URI with a code, or
  with ``error=access_denied``. ``Config.oauth_auto_consent`` (test-only) skips the page and signs
  in ``Config.oauth_consent_user`` at once.
* Every OAuth error is JSON with ``error`` and ``error_description``, and a Content-Type.

OAuth apps (a platform's "app connection"): ``databricks-cli`` is registered as Databricks
registers it, a public client that may redirect to any loopback address (RFC 8252); others are
added with ``Emulator.add_oauth_app`` (public or confidential, with their redirect URIs).
Tokens of each kind have their own lifetime knob in ``Config``; ``Emulator.token_grants`` counts
the tokens issued per grant type, and ``Emulator.revoke_user_tokens`` revokes a user's sign-ins.
"""

from __future__ import annotations

import base64
import binascii
import collections
import html
import json
import secrets
import threading
import urllib.parse

from oauthlib.oauth2 import RequestValidator
from oauthlib.oauth2.rfc6749.endpoints import AuthorizationEndpoint, TokenEndpoint
from oauthlib.oauth2.rfc6749.grant_types import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from oauthlib.oauth2.rfc6749.tokens import BearerToken

from .api import ApiError, route

SUPPORTED_SCOPES = {"all-apis", "sql", "offline_access", "openid", "profile", "email",
                    "clusters", "jobs", "unity-catalog"}
CLI_CLIENT = "databricks-cli"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
_REASON = threading.local()         # why the last validation failed: the error_description


class _Client:
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id


# --------------------------------------------------------------------------- the store

class OAuthStore:
    """Apps, authorization codes, refresh tokens and counters of one workspace (guarded by the
    state's lock)."""

    def __init__(self) -> None:
        self.apps = {CLI_CLIENT: {"client_id": CLI_CLIENT, "secret": None, "redirect_uris": [], "loopback": True}}
        self.codes: dict = {}             # code -> {client_id, redirect_uri, challenge, method, user, scopes, expires, used}
        self.refresh: dict = {}           # refresh token -> {grant, client_id, user, scopes, expires, active}
        self.grants: dict = {}            # grant id -> {user, client_id, access_tokens: [...]}
        self.issued: collections.Counter = collections.Counter()   # tokens issued per grant type


def store(state) -> OAuthStore:
    return state.area("oauth", OAuthStore)


def _reason(text: str) -> bool:
    _REASON.text = text
    return False


def _is_loopback_redirect(uri: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme == "http" and (parts.hostname or "") in ("localhost", "127.0.0.1", "::1")


def issue_access_token(state, token: str, principal, lifetime: float, scopes, **extra) -> None:
    """Make ``token`` a valid bearer token of ``principal`` for ``lifetime`` seconds."""
    with state.lock:
        state.oauth_tokens[token] = {"principal": principal, "expires": state.now() + float(lifetime),
                                     "scopes": list(scopes or []), **extra}
        state.token_fetches += 1


# --------------------------------------------------------------------------- oauthlib validator

class _Validator(RequestValidator):
    def __init__(self, state) -> None:
        self.state = state

    @property
    def oauth(self) -> OAuthStore:
        return store(self.state)

    # -- clients
    def client_authentication_required(self, request, *args, **kwargs):
        if request.grant_type == "client_credentials" or (request.headers.get("Authorization") or ""):
            return True
        app = self.oauth.apps.get(request.client_id or "")
        return app is None or app["secret"] is not None

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
                return _reason("The Authorization header is not valid HTTP Basic credentials.")
        else:
            client_id = getattr(request, "client_id", None)
            client_secret = getattr(request, "client_secret", None)
        if not client_id or client_secret is None:
            return _reason("Client authentication failed: no client credentials were sent.")
        with self.state.lock:
            sp = self.state.service_principals.get(client_id)
            app = self.oauth.apps.get(client_id)
            expected = sp["secret"] if sp is not None else (app or {}).get("secret")
            if not expected or not secrets.compare_digest(expected, client_secret):
                return _reason("Client authentication failed: unknown client or wrong client secret.")
        request.client = _Client(client_id)
        if getattr(request, "client_id", None) not in (None, client_id):
            return _reason("The client_id of the body and of the Authorization header differ.")
        request.client_id = client_id
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs):
        app = self.oauth.apps.get(client_id or "")
        if app is None or app["secret"] is not None:
            return _reason(f"Unknown public client {client_id!r}." if app is None else
                           "This client is confidential: authenticate with its client secret.")
        request.client = _Client(client_id)
        return True

    def validate_client_id(self, client_id, request, *args, **kwargs):
        return client_id in self.oauth.apps

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        if client_id in self.state.service_principals:
            return grant_type == "client_credentials" or _reason(
                f"A service principal uses client_credentials, not {grant_type}.")
        if client_id in self.oauth.apps:
            return grant_type in ("authorization_code", "refresh_token") or _reason(
                f"An app connection signs users in; {grant_type} is not allowed for it.")
        return False

    # -- scopes
    def get_default_scopes(self, client_id, request, *args, **kwargs):
        return ["all-apis"] if client_id in self.state.service_principals else ["all-apis", "offline_access"]

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        unknown = [s for s in scopes or [] if s not in SUPPORTED_SCOPES]
        return (bool(scopes) and not unknown) or _reason(f"Unsupported scope(s): {' '.join(unknown) or '(none)'}.")

    # -- the authorize endpoint
    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        app = self.oauth.apps.get(client_id)
        if app is None:
            return False
        return redirect_uri in app["redirect_uris"] or (app["loopback"] and _is_loopback_redirect(redirect_uri))

    def get_default_redirect_uri(self, client_id, request, *args, **kwargs):
        return None

    def validate_response_type(self, client_id, response_type, client, request, *args, **kwargs):
        return response_type == "code" and client_id in self.oauth.apps

    def is_pkce_required(self, client_id, request):
        return True

    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        with self.state.lock:
            self.oauth.codes[code["code"]] = {
                "client_id": client_id, "redirect_uri": request.redirect_uri, "user": request.user,
                "challenge": request.code_challenge, "method": request.code_challenge_method,
                "scopes": list(request.scopes or []), "used": False,
                "expires": self.state.now() + float(self.state.config.authorization_code_lifetime)}

    # -- the code exchange
    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        with self.state.lock:
            entry = self.oauth.codes.get(code)
            if entry is None or entry["used"]:
                return _reason("The authorization code is invalid or was already used.")
            if entry["client_id"] != client.client_id:
                return _reason("The authorization code was issued to another client.")
            if entry["expires"] < self.state.now():
                return _reason("The authorization code has expired.")
            request.user = entry["user"]
            request.scopes = entry["scopes"]
            request.grant = None
        return True

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, request, *args, **kwargs):
        entry = self.oauth.codes.get(code)
        return entry is not None and entry["redirect_uri"] == redirect_uri

    def get_code_challenge(self, code, request):
        entry = self.oauth.codes.get(code)
        return entry["challenge"] if entry else None

    def get_code_challenge_method(self, code, request):
        entry = self.oauth.codes.get(code)
        return entry["method"] if entry else None

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        with self.state.lock:
            if code in self.oauth.codes:
                self.oauth.codes[code]["used"] = True

    # -- refreshing
    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        with self.state.lock:
            entry = self.oauth.refresh.get(refresh_token)
            if entry is None:
                return _reason("The refresh token is invalid.")
            if not entry["active"]:
                return _reason(entry.get("why") or "The refresh token has been revoked.")
            if entry["client_id"] != client.client_id:
                return _reason("The refresh token was issued to another client.")
            if entry["expires"] < self.state.now():
                return _reason("The refresh token has expired: sign in again.")
            request.user = entry["user"]
            request.grant = entry["grant"]
        return True

    def get_original_scopes(self, refresh_token, request, *args, **kwargs):
        return list(self.oauth.refresh[refresh_token]["scopes"])

    def rotate_refresh_token(self, request):
        return bool(self.state.config.rotate_refresh_tokens)

    # -- issuing
    def save_bearer_token(self, token, request, *args, **kwargs):
        state, oauth = self.state, store(self.state)
        if request.grant_type == "client_credentials":
            self.state.issue_oauth_token(token["access_token"], request.client_id, token["expires_in"], request.scopes)
            with state.lock:
                oauth.issued["client_credentials"] += 1
            return
        principal = state.add_user(request.user)
        with state.lock:
            grant = getattr(request, "grant", None)
            if grant is None:
                grant = secrets.token_hex(8)
                oauth.grants[grant] = {"user": request.user, "client_id": request.client_id, "access_tokens": []}
            oauth.grants[grant]["access_tokens"].append(token["access_token"])
            new_refresh = token.get("refresh_token")
            if new_refresh and new_refresh != getattr(request, "refresh_token", None):
                old = oauth.refresh.get(getattr(request, "refresh_token", None) or "")
                if old is not None:
                    old["active"], old["why"] = False, "The refresh token was already used (it was rotated)."
                oauth.refresh[new_refresh] = {
                    "grant": grant, "client_id": request.client_id, "user": request.user,
                    "scopes": list(request.scopes or []), "active": True,
                    "expires": state.now() + float(state.config.refresh_token_lifetime)}
            oauth.issued[request.grant_type] += 1
        issue_access_token(state, token["access_token"], principal, token["expires_in"], request.scopes, grant=grant)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


class Server(AuthorizationEndpoint, TokenEndpoint):
    """oauthlib's endpoints with the grants Databricks serves (no implicit, no password grant)."""

    def __init__(self, validator, token_expires_in, token_generator, refresh_token_generator):
        self.request_validator = validator
        bearer = BearerToken(validator, token_generator, token_expires_in, refresh_token_generator)
        code = AuthorizationCodeGrant(validator)
        TokenEndpoint.__init__(self, default_grant_type="authorization_code", default_token_type=bearer,
                               grant_types={"authorization_code": code, "refresh_token": RefreshTokenGrant(validator),
                                            "client_credentials": ClientCredentialsGrant(validator)})
        AuthorizationEndpoint.__init__(self, default_response_type="code", response_types={"code": code},
                                       default_token_type=bearer)


def _server(state) -> Server:
    """One oauthlib Server per state (built lazily, cached on the state)."""
    def lifetime(request) -> float:
        seconds = float(state.config.token_lifetime if request.grant_type == "client_credentials"
                        else state.config.user_token_lifetime)
        return int(seconds) if seconds.is_integer() else seconds

    def access_token(request):
        now = int(state.now())
        subject = request.client_id if request.grant_type == "client_credentials" else request.user
        header = {"alg": "RS256", "kid": "emulator", "typ": "at+jwt"}
        payload = {"client_id": request.client_id, "sub": subject, "iat": now,
                   "exp": now + int(lifetime(request) + 0.999), "scope": " ".join(request.scopes or []),
                   "iss": "databricks-emulator", "jti": secrets.token_hex(8)}
        return f"{_b64(header)}.{_b64(payload)}.{secrets.token_urlsafe(32)}"

    def refresh_token(request):
        return "doau" + secrets.token_urlsafe(32)

    def make():
        return Server(_Validator(state), token_expires_in=lifetime, token_generator=access_token,
                      refresh_token_generator=refresh_token)
    return state.area("oauth_server", make)


# --------------------------------------------------------------------------- errors

DESCRIPTIONS = {
    "invalid_client": "Client authentication failed.",
    "invalid_grant": "The grant is invalid, expired or revoked.",
    "invalid_request": "The request is missing a required parameter or is malformed.",
    "invalid_scope": "The requested scope is invalid or unknown.",
    "unauthorized_client": "The client is not allowed to use this grant type.",
    "unsupported_grant_type": "The grant type is not supported.",
    "access_denied": "The user denied the request.",
}


def oauth_error(status: int, error: str, description: str | None = None, headers=None):
    """(status, body, headers) of an OAuth error answer."""
    out = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    out.update(headers or {})
    return status, {"error": error, "error_description": description or DESCRIPTIONS.get(error, error)}, out


def _token(req):
    body = req.raw.decode("utf-8", "replace")
    form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
    if form.get("grant_type") == TOKEN_EXCHANGE:
        from .federation import exchange

        return exchange(req, form)
    headers = {k: v for k, v in req.headers.items()}
    _REASON.text = None
    h, payload, status = _server(req.state).create_token_response(
        req.base_url + req.path, http_method=req.method, body=body, headers=headers)
    out_headers = dict(h or {})
    out_headers["Content-Type"] = "application/json"
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        data = {"error": "server_error", "error_description": str(payload)}
    if status >= 400 and isinstance(data, dict) and "error" in data:
        reason = getattr(_REASON, "text", None)
        if reason and data["error"] in ("invalid_grant", "invalid_client", "invalid_scope", "unauthorized_client"):
            data["error_description"] = reason
        data.setdefault("error_description", DESCRIPTIONS.get(data["error"], data["error"]))
    return status, data, out_headers


@route("POST", r"/oidc/v1/token", auth=False, parse_json=False)
def workspace_token(req):
    return _token(req)


@route("POST", r"/oidc/accounts/(?P<account_id>[^/]+)/v1/token", auth=False, parse_json=False)
def account_token(req):
    if req.params["account_id"] != req.state.account_id:
        return oauth_error(400, "invalid_request", f"Account {req.params['account_id']} not found")
    return _token(req)


# --------------------------------------------------------------------------- the authorize endpoint

def _authorize(req, form: dict | None):
    server = _server(req.state)
    query = form.get("_query", "") if form is not None else urllib.parse.urlencode(
        [(k, v) for k, vs in req.query.items() for v in vs])
    uri = f"{req.base_url}{req.path}?{query}"
    from oauthlib.oauth2.rfc6749 import errors

    try:
        scopes, credentials = server.validate_authorization_request(uri, http_method="GET")
    except errors.FatalClientError as e:                # unknown client or redirect URI: never redirect
        page = (f"<!doctype html><title>Sign-in error</title><h1>Sign-in error</h1>"
                f"<p>{html.escape(e.error)}: {html.escape(e.description or '')}</p>")
        return e.status_code, page, {"Content-Type": "text/html; charset=utf-8"}
    except errors.OAuth2Error as e:
        return 302, b"", {"Location": e.in_uri(e.redirect_uri), "Content-Type": "text/plain"}
    config = req.state.config
    if form is None and not config.oauth_auto_consent:
        return 200, _consent_page(req, credentials, scopes, uri.split("?", 1)[1]), {"Content-Type": "text/html; charset=utf-8"}
    user = config.oauth_consent_user if form is None else (form.get("user_name") or config.oauth_consent_user).strip()
    if form is not None and form.get("decision") != "allow":
        target = credentials["redirect_uri"]
        sep = "&" if "?" in target else "?"
        location = target + sep + urllib.parse.urlencode({"error": "access_denied", "error_description":
                                                          DESCRIPTIONS["access_denied"], "state": credentials.get("state") or ""})
        return 302, b"", {"Location": location, "Content-Type": "text/plain"}
    headers, _, status = server.create_authorization_response(uri, http_method="GET", scopes=scopes,
                                                              credentials={"user": user})
    return status, b"", {**headers, "Content-Type": "text/plain"}


def _consent_page(req, credentials, scopes, query: str) -> str:
    q = html.escape
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Sign in to the Databricks emulator</title>"
            "</head><body><h1>Sign in to the Databricks emulator</h1>"
            f"<p>The application <b>{q(credentials.get('client_id', ''))}</b> asks for access to this workspace "
            f"with the scopes <code>{q(' '.join(scopes))}</code>.</p>"
            f"<form method='post' action='{q(req.path)}'>"
            f"<input type='hidden' name='_query' value='{q(query)}'>"
            f"<label>User <input name='user_name' value='{q(req.state.config.oauth_consent_user)}'></label> "
            "<button name='decision' value='allow'>Allow</button> "
            "<button name='decision' value='deny'>Deny</button></form></body></html>")


@route("GET", r"/oidc/v1/authorize", auth=False)
def authorize_page(req):
    return _authorize(req, None)


@route("POST", r"/oidc/v1/authorize", auth=False, parse_json=False)
def authorize_decision(req):
    return _authorize(req, dict(urllib.parse.parse_qsl(req.raw.decode("utf-8", "replace"), keep_blank_values=True)))


@route("GET", r"/oidc/accounts/(?P<account_id>[^/]+)/v1/authorize", auth=False)
def account_authorize_page(req):
    if req.params["account_id"] != req.state.account_id:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Account {req.params['account_id']} not found")
    return _authorize(req, None)


@route("POST", r"/oidc/accounts/(?P<account_id>[^/]+)/v1/authorize", auth=False, parse_json=False)
def account_authorize_decision(req):
    if req.params["account_id"] != req.state.account_id:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Account {req.params['account_id']} not found")
    return _authorize(req, dict(urllib.parse.parse_qsl(req.raw.decode("utf-8", "replace"), keep_blank_values=True)))


# --------------------------------------------------------------------------- for tests and the Emulator API

def add_app(state, redirect_uris=(), confidential: bool = False, loopback: bool = False, client_id: str | None = None):
    """Register an app connection; returns (client_id, client_secret or None)."""
    import uuid

    cid = client_id or str(uuid.uuid4())
    secret = ("dose" + secrets.token_hex(16)) if confidential else None
    with state.lock:
        store(state).apps[cid] = {"client_id": cid, "secret": secret, "redirect_uris": list(redirect_uris),
                                  "loopback": loopback}
    return cid, secret


def sign_in(state, user: str, client_id: str = CLI_CLIENT, scopes=("all-apis", "offline_access")) -> dict:
    """A completed sign-in, as if ``user`` had gone through the browser step: the token answer."""
    server = _server(state)

    class _R:                                          # the little of a request the generators read
        pass

    r = _R()
    r.grant_type, r.client_id, r.user, r.scopes = "authorization_code", client_id, user, list(scopes)
    r.refresh_token, r.grant, r.extra_credentials = None, None, None
    handler = server.default_token_type
    token = dict(handler.create_token(r, refresh_token="offline_access" in scopes))
    server.request_validator.save_bearer_token(token, r)
    return token


def revoke(state, user_name: str | None = None) -> int:
    """Revoke the refresh and access tokens of every sign-in (of one user); returns how many grants."""
    oauth = store(state)
    n = 0
    with state.lock:
        for grant_id, grant in oauth.grants.items():
            if user_name is not None and grant["user"] != user_name:
                continue
            n += 1
            for token in grant["access_tokens"]:
                state.oauth_tokens.pop(token, None)
        for entry in oauth.refresh.values():
            if user_name is None or entry["user"] == user_name:
                entry["active"], entry["why"] = False, "The refresh token has been revoked."
    return n


# --------------------------------------------------------------------------- the Emulator's documents

def seed_sign_ins(emu) -> None:
    """What every emulator starts with: an Entra ID application, a federated service principal."""
    from . import entra, federation

    emu.entra = entra.add_service_principal(emu.state)
    emu.federation_client_id, _ = emu.state.add_service_principal("emulator-federated-principal")
    federation.add_policy(emu.state, emu.federation_client_id)
    emu._user_login = None


def sign_in_connections(emu) -> dict:
    """The connection documents of the three sign-in types, for ``Emulator.connections()``."""
    from . import federation

    state = emu.state
    with state.lock:
        login = _current_login(emu)
        if not login:                            # not signed in yet, or that sign-in was revoked
            emu._user_login = sign_in(state, "emulator-user@example.com")
            login = _current_login(emu)
    return {
        "oauth_user": {"type": "oauth_user", "host": emu.url, "client_id": CLI_CLIENT,
                       "scopes": "all-apis offline_access", **login},
        "azure_service_principal": {"type": "azure_service_principal", "host": emu.url,
                                    "authority_host": emu.url, **emu.entra},
        "workload_identity_federation": {"type": "workload_identity_federation", "host": emu.url,
                                         "client_id": emu.federation_client_id,
                                         "oidc_token_filepath": federation.token_file(state).path},
    }


def user_login_document(emu, user: str, client_id: str | None, scopes: str) -> dict:
    import datetime as dt

    token = sign_in(emu.state, user, client_id or CLI_CLIENT, scopes.split())
    when = dt.datetime.fromtimestamp(int(emu.state.now() + float(token["expires_in"])),
                                     dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {"type": "oauth_user", "host": emu.url, "client_id": client_id or CLI_CLIENT, "scopes": scopes,
           "access_token": token["access_token"], "expires_at": when}
    if token.get("refresh_token"):
        doc["refresh_token"] = token["refresh_token"]
    if emu.ca_bundle:
        doc["ca_bundle"] = emu.ca_bundle
    return doc


def _current_login(emu) -> dict:
    """The default user login's tokens as the emulator knows them now (after any refresh and
    rotation by a client), so connections() stays usable; {} when there is no live sign-in."""
    import datetime as dt

    first = emu._user_login or {}
    oauth = store(emu.state)
    entry = oauth.refresh.get(first.get("refresh_token", ""))
    if entry is None:
        return {}
    live = [t for t, e in oauth.refresh.items() if e["grant"] == entry["grant"] and e["active"]]
    if not live:
        return {}
    access = oauth.grants[entry["grant"]]["access_tokens"][-1]
    expires = emu.state.oauth_tokens.get(access, {}).get("expires", emu.state.now())
    when = dt.datetime.fromtimestamp(int(expires), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"access_token": access, "refresh_token": live[-1], "expires_at": when}


# --------------------------------------------------------------------------- discovery

def _discovery(base: str, oidc: str) -> dict:
    return {
        "issuer": oidc,
        "authorization_endpoint": f"{oidc}/v1/authorize",
        "token_endpoint": f"{oidc}/v1/token",
        "jwks_uri": f"{oidc}/jwks.json",
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token", TOKEN_EXCHANGE],
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
