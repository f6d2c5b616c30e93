"""Scenarios of the pipelines area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import scenario


def fast_pipelines(emulator) -> None:
    """Short update timings (the pipeline_* knobs of the emulator's one Config)."""
    emulator.config.update({"pipeline_step_seconds": 0.02, "pipeline_run_seconds": 0.1, "pipeline_stop_seconds": 0.05})


def seed_pipeline(emulator, **spec) -> str:
    """A serverless pipeline without libraries (its updates complete), seeded in the emulator's state."""
    from databricks_connector.emulator import pipelines

    spec.setdefault("name", f"scn-{uuid.uuid4().hex[:8]}")
    spec.setdefault("serverless", True)
    return pipelines.add_pipeline(emulator.state, spec)


def seed_update(emulator, pipeline_id: str, **body) -> str:
    from databricks_connector.emulator import pipelines

    return pipelines.start_update_of(emulator.state, pipeline_id, body)


def _unknown_pipeline(emulator, connector, conn):
    return {"pipeline_id": "00000000-0000-4000-8000-000000000000"}


def _same_pipeline(out, inputs, conn):
    return out.get("pipeline_id") == inputs["pipeline_id"]


@scenario("list_pipelines", check=lambda out, inputs, conn: out.get("count") == len(out.get("pipelines", [])))
def _list_pipelines(emulator, connector, conn):
    seed_pipeline(emulator)
    return {"max_items": 5}


@scenario("get_pipeline", check=_same_pipeline, failing=_unknown_pipeline)
def _get_pipeline(emulator, connector, conn):
    return {"pipeline_id": seed_pipeline(emulator)}


@scenario("create_pipeline", changes_state=True, applied=("pipelines/create",),
          check=lambda out, inputs, conn: bool(out.get("pipeline_id")))
def _create_pipeline(emulator, connector, conn):
    return {"name": f"scn-create-{uuid.uuid4().hex[:8]}", "catalog": "main", "schema": "default", "allow_duplicate_names": True,
            "configuration": {"env": "test"}}


@scenario("update_pipeline", changes_state=True, applied=("pipelines/edit",), retry_safe="natural",
          check=_same_pipeline, failing=_unknown_pipeline)
def _update_pipeline(emulator, connector, conn):
    return {"pipeline_id": seed_pipeline(emulator), "development": True}


@scenario("delete_pipeline", changes_state=True, applied=("pipelines/delete",), check=_same_pipeline,
          failing=_unknown_pipeline)
def _delete_pipeline(emulator, connector, conn):
    return {"pipeline_id": seed_pipeline(emulator)}


def _wait_start_update(emulator, connector, conn):
    emulator.config.update({"pipeline_step_seconds": 0.3, "pipeline_run_seconds": 1.0})
    return {"pipeline_id": seed_pipeline(emulator), "wait_for_completion": True, "timeout_seconds": 60,
            "poll_interval_seconds": 0.2}


@scenario("start_pipeline_update", changes_state=True, applied=("pipelines/start_update",),
          check=_same_pipeline, failing=_unknown_pipeline, wait=_wait_start_update)
def _start_pipeline_update(emulator, connector, conn):
    fast_pipelines(emulator)        # waited for: a second start begins after the first ended (no conflict)
    return {"pipeline_id": seed_pipeline(emulator), "wait_for_completion": True, "timeout_seconds": 60,
            "poll_interval_seconds": 0.1}


@scenario("get_pipeline_update", check=lambda out, inputs, conn: out.get("update_id") == inputs["update_id"],
          failing=lambda emulator, connector, conn: {**_unknown_pipeline(emulator, connector, conn),
                                                     "update_id": "00000000-0000-4000-8000-000000000001"})
def _get_pipeline_update(emulator, connector, conn):
    pid = seed_pipeline(emulator)
    return {"pipeline_id": pid, "update_id": seed_update(emulator, pid)}


def _wait_stop(emulator, connector, conn):
    emulator.config.update({"pipeline_step_seconds": 5, "pipeline_stop_seconds": 1.0})
    pid = seed_pipeline(emulator)
    seed_update(emulator, pid)
    return {"pipeline_id": pid, "wait_for_state": True, "timeout_seconds": 60, "poll_interval_seconds": 0.2}


@scenario("stop_pipeline", changes_state=True, applied=("pipelines/stop",), retry_safe="natural",
          check=_same_pipeline, failing=_unknown_pipeline, wait=_wait_stop)
def _stop_pipeline(emulator, connector, conn):
    emulator.config.update({"pipeline_step_seconds": 30})       # the update is still active when stopped
    pid = seed_pipeline(emulator, continuous=True)
    seed_update(emulator, pid)
    return {"pipeline_id": pid}


@scenario("list_pipeline_events", check=lambda out, inputs, conn: out.get("count") == len(out.get("events", [])),
          failing=_unknown_pipeline)
def _list_pipeline_events(emulator, connector, conn):
    pid = seed_pipeline(emulator)
    seed_update(emulator, pid)
    return {"pipeline_id": pid, "max_items": 20}
