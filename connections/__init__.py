"""Connection types: each module turns a connection's fields into (API host, requests auth).

A connection is a plain dict with a ``type`` and the fields its manifest entry declares::

    {"type": "personal_access_token", "host": ..., "token": ...}
    {"type": "service_principal", "token_url": ..., "scopes": ..., "client_id": ..., "client_secret": ...}
    {"type": "oauth_user", "host": ..., "client_id": ..., "access_token": ..., "refresh_token": ..., "expires_at": ...}
    {"type": "azure_service_principal", "host": ..., "tenant_id": ..., "client_id": ..., "client_secret": ...}
    {"type": "workload_identity_federation", "host": ..., "client_id": ..., "oidc_token_filepath": ...}

``environment.py`` builds the same dicts from the standard Databricks environment variables and
``~/.databrickscfg`` profiles.

Fingerprints and rotated refresh tokens
---------------------------------------
``fingerprint(fields)`` names the connection for the session cache: one shared session (pool,
cached token) per fingerprint. For every type it is a hash of all the fields, except for a user
login (``oauth_user``): there it covers every field except ``access_token``, ``refresh_token``
and ``expires_at``, plus the *grant* the tokens belong to. A grant is named by the first refresh
token the process saw for it (or, with no refresh token, the access token); when the connector
refreshes and Databricks rotates the refresh token, the new refresh token is recorded as the same
grant. So the updated document a caller stores after a rotation has the same fingerprint as the
one it replaced: the same session and its cached access token are used, and no second session
is made; a different user, client or host is always a different fingerprint.

``current_connection(fields)`` returns the document with the tokens the connector holds now (the
caller stores it when it differs: Databricks may rotate refresh tokens), and
``on_connection_update(callback)`` has ``callback(previous, updated)`` called after each refresh of
a user login, in the thread that refreshed.
"""
from __future__ import annotations

import collections
import hashlib
import json
import threading
from dataclasses import dataclass, field

from ..errors import ConnectorError

MODULES = {"personal_access_token": "pat", "service_principal": "service_principal", "oauth_user": "user_oauth",
           "azure_service_principal": "azure", "workload_identity_federation": "federation"}
# The Databricks SDK's auth_type names (DATABRICKS_AUTH_TYPE), and short forms
ALIASES = {"pat": "personal_access_token", "oauth-m2m": "service_principal", "oauth": "service_principal",
           "oauth-u2m": "oauth_user", "u2m": "oauth_user", "external-browser": "oauth_user",
           "azure-client-secret": "azure_service_principal", "env-oidc": "workload_identity_federation",
           "file-oidc": "workload_identity_federation"}
TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at")


@dataclass(frozen=True)
class Connection:
    type: str
    host: str
    auth: object = field(repr=False)
    account_id: str | None = None
    fingerprint: str = field(default="", repr=False)
    ca_bundle: str | None = None

    def secret_values(self) -> list[str]:
        return self.auth.secret_values()


def connection_type(fields: dict) -> str:
    kind = fields.get("type") or _guess(fields)
    if not isinstance(kind, str):
        raise ConnectorError("configuration", f"The connection's type must be text, not {type(kind).__name__}",
                             hint=f"Use one of: {', '.join(MODULES)}.")
    kind = ALIASES.get(kind, kind)
    if kind not in MODULES:
        raise ConnectorError("configuration", f"Unknown connection type {kind!r}",
                             hint=f"Use one of: {', '.join(MODULES)}.")
    return kind


def _guess(fields: dict) -> str:
    if fields.get("tenant_id"):
        return "azure_service_principal"
    if fields.get("refresh_token") or fields.get("access_token"):
        return "oauth_user"
    if fields.get("oidc_token_env") or fields.get("oidc_token_filepath"):
        return "workload_identity_federation"
    if fields.get("client_id") or fields.get("token_url"):
        return "service_principal"
    return "personal_access_token"


def build(fields: dict) -> Connection:
    if not isinstance(fields, dict):
        raise ConnectorError("configuration", "The connection must be a JSON object of its fields",
                             hint="Pass {\"type\": \"personal_access_token\", \"host\": ..., \"token\": ...}.")
    kind = connection_type(fields)
    ca_bundle = fields.get("ca_bundle") or None
    if ca_bundle is not None:
        import os

        if not isinstance(ca_bundle, str) or not os.path.isfile(ca_bundle):
            raise ConnectorError("configuration", "CA Bundle must be the path of an existing PEM file",
                                 hint="Leave it empty to trust the system's certificate authorities.")
    from importlib import import_module

    module = import_module(f"{__name__}.{MODULES[kind]}")
    host, auth, account_id = module.build(fields)
    return Connection(kind, host, auth, account_id, fingerprint(fields), ca_bundle)


# --------------------------------------------------------------------------- fingerprints and grants

_LOCK = threading.RLock()
_GRANTS: "collections.OrderedDict[str, str]" = collections.OrderedDict()   # token digest -> grant
_LATEST: "collections.OrderedDict[str, dict]" = collections.OrderedDict()  # fingerprint -> newest document
_LISTENERS: list = []
_KEEP = 4096        # grants and documents remembered (least recently used dropped first)


def _digest(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _grant(fields: dict) -> str:
    refresh, access = fields.get("refresh_token"), fields.get("access_token")
    key = _digest("refresh", refresh) if isinstance(refresh, str) and refresh else \
        _digest("access", access if isinstance(access, str) else json.dumps(access, default=str))
    with _LOCK:
        grant = _GRANTS.get(key)
        if grant is not None:
            _GRANTS.move_to_end(key)
            return grant
    return key


def fingerprint(fields) -> str:
    """The session-cache key of a connection document (see the module doc)."""
    if not isinstance(fields, dict):
        return _digest("other", json.dumps(fields, sort_keys=True, default=str))
    try:
        kind = connection_type(fields)
    except ConnectorError:
        kind = None
    if kind == "oauth_user":
        stable = {k: v for k, v in fields.items() if k not in TOKEN_FIELDS}
        stable["type"], stable["grant"] = kind, _grant(fields)
    else:
        stable = {**fields, "type": kind or fields.get("type")}
    return _digest("connection", json.dumps(stable, sort_keys=True, default=str))


def rotated(previous: dict, updated: dict) -> None:
    """Called by a user-login auth after a refresh: ``updated`` (the new tokens) belongs to the
    grant of ``previous``; remember it for ``current_connection`` and tell the listeners."""
    grant = _grant(previous)
    key = fingerprint(previous)
    with _LOCK:
        refresh = updated.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            _GRANTS[_digest("refresh", refresh)] = grant
            _GRANTS.move_to_end(_digest("refresh", refresh))
        _LATEST[key] = dict(updated)
        _LATEST.move_to_end(key)
        while len(_GRANTS) > _KEEP:
            _GRANTS.popitem(last=False)
        while len(_LATEST) > _KEEP:
            _LATEST.popitem(last=False)
        listeners = list(_LISTENERS)
    for callback in listeners:
        try:
            callback(dict(previous), dict(updated))
        except Exception:  # noqa: BLE001 - a caller's callback must not fail the action
            import logging

            logging.getLogger("databricks_connector").warning("on_connection_update callback failed", exc_info=False)


def current_connection(fields: dict) -> dict:
    """``fields`` with the tokens the connector holds now for that connection (a copy; the same
    document when nothing was refreshed)."""
    if not isinstance(fields, dict):
        return fields
    if not _LATEST:
        return dict(fields)
    key = fingerprint(fields)
    with _LOCK:
        latest = _LATEST.get(key)
    return dict(latest) if latest is not None else dict(fields)


def on_connection_update(callback):
    """Call ``callback(previous, updated)`` after every refresh of a user-login connection; returns a
    function that removes it."""
    with _LOCK:
        _LISTENERS.append(callback)

    def remove():
        with _LOCK:
            if callback in _LISTENERS:
                _LISTENERS.remove(callback)
    return remove
