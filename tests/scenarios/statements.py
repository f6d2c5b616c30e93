"""Scenarios of the statements area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

from . import _unknown_warehouse, scenario, seed_warehouse


# --------------------------------------------------------------------------- SQL statements

def _unknown_statement(emulator, connector, conn):
    return {"statement_id": "01ef0000-0000-0000-0000-000000000000"}


@scenario("execute_sql_statement", changes_state=True, applied=("statements/execute",), failing=_unknown_warehouse,
          own_read_timeout=True,   # the POST waits server-side: its read timeout is wait_timeout + 30 s
          check=lambda out, inputs, conn: out.get("status", {}).get("state") == "SUCCEEDED")
def _execute_sql_statement(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "RUNNING"), "statement": "SELECT 1 AS one",
            "poll_interval_seconds": 0.2, "timeout_seconds": 30}


def _statement(emulator, connector, conn):
    out = connector.run("execute_sql_statement", conn, {"warehouse_id": seed_warehouse(emulator, "RUNNING"),
                                                         "statement": "SELECT 1 AS one", "timeout_seconds": 30,
                                                         "poll_interval_seconds": 0.2})
    return out["statement_id"]


@scenario("get_statement", check=lambda out, inputs, conn: out.get("statement_id") == inputs["statement_id"],
          failing=_unknown_statement)
def _get_statement(emulator, connector, conn):
    return {"statement_id": _statement(emulator, connector, conn)}


@scenario("get_statement_result_chunk", failing=_unknown_statement)
def _get_statement_result_chunk(emulator, connector, conn):
    return {"statement_id": _statement(emulator, connector, conn), "chunk_index": 0}


@scenario("cancel_statement", changes_state=True, applied=("statements/cancel",), retry_safe="natural",
          failing=_unknown_statement)
def _cancel_statement(emulator, connector, conn):
    out = connector.run("execute_sql_statement", conn, {"warehouse_id": seed_warehouse(emulator, "RUNNING"),
                                                         "statement": "SELECT sleep(30) AS one",   # a slow query
                                                         "wait_for_result": False})
    return {"statement_id": out["statement_id"]}
