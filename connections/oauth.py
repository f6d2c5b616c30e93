"""OAuth 2.0 machinery shared by the connection types that use tokens.

requests-oauthlib speaks the protocol: an ``OAuth2Session`` with an oauthlib client
(``BackendApplicationClient`` for client credentials, ``WebApplicationClient`` for the
authorization code with PKCE and for refreshing, ``TokenExchangeClient`` below for RFC 8693) builds
every token request and parses and checks every answer. The request itself leaves through the
connection's shared session: :class:`Egress` routes ``OAuth2Session.request`` to the session's
``exchange``, so a token request has the same pool, deadline, retries (429/503 from a token
endpoint are retried), TLS settings (the CA bundle), error classification and redacted debug log as
every API call, and there is one way out to the network.

:class:`CachedToken` is the one token cache: fetched once and shared by every thread, renewed
before it expires, dropped when the API rejects it so the next call fetches a new one once.

Two things requests-oauthlib does that a connector must not, and what is done about them:

* It logs the token request and answer at DEBUG (headers with the Basic credentials, the body with
  the client secret or refresh token, the tokens it obtained). A filter on its logger masks every
  secret a live connection knows and every token-shaped field, so enabling DEBUG logging for a
  whole process shows no secret (tests/test_connections.py proves it).
* oauthlib refuses any ``http://`` URL. The connector accepts plain http only for a loopback host
  (a local emulator, checked in hosts.py), so for those URLs the protocol layer is shown an
  ``https://`` spelling and :class:`Egress` sends to the real ``http://`` one.
"""
from __future__ import annotations

import logging
import re
import threading
import time
import weakref

from ..errors import ConnectorError

JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def refresh_margin(lifetime: float) -> float:
    """Seconds before expiry at which a token is renewed: 5 minutes for Databricks' 1 hour tokens,
    proportionally less for short-lived ones so a token is never refreshed on every call."""
    return min(300.0, max(0.2 * lifetime, min(40.0, 0.5 * lifetime)))


# --------------------------------------------------------------------------- no secret in logs

_LIVE: "weakref.WeakSet" = weakref.WeakSet()       # every auth object whose secrets must be masked
_FIELD = re.compile(r"""((?<![A-Za-z0-9_])['"]?(?:access_token|refresh_token|id_token|client_secret|code_verifier|code|"""
                    r"""subject_token|assertion|client_assertion|password)['"]?\s*[:=]\s*['"]?)([^'"&,\s}]+)""", re.I)
_SCHEME = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)


def register(auth) -> None:
    """Have the secrets of ``auth`` (its ``secret_values()``) masked in requests-oauthlib's log."""
    _LIVE.add(auth)


def mask(text: str) -> str:
    for auth in list(_LIVE):
        try:
            values = auth.secret_values()
        except Exception:  # noqa: BLE001 - masking must never fail a log call
            continue
        for value in sorted((v for v in values if isinstance(v, str) and len(v) >= 4), key=len, reverse=True):
            text = text.replace(value, "****")
    text = _FIELD.sub(lambda m: m.group(1) + "****", text)
    return _SCHEME.sub(lambda m: f"{m.group(1)} ****", text)


class _MaskSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = mask(record.getMessage())
            record.args = None
        except Exception:  # noqa: BLE001
            record.msg, record.args = "(message withheld: it could not be masked)", None
        return True


_FILTERED = False


def _filter_library_logs() -> None:
    global _FILTERED
    if not _FILTERED:
        for name in ("requests_oauthlib.oauth2_session", "oauthlib"):
            logging.getLogger(name).addFilter(_MaskSecrets())
        _FILTERED = True


# --------------------------------------------------------------------------- the egress

def protocol_url(url: str) -> str:
    """The spelling of ``url`` shown to oauthlib (https; see the module doc)."""
    return "https://" + url[len("http://"):] if url.startswith("http://") else url


class _Headers:
    """What a requests auth object writes its header into."""

    def __init__(self, headers: dict):
        self.headers = headers


_EGRESS = None


def _egress_class():
    global _EGRESS
    if _EGRESS is None:
        from requests_oauthlib import OAuth2Session

        class Egress(OAuth2Session):
            """An OAuth2Session whose requests leave through the shared session."""

            egress_post = None
            plain_urls: set

            def request(self, method, url, data=None, headers=None, withhold_token=False, client_id=None,
                        client_secret=None, files=None, **kwargs):
                if self.egress_post is None:
                    raise ConnectorError("internal", "The token request has no way out (no shared session)")
                headers = dict(headers or {})
                auth = kwargs.get("auth")
                if auth is not None:
                    auth(_Headers(headers))             # HTTPBasicAuth: the client credentials header
                if url in self.plain_urls:
                    url = "http://" + url[len("https://"):]
                return self.egress_post(url, data, headers)

        _EGRESS = Egress
    return _EGRESS


def egress(post, client, **kw):
    """An ``OAuth2Session`` for ``client`` whose requests go out through ``post(url, body,
    headers)`` (the shared session's token request, see ``SharedSession._token_post``)."""
    _filter_library_logs()
    session = _egress_class()(client=client, **kw)
    session.egress_post = post
    session.plain_urls = set()
    return session


def plain(session, url: str) -> str:
    """Register that ``url`` is a loopback http URL; returns the spelling to give oauthlib."""
    shown = protocol_url(url)
    if shown != url:
        session.plain_urls.add(shown)
    return shown


def TokenExchangeClient(client_id=None, **kw):
    """An oauthlib client for RFC 8693 token exchange (oauthlib ships none): a subject token (an
    OIDC ID token) in, an access token out."""
    from oauthlib.oauth2 import Client
    from oauthlib.oauth2.rfc6749.parameters import prepare_token_request

    class _TokenExchange(Client):
        grant_type = TOKEN_EXCHANGE

        def prepare_request_body(self, subject_token=None, subject_token_type=JWT_TOKEN_TYPE, body="", scope=None,
                                 include_client_id=True, code=None, redirect_uri=None, **kwargs):
            scope = self.scope if scope is None else scope
            return prepare_token_request(self.grant_type, body=body, subject_token=subject_token,
                                         subject_token_type=subject_token_type, scope=scope,
                                         include_client_id=include_client_id, client_id=self.client_id, **kwargs)

    return _TokenExchange(client_id, **kw)


def parse(session, call):
    """Run ``call()`` (a fetch_token/refresh_token of ``session``) and return the token dict.
    A server that granted other scopes than asked keeps its answer (oauthlib warns by raising)."""
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    try:
        return call()
    except Warning as changed:
        return dict(getattr(changed, "token", None) or {})
    except OAuth2Error as exc:
        raise ConnectorError("authentication", f"The token endpoint's answer has no usable access token "
                             f"({exc.error})", hint="Check the token URL or host of the connection.") from None
    finally:
        session.close()


def check_token(token: dict, status: int = 200) -> tuple[str, float | None]:
    """(access token, lifetime in seconds or None) of a token answer, or a classified error."""
    access = token.get("access_token")
    if not isinstance(access, str) or not access or str(token.get("token_type", "")).lower() != "bearer":
        raise ConnectorError("authentication", "The token endpoint answered without a bearer access token",
                             status=status, hint="Check the token URL or host of the connection.")
    lifetime = None
    try:
        if token.get("expires_in") is not None:
            lifetime = float(token["expires_in"])
    except (TypeError, ValueError):
        lifetime = None
    return access, lifetime


def raise_for_token_error(response, *, hint_credentials: str, rejected_grant=None):
    """A response hook: a token endpoint's error answer becomes a classified ConnectorError before
    oauthlib parses it (so the HTTP status and the OAuth ``error``/``error_description`` survive)."""
    if response.status_code == 200:
        return response
    from ..errors import from_response

    err = from_response(response.status_code, response.content, response.headers.get("Content-Type", ""),
                        response.reason)
    code = _oauth_error(response)
    if code == "invalid_grant" and rejected_grant is not None:
        raise rejected_grant(err)
    if code in ("invalid_client", "unauthorized_client") or response.status_code == 401:
        raise ConnectorError("authentication", f"The token endpoint rejected the credentials: {err.message}",
                             status=response.status_code, error_code=err.error_code, hint=hint_credentials)
    if code == "invalid_scope":
        raise ConnectorError("configuration", f"The token endpoint rejected the scopes: {err.message}",
                             status=response.status_code, error_code=err.error_code,
                             hint="Use the scope all-apis unless your administrator gave you others.")
    if code in ("invalid_grant", "invalid_request", "unsupported_grant_type"):
        raise ConnectorError("authentication", f"The token endpoint refused the request: {err.message}",
                             status=response.status_code, error_code=err.error_code, hint=hint_credentials)
    err.message = f"Token request failed: {err.message}"
    raise err


def _oauth_error(response) -> str | None:
    try:
        doc = response.json()
    except ValueError:
        return None
    if isinstance(doc, dict):
        value = doc.get("error") or doc.get("errorCode")
        return value if isinstance(value, str) else None
    return None


# --------------------------------------------------------------------------- the token cache

class CachedToken:
    """One access token shared by every thread: ``fetch()`` returns ``(access token, lifetime or
    None)``; it is called once when there is no token or the token is due for renewal, by one
    thread while the others wait for its result."""

    def __init__(self, fetch, *, token: str | None = None, expires_at: float | None = None, on_renewed=None):
        self._fetch = fetch
        self._on_renewed = on_renewed           # called after each renewal, still holding the lock
        self._lock = threading.Lock()
        self._token = token
        self._renew_at = float("inf")
        self.expires_at = expires_at            # wall clock (time.time()) or None when unknown
        self._old: list[str] = []
        self.fetches = 0
        if token and expires_at is not None:
            remaining = expires_at - time.time()
            self._renew_at = time.monotonic() + remaining - refresh_margin(max(remaining, 0.0))

    def get(self, deadline: float | None = None) -> str:
        """The token; ``deadline`` (monotonic) bounds the wait for another thread's renewal."""
        token = self._token
        if token is not None and time.monotonic() < self._renew_at:
            return token
        wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._lock.acquire(timeout=wait):
            # Another thread is fetching the token and this request's deadline came first.
            from ..errors import ConnectorError

            raise ConnectorError("timeout", "Gave up waiting for the OAuth token (another request was fetching it) "
                                 "at this step's deadline", hint="The token endpoint is slow or failing; run the step "
                                 "again later, or raise its timeout.")
        try:
            if self._token is None or time.monotonic() >= self._renew_at:
                self._renew()
            return self._token
        finally:
            self._lock.release()

    def _renew(self) -> None:
        access, lifetime = self._fetch()
        if self._token:
            self._old = [self._token, *self._old][:4]
        self._token = access
        lifetime = 3600.0 if lifetime is None else lifetime
        self._renew_at = time.monotonic() + lifetime - refresh_margin(lifetime)
        self.expires_at = time.time() + lifetime
        self.fetches += 1
        if self._on_renewed is not None:
            self._on_renewed()

    def drop(self, sent: str | None) -> None:
        """The API rejected ``sent``: forget it (when it is still the current token)."""
        with self._lock:
            if sent is None or self._token == sent:
                if self._token:
                    self._old = [self._token, *self._old][:4]
                self._token = None

    @property
    def current(self) -> str | None:
        return self._token

    def secrets(self) -> list[str]:
        return [t for t in (self._token, *self._old) if t]


class TokenAuth:
    """A requests auth that puts ``Authorization: Bearer <token>`` (and any extra headers) on every
    request, with the shared session's hooks: ``post`` (set by the session), ``rejected``,
    ``secret_values``."""

    auth_type = "oauth"

    def __init__(self):
        self.post = None  # set by the shared session: post(url, body, headers) -> requests.Response
        self.deadline = None  # set by the shared session: () -> the calling request's monotonic deadline, or None
        self._transient: list[str] = []     # one-time secrets of a request in flight (codes, verifiers)
        register(self)

    # -- to be provided by each connection type
    cache: CachedToken

    def extra_headers(self) -> dict:
        return {}

    def own_secrets(self) -> list[str]:
        return []

    # -- requests auth
    def _deadline(self):
        return self.deadline() if self.deadline else None

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.cache.get(self._deadline())}"
        for name, value in self.extra_headers().items():
            request.headers[name] = value
        return request

    def token(self) -> str:
        return self.cache.get(self._deadline())

    @property
    def fetches(self) -> int:
        return self.cache.fetches

    def rejected(self, request) -> bool:
        """The API answered 401/403 for this request's token: drop it so the re-sent request
        fetches a new one. True when a retry with a fresh token makes sense."""
        sent = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        self.cache.drop(sent)
        return True

    def secret_values(self) -> list[str]:
        return [*self.own_secrets(), *self.cache.secrets(), *self._transient]


def jwt_expiry(token) -> float | None:
    """The ``exp`` claim of a JWT access token (epoch seconds), read without verifying it: used only
    to schedule the next refresh when the connection does not say when its token expires."""
    import base64
    import json

    if not isinstance(token, str) or token.count(".") != 2:
        return None
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        exp = claims.get("exp") if isinstance(claims, dict) else None
        return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
    except (ValueError, TypeError):
        return None


def parse_expiry(value, label: str = "Expires At") -> float | None:
    """Epoch seconds from a number, a numeric string, or an ISO 8601 date-time; None when empty."""
    import datetime as dt

    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ConnectorError("configuration", f"{label} must be a date-time or epoch seconds, not a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ConnectorError("configuration", f"{label} is not a date-time ({text[:40]!r})",
                                     hint="Use ISO 8601, e.g. 2030-01-01T12:00:00Z, or epoch seconds.") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            return when.timestamp()
    else:
        raise ConnectorError("configuration", f"{label} must be a date-time or epoch seconds, not {type(value).__name__}")
    return seconds / 1000.0 if seconds > 1e11 else seconds      # epoch milliseconds given


def iso_time(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
