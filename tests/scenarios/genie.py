"""Scenarios of the Genie area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

from . import scenario

MISSING = "0" * 32
QUESTION = "How many trips are there?"


def fast_genie(emulator, step: float = 0.02) -> None:
    emulator.config.update({"genie_step_seconds": step})


def space(connector, conn) -> str:
    return connector.run("list_genie_spaces", conn, {})["spaces"][0]["space_id"]


def asked(emulator, connector, conn, question: str = QUESTION) -> dict:
    fast_genie(emulator)
    out = connector.run("ask_genie", conn, {"space_id": space(connector, conn), "question": question,
                                            "poll_interval_seconds": 0.1, "timeout_seconds": 60})
    return {k: out[k] for k in ("space_id", "conversation_id", "message_id")}


def _wait_ask(emulator, connector, conn):
    fast_genie(emulator, 0.3)
    return {"space_id": space(connector, conn), "question": QUESTION, "poll_interval_seconds": 0.1,
            "timeout_seconds": 60}


@scenario("list_genie_spaces", check=lambda out, inputs, conn: out.get("count") == len(out["spaces"]) >= 1)
def _list_genie_spaces(emulator, connector, conn):
    return {}


def _answered(out, inputs, conn):
    return out.get("status") == "COMPLETED" and out.get("rows") == [{"trips": 200}]


@scenario("ask_genie", changes_state=True, applied=("genie/start-conversation",), wait=_wait_ask,
          failing=lambda e, c, conn: {"space_id": MISSING, "question": QUESTION}, check=_answered)
def _ask_genie(emulator, connector, conn):
    fast_genie(emulator)
    return {"space_id": space(connector, conn), "question": QUESTION, "poll_interval_seconds": 0.1,
            "timeout_seconds": 60}


@scenario("ask_genie_follow_up", changes_state=True, applied=("genie/messages/create",),
          failing=lambda e, c, conn: {"space_id": MISSING, "conversation_id": MISSING, "question": QUESTION},
          check=_answered)
def _ask_genie_follow_up(emulator, connector, conn):
    ids = asked(emulator, connector, conn, "hello")
    return {"space_id": ids["space_id"], "conversation_id": ids["conversation_id"], "question": QUESTION,
            "poll_interval_seconds": 0.1, "timeout_seconds": 60}


@scenario("get_genie_message", failing=lambda e, c, conn: {"space_id": MISSING, "conversation_id": MISSING,
                                                            "message_id": MISSING},
          check=lambda out, inputs, conn: out.get("message_id") == inputs["message_id"])
def _get_genie_message(emulator, connector, conn):
    return asked(emulator, connector, conn)


@scenario("get_genie_query_result", failing=lambda e, c, conn: {"space_id": MISSING, "conversation_id": MISSING,
                                                                 "message_id": MISSING},
          check=lambda out, inputs, conn: out.get("rows") == [{"trips": 200}])
def _get_genie_query_result(emulator, connector, conn):
    return asked(emulator, connector, conn)
