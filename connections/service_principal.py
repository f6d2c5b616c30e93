"""Databricks service principal: OAuth 2.0 client credentials (machine to machine).

requests-oauthlib (``OAuth2Session`` with ``BackendApplicationClient``) builds the token request
(``grant_type=client_credentials``, the scopes, the client id and secret as HTTP Basic, as the
Databricks SDK sends them) and parses and checks the answer; the request goes out through the
connection's shared session (connections/oauth.py), so it gets the same timeouts, retries (429
and 503 from the token endpoint are retried), TLS settings, debug log and redaction as every API
call. One token per connection is cached and shared by all threads: fetched once, refreshed
before it expires, and fetched again once when the API rejects it.
"""
from __future__ import annotations

from ..errors import ConnectorError
from .hosts import parse_token_url
from .oauth import CachedToken, TokenAuth, check_token, egress, parse, plain, raise_for_token_error
from .oauth import refresh_margin  # noqa: F401 - re-exported for older imports

AUTH_TYPE = "oauth-m2m"
HINT = "Check the Service Principal Client ID and Client Secret, and that the secret has not expired."


class ClientCredentials(TokenAuth):
    auth_type = AUTH_TYPE

    def __init__(self, token_url: str, client_id: str, client_secret: str, scopes: list[str]):
        super().__init__()
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scopes = scopes
        self.cache = CachedToken(self._fetch)

    def own_secrets(self) -> list[str]:
        return [self._secret]

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, client_secret=****)"

    def _fetch(self):
        from oauthlib.oauth2 import BackendApplicationClient
        from requests.auth import HTTPBasicAuth

        session = egress(self.post, BackendApplicationClient(client_id=self.client_id), scope=self.scopes)
        session.register_compliance_hook("access_token_response",
                                         lambda r: raise_for_token_error(r, hint_credentials=HINT))
        url = plain(session, self.token_url)
        token = parse(session, lambda: session.fetch_token(url, auth=HTTPBasicAuth(self.client_id, self._secret),
                                                           include_client_id=False))
        return check_token(token)


def scope_list(scopes, default: str = "all-apis") -> list[str]:
    scopes = scopes or default
    if isinstance(scopes, str):
        return scopes.replace(",", " ").split()
    if isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
        return scopes
    raise ConnectorError("configuration", f"Scopes must be text such as {default}, not {type(scopes).__name__}",
                         hint=f"Leave Scopes at its default, {default}, unless your administrator gave you others.")


def missing(fields: dict, *pairs) -> list[str]:
    """Labels of the required text fields that are empty (a value that is not text counts as missing)."""
    return [label for label, key in pairs if not isinstance(fields.get(key), str) or not fields.get(key).strip()]


def empty_error(labels: list[str], hint: str) -> ConnectorError:
    return ConnectorError("configuration", f"{' and '.join(labels)} {'is' if len(labels) == 1 else 'are'} empty",
                          hint=hint)


def build(fields: dict):
    token_url, host, account_id = parse_token_url(fields.get("token_url", ""))
    labels = missing(fields, ("Service Principal Client ID", "client_id"),
                     ("Service Principal Client Secret", "client_secret"))
    if labels:
        raise empty_error(labels, "Generate an OAuth secret for the service principal in the account console.")
    auth = ClientCredentials(token_url, fields["client_id"].strip(), fields["client_secret"].strip(),
                             scope_list(fields.get("scopes")))
    return host, auth, account_id
