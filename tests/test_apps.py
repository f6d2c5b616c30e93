"""Databricks Apps over real HTTP against the emulator: list (Max Items), get, start and stop with
waiting, deploy (succeeded, failed, needs active compute), the picker and classified errors."""
import pytest

from databricks_connector.errors import ConnectorError

from .scenarios.apps import seed_app, seed_source

API = "/api/2.0/apps"


@pytest.fixture(autouse=True)
def fast(emulator):
    emulator.config.update({"app_start_seconds": 0.3, "app_stop_seconds": 0.2, "app_deploy_seconds": 0.2})


def test_start_deploy_and_stop_with_waiting(connector, conn, emulator):
    name = seed_app(emulator, "STOPPED", deployed=False)
    assert connector.run("get_app", conn, {"app_name": name})["app_status"]["state"] == "UNAVAILABLE"
    since = len(emulator.requests)
    app = connector.run("start_app", conn, {"app_name": name, "wait_for_state": True, "poll_interval_seconds": 0.1})
    assert app["compute_status"]["state"] == "ACTIVE"
    polls = [r for r in emulator.requests[since:] if r["method"] == "GET" and r["path"] == f"{API}/{name}"]
    assert len(polls) >= 2                                   # STARTING first: the wait polled again
    path = seed_source(emulator)
    dep = connector.run("deploy_app", conn, {"app_name": name, "source_code_path": path, "mode": "AUTO_SYNC",
                                             "wait_for_completion": True, "poll_interval_seconds": 0.1})
    assert dep["status"]["state"] == "SUCCEEDED" and dep["mode"] == "AUTO_SYNC" and dep["source_code_path"] == path
    app = connector.run("get_app", conn, {"app_name": name})
    assert app["app_status"]["state"] == "RUNNING" and app["active_deployment"]["deployment_id"] == dep["deployment_id"]
    app = connector.run("stop_app", conn, {"app_name": name, "wait_for_state": True, "poll_interval_seconds": 0.1})
    assert app["compute_status"]["state"] == "STOPPED" and app["app_status"]["state"] == "UNAVAILABLE"
    before = emulator.state.applied["apps/stop"]
    connector.run("stop_app", conn, {"app_name": name})
    assert emulator.state.applied["apps/stop"] == before            # stopping a stopped app changes nothing


def test_a_failed_deployment_and_one_on_stopped_compute(connector, pat, emulator):
    name = seed_app(emulator, "ACTIVE")
    with pytest.raises(ConnectorError) as err:
        connector.run("deploy_app", pat, {"app_name": name, "source_code_path": "/Workspace/Shared/nowhere",
                                          "wait_for_completion": True, "poll_interval_seconds": 0.1})
    e = err.value
    assert e.type == "operation_failed" and "FAILED" in e.message and "/Workspace/Shared/nowhere" in e.message
    assert e.details["started"]["deployment_id"] == e.details["deployment_id"]
    app = connector.run("get_app", pat, {"app_name": name})
    assert app["app_status"]["state"] == "RUNNING"                # the previous deployment keeps running
    stopped = seed_app(emulator, "STOPPED")
    with pytest.raises(ConnectorError) as err:
        connector.run("deploy_app", pat, {"app_name": stopped, "source_code_path": seed_source(emulator)})
    assert err.value.status == 400 and err.value.error_code == "INVALID_STATE"


def test_list_max_items_picker_and_not_found(connector, pat, emulator):
    names = {seed_app(emulator) for _ in range(3)}
    out = connector.run("list_apps", pat, {})
    assert names <= {a["name"] for a in out["apps"]} and out["count"] == len(out["apps"]) and not out["truncated"]
    capped = connector.run("list_apps", pat, {"max_items": 2})
    assert capped["count"] == 2 and capped["truncated"]
    options = connector.pick("select_app", pat)
    assert {f"{n} (RUNNING)" for n in names} <= {o["label"] for o in options}
    with pytest.raises(ConnectorError) as err:
        connector.run("get_app", pat, {"app_name": "no-such-app"})
    assert err.value.type == "not_found" and err.value.status == 404
    with pytest.raises(ConnectorError) as err:
        connector.run("start_app", pat, {"app_name": "Not_Valid!"})
    assert err.value.type == "invalid_input" and "App Name" in err.value.message
