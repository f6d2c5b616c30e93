"""Databricks OAuth user login (user to machine): authorization code with PKCE, then refresh.

A platform runs the browser step itself (its OAuth 2.0 connection type, configured from the
manifest's ``oauth2`` block) and hands the connector the resulting tokens: ``access_token``,
``refresh_token`` and ``expires_at``. The connector uses the access token, refreshes it before it
expires and once after the API rejects it (401/403 for an expired token), through
requests-oauthlib (``OAuth2Session`` + ``WebApplicationClient``) over the shared session's egress.

Databricks may rotate the refresh token on every refresh. The new tokens are handed back:
``databricks_connector.current_connection(conn)`` returns the document with the tokens the
connector holds now, ``databricks_connector.on_connection_update(callback)`` is told after each
refresh, and the CLI writes the connection file back (atomically). A refused refresh token
(``invalid_grant``: revoked, expired, or already rotated away) is one connection error telling the
user to sign in again; later calls fail the same way at once, with no further token request.

``login()`` is the browser step for a person (``databricks-connector login``): a loopback redirect
listener, the authorize URL with state and an S256 code challenge, and the code exchange.
"""
from __future__ import annotations

import os
import threading
import time
import weakref

from ..errors import ConnectorError
from .hosts import oidc_base
from .oauth import (CachedToken, TokenAuth, check_token, egress, iso_time, jwt_expiry, parse, parse_expiry, plain,
                    protocol_url, raise_for_token_error)
from .service_principal import scope_list

AUTH_TYPE = "oauth-u2m"
DEFAULT_CLIENT_ID = "databricks-cli"
DEFAULT_SCOPES = "all-apis offline_access"
SIGN_IN = ("Sign in to Databricks again: reconnect this connection in your platform, or run "
           "`databricks-connector login` to write a new connection file.")


class UserLogin(TokenAuth):
    auth_type = AUTH_TYPE

    def __init__(self, fields: dict, token_url: str, client_id: str, client_secret: str | None, scopes: list[str],
                 access_token: str | None, refresh_token: str | None, expires_at: float | None):
        super().__init__()
        self._fields = {k: v for k, v in fields.items() if k not in ("access_token", "refresh_token", "expires_at")}
        self._fields.setdefault("type", "oauth_user")
        self._expires_style = type(fields.get("expires_at"))
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scopes = scopes
        self._refresh_token = refresh_token
        self._old_refresh: list[str] = []
        self._refused: ConnectorError | None = None
        if access_token and expires_at is None:
            expires_at = jwt_expiry(access_token)
        self.cache = CachedToken(self._refresh, token=access_token, expires_at=expires_at,
                                 on_renewed=self._renewed)
        self._previous = self.document()

    def own_secrets(self) -> list[str]:
        return [s for s in (self._secret, self._refresh_token, *self._old_refresh) if s]

    def __repr__(self) -> str:
        return f"UserLogin(token_url={self.token_url!r}, client_id={self.client_id!r}, tokens=****)"

    def document(self) -> dict:
        """The connection document with the tokens held now."""
        doc = dict(self._fields)
        if self.cache.current:
            doc["access_token"] = self.cache.current
        if self._refresh_token:
            doc["refresh_token"] = self._refresh_token
        if self.cache.expires_at is not None:
            doc["expires_at"] = (int(self.cache.expires_at) if self._expires_style in (int, float)
                                 else iso_time(self.cache.expires_at))
        return doc

    # -- refreshing ----------------------------------------------------------------------
    def _refresh(self):
        if self._refused is not None:
            raise self._refused
        if not self._refresh_token:
            raise ConnectorError("authentication", "The access token has expired and the connection has no refresh token",
                                 hint="Request the offline_access scope so the sign-in includes a refresh token. " + SIGN_IN)
        from oauthlib.oauth2 import WebApplicationClient
        from requests.auth import HTTPBasicAuth

        session = egress(self.post, WebApplicationClient(self.client_id), scope=self.scopes)
        session.register_compliance_hook("refresh_token_response", lambda r: raise_for_token_error(
            r, hint_credentials="Check the Client ID (and Client Secret) of the app connection. " + SIGN_IN,
            rejected_grant=self._grant_refused))
        url = plain(session, self.token_url)
        extra = {} if self._secret else {"client_id": self.client_id}       # a public client names itself
        auth = HTTPBasicAuth(self.client_id, self._secret) if self._secret else None
        token = parse(session, lambda: session.refresh_token(url, refresh_token=self._refresh_token, auth=auth, **extra))
        access, lifetime = check_token(token)
        new_refresh = token.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh and new_refresh != self._refresh_token:
            self._old_refresh = [self._refresh_token, *self._old_refresh][:4]
            self._refresh_token = new_refresh
        return access, lifetime

    def _grant_refused(self, err: ConnectorError) -> ConnectorError:
        self._refused = ConnectorError(
            "authentication", f"The Databricks sign-in is no longer valid: the refresh token was refused ({err.message}). "
            "It was revoked, it expired, or it was already used", status=err.status, error_code=err.error_code,
            hint=SIGN_IN)
        return self._refused

    def _renewed(self) -> None:
        from . import rotated

        updated = self.document()
        previous, self._previous = self._previous, updated
        rotated(previous, updated)


# One auth per grant for the whole process: two shared sessions of the same user login (say, two
# Connector instances with different timeouts) must share its refresh token, or the first rotation
# would retire the refresh token the other one holds.
_LIVE: "weakref.WeakValueDictionary[str, UserLogin]" = weakref.WeakValueDictionary()
_LIVE_LOCK = threading.Lock()


def build(fields: dict):
    from . import fingerprint

    host, base = oidc_base(fields.get("host", ""), fields.get("account_id"))
    key = fingerprint(fields)
    with _LIVE_LOCK:
        live = _LIVE.get(key)
    if live is not None:
        return host, live, fields.get("account_id") or None
    from . import current_connection

    fields = current_connection(fields)     # the newest tokens of this grant seen by the process (a session
                                            # evicted from the cache after a rotation starts from those)
    client_id = fields.get("client_id") or DEFAULT_CLIENT_ID
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConnectorError("configuration", "Client ID must be text", hint=f"Use your app connection's client ID, or {DEFAULT_CLIENT_ID}.")
    secret = fields.get("client_secret") or None
    if secret is not None and not isinstance(secret, str):
        raise ConnectorError("configuration", "Client Secret must be text")
    access, refresh = fields.get("access_token") or None, fields.get("refresh_token") or None
    bad = [label for label, v in (("Access Token", access), ("Refresh Token", refresh)) if v is not None and not isinstance(v, str)]
    if bad:
        raise ConnectorError("configuration", f"{' and '.join(bad)} must be text", hint=SIGN_IN)
    if not access and not refresh:
        raise ConnectorError("configuration", "Access Token and Refresh Token are empty: the connection has not been signed in",
                             hint="Let your platform run the OAuth sign-in for this connection, or run `databricks-connector login`.")
    expires_at = parse_expiry(fields.get("expires_at"))
    auth = UserLogin(fields, f"{base}/v1/token", client_id.strip(), secret.strip() if secret else None,
                     scope_list(fields.get("scopes"), DEFAULT_SCOPES), access and access.strip(),
                     refresh and refresh.strip(), expires_at)
    with _LIVE_LOCK:
        auth = _LIVE.setdefault(key, auth)
    return host, auth, fields.get("account_id") or None


# --------------------------------------------------------------------------- the browser step

class _LoginAuth:
    """The auth of the login's own shared session: no bearer token, only the one-time secrets of
    the exchange (code, verifier, tokens) to redact."""

    auth_type = AUTH_TYPE

    def __init__(self, secret: str | None):
        self.post = None
        self.secrets = [secret] if secret else []

    def __call__(self, request):
        return request

    def secret_values(self) -> list[str]:
        return list(self.secrets)

    def rejected(self, request) -> bool:
        return False


def login(host: str, *, client_id: str = DEFAULT_CLIENT_ID, client_secret: str | None = None,
          scopes: str = DEFAULT_SCOPES, port: int = 8020, account_id: str | None = None, ca_bundle: str | None = None,
          open_browser=None, announce=None, timeout: float = 300.0) -> dict:
    """Sign a person in through their browser; returns the connection document (with tokens).

    ``open_browser(url)`` opens the authorize URL (default: the ``webbrowser`` module);
    ``announce(url)`` tells the person where to go when no browser opens."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qs, urlsplit

    from oauthlib.oauth2 import WebApplicationClient
    from requests.auth import HTTPBasicAuth

    from ..session import SharedSession
    from . import Connection

    origin, base = oidc_base(host, account_id)
    scope = scope_list(scopes, DEFAULT_SCOPES)
    if ca_bundle is not None and not (isinstance(ca_bundle, str) and os.path.isfile(ca_bundle)):
        raise ConnectorError("configuration", "CA Bundle must be the path of an existing PEM file",
                             hint="Leave it empty to trust the system's certificate authorities.")
    received: dict = {}
    done = threading.Event()

    class Callback(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            query = parse_qs(urlsplit(self.path).query)
            if not ({"code", "error"} & query.keys()):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            ok = "code" in query
            page = (b"<!doctype html><title>Databricks sign-in</title><p>"
                    + (b"Signed in. You can close this window and return to the terminal." if ok
                       else b"Sign-in was not completed. Return to the terminal for details.") + b"</p>")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            if not done.is_set():
                received["path"] = self.path
                received["query"] = {k: v[0] for k, v in query.items()}
                done.set()

    server = HTTPServer(("127.0.0.1", port), Callback)
    listener = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    listener.start()
    redirect = f"http://localhost:{server.server_address[1]}"
    auth = _LoginAuth(client_secret)
    shared = SharedSession(Connection("oauth_user", origin, auth, account_id, "", ca_bundle))
    try:
        session = egress(auth.post, WebApplicationClient(client_id), scope=scope, redirect_uri=redirect, pkce="S256")
        authorize = f"{base}/v1/authorize"
        shown = plain(session, authorize)
        url, state = session.authorization_url(shown)
        url = authorize + url[len(shown):]
        auth.secrets.append(session._code_verifier)
        if announce is not None:
            announce(url)
        if open_browser is not None:
            open_browser(url)
        if not done.wait(timeout):
            raise ConnectorError("timeout", f"No sign-in arrived at {redirect} within {timeout:.0f} seconds",
                                 hint="Open the printed URL in a browser on this machine and sign in.")
        query = received["query"]
        if "error" in query:
            raise ConnectorError("authentication", f"Sign-in was not completed: {query['error']}"
                                 + (f": {query['error_description']}" if query.get("error_description") else ""),
                                 hint="Sign in again and allow the access the connection asks for.")
        if query.get("state") != state:
            raise ConnectorError("authentication", "The sign-in answer does not belong to this login (state mismatch)",
                                 hint="Run the login again and use only the URL it prints.")
        auth.secrets.append(query.get("code", ""))
        session.register_compliance_hook("access_token_response", lambda r: raise_for_token_error(
            r, hint_credentials="Check the Client ID (and Client Secret) of the app connection."))
        token_url = plain(session, f"{base}/v1/token")
        callback = protocol_url(redirect + received["path"])
        if client_secret:
            fetch = lambda: session.fetch_token(token_url, authorization_response=callback,  # noqa: E731
                                                auth=HTTPBasicAuth(client_id, client_secret))
        else:
            fetch = lambda: session.fetch_token(token_url, authorization_response=callback,  # noqa: E731
                                                include_client_id=True)
        token = parse(session, fetch)
        access, lifetime = check_token(token)
    finally:
        server.shutdown()
        server.server_close()
        shared.close()
    doc = {"type": "oauth_user", "host": origin, "client_id": client_id, "scopes": " ".join(scope),
           "access_token": access, "expires_at": iso_time(time.time() + (lifetime or 3600))}
    if token.get("refresh_token"):
        doc["refresh_token"] = token["refresh_token"]
    if client_secret:
        doc["client_secret"] = client_secret
    if account_id:
        doc["account_id"] = account_id
    if ca_bundle:
        doc["ca_bundle"] = ca_bundle
    return doc
