"""Scenarios of the identity area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

from . import scenario, user_name


# --------------------------------------------------------------------------- identity

@scenario("get_current_user", check=lambda out, inputs, conn: out.get("userName") == user_name(conn))
def _get_current_user(emulator, connector, conn):
    return {}
