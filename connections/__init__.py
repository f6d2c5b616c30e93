"""Connection types: each module turns a connection's fields into (API host, requests auth).

A connection is a plain dict: ``{"type": "personal_access_token", "host": ..., "token": ...}``
or ``{"type": "service_principal", "token_url": ..., "scopes": ..., "client_id": ...,
"client_secret": ...}``. ``environment.py`` builds the same dicts from the standard
Databricks environment variables and ``~/.databrickscfg`` profiles.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..errors import ConnectorError

MODULES = {"personal_access_token": "pat", "service_principal": "service_principal"}
ALIASES = {"pat": "personal_access_token", "oauth-m2m": "service_principal", "oauth": "service_principal"}


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
    kind = fields.get("type") or ("service_principal" if fields.get("client_id") or fields.get("token_url")
                                  else "personal_access_token")
    if not isinstance(kind, str):
        raise ConnectorError("configuration", f"The connection's type must be text, not {type(kind).__name__}",
                             hint=f"Use one of: {', '.join(MODULES)}.")
    kind = ALIASES.get(kind, kind)
    if kind not in MODULES:
        raise ConnectorError("configuration", f"Unknown connection type {kind!r}",
                             hint=f"Use one of: {', '.join(MODULES)}.")
    return kind


def build(fields: dict) -> Connection:
    if not isinstance(fields, dict):
        raise ConnectorError("configuration", "The connection must be a JSON object of its fields",
                             hint="Pass {\"type\": \"personal_access_token\", \"host\": ..., \"token\": ...}.")
    kind = connection_type(fields)
    from importlib import import_module

    module = import_module(f"{__name__}.{MODULES[kind]}")
    host, auth, account_id = module.build(fields)
    digest = hashlib.sha256(json.dumps({"type": kind, **fields}, sort_keys=True, default=str).encode()).hexdigest()
    ca_bundle = fields.get("ca_bundle") or None
    if ca_bundle is not None:
        import os

        if not isinstance(ca_bundle, str) or not os.path.isfile(ca_bundle):
            raise ConnectorError("configuration", "CA Bundle must be the path of an existing PEM file",
                                 hint="Leave it empty to trust the system's certificate authorities.")
    return Connection(kind, host, auth, account_id, digest, ca_bundle)
