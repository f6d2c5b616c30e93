"""Pipelines (Lakeflow / DLT) over real HTTP against the emulator: create, update (merged), start
an update and wait for it (completed, failed, timed out and stopped), stop, the event log (both
orders, filters, every page), the picker and classified errors."""
import pytest
import requests

from databricks_connector.errors import ConnectorError

from .scenarios import SCENARIO_NOTEBOOK, seed_notebook
from .scenarios.pipelines import fast_pipelines, seed_pipeline, seed_update

API = "/api/2.0/pipelines"
ORDER = ["QUEUED", "CREATED", "WAITING_FOR_RESOURCES", "INITIALIZING", "SETTING_UP_TABLES", "RUNNING", "COMPLETED"]


@pytest.fixture(autouse=True)
def fast(emulator):
    fast_pipelines(emulator)


def _since(emulator):
    return len(emulator.requests)


def _mine(emulator, since):
    return [(r["method"], r["path"]) for r in emulator.requests[since:] if r["path"].startswith(API)]


def _progress(events):
    return [e["details"]["update_progress"]["state"] for e in events if e["event_type"] == "update_progress"]


def test_create_run_and_read_back(connector, conn, emulator):
    seed_notebook(emulator, SCENARIO_NOTEBOOK, "print('scenario')", once=True)
    name = f"orders-{conn['type']}"
    out = connector.run("create_pipeline", conn, {"name": name, "catalog": "main", "schema": "default",
                                                  "notebook_paths": [SCENARIO_NOTEBOOK],
                                                  "configuration": {"env": "test"}})
    pid = out["pipeline_id"]
    assert out["effective_settings"]["libraries"] == [{"notebook": {"path": SCENARIO_NOTEBOOK}}]
    assert out["effective_settings"]["serverless"] is True          # serverless unless clusters are given
    got = connector.run("get_pipeline", conn, {"pipeline_id": pid})
    assert got["state"] == "IDLE" and got["spec"]["configuration"] == {"env": "test"} and got["name"] == name

    done = connector.run("start_pipeline_update", conn, {"pipeline_id": pid, "wait_for_completion": True,
                                                         "poll_interval_seconds": 0.1, "timeout_seconds": 60})
    assert done["state"] == "COMPLETED" and done["update"]["update_id"] == done["update_id"]
    # the update "refreshed" the notebook's table in the SQL engine
    from databricks_connector.emulator.sqlengine import engine_for
    assert engine_for(emulator.state).table("main.default.scenario") is not None

    asc = connector.run("list_pipeline_events", conn, {"pipeline_id": pid, "order": "ASC"})["events"]
    desc = connector.run("list_pipeline_events", conn, {"pipeline_id": pid})["events"]
    assert _progress(asc) == ORDER and [e["id"] for e in desc] == [e["id"] for e in reversed(asc)]
    assert all(e["origin"]["pipeline_id"] == pid for e in asc)
    only = connector.run("list_pipeline_events", conn, {"pipeline_id": pid, "update_id": done["update_id"]})
    assert only["count"] and all(e["origin"].get("update_id") == done["update_id"] for e in only["events"])

    listed = connector.run("list_pipelines", conn, {"name_contains": name})
    assert [p["pipeline_id"] for p in listed["pipelines"]] == [pid]
    assert listed["pipelines"][0]["latest_updates"][0]["state"] == "COMPLETED"


def test_failed_update_names_the_error_and_what_started(connector, conn, emulator):
    pid = seed_pipeline(emulator, libraries=[{"notebook": {"path": "/Shared/does-not-exist"}}])
    with pytest.raises(ConnectorError) as err:
        connector.run("start_pipeline_update", conn, {"pipeline_id": pid, "wait_for_completion": True,
                                                      "poll_interval_seconds": 0.1})
    e = err.value
    assert e.type == "operation_failed" and "FAILED" in e.message and "/Shared/does-not-exist" in e.message
    assert e.details["started"]["update_id"] == e.details["update_id"] and e.details["state"] == "FAILED"
    assert connector.run("get_pipeline", conn, {"pipeline_id": pid})["state"] == "FAILED"
    errors = connector.run("list_pipeline_events", conn, {"pipeline_id": pid, "levels": ["ERROR"]})["events"]
    assert len(errors) == 1 and errors[0]["error"]["fatal"] is True


def test_timeout_stops_the_update_unless_told_not_to(connector, pat, emulator):
    emulator.config.update({"pipeline_step_seconds": 60})
    pid = seed_pipeline(emulator)
    since = _since(emulator)
    with pytest.raises(ConnectorError) as err:
        connector.run("start_pipeline_update", pat, {"pipeline_id": pid, "wait_for_completion": True,
                                                     "timeout_seconds": 1, "poll_interval_seconds": 0.2})
    assert err.value.type == "timeout" and err.value.details["cancel"][0]["ok"]
    assert ("POST", f"{API}/{pid}/stop") in _mine(emulator, since)
    uid = err.value.details["started"]["update_id"]
    assert connector.run("get_pipeline_update", pat, {"pipeline_id": pid, "update_id": uid})["state"] in ("STOPPING", "CANCELED")

    pid2 = seed_pipeline(emulator)
    since = _since(emulator)
    with pytest.raises(ConnectorError) as err:
        connector.run("start_pipeline_update", pat, {"pipeline_id": pid2, "wait_for_completion": True,
                                                     "timeout_seconds": 1, "poll_interval_seconds": 0.2,
                                                     "cancel_on_timeout": False})
    assert err.value.type == "timeout" and "not stopped" in err.value.message
    assert ("POST", f"{API}/{pid2}/stop") not in _mine(emulator, since)


def test_stop_waits_for_idle_and_a_second_start_is_a_conflict(connector, conn, emulator):
    pid = seed_pipeline(emulator, continuous=True)
    first = connector.run("start_pipeline_update", conn, {"pipeline_id": pid})
    with pytest.raises(ConnectorError) as err:
        connector.run("start_pipeline_update", conn, {"pipeline_id": pid})
    assert err.value.status == 409 and err.value.error_code == "RESOURCE_CONFLICT"
    out = connector.run("stop_pipeline", conn, {"pipeline_id": pid, "wait_for_state": True,
                                                "poll_interval_seconds": 0.1})
    assert out["state"] == "IDLE"
    assert connector.run("get_pipeline_update", conn, {"pipeline_id": pid, "update_id": first["update_id"]})["state"] == "CANCELED"
    # a stop with nothing running changes nothing
    before = emulator.state.applied["pipelines/stop"]
    connector.run("stop_pipeline", conn, {"pipeline_id": pid})
    assert emulator.state.applied["pipelines/stop"] == before


def test_start_options_reach_the_update(connector, pat, emulator):
    pid = seed_pipeline(emulator)
    out = connector.run("start_pipeline_update", pat, {"pipeline_id": pid, "refresh_selection": ["a", "b"],
                                                       "full_refresh_selection": ["c"], "wait_for_completion": True,
                                                       "poll_interval_seconds": 0.1})
    assert out["update"]["refresh_selection"] == ["a", "b"] and out["update"]["full_refresh_selection"] == ["c"]
    out = connector.run("start_pipeline_update", pat, {"pipeline_id": pid, "validate_only": True,
                                                       "wait_for_completion": True, "poll_interval_seconds": 0.1})
    assert out["update"]["validate_only"] is True and out["state"] == "COMPLETED"
    events = connector.run("list_pipeline_events", pat, {"pipeline_id": pid, "update_id": out["update_id"], "order": "ASC"})
    assert "RUNNING" not in _progress(events["events"])        # validation does not refresh anything


def test_bad_start_inputs_are_refused_before_any_request(connector, pat, emulator):
    since = _since(emulator)
    with pytest.raises(ConnectorError) as err:
        connector.run("start_pipeline_update", pat, {"pipeline_id": "x1", "full_refresh": True,
                                                     "refresh_selection": ["t"], "timeout_seconds": 0})
    assert err.value.type == "invalid_input"
    assert "Full Refresh" in err.value.message and "Timeout (seconds)" in err.value.message
    assert _mine(emulator, since) == []


def test_update_merges_over_the_current_settings(connector, pat, emulator):
    pid = seed_pipeline(emulator, catalog="main", schema="default", libraries=[{"notebook": {"path": "/a"}},
                                                                                {"file": {"path": "/b.sql"}}])
    out = connector.run("update_pipeline", pat, {"pipeline_id": pid, "development": True,
                                                 "notebook_paths": ["/c"], "settings": {"tags": {"team": "x"}}})
    spec = out["spec"]
    assert spec["development"] is True and spec["catalog"] == "main" and spec["tags"] == {"team": "x"}
    assert spec["libraries"] == [{"file": {"path": "/b.sql"}}, {"notebook": {"path": "/c"}}]
    puts = [r for r in emulator.requests if r["method"] == "PUT" and r["path"] == f"{API}/{pid}"]
    assert len(puts) == 1


def test_events_page_both_ways_and_the_connector_reads_every_page(connector, conn, emulator):
    pid = seed_pipeline(emulator)
    connector.run("start_pipeline_update", conn, {"pipeline_id": pid, "wait_for_completion": True,
                                                  "poll_interval_seconds": 0.1})
    everything = connector.run("list_pipeline_events", conn, {"pipeline_id": pid, "order": "ASC"})["events"]
    emulator.config.update({"pipeline_page_cap": 3})
    since = _since(emulator)
    paged = connector.run("list_pipeline_events", conn, {"pipeline_id": pid, "order": "ASC"})
    assert [e["id"] for e in paged["events"]] == [e["id"] for e in everything] and not paged["truncated"]
    assert len([p for p in _mine(emulator, since) if p[1].endswith("/events")]) == -(-len(everything) // 3)
    capped = connector.run("list_pipeline_events", conn, {"pipeline_id": pid, "max_items": 4})
    assert capped["count"] == 4 and capped["truncated"] and capped["events"][0]["id"] == everything[-1]["id"]
    # the wire: a next page and back again with prev_page_token; a token beside a filter is refused
    h = {"Authorization": f"Bearer {emulator.pat}"}
    ca = conn.get("ca_bundle") or True
    first = requests.get(f"{emulator.url}{API}/{pid}/events", params={"order_by": "timestamp asc"}, headers=h, verify=ca).json()
    second = requests.get(f"{emulator.url}{API}/{pid}/events", params={"page_token": first["next_page_token"]},
                          headers=h, verify=ca).json()
    back = requests.get(f"{emulator.url}{API}/{pid}/events", params={"page_token": second["prev_page_token"]},
                        headers=h, verify=ca).json()
    assert [e["id"] for e in back["events"]] == [e["id"] for e in first["events"]]
    r = requests.get(f"{emulator.url}{API}/{pid}/events", params={"page_token": first["next_page_token"],
                                                                   "filter": "level='INFO'"}, headers=h, verify=ca)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # since: only the events after a time
    cut = everything[len(everything) // 2]
    later = connector.run("list_pipeline_events", conn, {"pipeline_id": pid, "since": cut["timestamp"], "order": "ASC"})
    assert later["events"] and all(e["timestamp"] > cut["timestamp"] for e in later["events"])


def test_list_every_page_picker_delete_and_not_found(connector, pat, emulator):
    ids = {seed_pipeline(emulator, name=f"paged-{i}") for i in range(4)}
    emulator.config.update({"pipeline_page_cap": 2})
    out = connector.run("list_pipelines", pat, {"name_contains": "paged-"})
    assert {p["pipeline_id"] for p in out["pipelines"]} == ids and out["count"] == 4
    options = connector.pick("select_pipeline", pat)
    assert {o["value"] for o in options} >= ids and any(o["label"] == "paged-0 (IDLE)" for o in options)
    victim = sorted(ids)[0]
    assert connector.run("delete_pipeline", pat, {"pipeline_id": victim}) == {"pipeline_id": victim, "deleted": True}
    with pytest.raises(ConnectorError) as err:
        connector.run("get_pipeline", pat, {"pipeline_id": victim})
    assert err.value.type == "not_found" and err.value.status == 404
    assert victim not in {p["pipeline_id"] for p in connector.run("list_pipelines", pat, {"name_contains": "paged-"})["pipelines"]}
    uid = seed_update(emulator, sorted(ids)[1])
    assert connector.run("get_pipeline_update", pat, {"pipeline_id": sorted(ids)[1], "update_id": uid})["update_id"] == uid


# --------------------------------------------------------------------------- trigger: Pipeline Update Finished

def _poll(connector, conn, inputs, state=None):
    return connector.poll("pipeline_update_finished", conn, inputs, state)


def test_update_finished_fires_once_per_end_and_not_for_history(connector, conn, emulator):
    pid = seed_pipeline(emulator)
    run = {"pipeline_id": pid, "wait_for_completion": True, "poll_interval_seconds": 0.1}
    connector.run("start_pipeline_update", conn, run)               # history: before activation
    first = _poll(connector, conn, {"pipeline_id": pid})
    assert first["events"] == []
    done = connector.run("start_pipeline_update", conn, run)
    second = _poll(connector, conn, {"pipeline_id": pid}, first["state"])
    (event,) = second["events"]
    assert event["update_id"] == done["update_id"] and event["state"] == "COMPLETED"
    assert event["update"]["update_id"] == done["update_id"] and event["pipeline_id"] == pid
    assert _poll(connector, conn, {"pipeline_id": pid}, second["state"])["events"] == []   # exactly once


def test_update_finished_watches_every_pipeline_and_filters_states(connector, pat, emulator):
    ok = seed_pipeline(emulator)
    bad = seed_pipeline(emulator, libraries=[{"notebook": {"path": "/Shared/missing-for-trigger"}}])
    inputs = {"states": ["FAILED", "CANCELED"], "max_pages": 1000}   # one page per pipeline of the (shared) workspace
    state = _poll(connector, pat, inputs)["state"]
    connector.run("start_pipeline_update", pat, {"pipeline_id": ok, "wait_for_completion": True, "poll_interval_seconds": 0.1})
    with pytest.raises(ConnectorError):
        connector.run("start_pipeline_update", pat, {"pipeline_id": bad, "wait_for_completion": True,
                                                     "poll_interval_seconds": 0.1})
    out = _poll(connector, pat, inputs, state)
    mine = [e for e in out["events"] if e["pipeline_id"] in (ok, bad)]
    assert [(e["pipeline_id"], e["state"]) for e in mine] == [(bad, "FAILED")]
    assert "/Shared/missing-for-trigger" in mine[0]["message"]


def test_a_budgeted_wait_is_pending_and_resumes_without_starting_twice(connector, pat, emulator):
    import json as _json

    from databricks_connector.errors import Pending

    emulator.config.update({"pipeline_step_seconds": 0.1, "pipeline_run_seconds": 0.3})
    pid = seed_pipeline(emulator)
    with pytest.raises(Pending) as pending:
        connector.run("start_pipeline_update", pat, {"pipeline_id": pid, "wait_for_completion": True,
                                                     "poll_interval_seconds": 0.1}, budget=0, progress=False)
    doc = _json.loads(_json.dumps(pending.value.resume))             # JSON, as a front door keeps it
    uid = pending.value.started["update_id"]
    before = emulator.state.applied["pipelines/start_update"]
    import time

    out, wait = None, pending.value.retry_after
    for _ in range(200):                                               # counted rounds, not a timed assertion
        time.sleep(min(wait, 0.5))                                     # a client comes back after retry_after
        try:
            out = connector.resume(doc, pat, budget=0.3, progress=False)
            break
        except Pending as again:
            doc, wait = _json.loads(_json.dumps(again.resume)), again.retry_after
    assert out is not None and out["state"] == "COMPLETED" and out["update_id"] == uid
    assert emulator.state.applied["pipelines/start_update"] == before   # resuming started nothing
