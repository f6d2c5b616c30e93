"""SQL warehouses over real HTTP against the emulator: get, list (every page), start/stop with
waiting, the picker, classified errors, and the wire requests."""
import re

import pytest
import requests

from databricks_connector.errors import ConnectorError

API = "/api/2.0/sql/warehouses"


@pytest.fixture(autouse=True)
def sql(emulator):
    """Fast warehouse timings; every SQL setting restored after the test."""
    s = emulator.config
    saved = s.as_dict()
    s.update({"warehouse_start_seconds": 0.3, "warehouse_stop_seconds": 0.3, "warehouse_delete_seconds": 0.3})
    yield s
    s.update(saved)


def _api(emulator, method, path, body=None):
    r = requests.request(method, emulator.url + path, json=body, headers={"Authorization": f"Bearer {emulator.pat}"})
    assert r.status_code < 300, r.text
    return r.json()


def create_warehouse(emulator, name, *, stopped=False):
    wid = _api(emulator, "POST", API, {"name": name, "cluster_size": "X-Small", "auto_stop_mins": 10,
                                       "tags": {"custom_tags": [{"key": "team", "value": "qa"}]}})["id"]
    if stopped:
        _api(emulator, "POST", f"{API}/{wid}/stop", {})
        with emulator.state.lock:
            from databricks_connector.emulator.warehouses import warehouses
            wh = warehouses(emulator.state)[wid]
            wh["_transitions"] = [(0, "STOPPED")]
    return wid


def starter(emulator):
    whs = _api(emulator, "GET", API)["warehouses"]
    return next(w for w in whs if w["name"] == "Starter Warehouse")


def test_get_returns_the_full_warehouse(connector, conn, emulator):
    wid = starter(emulator)["id"]
    before = len(emulator.requests)
    wh = connector.run("get_sql_warehouse", conn, {"warehouse_id": wid})
    mine = [r for r in emulator.requests[before:] if r["path"].startswith(API)]
    # (a service principal whose token an earlier test revoked re-authenticates and sends it again)
    assert mine and {(r["method"], r["path"]) for r in mine} == {("GET", f"{API}/{wid}")} and not mine[0]["raw"]
    assert re.fullmatch(r"[0-9a-f]{16}", wh["id"]) and wh["name"] == "Starter Warehouse"
    assert wh["state"] == "RUNNING" and wh["num_clusters"] >= 1
    assert wh["odbc_params"]["path"] == f"/sql/1.0/warehouses/{wid}"
    assert f"httpPath=/sql/1.0/warehouses/{wid}" in wh["jdbc_url"]
    assert isinstance(wh["tags"]["custom_tags"], list)
    for key in ("cluster_size", "health", "creator_name", "auto_stop_mins", "warehouse_type", "enable_serverless_compute"):
        assert key in wh


def test_unknown_warehouse_is_not_found(connector, pat):
    with pytest.raises(ConnectorError) as err:
        connector.run("get_sql_warehouse", pat, {"warehouse_id": "0123456789abcdef"})
    assert err.value.type == "not_found" and err.value.status == 404
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(ConnectorError) as err:
        connector.run("start_sql_warehouse", pat, {"warehouse_id": "0123456789abcdef"})
    assert err.value.type == "not_found"


def test_list_follows_every_page(connector, conn, emulator, sql):
    for i in range(3):
        create_warehouse(emulator, f"list-{conn['type']}-{i}")
    from databricks_connector.emulator.warehouses import advance, warehouses
    with emulator.state.lock:
        total = sum(advance(emulator.state, w)["state"] != "DELETED" for w in warehouses(emulator.state).values())
    sql.update({"warehouse_page_size": 2})
    before = len(emulator.requests)
    out = connector.run("list_sql_warehouses", conn, {})
    assert out["count"] == total == len(out["warehouses"]) and out["truncated"] is False
    assert len({w["id"] for w in out["warehouses"]}) == total
    calls = [r for r in emulator.requests[before:] if r["path"] == API]
    assert len(calls) == (total + 1) // 2
    assert "page_token" not in calls[0]["query"] and all("page_token" in r["query"] for r in calls[1:])

    capped = connector.run("list_sql_warehouses", conn, {"max_items": "3"})
    assert capped["count"] == 3 and capped["truncated"] is True


def test_picker_labels_name_and_state(connector, pat, emulator):
    options = connector.pick("select_sql_warehouse", pat)
    wid = starter(emulator)["id"]
    assert {"label": "Starter Warehouse (RUNNING)", "value": wid} in options


def test_start_and_stop_with_waiting(connector, conn, emulator):
    wid = create_warehouse(emulator, f"startstop-{conn['type']}", stopped=True)
    assert _api(emulator, "GET", f"{API}/{wid}")["state"] == "STOPPED"
    out = connector.run("start_sql_warehouse", conn, {"warehouse_id": wid, "wait_for_state": "true",
                                                      "poll_interval_seconds": "0.1", "timeout_seconds": 30})
    assert out["id"] == wid and out["state"] == "RUNNING"
    start = [r for r in emulator.requests if r["path"] == f"{API}/{wid}/start"]
    assert len(start) == 1 and start[0]["method"] == "POST"

    out = connector.run("stop_sql_warehouse", conn, {"warehouse_id": wid, "wait_for_state": True,
                                                     "poll_interval_seconds": 0.1})
    assert out["id"] == wid and out["state"] == "STOPPED"
    assert emulator.count("POST", f"{API}/{wid}/stop") == 2       # one by the test's setup, one by the action


def test_start_without_waiting_returns_the_warehouse_at_once(connector, pat, emulator, sql):
    sql.update({"warehouse_start_seconds": 30})
    wid = create_warehouse(emulator, "nowait", stopped=True)
    out = connector.run("start_sql_warehouse", pat, {"warehouse_id": wid})
    assert out["id"] == wid and out["state"] == "STARTING"
    out = connector.run("stop_sql_warehouse", pat, {"warehouse_id": wid})
    assert out["state"] == "STOPPING"


def test_start_that_does_not_finish_in_time_is_a_timeout(connector, pat, emulator, sql):
    sql.update({"warehouse_start_seconds": 60})
    wid = create_warehouse(emulator, "slow-start", stopped=True)
    with pytest.raises(ConnectorError) as err:
        connector.run("start_sql_warehouse", pat, {"warehouse_id": wid, "wait_for_state": True, "timeout_seconds": 1,
                                                   "poll_interval_seconds": 0.2})
    assert err.value.type == "timeout" and "STARTING" in err.value.message


def test_start_that_ends_stopped_is_operation_failed(connector, pat, emulator, sql):
    sql.update({"warehouse_start_seconds": 0.5})
    wid = create_warehouse(emulator, "start-then-stop", stopped=True)
    import threading

    def stop_soon():
        import time
        time.sleep(0.3)
        _api(emulator, "POST", f"{API}/{wid}/stop", {})

    t = threading.Thread(target=stop_soon)
    t.start()
    try:
        with pytest.raises(ConnectorError) as err:
            connector.run("start_sql_warehouse", pat, {"warehouse_id": wid, "wait_for_state": True, "timeout_seconds": 20,
                                                       "poll_interval_seconds": 0.1})
    finally:
        t.join()
    assert err.value.type == "operation_failed" and err.value.details["state"] == "STOPPED"


def test_emulator_warehouse_lifecycle_and_validation(emulator):
    h = {"Authorization": f"Bearer {emulator.pat}"}
    r = requests.post(emulator.url + API, json={"name": "x", "cluster_size": "Huge"}, headers=h)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = requests.post(emulator.url + API, json={"name": "bad-tags", "cluster_size": "Small", "tags": {"custom_tags": {"a": "b"}}}, headers=h)
    assert r.status_code == 400
    wid = create_warehouse(emulator, "lifecycle")
    assert _api(emulator, "GET", f"{API}/{wid}")["state"] == "STARTING"
    _api(emulator, "POST", f"{API}/{wid}/edit", {"name": "lifecycle-2", "cluster_size": "Medium"})
    wh = _api(emulator, "GET", f"{API}/{wid}")
    assert wh["name"] == "lifecycle-2" and wh["cluster_size"] == "Medium"
    assert requests.delete(emulator.url + f"{API}/{wid}", headers=h).status_code == 200
    assert _api(emulator, "GET", f"{API}/{wid}")["state"] == "DELETING"
    emulator.state.clock.advance(1)
    assert _api(emulator, "GET", f"{API}/{wid}")["state"] == "DELETED"
    listed, token = [], None
    while True:
        page = _api(emulator, "GET", API + (f"?page_token={token}" if token else ""))
        listed += page.get("warehouses", [])
        token = page.get("next_page_token")
        if not token:
            break
    assert wid not in {w["id"] for w in listed}
    r = requests.post(emulator.url + f"{API}/nope/start", json={}, headers=h)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# --------------------------------------------------------------------------- create / edit / delete

def _wire(emulator, since, method):
    return [r for r in emulator.requests[since:] if r["method"] == method and r["path"].startswith(API)]


def test_create_waits_for_running_and_a_second_create_creates_nothing(connector, conn, emulator):
    import json

    name = f"created-{conn['type']}"
    since = len(emulator.requests)
    wh = connector.run("create_sql_warehouse", conn, {"name": name, "cluster_size": "X-Small", "auto_stop_mins": 10,
                                                      "tags": {"team": "qa"}, "wait_for_state": True,
                                                      "poll_interval_seconds": 0.1, "timeout_seconds": 60})
    assert wh["state"] == "RUNNING" and wh["name"] == name and wh["warehouse_type"] == "PRO"
    assert wh["enable_serverless_compute"] is True and wh["tags"]["custom_tags"] == [{"key": "team", "value": "qa"}]
    (post,) = _wire(emulator, since, "POST")
    assert json.loads(post["raw"]) == {"name": name, "cluster_size": "X-Small", "auto_stop_mins": 10,
                                       "warehouse_type": "PRO", "enable_serverless_compute": True,
                                       "tags": {"custom_tags": [{"key": "team", "value": "qa"}]}}
    before = emulator.state.applied["warehouses/create"]
    with pytest.raises(ConnectorError) as err:
        connector.run("create_sql_warehouse", conn, {"name": name, "cluster_size": "X-Small"})
    assert err.value.status == 400 and "already exists" in err.value.message
    assert emulator.state.applied["warehouses/create"] == before


def test_edit_merges_and_a_new_size_restarts_a_running_warehouse(connector, pat, emulator):
    import json

    wid = connector.run("create_sql_warehouse", pat, {"name": "edit-me", "cluster_size": "Small", "wait_for_state": True,
                                                      "poll_interval_seconds": 0.1})["id"]
    since = len(emulator.requests)
    out = connector.run("edit_sql_warehouse", pat, {"warehouse_id": wid, "auto_stop_mins": 45})
    assert out["auto_stop_mins"] == 45 and out["cluster_size"] == "Small" and out["state"] == "RUNNING"
    sent = json.loads(_wire(emulator, since, "POST")[0]["raw"])
    assert sent["name"] == "edit-me" and sent["cluster_size"] == "Small" and sent["auto_stop_mins"] == 45
    assert "odbc_params" not in sent and "state" not in sent and "id" not in sent     # only edit fields go back
    out = connector.run("edit_sql_warehouse", pat, {"warehouse_id": wid, "cluster_size": "Medium",
                                                    "wait_for_state": True, "poll_interval_seconds": 0.1})
    assert out["cluster_size"] == "Medium" and out["state"] == "RUNNING"
    states = [r for r in emulator.requests[since:] if r["method"] == "GET" and r["path"] == f"{API}/{wid}"]
    assert len(states) >= 2                     # it was STARTING at first: the wait polled again
    before = emulator.state.applied["warehouses/edit"]
    connector.run("edit_sql_warehouse", pat, {"warehouse_id": wid, "cluster_size": "Medium"})
    assert emulator.state.applied["warehouses/edit"] == before       # the same settings again change nothing


def test_delete_and_bad_settings(connector, pat, emulator):
    wid = create_warehouse(emulator, "delete-me")
    assert connector.run("delete_sql_warehouse", pat, {"warehouse_id": wid}) == {"warehouse_id": wid, "deleted": True}
    assert connector.run("get_sql_warehouse", pat, {"warehouse_id": wid})["state"] in ("DELETING", "DELETED")
    since = len(emulator.requests)
    with pytest.raises(ConnectorError) as err:
        connector.run("create_sql_warehouse", pat, {"name": "bad", "cluster_size": "Huge", "min_num_clusters": 3,
                                                    "max_num_clusters": 2, "warehouse_type": "CLASSIC",
                                                    "enable_serverless_compute": True, "auto_stop_mins": 5})
    e = err.value
    assert e.type == "invalid_input"
    for label in ("Cluster Size", "Max Clusters", "Serverless", "Auto Stop (minutes)"):
        assert label in e.message, (label, e.message)
    assert not [r for r in emulator.requests[since:] if r["path"].startswith(API)]
