"""Scenarios of the secrets area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import scenario
from ._uc import api

SECRET_VALUE = "s3cr3t-Value-that-must-never-show"


def _scope(emulator) -> str:
    scope = f"scn-{uuid.uuid4().hex[:10]}"
    api(emulator, "POST", "/api/2.0/secrets/scopes/create", {"scope": scope})
    return scope


def _secret(emulator) -> dict:
    scope = _scope(emulator)
    api(emulator, "POST", "/api/2.0/secrets/put", {"scope": scope, "key": "db-password", "string_value": "v" * 12})
    return {"scope": scope, "key": "db-password"}


_EXISTING: dict = {}


def _existing(emulator) -> str:
    """A scope that exists (creating it again is refused; nothing is changed)."""
    if emulator.url not in _EXISTING:
        _EXISTING[emulator.url] = _scope(emulator)
    return _EXISTING[emulator.url]


def _missing_scope(emulator, connector, conn):
    return {"scope": "no-such-scope-x"}


@scenario("list_secret_scopes", check=lambda out, inputs, conn: out["count"] == len(out["scopes"]))
def _list_secret_scopes(emulator, connector, conn):
    _scope(emulator)
    return {}


@scenario("create_secret_scope", failing=lambda e, c, k: {"scope": _existing(e)}, changes_state=True, applied=("secrets/create_scope",),
          check=lambda out, inputs, conn: out.get("scope") == inputs["scope"])
def _create_secret_scope(emulator, connector, conn):
    return {"scope": f"scn-{uuid.uuid4().hex[:10]}"}


@scenario("delete_secret_scope", changes_state=True, applied=("secrets/scopes/delete",),
          failing=_missing_scope, check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_secret_scope(emulator, connector, conn):
    return {"scope": _scope(emulator)}


@scenario("put_secret", changes_state=True, applied=("secrets/put", "secrets/update"), retry_safe="natural",
          failing=lambda e, c, k: {"scope": "no-such-scope-x", "key": "k", "value": SECRET_VALUE},
          check=lambda out, inputs, conn: out == {"scope": inputs["scope"], "key": inputs["key"], "stored": True})
def _put_secret(emulator, connector, conn):
    return {**_secret(emulator), "value": SECRET_VALUE}            # replaces the value put by _secret


@scenario("list_secrets", failing=_missing_scope,
          check=lambda out, inputs, conn: [s["key"] for s in out["secrets"]] == ["db-password"])
def _list_secrets(emulator, connector, conn):
    return {"scope": _secret(emulator)["scope"]}


@scenario("delete_secret", changes_state=True, applied=("secrets/delete",),
          failing=lambda e, c, k: {"scope": "no-such-scope-x", "key": "k"},
          check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_secret(emulator, connector, conn):
    return _secret(emulator)
