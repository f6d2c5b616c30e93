"""MLflow tracking and Unity Catalog models over real HTTP against the emulator: searches with
MLflow's filter syntax over every page, batch logging (checked before any request), metric
history, ending a run, versions and aliases (promotion), and the pickers."""
import uuid

import pytest

from databricks_connector.errors import ConnectorError, InputError

from tests import scenarios as S
from tests.scenarios.mlflow import experiment, run
from tests.scenarios.models import model


def _mine(emulator, since, prefix):
    return [r for r in emulator.requests[since:] if r["path"].startswith(prefix)]


def test_runs_search_filters_orders_and_reads_every_page(connector, conn, emulator):
    eid = experiment(connector, conn)
    for i, (rmse, model_name) in enumerate([(0.9, "tree"), (0.3, "tree"), (0.5, "linear"), (0.1, "tree")]):
        rid = run(connector, conn, eid, run_name=f"r{i}")
        connector.run("log_mlflow_run_data", conn, {"run_id": rid, "metrics": {"rmse": rmse},
                                                    "params": {"model": model_name}})
    emulator.config.update({"mlflow_page_size": 1})
    since = len(emulator.requests)
    out = connector.run("search_mlflow_runs", conn, {"experiment_ids": [eid], "filter": "metrics.rmse < 0.95 and "
                                                     "params.model = 'tree'", "order_by": ["metrics.rmse ASC"]})
    assert [r["data"]["metrics"][0]["value"] for r in out["runs"]] == [0.1, 0.3, 0.9]
    assert out["count"] == 3 and out["truncated"] is False
    assert len(_mine(emulator, since, "/api/2.0/mlflow/runs/search")) == 3        # one page per run
    capped = connector.run("search_mlflow_runs", conn, {"experiment_ids": [eid], "max_items": 2})
    assert capped["count"] == 2 and capped["truncated"] is True


def test_a_bad_filter_is_databricks_refusal(connector, pat):
    eid = experiment(connector, pat)
    with pytest.raises(ConnectorError) as err:
        connector.run("search_mlflow_runs", pat, {"experiment_ids": [eid], "filter": "metrics.rmse <<< 1"})
    assert err.value.status == 400 and err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_experiments_by_name_search_and_delete(connector, conn):
    tag = uuid.uuid4().hex[:8]
    name = f"/Shared/exp-{tag}"
    eid = connector.run("create_experiment", conn, {"name": name, "tags": {"team": tag}})["experiment_id"]
    assert connector.run("get_experiment", conn, {"experiment_name": name})["experiment_id"] == eid
    found = connector.run("search_experiments", conn, {"filter": f"tags.team = '{tag}'"})
    assert [e["experiment_id"] for e in found["experiments"]] == [eid]
    with pytest.raises(ConnectorError) as err:                          # the name is taken
        connector.run("create_experiment", conn, {"name": name})
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"
    connector.run("delete_experiment", conn, {"experiment_id": eid})
    assert connector.run("get_experiment", conn, {"experiment_id": eid})["lifecycle_stage"] == "deleted"
    assert connector.run("search_experiments", conn, {"filter": f"tags.team = '{tag}'"})["count"] == 0
    assert connector.run("search_experiments", conn, {"filter": f"tags.team = '{tag}'", "view_type": "ALL"})["count"] == 1
    picked = connector.pick("select_experiment", conn, {})
    assert eid not in {p["value"] for p in picked}


def test_get_experiment_needs_exactly_one_of_id_and_name(connector, pat, emulator):
    since = len(emulator.requests)
    for inputs in ({}, {"experiment_id": "1", "experiment_name": "/x"}):
        with pytest.raises(InputError):
            connector.run("get_experiment", pat, inputs)
    assert not _mine(emulator, since, "/api/")


def test_log_batch_keeps_history_and_a_param_cannot_change(connector, conn):
    rid = run(connector, conn)
    out = connector.run("log_mlflow_run_data", conn, {"run_id": rid, "metrics": [
        {"key": "loss", "value": 0.9, "step": 0}, {"key": "loss", "value": 0.5, "step": 1}],
        "params": {"lr": "0.1"}, "tags": {"stage": "dev"}})
    assert out == {"run_id": rid, "metrics": 2, "params": 1, "tags": 1}
    connector.run("log_mlflow_run_data", conn, {"run_id": rid, "metrics": {"loss": "0.25"}, "step": 2})
    hist = connector.run("get_metric_history", conn, {"run_id": rid, "metric_key": "loss"})
    assert [(m["step"], m["value"]) for m in hist["metrics"]] == [(0, 0.9), (1, 0.5), (2, 0.25)]
    got = connector.run("get_mlflow_run", conn, {"run_id": rid})["data"]
    assert got["metrics"] == [{"key": "loss", "value": 0.25, "timestamp": got["metrics"][0]["timestamp"], "step": 2}]
    assert {"key": "stage", "value": "dev"} in got["tags"] and got["params"] == [{"key": "lr", "value": "0.1"}]
    with pytest.raises(ConnectorError) as err:
        connector.run("log_mlflow_run_data", conn, {"run_id": rid, "params": {"lr": "0.2"}})
    assert err.value.error_code == "INVALID_PARAMETER_VALUE" and "Changing param values" in err.value.message


def test_bad_metrics_are_refused_before_any_request(connector, pat, emulator):
    since = len(emulator.requests)
    too_many = {f"m{i}": i for i in range(1000)}
    for metrics, words in (({"rmse": "high"}, "not a finite number"), ({"a": 1, **too_many}, "")):
        with pytest.raises(InputError) as err:
            connector.run("log_mlflow_run_data", pat, {"run_id": S.mlflow.UNKNOWN_RUN, "metrics": metrics,
                                                       "params": {"p": "1"}})
        assert [p["key"] for p in err.value.problems] == ["metrics"] and words in err.value.problems[0]["reason"]
    assert not _mine(emulator, since, "/api/")


def test_ending_a_run_sets_its_end_time_once(connector, conn):
    rid = run(connector, conn)
    first = connector.run("update_mlflow_run", conn, {"run_id": rid, "status": "FINISHED"})
    assert first["status"] == "FINISHED" and isinstance(first["end_time"], int)
    again = connector.run("update_mlflow_run", conn, {"run_id": rid, "status": "FINISHED"})
    assert again["end_time"] == first["end_time"]
    renamed = connector.run("update_mlflow_run", conn, {"run_id": rid, "run_name": "renamed", "end_time": 5})
    assert renamed["run_name"] == "renamed" and renamed["end_time"] == 5


def test_artifacts_one_level_at_a_time(connector, pat, emulator):
    from databricks_connector.emulator import mlflow as tracking

    rid = run(connector, pat)
    for path in ("model/MLmodel", "model/data/weights.bin", "notes.txt"):
        tracking.add_artifact(emulator.state, rid, path, b"xyz")
    root = connector.run("list_run_artifacts", pat, {"run_id": rid})
    assert [(f["path"], f["is_dir"]) for f in root["files"]] == [("model", True), ("notes.txt", False)]
    assert root["root_uri"].endswith(f"{rid}/artifacts")
    sub = connector.run("list_run_artifacts", pat, {"run_id": rid, "path": "model"})
    assert [(f["path"], f.get("file_size")) for f in sub["files"]] == [("model/MLmodel", 3), ("model/data", None)]


def test_versions_become_ready_and_aliases_promote(connector, conn, emulator):
    full = model(emulator, connector, conn)
    from databricks_connector.emulator import models as emu_models

    emulator.config.update({"model_version_ready_seconds": 60})
    pending = emu_models.seed_version(emulator.state, full)
    assert connector.run("get_model_version", conn, {"full_name": full, "version": pending})["status"] == \
        "PENDING_REGISTRATION"
    emulator.config.update({"model_version_ready_seconds": 0})
    v2 = emu_models.seed_version(emulator.state, full)
    assert connector.run("get_model_version", conn, {"full_name": full, "version": v2})["status"] == "READY"
    connector.run("set_model_alias", conn, {"full_name": full, "alias": "champion", "version": 1})
    connector.run("set_model_alias", conn, {"full_name": full, "alias": "champion", "version": v2})   # moved
    champion = connector.run("get_model_version_by_alias", conn, {"full_name": full, "alias": "champion"})
    assert champion["version"] == v2 and champion["aliases"] == [{"alias_name": "champion", "version_num": v2}]
    assert connector.run("get_registered_model", conn, {"full_name": full})["aliases"] == \
        [{"alias_name": "champion", "version_num": v2}]
    labels = connector.pick("select_model_version", conn, {"full_name": full})
    assert labels == [{"label": f"{v2} (READY; champion)", "value": v2}, {"label": "1 (PENDING_REGISTRATION)", "value": 1}]
    connector.run("delete_model_alias", conn, {"full_name": full, "alias": "champion"})
    with pytest.raises(ConnectorError) as err:
        connector.run("get_model_version_by_alias", conn, {"full_name": full, "alias": "champion"})
    assert err.value.type == "not_found"


def test_models_list_by_schema_every_page_and_delete(connector, conn, emulator):
    names = {model(emulator, connector, conn) for _ in range(3)}
    emulator.config.update({"models_page_size": 2})
    out = connector.run("list_registered_models", conn, {"catalog_name": "main", "schema_name": "default"})
    assert names <= {m["full_name"] for m in out["registered_models"]} and out["count"] == len(out["registered_models"])
    assert names <= {p["value"] for p in connector.pick("select_registered_model", conn, {})}
    gone = sorted(names)[0]
    connector.run("delete_registered_model", conn, {"full_name": gone})
    with pytest.raises(ConnectorError) as err:
        connector.run("get_registered_model", conn, {"full_name": gone})
    assert err.value.type == "not_found"
    with pytest.raises(ConnectorError) as err:
        connector.run("create_registered_model", conn, {"catalog_name": "nowhere", "schema_name": "default",
                                                        "name": "m"})
    assert err.value.type == "not_found"


def test_model_version_ready_fires_once_per_version_that_becomes_ready(connector, conn, emulator):
    from databricks_connector.emulator import models as emu_models

    full = model(emulator, connector, conn, versions=1)                       # READY before activation
    emulator.config.update({"model_version_ready_seconds": 3600})
    pending = emu_models.seed_version(emulator.state, full)                   # still registering at activation
    first = connector.poll("model_version_ready", conn, {"full_name": full})
    assert first["events"] == [] and first["activated"] is True
    emulator.config.update({"model_version_ready_seconds": 0})
    new = emu_models.seed_version(emulator.state, full)
    second = connector.poll("model_version_ready", conn, {"full_name": full}, state=first["state"])
    assert [e["version"] for e in second["events"]] == [new]
    with emulator.state.lock:                                                 # the pending one is finalized now
        version = emu_models.models(emulator.state)[full]["versions"][pending]
        version["_ready_at"] = 0
    third = connector.poll("model_version_ready", conn, {"full_name": full}, state=second["state"])
    assert [(e["event_id"], e["status"]) for e in third["events"]] == [(f"{full}/{pending}", "READY")]
    assert connector.poll("model_version_ready", conn, {"full_name": full}, state=third["state"])["events"] == []
    history = connector.poll("model_version_ready", conn, {"full_name": full, "since": 0})
    assert [e["version"] for e in history["events"]] == [1, pending, new]


def test_workspace_registry_stages(connector, conn, emulator):
    from tests.scenarios.models import legacy_model

    name = legacy_model(emulator, versions=3)
    found = connector.run("search_registered_models", conn, {"filter": f"name LIKE '{name[:8]}%'"})
    assert name in {m["name"] for m in found["registered_models"]}
    connector.run("transition_model_version_stage", conn, {"name": name, "version": 1, "stage": "Production"})
    moved = connector.run("transition_model_version_stage", conn, {"name": name, "version": 2, "stage": "Production",
                                                                   "archive_existing_versions": True})
    assert moved["current_stage"] == "Production" and moved["version"] == "2"
    latest = connector.run("get_latest_model_versions", conn, {"name": name, "stages": ["Production", "Archived"]})
    assert {(v["current_stage"], v["version"]) for v in latest["model_versions"]} == {("Production", "2"), ("Archived", "1")}
    everything = connector.run("get_latest_model_versions", conn, {"name": name})
    assert {v["current_stage"] for v in everything["model_versions"]} == {"None", "Production", "Archived"}
    with pytest.raises(ConnectorError) as err:
        connector.run("get_latest_model_versions", conn, {"name": "no-such-model"})
    assert err.value.type == "not_found"
