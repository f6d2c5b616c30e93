"""Scenarios of the raw area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

from . import scenario, user_name


# --------------------------------------------------------------------------- raw request

@scenario("raw_request", main=("GET", r"/api/2\.0/preview/scim/v2/Me"),
          check=lambda out, inputs, conn: out.get("userName") == user_name(conn))
def _raw_request(emulator, connector, conn):
    return {"url": "/2.0/preview/scim/v2/Me", "method": "GET"}
