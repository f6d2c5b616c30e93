"""Workspace host and token URL normalisation, for every cloud.

A host may be given as ``dbc-1234.cloud.databricks.com``, ``https://adb-1.2.azuredatabricks.net/``
or ``1234.5.gcp.databricks.com:443``; it becomes ``https://<host>``. A host with a path, a
query, userinfo, non-ASCII characters or a scheme other than https is refused: a token must
only ever travel to the workspace the user named. Plain http is allowed for loopback only,
for the local emulator.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from ..errors import ConnectorError

ACCOUNT_HOSTS = frozenset({"accounts.cloud.databricks.com", "accounts.azuredatabricks.net",
                           "accounts.gcp.databricks.com", "accounts-dod.cloud.databricks.mil",
                           "accounts.cloud.databricks.us"})
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _bad(field: str, why: str, hint: str) -> ConnectorError:
    return ConnectorError("configuration", f"{field} {why}", hint=hint)


def is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


# What each URL-like field should look like, for the hints of its errors
EXAMPLES = {"Host": "your workspace host, for example dbc-1234567890123456.cloud.databricks.com",
            "Token URL": "the token URL of your workspace, for example "
                         "https://dbc-1234567890123456.cloud.databricks.com/oidc/v1/token (or "
                         "https://accounts.cloud.databricks.com/oidc/accounts/<account-id>/v1/token for the account)",
            "Authority Host": "the Microsoft Entra ID host, for example login.microsoftonline.com"}


def split_url(value: str, field: str = "Host"):
    """Parse and check scheme, userinfo, characters and port; return (scheme, hostname, port, parts)."""
    example = EXAMPLES.get(field, EXAMPLES["Host"])
    if value is not None and not isinstance(value, str):
        raise _bad(field, f"must be text, not {type(value).__name__}", f"Enter {example}, as text.")
    if not value or not value.strip():
        raise _bad(field, "is empty", f"Enter {example}.")
    text = value.strip()
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise _bad(field, "contains spaces, control or non-ASCII characters",
                   "Type the host name in plain ASCII (look-alike letters are refused).")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise _bad(field, "must not contain a user name or password (user@host)",
                   "Remove the part before '@'; credentials go in the token fields.")
    try:
        hostname = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise _bad(field, "has an invalid port", "Use host or host:port.") from None
    if not hostname:
        raise _bad(field, "has no host name", f"Enter {example}.")
    loopback = is_loopback(hostname)
    if scheme not in ("https", "http") or (scheme == "http" and not loopback):
        raise _bad(field, f"must use https (got {scheme}://)",
                   "Databricks workspaces are served over https; http is accepted only for a local emulator on 127.0.0.1.")
    if not loopback and not all(_LABEL.match(label) for label in hostname.split(".")):
        raise _bad(field, "is not a valid host name", "Use the workspace's domain name, for example adb-123.4.azuredatabricks.net.")
    if not loopback and any(label.startswith("xn--") for label in hostname.split(".")):
        raise _bad(field, "contains an internationalised (punycode xn--) label",
                   "No Databricks host uses one: type the workspace's host name in plain ASCII (look-alike letters are refused).")
    return scheme, hostname, port, parts


def normalize_host(value: str, field: str = "Host") -> str:
    """``https://<host>[:port]`` with no path, or a clear configuration error."""
    scheme, hostname, port, parts = split_url(value, field)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _bad(field, "must be a host name only, without a path or query",
                   f"Use just the host, for example {hostname}.")
    return _origin(scheme, hostname, port)


def _origin(scheme: str, hostname: str, port) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port and not (scheme == "https" and port == 443) and not (scheme == "http" and port == 80):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


_TOKEN_PATH = re.compile(r"^/oidc(?:/accounts/(?P<account>[A-Za-z0-9-]+))?/v1/token/?$")


def parse_token_url(value: str) -> tuple[str, str, str | None]:
    """(normalised token URL, API host derived from it, account id or None)."""
    field = "Token URL"
    if isinstance(value, str) and "REPLACE-ME" in value:
        raise _bad(field, "still contains REPLACE-ME",
                   "Replace REPLACE-ME with your workspace's id, e.g. https://dbc-1234.cloud.databricks.com/oidc/v1/token.")
    scheme, hostname, port, parts = split_url(value, field)
    m = _TOKEN_PATH.match(parts.path)
    if not m or parts.query or parts.fragment:
        raise _bad(field, "must end in /oidc/v1/token (workspace) or /oidc/accounts/<account-id>/v1/token (account)",
                   "Copy the token URL from the connection's setup instructions.")
    origin = _origin(scheme, hostname, port)
    return origin + parts.path.rstrip("/"), origin, m.group("account")


def is_account_host(hostname: str) -> bool:
    return hostname.lower() in ACCOUNT_HOSTS


_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def oidc_base(host, account_id=None, field: str = "Host") -> tuple[str, str]:
    """(API host, OIDC base URL): ``https://<host>/oidc`` for a workspace,
    ``https://<accounts host>/oidc/accounts/<account id>`` for an account; append ``/v1/token``
    or ``/v1/authorize``."""
    origin = normalize_host(host, field)
    if is_account_host(split_url(origin, field)[1]):
        if not isinstance(account_id, str) or not _ACCOUNT_ID.match(account_id.strip()):
            raise _bad("Account ID", "is empty or not an account id" if account_id else "is empty",
                       "An account host needs the account id shown in the account console.")
        return origin, f"{origin}/oidc/accounts/{account_id.strip()}"
    return origin, f"{origin}/oidc"
