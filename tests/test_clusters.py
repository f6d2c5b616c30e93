"""Cluster actions over real HTTP against the emulator: create (the reference payload, idempotent
retries), lifecycle, waiting, edit/resize, events, reads and pickers, classified errors."""
import copy

import pytest

from databricks_connector import ConnectorError

API = "/api/2.1/clusters"
FAST_WAIT = {"poll_interval_seconds": 0.1, "timeout_seconds": 30}

# The create-cluster payload of the reference notes, exactly as given (idempotency token added by the test).
REFERENCE_PAYLOAD = {
    "num_workers": 0,
    "cluster_name": "cluster_name",
    "spark_version": "10.4.x-scala2.12",
    "spark_conf": {"spark.master": "local[*, 4]", "spark.databricks.cluster.profile": "singleNode"},
    "azure_attributes": {"first_on_demand": 1, "availability": "ON_DEMAND_AZURE", "spot_bid_max_price": -1},
    "node_type_id": "Standard_DS3_v2",
    "custom_tags": {"ResourceClass": "SingleNode"},
    "spark_env_vars": {"PYSPARK_PYTHON": "/databricks/python3/bin/python3"},
    "autotermination_minutes": 10,
    "enable_elastic_disk": True,
    "runtime_engine": "STANDARD",
}


@pytest.fixture(autouse=True)
def _azure_workspace(emulator):
    """The reference payload is an Azure one (azure_attributes, Standard_DS3_v2): the emulator's
    node-type catalogue follows its cloud, so these tests run against an Azure workspace (the
    conftest restores the configuration after each test)."""
    emulator.config.update({"cloud": "AZURE"})


def _cluster(emulator, **fields):
    return emulator.state.add_cluster(**{"cluster_name": "t", "spark_version": "13.3.x-scala2.12",
                                         "node_type_id": "Standard_DS3_v2", "num_workers": 1, **fields})


def _last(emulator, method, path):
    return [r for r in emulator.requests if r["method"] == method and r["path"] == path][-1]


def _no_request_sent(emulator, connector, conn, action, inputs):
    before = len(emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        connector.run(action, conn, inputs)
    assert exc.value.type == "invalid_input"
    assert len(emulator.requests) == before
    return exc.value


# --------------------------------------------------------------------------- create

def test_create_with_the_reference_payload_sends_every_field(emulator, conn, connector):
    inputs = dict(REFERENCE_PAYLOAD, idempotency_token="ref-payload-" + conn["type"])
    out = connector.run("create_cluster", conn, inputs)
    assert out == {"cluster_id": out["cluster_id"], "idempotency_token": inputs["idempotency_token"]}
    req = _last(emulator, "POST", f"{API}/create")
    assert req["json"] == inputs                        # every field, with its exact value and type
    cluster = emulator.state.get_cluster(out["cluster_id"])
    assert cluster["state"] == "PENDING"
    for key, value in REFERENCE_PAYLOAD.items():
        assert cluster["spec"][key] == value, key


def test_create_from_form_strings(emulator, pat, connector):
    """A platform form sends strings: numbers, booleans and JSON text are coerced."""
    form = {k: (v if isinstance(v, str) else __import__("json").dumps(v)) for k, v in REFERENCE_PAYLOAD.items()}
    out = connector.run("create_cluster", pat, form)
    body = _last(emulator, "POST", f"{API}/create")["json"]
    assert {k: body[k] for k in REFERENCE_PAYLOAD} == REFERENCE_PAYLOAD
    assert len(body["idempotency_token"]) == 36 and out["idempotency_token"] == body["idempotency_token"]


def test_create_retried_after_a_dropped_connection_makes_exactly_one_cluster(emulator, pat, connector):
    emulator.faults.add(f"{API}/create", "drop_after")
    before = emulator.state.applied["clusters/create"]
    posts = emulator.count("POST", f"{API}/create")
    out = connector.run("create_cluster", pat, REFERENCE_PAYLOAD)
    assert emulator.count("POST", f"{API}/create") == posts + 2            # sent, dropped, re-sent
    assert emulator.state.applied["clusters/create"] == before + 1         # ... but created once
    sent = [r["json"]["idempotency_token"] for r in emulator.requests if r["path"] == f"{API}/create"][-2:]
    assert sent[0] == sent[1] == out["idempotency_token"]
    assert emulator.state.get_cluster(out["cluster_id"])["cluster_name"] == "cluster_name"


def test_a_repeated_token_returns_the_same_cluster_until_it_terminates(emulator, pat, connector):
    inputs = dict(REFERENCE_PAYLOAD, idempotency_token="same-token-twice")
    first = connector.run("create_cluster", pat, inputs)
    before = emulator.state.applied["clusters/create"]
    assert connector.run("create_cluster", pat, inputs)["cluster_id"] == first["cluster_id"]
    assert emulator.state.applied["clusters/create"] == before
    connector.run("terminate_cluster", pat, {"cluster_id": first["cluster_id"], "wait_for_state": True, **FAST_WAIT})
    third = connector.run("create_cluster", pat, inputs)
    assert third["cluster_id"] != first["cluster_id"]


def test_create_autoscale_and_additional_settings(emulator, pat, connector):
    out = connector.run("create_cluster", pat, {
        "spark_version": "13.3.x-scala2.12", "node_type_id": "Standard_DS4_v2", "autoscale_min_workers": 1,
        "autoscale_max_workers": 3, "data_security_mode": "SINGLE_USER", "single_user_name": "a@example.com",
        "additional_settings": {"enable_local_disk_encryption": True, "cluster_name": "loses", "ssh_public_keys": ["k"]},
        "cluster_name": "wins"})
    body = _last(emulator, "POST", f"{API}/create")["json"]
    assert body["autoscale"] == {"min_workers": 1, "max_workers": 3} and "num_workers" not in body
    assert body["enable_local_disk_encryption"] is True and body["ssh_public_keys"] == ["k"]
    assert body["cluster_name"] == "wins" and body["single_user_name"] == "a@example.com"
    assert emulator.state.get_cluster(out["cluster_id"])["autoscale"]["max_workers"] == 3


def test_create_refuses_every_bad_combination_at_once(emulator, conn, connector):
    err = _no_request_sent(emulator, connector, conn, "create_cluster", {
        "num_workers": 2, "autoscale_min_workers": 3, "autoscale_max_workers": 3, "autotermination_minutes": 5,
        "node_type_id": "Standard_DS4_v2"})
    keys = {p["key"] for p in err.details["inputs"]}
    assert keys == {"num_workers", "autoscale_max_workers", "spark_version", "autotermination_minutes"}
    assert "Spark Version" in err.message and "Auto Termination" in err.message


@pytest.mark.parametrize("inputs, key", [
    ({"spark_version": "13.3.x-scala2.12", "autoscale_min_workers": 1}, "autoscale_max_workers"),
    ({"spark_version": "13.3.x-scala2.12", "num_workers": 1, "runtime_engine": "TURBO"}, "runtime_engine"),
    ({"spark_version": "13.3.x-scala2.12", "num_workers": -1}, "num_workers"),
    ({"spark_version": "13.3.x-scala2.12"}, "num_workers"),
    ({"spark_version": "13.3.x-scala2.12", "num_workers": 1, "idempotency_token": "x" * 65}, "idempotency_token"),
])
def test_create_input_errors_send_nothing(emulator, pat, connector, inputs, key):
    err = _no_request_sent(emulator, connector, pat, "create_cluster", inputs)
    assert key in {p["key"] for p in err.details["inputs"]}


def test_create_rejected_by_the_server_is_bad_request(emulator, pat, connector):
    with pytest.raises(ConnectorError) as exc:
        connector.run("create_cluster", pat, {"spark_version": "0.0.x-nope", "num_workers": 1, "node_type_id": "Standard_DS4_v2"})
    assert exc.value.type == "bad_request" and exc.value.error_code == "INVALID_PARAMETER_VALUE"


# --------------------------------------------------------------------------- waiting

def test_create_and_wait_until_running_progress_on_stderr(emulator, conn, connector, capsys):
    out = connector.run("create_cluster", conn, dict(REFERENCE_PAYLOAD, wait_for_state=True, **FAST_WAIT))
    assert out["state"] == "RUNNING" and out["cluster_id"] and out["idempotency_token"]
    assert out["driver"] and out["spark_conf"] == REFERENCE_PAYLOAD["spark_conf"]
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "PENDING" in captured.err and out["cluster_id"] in captured.err


def test_wait_times_out_naming_the_time_and_the_state(emulator, pat, connector, capsys):
    emulator.config.cluster_start_seconds = 60
    cid = connector.run("create_cluster", pat, REFERENCE_PAYLOAD)["cluster_id"]
    with pytest.raises(ConnectorError) as exc:
        connector.run("wait_for_cluster_state", pat, {"cluster_id": cid, "timeout_seconds": 1,
                                                      "poll_interval_seconds": 0.2})
    err = exc.value
    assert err.type == "timeout"
    assert "1s" in err.message and "PENDING" in err.message and cid in err.message
    assert err.details["state"] == "PENDING"
    assert capsys.readouterr().out == ""


def test_wait_fails_with_the_termination_reason(emulator, conn, connector):
    emulator.config.cluster_launch_failure = "INIT_SCRIPT_FAILURE"
    with pytest.raises(ConnectorError) as exc:
        connector.run("create_cluster", conn, dict(REFERENCE_PAYLOAD, wait_for_state=True, **FAST_WAIT))
    err = exc.value
    assert err.type == "operation_failed"
    assert "TERMINATED" in err.message and "INIT_SCRIPT_FAILURE" in err.message and "CLIENT_ERROR" in err.message
    assert "Injected launch failure" in err.message      # the reason's parameters
    reason = err.details["termination_reason"]
    assert reason["code"] == "INIT_SCRIPT_FAILURE" and reason["type"] == "CLIENT_ERROR" and reason["parameters"]


def test_wait_for_cluster_state_action(emulator, conn, connector):
    running = _cluster(emulator, state="RUNNING")
    out = connector.run("wait_for_cluster_state", conn, {"cluster_id": running, **FAST_WAIT})
    assert out["state"] == "RUNNING"
    terminating = _cluster(emulator, state="TERMINATING")
    out = connector.run("wait_for_cluster_state", conn, {"cluster_id": terminating, "target_state": "TERMINATED", **FAST_WAIT})
    assert out["state"] == "TERMINATED"
    terminated = _cluster(emulator, state="TERMINATED")
    with pytest.raises(ConnectorError) as exc:
        connector.run("wait_for_cluster_state", conn, {"cluster_id": terminated, **FAST_WAIT})
    assert exc.value.type == "operation_failed" and "USER_REQUEST" in exc.value.message
    _no_request_sent(emulator, connector, conn, "wait_for_cluster_state", {"cluster_id": running, "target_state": "GONE"})


# --------------------------------------------------------------------------- lifecycle

def test_start_terminated_cluster(emulator, conn, connector):
    cid = _cluster(emulator, state="TERMINATED")
    out = connector.run("start_terminated_cluster", conn, {"cluster_id": cid})
    assert out["cluster_id"] == cid and out["state"] == "PENDING"
    req = _last(emulator, "POST", f"{API}/start")
    assert req["json"] == {"cluster_id": cid}
    out = connector.run("wait_for_cluster_state", conn, {"cluster_id": cid, **FAST_WAIT})
    assert out["state"] == "RUNNING"


def test_start_and_wait(emulator, pat, connector):
    cid = _cluster(emulator, state="TERMINATED")
    out = connector.run("start_terminated_cluster", pat, {"cluster_id": cid, "wait_for_state": True, **FAST_WAIT})
    assert out["state"] == "RUNNING"


def test_start_a_running_cluster_is_invalid_state(emulator, conn, connector):
    cid = _cluster(emulator, state="RUNNING")
    with pytest.raises(ConnectorError) as exc:
        connector.run("start_terminated_cluster", conn, {"cluster_id": cid})
    assert exc.value.type == "invalid_state" and exc.value.error_code == "INVALID_STATE" and "Running" in exc.value.message


def test_restart_cluster(emulator, conn, connector):
    cid = _cluster(emulator, state="RUNNING")
    out = connector.run("restart_cluster", conn, {"cluster_id": cid})
    assert out["state"] == "RESTARTING" and _last(emulator, "POST", f"{API}/restart")["json"] == {"cluster_id": cid}
    out = connector.run("wait_for_cluster_state", conn, {"cluster_id": cid, **FAST_WAIT})
    assert out["state"] == "RUNNING" and out["last_restarted_time"] > 0


def test_restart_and_wait_and_restart_terminated(emulator, pat, connector):
    cid = _cluster(emulator, state="RUNNING")
    assert connector.run("restart_cluster", pat, {"cluster_id": cid, "wait_for_state": True, **FAST_WAIT})["state"] == "RUNNING"
    stopped = _cluster(emulator, state="TERMINATED")
    with pytest.raises(ConnectorError) as exc:
        connector.run("restart_cluster", pat, {"cluster_id": stopped})
    assert exc.value.type == "invalid_state"


def test_terminate_cluster(emulator, conn, connector):
    cid = _cluster(emulator, state="RUNNING")
    out = connector.run("terminate_cluster", conn, {"cluster_id": cid})
    assert out["state"] == "TERMINATING" and out["termination_reason"]["code"] == "USER_REQUEST"
    assert _last(emulator, "POST", f"{API}/delete")["json"] == {"cluster_id": cid}
    out = connector.run("terminate_cluster", conn, {"cluster_id": cid, "wait_for_state": True, **FAST_WAIT})
    assert out["state"] == "TERMINATED"        # terminating a terminating cluster is accepted


def test_terminate_is_retried_after_a_dropped_connection(emulator, pat, connector):
    cid = _cluster(emulator, state="RUNNING")
    emulator.faults.add(f"{API}/delete", "drop_after")
    out = connector.run("terminate_cluster", pat, {"cluster_id": cid})
    assert out["state"] in ("TERMINATING", "TERMINATED")


def test_permanently_delete_cluster(emulator, conn, connector):
    cid = _cluster(emulator, state="RUNNING")
    assert connector.run("permanently_delete_cluster", conn, {"cluster_id": cid}) == {"cluster_id": cid, "deleted": True}
    assert _last(emulator, "POST", f"{API}/permanent-delete")["json"] == {"cluster_id": cid}
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_cluster", conn, {"cluster_id": cid})
    assert exc.value.type == "not_found"


def test_pin_and_unpin(emulator, pat, connector):
    cid = _cluster(emulator, state="RUNNING")
    before = emulator.state.applied["clusters/pin"]
    assert connector.run("pin_cluster", pat, {"cluster_id": cid}) == {"cluster_id": cid, "pinned": True}
    assert _last(emulator, "POST", f"{API}/pin")["json"] == {"cluster_id": cid}
    assert emulator.state.applied["clusters/pin"] == before + 1
    assert connector.run("unpin_cluster", pat, {"cluster_id": cid})["pinned"] is False
    assert _last(emulator, "POST", f"{API}/unpin")["json"] == {"cluster_id": cid}


# --------------------------------------------------------------------------- edit / resize

def test_edit_cluster_sends_the_full_spec(emulator, conn, connector):
    cid = _cluster(emulator, state="RUNNING")
    inputs = dict(REFERENCE_PAYLOAD, cluster_id=cid, cluster_name="edited")
    out = connector.run("edit_cluster", conn, inputs)
    assert out["cluster_id"] == cid and out["cluster_name"] == "edited" and out["state"] == "RESTARTING"
    assert _last(emulator, "POST", f"{API}/edit")["json"] == inputs


def test_edit_refuses_bad_input_and_wrong_state(emulator, pat, connector):
    cid = _cluster(emulator, state="RUNNING")
    _no_request_sent(emulator, connector, pat, "edit_cluster", {"cluster_id": cid, "num_workers": 1,
                                                                 "autotermination_minutes": 3})
    pending = _cluster(emulator, state="PENDING", transitions=False)
    with pytest.raises(ConnectorError) as exc:
        connector.run("edit_cluster", pat, dict(REFERENCE_PAYLOAD, cluster_id=pending))
    assert exc.value.type == "invalid_state"


def test_resize_cluster(emulator, conn, connector):
    cid = _cluster(emulator, state="RUNNING")
    out = connector.run("resize_cluster", conn, {"cluster_id": cid, "num_workers": 3})
    assert out["state"] == "RESIZING" and out["num_workers"] == 3
    assert _last(emulator, "POST", f"{API}/resize")["json"] == {"cluster_id": cid, "num_workers": 3}
    connector.run("wait_for_cluster_state", conn, {"cluster_id": cid, **FAST_WAIT})
    out = connector.run("resize_cluster", conn, {"cluster_id": cid, "autoscale_min_workers": 1, "autoscale_max_workers": 4})
    assert _last(emulator, "POST", f"{API}/resize")["json"] == {"cluster_id": cid,
                                                                 "autoscale": {"min_workers": 1, "max_workers": 4}}
    assert out["autoscale"]["max_workers"] == 4


def test_resize_errors(emulator, pat, connector):
    cid = _cluster(emulator, state="TERMINATED")
    err = _no_request_sent(emulator, connector, pat, "resize_cluster", {"cluster_id": cid, "num_workers": 1,
                                                                         "autoscale_min_workers": 2, "autoscale_max_workers": 1})
    assert {p["key"] for p in err.details["inputs"]} == {"num_workers", "autoscale_max_workers"}
    _no_request_sent(emulator, connector, pat, "resize_cluster", {"cluster_id": cid})
    with pytest.raises(ConnectorError) as exc:
        connector.run("resize_cluster", pat, {"cluster_id": cid, "num_workers": 2})
    assert exc.value.type == "invalid_state"


# --------------------------------------------------------------------------- events

def test_cluster_events_follow_next_page_and_filters(emulator, conn, connector):
    events = [{"timestamp": 1_700_000_000_000 + i, "type": "RUNNING" if i % 2 else "RESIZING", "details": {}}
              for i in range(7)]
    cid = _cluster(emulator, state="RUNNING", events=events)
    emulator.config.events_page_size = 2
    before = emulator.count("POST", f"{API}/events")
    out = connector.run("get_cluster_events", conn, {"cluster_id": cid})
    assert out["count"] == 7 and out["truncated"] is False
    assert [e["timestamp"] for e in out["events"]] == sorted((e["timestamp"] for e in events), reverse=True)
    assert emulator.count("POST", f"{API}/events") - before == 4
    pages = [r["json"] for r in emulator.requests if r["path"] == f"{API}/events"][-4:]
    assert pages[0] == {"cluster_id": cid, "order": "DESC"}
    assert pages[1]["offset"] == 2                     # the server's next_page body, sent back as is

    out = connector.run("get_cluster_events", conn, {"cluster_id": cid, "order": "ASC", "event_types": '["RUNNING"]',
                                                     "start_time": 1_700_000_000_002, "end_time": 1_700_000_000_006})
    assert [e["timestamp"] % 1000 for e in out["events"]] == [3, 5]
    first = _last(emulator, "POST", f"{API}/events")["json"]
    assert first["event_types"] == ["RUNNING"] and first["order"] == "ASC"


def test_cluster_events_cap(emulator, pat, connector):
    cid = _cluster(emulator, state="RUNNING", events=[{"timestamp": 1_700_000_000_000 + i, "type": "RUNNING",
                                                       "details": {}} for i in range(5)])
    out = connector.run("get_cluster_events", pat, {"cluster_id": cid, "max_items": 3})
    assert out["count"] == 3 and out["truncated"] is True
    assert _last(emulator, "POST", f"{API}/events")["json"]["limit"] == 3


# --------------------------------------------------------------------------- reads and pickers

def test_list_node_types_and_spark_versions(emulator, conn, connector):
    out = connector.run("list_node_types", conn)
    ids = {n["node_type_id"] for n in out["node_types"]}
    assert {"Standard_DS3_v2", "Standard_DS4_v2"} <= ids and not any(i.startswith("i3.") for i in ids)
    assert _last(emulator, "GET", f"{API}/list-node-types")
    out = connector.run("list_spark_versions", conn)
    assert "10.4.x-scala2.12" in {v["key"] for v in out["versions"]}
    assert _last(emulator, "GET", f"{API}/spark-versions")


def test_pickers(emulator, conn, connector):
    nodes = connector.pick("select_node_type", conn)
    assert {"label": "Standard_DS3_v2 (4 cores, 14 GB)", "value": "Standard_DS3_v2"} in nodes
    versions = connector.pick("select_spark_version", conn)
    assert {"label": "10.4 LTS (includes Apache Spark 3.2.1, Scala 2.12)", "value": "10.4.x-scala2.12"} in versions


# --------------------------------------------------------------------------- documented errors, every action

CLUSTER_ACTIONS = [
    ("get_cluster", {}), ("start_terminated_cluster", {}), ("restart_cluster", {}), ("terminate_cluster", {}),
    ("permanently_delete_cluster", {}), ("pin_cluster", {}), ("unpin_cluster", {}), ("get_cluster_events", {}),
    ("wait_for_cluster_state", {"timeout_seconds": 5}), ("resize_cluster", {"num_workers": 1}),
    ("edit_cluster", copy.deepcopy(REFERENCE_PAYLOAD)),
]


@pytest.mark.parametrize("action, extra", CLUSTER_ACTIONS, ids=[a for a, _ in CLUSTER_ACTIONS])
def test_unknown_cluster_is_not_found(emulator, pat, connector, action, extra):
    with pytest.raises(ConnectorError) as exc:
        connector.run(action, pat, {"cluster_id": "0000-000000-missing0", **extra})
    assert exc.value.type == "not_found" and "does not exist" in exc.value.message


@pytest.mark.parametrize("action, extra", CLUSTER_ACTIONS, ids=[a for a, _ in CLUSTER_ACTIONS])
def test_bad_cluster_id_sends_nothing(emulator, pat, connector, action, extra):
    err = _no_request_sent(emulator, connector, pat, action, {"cluster_id": "bad id/../x", **extra})
    assert "Cluster ID" in err.message
