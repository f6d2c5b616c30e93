"""Scenarios of the MLflow tracking area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import scenario

UNKNOWN_RUN = "0" * 32


def experiment(connector, conn, name=None) -> str:
    name = name or f"/Shared/scn-{uuid.uuid4().hex[:10]}"
    return connector.run("create_experiment", conn, {"name": name})["experiment_id"]


def run(connector, conn, experiment_id=None, **inputs) -> str:
    eid = experiment_id or experiment(connector, conn)
    return connector.run("create_mlflow_run", conn, {"experiment_id": eid, **inputs})["info"]["run_id"]


def _unknown_experiment(emulator, connector, conn):
    return {"experiment_id": "999999999"}


def _unknown_run(emulator, connector, conn):
    return {"run_id": UNKNOWN_RUN}


def _taken_name(emulator, connector, conn):
    """A name already taken (seeded in the emulator: this may run inside a fault window)."""
    from databricks_connector.emulator import mlflow as tracking

    tracking.add_experiment(emulator.state, "/Shared/taken")
    return {"name": "/Shared/taken"}


@scenario("create_experiment", changes_state=True, applied=("mlflow/experiments/create",), failing=_taken_name,
          check=lambda out, inputs, conn: out.get("experiment_id", "").isdigit())
def _create_experiment(emulator, connector, conn):
    return {"name": f"/Shared/scn-{uuid.uuid4().hex[:10]}", "tags": {"team": "ml"}}


@scenario("get_experiment", failing=_unknown_experiment,
          check=lambda out, inputs, conn: out.get("experiment_id") == inputs["experiment_id"])
def _get_experiment(emulator, connector, conn):
    return {"experiment_id": experiment(connector, conn)}


@scenario("search_experiments", retry_safe="natural", main=("POST", r"/api/2\.0/mlflow/experiments/search"),
          check=lambda out, inputs, conn: out.get("count") == len(out.get("experiments", [])) >= 1)
def _search_experiments(emulator, connector, conn):
    tag = uuid.uuid4().hex[:10]
    experiment(connector, conn, f"/Shared/search-{tag}")
    return {"filter": f"name LIKE '%{tag}%'", "max_items": 5}


@scenario("delete_experiment", changes_state=True, applied=("mlflow/experiments/delete",), retry_safe="natural",
          failing=_unknown_experiment, check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_experiment(emulator, connector, conn):
    return {"experiment_id": experiment(connector, conn)}


@scenario("create_mlflow_run", changes_state=True, applied=("mlflow/runs/create",), failing=_unknown_experiment,
          check=lambda out, inputs, conn: out.get("info", {}).get("experiment_id") == inputs["experiment_id"])
def _create_mlflow_run(emulator, connector, conn):
    return {"experiment_id": experiment(connector, conn), "run_name": "scenario"}


@scenario("get_mlflow_run", failing=_unknown_run,
          check=lambda out, inputs, conn: out.get("info", {}).get("run_id") == inputs["run_id"])
def _get_mlflow_run(emulator, connector, conn):
    return {"run_id": run(connector, conn)}


@scenario("search_mlflow_runs", retry_safe="natural", main=("POST", r"/api/2\.0/mlflow/runs/search"),
          failing=lambda e, c, conn: {"experiment_ids": ["999999999"]},
          check=lambda out, inputs, conn: out.get("count") == len(out.get("runs", [])) == 1)
def _search_mlflow_runs(emulator, connector, conn):
    eid = experiment(connector, conn)
    rid = run(connector, conn, eid)
    connector.run("log_mlflow_run_data", conn, {"run_id": rid, "metrics": {"rmse": 0.5}})
    run(connector, conn, eid)
    return {"experiment_ids": [eid], "filter": "metrics.rmse < 1"}


@scenario("log_mlflow_run_data", changes_state=True, applied=("mlflow/runs/log-batch",), failing=lambda e, c, conn: {
    "run_id": UNKNOWN_RUN, "metrics": {"rmse": 1}},
          check=lambda out, inputs, conn: out.get("run_id") == inputs["run_id"] and out.get("metrics") == 2)
def _log_mlflow_run_data(emulator, connector, conn):
    return {"run_id": run(connector, conn), "metrics": {"rmse": 0.42, "r2": 0.9}, "params": {"max_depth": "6"},
            "tags": {"stage": "scenario"}, "step": 3}


@scenario("update_mlflow_run", changes_state=True, applied=("mlflow/runs/update",), retry_safe="natural",
          failing=lambda e, c, conn: {"run_id": UNKNOWN_RUN, "status": "FINISHED"},
          check=lambda out, inputs, conn: out.get("run_id") == inputs["run_id"] and out.get("status") == "FINISHED")
def _update_mlflow_run(emulator, connector, conn):
    return {"run_id": run(connector, conn), "status": "FINISHED"}


@scenario("get_metric_history", failing=lambda e, c, conn: {"run_id": UNKNOWN_RUN, "metric_key": "rmse"},
          check=lambda out, inputs, conn: out.get("count") == len(out.get("metrics", [])) == 3)
def _get_metric_history(emulator, connector, conn):
    rid = run(connector, conn)
    for step, value in enumerate((0.9, 0.6, 0.4)):
        connector.run("log_mlflow_run_data", conn, {"run_id": rid, "metrics": {"rmse": value}, "step": step})
    return {"run_id": rid, "metric_key": "rmse"}


@scenario("list_run_artifacts", failing=_unknown_run,
          check=lambda out, inputs, conn: [f["path"] for f in out.get("files", [])] == ["metrics.json", "model"])
def _list_run_artifacts(emulator, connector, conn):
    from databricks_connector.emulator import mlflow as tracking

    rid = run(connector, conn)
    tracking.add_artifact(emulator.state, rid, "model/MLmodel", b"flavors: {}\n")
    tracking.add_artifact(emulator.state, rid, "metrics.json", b'{"rmse": 0.4}')
    return {"run_id": rid}
