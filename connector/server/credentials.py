"""The connection of one request, from its headers; where a request-supplied host may point.

The server holds no credential of its own: each request names its connection in headers, in one
of three ways (one, and only one, per request):

* ``X-Databricks-Host`` + ``X-Databricks-Token``: a personal access token;
* ``X-Databricks-Token-Url`` + ``X-Databricks-Client-Id`` + ``X-Databricks-Client-Secret``
  (+ ``X-Databricks-Scopes``): a service principal (OAuth client credentials);
* ``X-Databricks-Connection: NAME``: a connection the operator configured on the server - a file
  ``NAME.json`` in ``--connections DIR``, a profile ``NAME`` of ``~/.databrickscfg``, or
  ``default`` for the standard ``DATABRICKS_*`` environment. With ``--default-connection NAME``
  a request that names no connection uses that one (for clients that can send only one header,
  such as Copilot Studio's API-key MCP setup): the server then acts with it for anyone holding
  its API key.

A host that arrives in a request must match ``--allowed-hosts`` (by default the Databricks cloud
domains and loopback), so a shared server cannot be made to send a caller's credential, or its
own traffic, anywhere else. Named connections are the operator's own and are not filtered.

Every problem is a ``ConnectorError`` of type ``configuration`` (or ``permission_denied`` for a
host this server will not reach) whose text names headers, never their values.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path

from ..connections.hosts import normalize_host, parse_token_url, split_url
from ..errors import ConnectorError

PAT_HEADERS = ("x-databricks-host", "x-databricks-token")
SP_HEADERS = ("x-databricks-token-url", "x-databricks-client-id", "x-databricks-client-secret")
NAME_HEADER = "x-databricks-connection"
SCOPES_HEADER = "x-databricks-scopes"
# Hook for user OAuth (refresh tokens that rotate): when a call rotated the caller's refresh token,
# the response carries the new one in this header and the caller must store it (see docs/server.md).
REFRESH_TOKEN_HEADER = "X-Databricks-Refresh-Token"
SECRET_HEADERS = ("x-databricks-token", "x-databricks-client-secret", "x-api-key", "authorization",
                  REFRESH_TOKEN_HEADER.lower())

# The Databricks cloud domains (workspaces and account consoles): AWS, Azure, GCP, AWS GovCloud and
# DoD, Azure China and Azure Government. ``*.d`` matches any host under d (not d itself).
DEFAULT_ALLOWED = ("*.cloud.databricks.com", "*.azuredatabricks.net", "*.gcp.databricks.com",
                   "*.cloud.databricks.us", "*.cloud.databricks.mil", "*.databricks.azure.cn",
                   "*.databricks.azure.us", "loopback")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class AllowedHosts:
    """Host patterns: ``host``, ``*.domain`` (any host below the domain) or ``loopback``
    (127.0.0.0/8, ::1 and localhost)."""

    def __init__(self, patterns=DEFAULT_ALLOWED):
        cleaned = []
        for p in patterns:
            p = p.strip().lower().rstrip(".")
            if not p:
                continue
            if p != "loopback" and not re.fullmatch(r"(\*\.)?[a-z0-9.-]+|\[?[0-9a-f:.]+\]?", p):
                raise ConnectorError("configuration", f"--allowed-hosts: {p!r} is not a host, *.domain or loopback")
            cleaned.append(p.strip("[]"))
        self.patterns = tuple(cleaned)

    def allows(self, hostname: str) -> bool:
        host = hostname.lower().rstrip(".").strip("[]")
        for p in self.patterns:
            if p == "loopback":
                if host == "localhost" or _is_loopback_ip(host):
                    return True
            elif p.startswith("*."):
                if host.endswith(p[1:]) and len(host) > len(p) - 1:
                    return True
            elif host == p:
                return True
        return False

    def __repr__(self) -> str:
        return f"AllowedHosts({', '.join(self.patterns)})"


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Credentials:
    """Turns a request's headers into a connection document (the dict the runner takes)."""

    def __init__(self, allowed: AllowedHosts, connections_dir: str | None = None, ca_bundle: str | None = None,
                 environ=None, default: str | None = None):
        self.allowed = allowed
        self.default = default
        self.dir = Path(connections_dir) if connections_dir else None
        self.ca_bundle = ca_bundle
        self.environ = os.environ if environ is None else environ
        if self.dir is not None and not self.dir.is_dir():
            raise ConnectorError("configuration", f"--connections {connections_dir} is not a folder")

    # -- from headers ----------------------------------------------------------------------
    def from_headers(self, headers) -> dict:
        def get(name):
            value = headers.get(name)
            return value.strip() if isinstance(value, str) and value.strip() else None

        given = {name: get(name) for name in (*PAT_HEADERS, *SP_HEADERS, NAME_HEADER, SCOPES_HEADER)}
        styles = [label for label, names in (("X-Databricks-Connection", (NAME_HEADER,)),
                                             ("a personal access token (X-Databricks-Host, X-Databricks-Token)", PAT_HEADERS),
                                             ("a service principal (X-Databricks-Token-Url, X-Databricks-Client-Id, "
                                              "X-Databricks-Client-Secret)", SP_HEADERS + (SCOPES_HEADER,)))
                  if any(given[n] for n in names)]
        if not styles and self.default:
            return self.named(self.default)
        if not styles:
            raise ConnectorError("configuration", "No connection: the request carries no X-Databricks-* connection headers",
                                 hint="Send X-Databricks-Host and X-Databricks-Token, or X-Databricks-Token-Url, "
                                      "X-Databricks-Client-Id and X-Databricks-Client-Secret, or X-Databricks-Connection "
                                      "with the name of a connection configured on the server.")
        if len(styles) > 1:
            raise ConnectorError("configuration", "The request names more than one connection: " + "; ".join(styles),
                                 hint="Send the headers of one connection only.")
        if given[NAME_HEADER]:
            return self.named(given[NAME_HEADER])
        if given["x-databricks-host"] or given["x-databricks-token"]:
            missing = [_title(n) for n in PAT_HEADERS if not given[n]]
            if missing:
                raise ConnectorError("configuration", f"Missing header {', '.join(missing)} for a personal access token",
                                     hint="Send both X-Databricks-Host and X-Databricks-Token.")
            host = normalize_host(given["x-databricks-host"], "X-Databricks-Host")
            self.check_host(host, "X-Databricks-Host")
            doc = {"type": "personal_access_token", "host": host, "token": given["x-databricks-token"]}
        else:
            missing = [_title(n) for n in SP_HEADERS if not given[n]]
            if missing:
                raise ConnectorError("configuration", f"Missing header {', '.join(missing)} for a service principal",
                                     hint="Send X-Databricks-Token-Url, X-Databricks-Client-Id and X-Databricks-Client-Secret.")
            token_url, host, _account = parse_token_url(given["x-databricks-token-url"])
            self.check_host(host, "X-Databricks-Token-Url")
            doc = {"type": "service_principal", "token_url": token_url, "scopes": given[SCOPES_HEADER] or "all-apis",
                   "client_id": given["x-databricks-client-id"], "client_secret": given["x-databricks-client-secret"]}
        if self.ca_bundle:
            doc["ca_bundle"] = self.ca_bundle
        return doc

    def check_host(self, origin: str, field: str) -> None:
        hostname = split_url(origin, field)[1]
        if not self.allowed.allows(hostname):
            raise ConnectorError("permission_denied", f"{field}: this server does not connect to {hostname}",
                                 hint="The server reaches only the hosts in its --allowed-hosts (by default the "
                                      "Databricks cloud domains and loopback); ask its operator to add this one.")

    # -- connections configured on the server ----------------------------------------------
    def named(self, name: str) -> dict:
        if not _NAME.match(name):
            raise ConnectorError("configuration", "X-Databricks-Connection must be a connection name (letters, digits, . _ -)")
        if self.dir is not None:
            path = self.dir / f"{name}.json"
            if path.is_file():
                try:
                    doc = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise ConnectorError("configuration", f"The server's connection {name!r} cannot be read "
                                         f"({type(exc).__name__})") from None
                if not isinstance(doc, dict):
                    raise ConnectorError("configuration", f"The server's connection {name!r} is not a JSON object")
                return doc
        from ..connections.environment import from_environment

        if name == "default":
            doc = from_environment(self.environ)
        else:
            # a profile of the config file, without the explicit DATABRICKS_* variables overriding it
            env = {k: v for k, v in self.environ.items() if k in ("DATABRICKS_CONFIG_FILE", "HOME")}
            env["DATABRICKS_CONFIG_PROFILE"] = name
            try:
                doc = from_environment(env)
            except ConnectorError:
                doc = None
        if doc is None:
            raise ConnectorError("configuration", f"No connection named {name!r} is configured on this server",
                                 hint=f"Known connections: {', '.join(self.names()) or 'none'}.")
        return doc

    def names(self) -> list[str]:
        """The names a request may use (connection files, profiles, ``default`` when the
        environment has one); never their contents."""
        out = []
        if self.dir is not None:
            out += sorted(p.stem for p in self.dir.glob("*.json") if _NAME.match(p.stem))
        out += [p for p in _profiles(self.environ) if p not in out]
        from ..connections.environment import from_environment

        try:
            if "default" not in out and from_environment(self.environ) is not None:
                out.append("default")
        except ConnectorError:
            pass
        return out


def _profiles(environ) -> list[str]:
    import configparser

    path = environ.get("DATABRICKS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".databrickscfg")
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, configparser.Error):
        return []
    return [s for s in parser.sections() if s != "__settings__" and _NAME.match(s)]


def _title(header: str) -> str:
    return "-".join(part.capitalize() for part in header.split("-"))


def identity(doc: dict) -> str:
    """What stays the same for one caller across calls (an operation token is bound to it): the
    connection without what rotates (access and refresh tokens of a user login)."""
    stable = {k: v for k, v in doc.items() if k not in ("access_token", "refresh_token", "expires_at")}
    return json.dumps(stable, sort_keys=True, default=str)


def rotated_refresh_token(connector, doc: dict) -> str | None:
    """The caller's new refresh token when this call rotated it, else None.

    User OAuth (a refresh token that the authorization server rotates on use) is added by the
    connections layer; its auth object is expected to expose the current refresh token as
    ``refresh_token``. The HTTP server hands a rotated one back in ``X-Databricks-Refresh-Token``.
    """
    given = doc.get("refresh_token")
    if not given:
        return None
    try:
        shared = connector.session(doc)
    except ConnectorError:
        return None
    current = getattr(shared.connection.auth, "refresh_token", None)
    if isinstance(current, str) and current and current != given:
        return current
    return None
