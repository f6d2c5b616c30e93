"""Scenarios of the model serving area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import scenario

CHAT = "databricks-meta-llama-3-3-70b-instruct"
EMBEDDINGS = "databricks-gte-large-en"
MISSING = "no-such-endpoint"


def fast_serving(emulator, seconds: float = 0.05) -> None:
    emulator.config.update({"serving_update_seconds": seconds})


def endpoint(emulator, connector, conn, *, ready: bool = True) -> str:
    """An endpoint serving a Unity Catalog model (a custom model), READY unless told."""
    fast_serving(emulator, 0.0 if ready else 30.0)
    name = f"scn-{uuid.uuid4().hex[:10]}"
    connector.run("create_serving_endpoint", conn, {"name": name, "entity_name": "main.default.scenario_model",
                                                    "entity_version": "1"})
    return name


def _missing(emulator, connector, conn):
    return {"name": MISSING}


@scenario("list_serving_endpoints", check=lambda out, inputs, conn: out.get("count") == len(out["endpoints"]) >= 2)
def _list_serving_endpoints(emulator, connector, conn):
    return {}


@scenario("get_serving_endpoint", failing=_missing, check=lambda out, inputs, conn: out.get("name") == inputs["name"])
def _get_serving_endpoint(emulator, connector, conn):
    return {"name": CHAT}


def _wait_create(emulator, connector, conn):
    fast_serving(emulator, 1.0)
    return {"name": f"scn-{uuid.uuid4().hex[:10]}", "entity_name": "system.ai.gte_large_en", "wait_for_ready": True,
            "timeout_seconds": 30, "poll_interval_seconds": 0.1}


@scenario("create_serving_endpoint", changes_state=True, applied=("serving/create",), wait=_wait_create,
          failing=lambda e, c, conn: {"name": "fuzz-refused", "served_entities": [{"entity_name": "m",
                                                                                   "workload_size": "Huge"}]},
          check=lambda out, inputs, conn: out.get("name") == inputs["name"])
def _create_serving_endpoint(emulator, connector, conn):
    fast_serving(emulator)
    return {"name": f"scn-{uuid.uuid4().hex[:10]}", "entity_name": "main.default.scenario_model", "entity_version": "1",
            "tags": {"team": "ml"}}


def _wait_update(emulator, connector, conn):
    name = endpoint(emulator, connector, conn)
    fast_serving(emulator, 1.0)
    return {"name": name, "entity_name": "main.default.scenario_model", "entity_version": "2", "wait_for_ready": True,
            "timeout_seconds": 30, "poll_interval_seconds": 0.1}


@scenario("update_serving_endpoint_config", changes_state=True, applied=("serving/config/update",), wait=_wait_update,
          failing=lambda e, c, conn: {"name": MISSING, "entity_name": "main.default.m", "entity_version": "1"},
          check=lambda out, inputs, conn: out.get("name") == inputs["name"])
def _update_serving_endpoint_config(emulator, connector, conn):
    name = endpoint(emulator, connector, conn)
    return {"name": name, "entity_name": "main.default.scenario_model", "entity_version": "2"}


@scenario("delete_serving_endpoint", changes_state=True, applied=("serving/delete",), failing=_missing,
          check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_serving_endpoint(emulator, connector, conn):
    return {"name": endpoint(emulator, connector, conn)}


# The input format is detected (GET .../openapi first); faults go to the query itself.
@scenario("query_serving_endpoint", retry_safe="natural", main=("POST", r"/serving-endpoints/[^/]+/invocations"),
          failing=lambda e, c, conn: {"name": MISSING, "text": "hi",
                                                                                       "input_format": "chat"},
          check=lambda out, inputs, conn: out.get("input_format") == "chat"
          and out["choices"][0]["message"]["content"].endswith(inputs["text"]))
def _query_serving_endpoint(emulator, connector, conn):
    return {"name": CHAT, "text": f"question {uuid.uuid4().hex[:8]}"}
