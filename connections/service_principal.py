"""Databricks service principal: OAuth 2.0 client credentials (machine to machine).

oauthlib speaks the protocol (the request body, and parsing and checking the token answer);
the token request itself goes out through the connection's shared session, so it gets the
same timeouts, retries (429 and 503 from the token endpoint are retried), debug log and
redaction as every API call. One token per connection is cached and shared by all threads:
fetched once, refreshed before it expires, and fetched again once when the API rejects it.
"""
from __future__ import annotations

import threading
import time

from requests.auth import AuthBase, _basic_auth_str

from ..errors import ConnectorError
from .hosts import parse_token_url

AUTH_TYPE = "oauth-m2m"


def refresh_margin(lifetime: float) -> float:
    """Seconds before expiry at which a token is renewed: 5 minutes for Databricks' 1 hour tokens,
    proportionally less for short-lived ones so a token is never refreshed on every call."""
    return min(300.0, max(0.2 * lifetime, min(40.0, 0.5 * lifetime)))


class ClientCredentials(AuthBase):
    auth_type = AUTH_TYPE

    def __init__(self, token_url: str, client_id: str, client_secret: str, scopes: list[str]):
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scopes = scopes
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._old_tokens: list[str] = []
        self.fetches = 0
        self.post = None  # set by the shared session: post(url, body, headers) -> requests.Response
        self.deadline = None  # set by the shared session: () -> the calling request's monotonic deadline, or None

    # -- requests auth -------------------------------------------------------------------
    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        token = self._token
        if token is not None and time.monotonic() < self._renew_at:
            return token
        deadline = self.deadline() if self.deadline else None
        wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._lock.acquire(timeout=wait):
            # Another thread is fetching the token and this request's deadline came first.
            raise ConnectorError("timeout", "Gave up waiting for the OAuth token (another request was fetching it) "
                                 "at this step's deadline", hint="The token endpoint is slow or failing; run the step "
                                 "again later, or raise its timeout.")
        try:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._fetch()
            return self._token
        finally:
            self._lock.release()

    def rejected(self, request) -> bool:
        """The API answered 401/403 for this request's token: drop it so the next call fetches
        a new one. True when a retry with a fresh token makes sense."""
        sent = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        with self._lock:
            if self._token == sent:
                self._token = None
        return True

    def secret_values(self) -> list[str]:
        values = [self._secret, *self._old_tokens]
        if self._token:
            values.append(self._token)
        return values

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, client_secret=****)"

    # -- the token request -----------------------------------------------------------------
    def _fetch(self) -> None:
        from oauthlib.oauth2 import BackendApplicationClient
        from oauthlib.oauth2.rfc6749.errors import OAuth2Error

        client = BackendApplicationClient(client_id=self.client_id)
        body = client.prepare_request_body(scope=self.scopes, include_client_id=False)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
                   "Authorization": _basic_auth_str(self.client_id, self._secret)}
        response = self.post(self.token_url, body, headers)
        if response.status_code != 200:
            raise _token_error(response)
        try:
            token = client.parse_request_body_response(response.text, scope=self.scopes)
        except Warning as changed:            # the server granted other scopes than asked: keep its answer
            token = getattr(changed, "token", None) or {}
        except (OAuth2Error, ValueError) as exc:
            raise ConnectorError("authentication", f"The token endpoint's answer has no usable access token ({type(exc).__name__})",
                                 status=response.status_code,
                                 hint="Check the Token URL: it must be the workspace's or account's /oidc/.../v1/token endpoint.") from None
        access = token.get("access_token")
        if not isinstance(access, str) or not access or str(token.get("token_type", "")).lower() != "bearer":
            raise ConnectorError("authentication", "The token endpoint answered without a bearer access token",
                                 status=response.status_code, hint="Check the Token URL.")
        try:
            lifetime = float(token.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        if self._token:
            self._old_tokens = [self._token, *self._old_tokens][:4]
        self._token = access
        self._renew_at = time.monotonic() + lifetime - refresh_margin(lifetime)
        self.fetches += 1


def _token_error(response) -> ConnectorError:
    from ..errors import from_response

    err = from_response(response.status_code, response.content, response.headers.get("Content-Type", ""), response.reason)
    if response.status_code in (400, 401) and ("invalid_client" in err.message or "unauthorized_client" in err.message
                                              or response.status_code == 401):
        return ConnectorError("authentication", f"The token endpoint rejected the service principal: {err.message}",
                              status=response.status_code, error_code=err.error_code,
                              hint="Check the Service Principal Client ID and Client Secret, and that the secret has not expired.")
    if "invalid_scope" in err.message:
        return ConnectorError("configuration", f"The token endpoint rejected the scopes: {err.message}",
                              status=response.status_code, error_code=err.error_code,
                              hint="Use the scope all-apis unless your administrator gave you others.")
    err.message = f"Token request failed: {err.message}"
    return err


def build(fields: dict):
    token_url, host, account_id = parse_token_url(fields.get("token_url", ""))
    client_id = fields.get("client_id")
    secret = fields.get("client_secret")
    missing = [label for label, v in (("Service Principal Client ID", client_id),
                                      ("Service Principal Client Secret", secret))
               if not isinstance(v, str) or not v.strip()]
    # (a value that is not text counts as missing: it cannot be a client id or secret)
    if missing:
        raise ConnectorError("configuration", f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} empty",
                             hint="Generate an OAuth secret for the service principal in the account console.")
    scopes = fields.get("scopes") or "all-apis"
    if isinstance(scopes, str):
        scope_list = scopes.replace(",", " ").split()
    elif isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
        scope_list = scopes
    else:
        raise ConnectorError("configuration", f"Scopes must be text such as all-apis, not {type(scopes).__name__}",
                             hint="Leave Scopes at its default, all-apis, unless your administrator gave you others.")
    return host, ClientCredentials(token_url, client_id.strip(), secret.strip(), scope_list), account_id
