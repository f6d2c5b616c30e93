"""Databricks Personal Access Token: ``Authorization: Bearer <token>`` on every request."""
from __future__ import annotations

from requests.auth import AuthBase

from ..errors import ConnectorError
from .hosts import normalize_host

AUTH_TYPE = "pat"


class BearerToken(AuthBase):
    auth_type = AUTH_TYPE

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def secret_values(self) -> list[str]:
        return [self._token]

    def rejected(self, request) -> bool:
        """A PAT cannot be refreshed: a rejected token is final."""
        return False

    def __repr__(self) -> str:
        return "BearerToken(****)"


def build(fields: dict):
    """(API host, auth, account id) from the connection's fields."""
    host = normalize_host(fields.get("host", ""))
    token = fields.get("token")
    if not isinstance(token, str) or not token.strip():
        raise ConnectorError("configuration", "Personal Access Token is empty",
                             hint="Generate a token under User Settings > Developer > Access Tokens.")
    token = token.strip()
    if any(ord(c) < 33 or ord(c) == 127 for c in token):
        # A pasted token with a line break (or a space, a tab) cannot travel in a header; never show any of it.
        raise ConnectorError("configuration", "Personal Access Token contains a line break, a space or another "
                             "control character, so it cannot be sent",
                             hint="Copy the token again as one line: it is a single word such as dapi followed by letters and digits.")
    return host, BearerToken(token), None
