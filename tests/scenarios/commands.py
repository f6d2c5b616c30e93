"""Scenarios of the commands area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

from . import _CLEANUP, _unknown_cluster, scenario, seed_cluster


# --------------------------------------------------------------------------- commands (API 1.2)

def _context(emulator, connector, conn, cluster_id=None):
    emulator.config.context_start_seconds = 0.02     # read by emulator/commands.py; restored by snapshot_settings
    cluster_id = cluster_id or seed_cluster(emulator, "RUNNING")
    out = connector.run("create_execution_context", conn, {"cluster_id": cluster_id, "language": "python",
                                                            "wait_for_state": True, "poll_interval_seconds": 0.1,
                                                            "timeout_seconds": 30})
    return cluster_id, out["context_id"]


def _destroy_later(connector, conn, cluster_id, context_id):
    """A context that ran python holds a python process: destroy it after the test."""
    _CLEANUP.append(lambda: connector.run("destroy_execution_context", conn,
                                          {"cluster_id": cluster_id, "context_id": context_id}))


def _unknown_context(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "context_id": "1234567890123456789"}


@scenario("create_execution_context", changes_state=True, applied=("contexts/create",),
          check=lambda out, inputs, conn: bool(out.get("context_id")), failing=_unknown_cluster)
def _create_execution_context(emulator, connector, conn):
    cid = seed_cluster(emulator, "RUNNING")
    return {"cluster_id": cid, "language": "sql"}


@scenario("destroy_execution_context", changes_state=True, applied=("contexts/destroy",), failing=_unknown_context)
def _destroy_execution_context(emulator, connector, conn):
    cid, ctx = _context(emulator, connector, conn)
    return {"cluster_id": cid, "context_id": ctx}


@scenario("run_command", changes_state=True, applied=("commands/execute",), failing=_unknown_context,
          check=lambda out, inputs, conn: bool(out.get("command_id")))
def _run_command(emulator, connector, conn):
    cid, ctx = _context(emulator, connector, conn)
    return {"cluster_id": cid, "context_id": ctx, "language": "sql", "command": "SELECT 1 AS one"}


def _command(emulator, connector, conn, command, language="sql", wait=True):
    cid, ctx = _context(emulator, connector, conn)
    if language == "python":
        _destroy_later(connector, conn, cid, ctx)
    out = connector.run("run_command", conn, {"cluster_id": cid, "context_id": ctx, "language": language,
                                              "command": command, "wait_for_result": wait,
                                              "poll_interval_seconds": 0.1, "timeout_seconds": 30})
    return {"cluster_id": cid, "context_id": ctx, "command_id": out["command_id"]}


@scenario("get_command_status", check=lambda out, inputs, conn: out.get("id") == inputs["command_id"],
          failing=lambda e, c, conn: {**_unknown_context(e, c, conn), "command_id": "0" * 32})
def _get_command_status(emulator, connector, conn):
    return _command(emulator, connector, conn, "SELECT 1 AS one")


@scenario("cancel_command", changes_state=True, applied=("commands/cancel",), retry_safe="natural",
          failing=lambda e, c, conn: {**_unknown_context(e, c, conn), "command_id": "0" * 32})
def _cancel_command(emulator, connector, conn):
    return _command(emulator, connector, conn, "import time\ntime.sleep(20)", language="python", wait=False)
