import time

import pytest
import requests

C = "/api/2.1/clusters"
SPEC = {"cluster_name": "etl", "spark_version": "13.3.x-scala2.12", "node_type_id": "i3.xlarge",
        "num_workers": 2, "autotermination_minutes": 60}


def wait_state(api, cid, state, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        d = api.get(C + "/get", cluster_id=cid).json()
        if d["state"] == state or time.monotonic() > deadline:
            return d
        time.sleep(0.05)


def create(api, **over):
    r = api.post(C + "/create", dict(SPEC, **over))
    assert r.status_code == 200, r.text
    return r.json()["cluster_id"]


def test_catalogs(emu, api):
    nts = api.get(C + "/list-node-types").json()["node_types"]
    ids = {n["node_type_id"] for n in nts}
    assert {"i3.xlarge", "m5d.large"} <= ids and len(nts) >= 5          # AWS unless configured otherwise
    assert not any(i.startswith(("Standard_", "n2-")) for i in ids)
    for n in nts:
        assert {"node_type_id", "memory_mb", "num_cores", "description", "instance_type_id", "category"} <= set(n)
    assert api.get(C + "/list-zones").json()["default_zone"] == "us-west-2a"
    # one cloud at a time: the catalogue, the zones, what a create accepts and the attributes it gets
    for cloud, node, other, attrs in (("AZURE", "Standard_DS3_v2", "i3.xlarge", "azure_attributes"),
                                      ("GCP", "n2-standard-4", "Standard_DS3_v2", "gcp_attributes"),
                                      ("AWS", "i3.xlarge", "n2-standard-4", "aws_attributes")):
        emu.config.update({"cloud": cloud})
        ids = {n["node_type_id"] for n in api.get(C + "/list-node-types").json()["node_types"]}
        assert node in ids and other not in ids, cloud
        r = api.post(C + "/create", dict(SPEC, node_type_id=other))
        assert r.status_code == 400 and r.json()["message"] == f"Node type {other} is not supported.", cloud
        cid = create(api, node_type_id=node)
        d = api.get(C + "/get", cluster_id=cid).json()
        assert attrs in d and not {"aws_attributes", "azure_attributes", "gcp_attributes"} - {attrs} & set(d)
    r = requests.post(emu.url + "/__emulator/config", json={"cloud": "MARS"})
    assert r.status_code == 400 and "cloud" in r.json()["message"]
    keys = {v["key"] for v in api.get("/api/2.0/clusters/spark-versions").json()["versions"]}
    assert {"10.4.x-scala2.12", "13.3.x-scala2.12", "15.4.x-scala2.12"} <= keys


def test_create_pending_then_running(emu, api):
    cid = create(api)
    d = api.get(C + "/get", cluster_id=cid).json()
    assert d["state"] == "PENDING"
    assert d["state_message"] == "Finding instances for new nodes, acquiring more instances if necessary"
    assert d["creator_user_name"] == "emulator-user@example.com" and d["cluster_source"] == "API"
    assert d["driver_node_type_id"] == "i3.xlarge"
    assert d["default_tags"]["ClusterId"] == cid and d["default_tags"]["Vendor"] == "Databricks"
    assert d["spec"] == SPEC
    assert abs(d["start_time"] - time.time() * 1000) < 5000
    d = wait_state(api, cid, "RUNNING")
    assert d["state"] == "RUNNING" and len(d["executors"]) == 2 and d["driver"]["private_ip"]
    # the same cluster through the 2.0 path
    assert api.get("/api/2.0/clusters/get", cluster_id=cid).json()["state"] == "RUNNING"
    assert emu.state.applied["clusters/create"] == 1


@pytest.mark.parametrize("bad", [
    {"spark_version": None},
    {"num_workers": None},
    {"autoscale": {"min_workers": 1, "max_workers": 3}},
    {"num_workers": None, "autoscale": {"min_workers": 3, "max_workers": 3}},
    {"autotermination_minutes": 5},
    {"autotermination_minutes": 10001},
    {"spark_version": "0.1.x-nope"},
    {"node_type_id": "huge.box"},
    {"idempotency_token": "x" * 65},
    {"num_workers": 1001},                                       # past cluster_max_workers: no 10^9 executors
    {"num_workers": None, "autoscale": {"min_workers": 1, "max_workers": 10 ** 9}},
])
def test_create_validation(emu, api, bad):
    body = dict(SPEC)
    for k, v in bad.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    r = api.post(C + "/create", body)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert emu.state.applied["clusters/create"] == 0


def test_create_autoscale_and_zero_autotermination(api):
    body = dict(SPEC, autotermination_minutes=0)
    body.pop("num_workers")
    body["autoscale"] = {"min_workers": 1, "max_workers": 4}
    r = api.post(C + "/create", body)
    assert r.status_code == 200, r.text
    d = wait_state(api, r.json()["cluster_id"], "RUNNING")
    assert d["autoscale"]["min_workers"] == 1 and len(d["executors"]) == 1


def test_idempotency_token(emu, api):
    a = create(api, idempotency_token="job-42")
    b = create(api, idempotency_token="job-42")
    assert a == b and emu.state.applied["clusters/create"] == 1
    assert create(api, idempotency_token="other") != a
    wait_state(api, a, "RUNNING")
    assert api.post(C + "/delete", {"cluster_id": a}).status_code == 200
    wait_state(api, a, "TERMINATED")
    c = create(api, idempotency_token="job-42")
    assert c != a and emu.state.applied["clusters/create"] == 3


def test_unknown_cluster_styles(emu, api):
    r = api.get(C + "/get", cluster_id="0000-000000-nothere")
    assert r.status_code == 400
    assert r.json() == {"error_code": "INVALID_PARAMETER_VALUE",
                        "message": "Cluster 0000-000000-nothere does not exist"}
    emu.config.not_found_style = "404"
    r = api.get(C + "/get", cluster_id="0000-000000-nothere")
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = api.post(C + "/start", {"cluster_id": "0000-000000-nothere"})
    assert r.status_code == 404


def test_invalid_state_table(emu, api):
    cid = create(api)
    r = api.post(C + "/start", {"cluster_id": cid})
    assert r.status_code == 400
    assert r.json() == {"error_code": "INVALID_STATE", "message": f"Cluster {cid} is in unexpected state Pending."}
    for op in ("restart", "resize"):
        body = {"cluster_id": cid, "num_workers": 3} if op == "resize" else {"cluster_id": cid}
        assert api.post(f"{C}/{op}", body).json()["error_code"] == "INVALID_STATE"
    assert api.post(C + "/edit", dict(SPEC, cluster_id=cid)).json()["error_code"] == "INVALID_STATE"
    wait_state(api, cid, "RUNNING")
    r = api.post(C + "/start", {"cluster_id": cid})
    assert r.json()["message"] == f"Cluster {cid} is in unexpected state Running."
    assert api.post(C + "/delete", {"cluster_id": cid}).status_code == 200
    d = api.get(C + "/get", cluster_id=cid).json()
    assert d["state"] == "TERMINATING"
    assert api.post(C + "/delete", {"cluster_id": cid}).status_code == 200   # no-op
    d = wait_state(api, cid, "TERMINATED")
    assert d["termination_reason"] == {"code": "USER_REQUEST", "type": "SUCCESS",
                                       "parameters": {"username": "emulator-user@example.com"}}
    assert d["terminated_time"] >= d["start_time"]
    assert api.post(C + "/restart", {"cluster_id": cid}).json()["message"] == \
        f"Cluster {cid} is in unexpected state Terminated."
    assert api.post(C + "/resize", {"cluster_id": cid, "num_workers": 1}).json()["error_code"] == "INVALID_STATE"
    assert emu.state.applied["clusters/delete"] == 1
    # start again: same id, PENDING then RUNNING
    assert api.post(C + "/start", {"cluster_id": cid}).status_code == 200
    assert api.get(C + "/get", cluster_id=cid).json()["state"] == "PENDING"
    d = wait_state(api, cid, "RUNNING")
    assert "termination_reason" not in d
    assert emu.state.applied["clusters/start"] == 1


def test_restart_resize_edit(emu, api):
    cid = create(api)
    wait_state(api, cid, "RUNNING")
    ctx = api.get(C + "/get", cluster_id=cid).json()["spark_context_id"]
    assert api.post(C + "/restart", {"cluster_id": cid}).status_code == 200
    assert api.get(C + "/get", cluster_id=cid).json()["state"] == "RESTARTING"
    d = wait_state(api, cid, "RUNNING")
    assert d["spark_context_id"] != ctx and d["last_restarted_time"] > 0

    assert api.post(C + "/resize", {"cluster_id": cid, "num_workers": 4}).status_code == 200
    assert api.get(C + "/get", cluster_id=cid).json()["state"] == "RESIZING"
    d = wait_state(api, cid, "RUNNING")
    assert d["num_workers"] == 4 and len(d["executors"]) == 4

    r = api.post(C + "/edit", dict(SPEC, cluster_id=cid, cluster_name="renamed", num_workers=1))
    assert r.status_code == 200, r.text
    d = api.get(C + "/get", cluster_id=cid).json()
    assert d["state"] == "RESTARTING" and d["cluster_name"] == "renamed"
    assert "autotermination_minutes" in d["spec"]
    d = wait_state(api, cid, "RUNNING")
    assert len(d["executors"]) == 1

    # edit while terminated keeps it terminated
    api.post(C + "/delete", {"cluster_id": cid})
    wait_state(api, cid, "TERMINATED")
    body = dict(SPEC, cluster_id=cid, num_workers=3)
    body.pop("autotermination_minutes")
    assert api.post(C + "/edit", body).status_code == 200
    d = api.get(C + "/get", cluster_id=cid).json()
    assert d["state"] == "TERMINATED" and d["num_workers"] == 3 and "autotermination_minutes" not in d
    assert emu.state.applied["clusters/edit"] == 2


def test_permanent_delete_and_pin(emu, api):
    a = create(api, cluster_name="a")
    b = create(api, cluster_name="b")
    assert api.post(C + "/pin", {"cluster_id": b}).status_code == 200
    pinned = api.get(C + "/list", **{"filter_by.is_pinned": "True"}).json()["clusters"]
    assert [c["cluster_id"] for c in pinned] == [b]
    unpinned = api.get(C + "/list", **{"filter_by.is_pinned": "FALSE"}).json()["clusters"]
    assert [c["cluster_id"] for c in unpinned] == [a]
    assert api.post(C + "/unpin", {"cluster_id": b}).status_code == 200
    assert api.get(C + "/list", **{"filter_by.is_pinned": "true"}).json()["clusters"] == []
    assert api.post(C + "/permanent-delete", {"cluster_id": a}).status_code == 200
    assert api.get(C + "/get", cluster_id=a).status_code == 400
    ids = [c["cluster_id"] for c in api.get(C + "/list").json()["clusters"]]
    assert ids == [b]


def test_launch_failure(emu, api):
    emu.config.cluster_launch_failure = "CLOUD_PROVIDER_LAUNCH_FAILURE"
    cid = create(api)
    d = wait_state(api, cid, "TERMINATED")
    assert d["state"] == "TERMINATED"
    assert d["termination_reason"]["code"] == "CLOUD_PROVIDER_LAUNCH_FAILURE"
    assert d["termination_reason"]["type"] == "CLOUD_FAILURE"
    # one-shot: the next cluster comes up
    assert wait_state(api, create(api), "RUNNING")["state"] == "RUNNING"


def test_list_pagination_filters_and_sorting(emu, api):
    emu.config.list_page_size = 3
    for i in range(8):
        emu.state.add_cluster(cluster_name=f"c{i}", state="RUNNING")
    emu.state.add_cluster(cluster_name="t0", state="TERMINATED")
    emu.state.add_cluster(cluster_name="j0", state="TERMINATED", cluster_source="JOB")
    seen, token, pages = [], None, 0
    while True:
        params = {"page_token": token} if token else {}
        page = api.get(C + "/list", page_size=50, **params).json()
        pages += 1
        assert len(page["clusters"]) <= 3
        assert all("spec" not in c for c in page["clusters"])
        if pages > 1:
            assert page["prev_page_token"]
        seen += [c["cluster_name"] for c in page["clusters"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert pages == 4 and len(seen) == 10 and len(set(seen)) == 10
    assert seen[:8] == [f"c{i}" for i in range(8)]   # default sort: running first, then by name
    r = api.get(C + "/list", **{"filter_by.cluster_states": ["TERMINATED", "PENDING"], "page_size": 10})
    assert sorted(c["cluster_name"] for c in r.json()["clusters"]) == ["j0", "t0"]
    r = api.get(C + "/list", **{"filter_by.cluster_sources": "JOB"})
    assert [c["cluster_name"] for c in r.json()["clusters"]] == ["j0"]
    r = api.get(C + "/list", **{"sort_by.field": "CLUSTER_NAME", "sort_by.direction": "DESC", "page_size": 2})
    assert [c["cluster_name"] for c in r.json()["clusters"]] == ["t0", "j0"]
    assert api.get(C + "/list", page_token="garbage").status_code == 400
    # 2.0: no pagination, everything at once
    legacy = api.get("/api/2.0/clusters/list").json()
    assert len(legacy["clusters"]) == 10 and "next_page_token" not in legacy


def test_seeded_states_move_and_job_cluster_rules(emu, api):
    p = emu.state.add_cluster(state="PENDING")
    t = emu.state.add_cluster(state="TERMINATING")
    e = emu.state.add_cluster(state="ERROR", state_message="boom")
    j = emu.state.add_cluster(state="TERMINATED", cluster_source="JOB")
    assert wait_state(api, p, "RUNNING")["state"] == "RUNNING"
    assert wait_state(api, t, "TERMINATED")["state"] == "TERMINATED"
    d = api.get(C + "/get", cluster_id=e).json()
    assert d["state"] == "ERROR" and d["state_message"] == "boom"
    assert api.post(C + "/start", {"cluster_id": e}).json()["message"].endswith("unexpected state Error.")
    assert api.post(C + "/start", {"cluster_id": j}).status_code == 400
    assert api.post(C + "/edit", dict(SPEC, cluster_id=j)).status_code == 400
    assert emu.state.get_cluster(p)["state"] == "RUNNING"
    assert emu.state.get_cluster("nope") is None


def test_clock_advance_drives_transitions(emu, api):
    emu.config.cluster_start_seconds = 600
    cid = create(api)
    assert api.get(C + "/get", cluster_id=cid).json()["state"] == "PENDING"
    emu.state.clock.advance(601)
    assert api.get(C + "/get", cluster_id=cid).json()["state"] == "RUNNING"


def test_events_paging(emu, api):
    cid = create(api)
    wait_state(api, cid, "RUNNING")
    api.post(C + "/restart", {"cluster_id": cid})
    wait_state(api, cid, "RUNNING")
    api.post(C + "/pin", {"cluster_id": cid})
    api.post(C + "/delete", {"cluster_id": cid})
    wait_state(api, cid, "TERMINATED")
    # SDK style: re-POST next_page until absent
    body, types, calls = {"cluster_id": cid, "limit": 2}, [], 0
    while body:
        r = api.post(C + "/events", body).json()
        calls += 1
        types += [e["type"] for e in r["events"]]
        body = r.get("next_page")
    assert calls == 3
    assert types == ["TERMINATING", "PINNED", "RUNNING", "RESTARTING", "RUNNING", "CREATING"]
    # token style, ascending, filtered
    body, asc = {"cluster_id": cid, "order": "ASC", "page_size": 1,
                 "event_types": ["CREATING", "RUNNING"]}, []
    while True:
        r = api.post(C + "/events", body).json()
        asc += [e["type"] for e in r["events"]]
        if not r.get("next_page_token"):
            break
        body = dict(body, page_token=r["next_page_token"])
    assert asc == ["CREATING", "RUNNING", "RUNNING"]
    ts = [e["timestamp"] for e in api.post(C + "/events", {"cluster_id": cid, "order": "ASC"}).json()["events"]]
    assert ts == sorted(ts)
    assert api.post(C + "/events", {"cluster_id": "nope"}).status_code == 400


# ClusterAttributes and AutoScale of the SDK (service/compute.py): what events and details may carry
ATTRIBUTES = set("""spark_version autotermination_minutes aws_attributes azure_attributes cluster_log_conf cluster_name
custom_tags data_security_mode dependency_mode docker_image driver_instance_pool_id driver_node_type_flexibility
driver_node_type_id enable_elastic_disk enable_local_disk_encryption gcp_attributes init_scripts instance_pool_id
is_single_node kind node_type_id policy_id remote_disk_throughput runtime_engine single_user_name spark_conf
spark_env_vars ssh_public_keys total_initial_remote_disk_size use_ml_runtime worker_node_type_flexibility
workload_type""".split())


def test_event_attributes_and_autoscale_carry_only_what_databricks_sends(emu, api):
    body = dict(SPEC, autoscale={"min_workers": 1, "max_workers": 3}, apply_policy_default_values=False)
    body.pop("num_workers")
    cid = api.post(C + "/create", body).json()["cluster_id"]
    d = wait_state(api, cid, "RUNNING")
    assert d["autoscale"] == {"min_workers": 1, "max_workers": 3} and "num_workers" not in d
    assert "apply_policy_default_values" not in d and d["spec"]["apply_policy_default_values"] is False
    edit = dict(body, cluster_id=cid, cluster_name="renamed")
    assert api.post(C + "/edit", edit).status_code == 200
    events = {e["type"]: e for e in api.post(C + "/events", {"cluster_id": cid}).json()["events"]}
    created = events["CREATING"]["details"]
    assert set(created["attributes"]) <= ATTRIBUTES and "autoscale" not in created["attributes"]
    assert created["cluster_size"] == {"autoscale": {"min_workers": 1, "max_workers": 3}}
    edited = events["EDITED"]["details"]
    assert set(edited["attributes"]) <= ATTRIBUTES and set(edited["previous_attributes"]) <= ATTRIBUTES
    assert edited["attributes"]["cluster_name"] == "renamed" and edited["previous_attributes"]["cluster_name"] == "etl"
    assert events["RUNNING"]["details"] == {"current_num_workers": 1, "target_num_workers": 1}
