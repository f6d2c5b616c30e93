"""Paging at scale: every emulator list gives every item once, in order, across many pages, while
items change, appear or go between pages. (Speed is measured by bench/emulator_lists.py, never here.)"""
import base64

import pytest

from databricks_connector.runner import Connector

C = "/api/2.1/clusters"
J = "/api/2.2/jobs"


def pages(api, path, items_key, params=None, token_key="next_page_token", before_next=None):
    params = dict(params or {})
    out, n = [], 0
    while True:
        r = api.get(path, **params)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page.get(items_key, []))
        n += 1
        if before_next:
            before_next(n)
        token = page.get(token_key)
        if not token:
            return out, n
        params["page_token"] = token


def test_clusters_5000_every_one_once_in_order_while_they_change(emu, api):
    emu.config.update({"list_page_size": 100})
    ids = [emu.state.add_cluster(cluster_name=f"c{i:05d}", state="RUNNING") for i in range(5000)]

    def meanwhile(page_no):
        if page_no == 1:                          # clusters change and appear after the first page
            for cid in ids[4000:4010]:
                assert api.post(C + "/delete", {"cluster_id": cid}).status_code == 200
            emu.state.add_cluster(cluster_name="c00000-new", state="RUNNING")
            assert api.post(C + "/permanent-delete", {"cluster_id": ids[4500]}).status_code == 200

    listed, n = pages(api, C + "/list", "clusters", {"page_size": 100}, before_next=meanwhile)
    got = [c["cluster_id"] for c in listed]
    expected = [cid for cid in ids if cid != ids[4500]]
    assert n == 50 and got == expected                 # each once, in the first page's order
    assert {c["state"] for c in listed if c["cluster_id"] in ids[4000:4010]} <= {"TERMINATING", "TERMINATED"}
    # through the connector: one list of every cluster
    out = Connector().run("list_clusters", emu.connections()["personal_access_token"], {})
    assert out["count"] == 5000 and len({c["cluster_id"] for c in out["clusters"]}) == 5000


def test_cluster_events_3000_every_one_once(emu, api):
    evs = [{"timestamp": 1_700_000_000_000 + i, "type": "RESIZING" if i % 3 else "RUNNING", "details": {}}
           for i in range(3000)]
    cid = emu.state.add_cluster(events=evs)
    body, seen, calls = {"cluster_id": cid, "limit": 500}, [], 0
    while body:                                               # the SDK's way: re-POST next_page
        page = api.post(C + "/events", body).json()
        seen += [e["timestamp"] for e in page["events"]]
        body, calls = page.get("next_page"), calls + 1
    assert calls == 6 and seen == sorted((e["timestamp"] for e in evs), reverse=True)
    body, seen = {"cluster_id": cid, "order": "ASC", "page_size": 70, "event_types": ["RUNNING"]}, []
    while True:
        page = api.post(C + "/events", body).json()
        seen += [e["timestamp"] for e in page["events"]]
        if not page.get("next_page_token"):
            break
        body = dict(body, page_token=page["next_page_token"])
    assert seen == [e["timestamp"] for e in evs if e["type"] == "RUNNING"]


def test_jobs_every_one_once_by_id_with_deletes_and_new_jobs(emu, api):
    emu.config.update({"jobs_page_cap": 7})
    task = [{"task_key": "t", "condition_task": {"op": "EQUAL_TO", "left": "1", "right": "1"}}]
    ids = [api.post(J + "/create", {"name": "same" if i % 2 else f"j{i}", "tasks": task}).json()["job_id"]
           for i in range(300)]
    created = []

    def meanwhile(page_no):
        if page_no == 2:
            for jid in ids[100:110]:                         # deleted before their page is read: left out
                assert api.post(J + "/delete", {"job_id": jid}).status_code == 200
            created.append(api.post(J + "/create", {"name": "late", "tasks": task}).json()["job_id"])

    listed, n = pages(api, J + "/list", "jobs", {"limit": 100}, before_next=meanwhile)
    got = [j["job_id"] for j in listed]
    assert n >= 40 and got == sorted(got) and len(got) == len(set(got))
    assert got == [j for j in ids if j not in ids[100:110]] + created
    same, _ = pages(api, J + "/list", "jobs", {"name": "SAME", "limit": 100})
    assert [j["job_id"] for j in same] == [j for i, j in enumerate(ids) if i % 2 and j not in ids[100:110]]
    # prev_page_token walks back
    first = api.get(J + "/list", limit=7).json()
    second = api.get(J + "/list", limit=7, page_token=first["next_page_token"]).json()
    back = api.get(J + "/list", limit=7, page_token=second["prev_page_token"]).json()
    assert [j["job_id"] for j in back["jobs"]] == [j["job_id"] for j in first["jobs"]]
    assert api.get(J + "/list", page_token="nonsense").status_code == 400


def test_runs_every_one_once_newest_first(emu, api):
    emu.config.update({"jobs_pending_seconds": 0, "jobs_task_seconds": 0, "jobs_runs_page_cap": 5})
    task = [{"task_key": "t", "condition_task": {"op": "EQUAL_TO", "left": "1", "right": "1"}}]
    jid = api.post(J + "/create", {"name": "many", "tasks": task, "max_concurrent_runs": 1000}).json()["job_id"]
    other = api.post(J + "/create", {"name": "other", "tasks": task}).json()["job_id"]
    rids = [api.post(J + "/run-now", {"job_id": jid}).json()["run_id"] for _ in range(300)]
    api.post(J + "/run-now", {"job_id": other})
    later = []

    def meanwhile(page_no):
        if page_no == 3:                                      # newer runs appear: not in the rest of this listing
            later.append(api.post(J + "/run-now", {"job_id": jid}).json()["run_id"])
            assert api.post(J + "/runs/delete", {"run_id": rids[100]}).status_code in (200, 400)

    listed, n = pages(api, J + "/runs/list", "runs", {"job_id": jid, "limit": 25}, before_next=meanwhile)
    got = [r["run_id"] for r in listed]
    assert n >= 59 and len(got) == len(set(got)) and later[0] not in got
    expected = [r for r in reversed(rids)]
    deleted = api.get(J + "/runs/get", run_id=rids[100]).status_code == 400
    if deleted:
        expected.remove(rids[100])
    assert got == expected
    everything, _ = pages(api, J + "/runs/list", "runs", {"limit": 25})
    assert len(everything) == len(expected) + 2 and everything[0]["run_id"] == later[0]
    done, _ = pages(api, J + "/runs/list", "runs", {"job_id": jid, "completed_only": "true", "limit": 25})
    assert {r["state"]["life_cycle_state"] for r in done} <= {"TERMINATED", "SKIPPED"}


def test_workspace_folder_of_notebooks(api):
    api.post("/api/2.0/workspace/mkdirs", {"path": "/Shared/many"})
    content = base64.b64encode(b"print(1)").decode()
    for i in range(300):
        r = api.post("/api/2.0/workspace/import", {"path": f"/Shared/many/n{299 - i:04d}", "content": content,
                                                   "language": "PYTHON"})
        assert r.status_code == 200
    objs = api.get("/api/2.0/workspace/list", path="/Shared/many").json()["objects"]
    assert [o["path"] for o in objs] == [f"/Shared/many/n{i:04d}" for i in range(300)]


@pytest.mark.parametrize("n", [130])
def test_warehouses_every_one_once(emu, api, n):
    before = [w["id"] for w in pages(api, "/api/2.0/sql/warehouses", "warehouses")[0]]
    made = [api.post("/api/2.0/sql/warehouses", {"name": f"w{i}", "cluster_size": "Small", "max_num_clusters": 1})
            .json()["id"] for i in range(n)]
    listed, count = pages(api, "/api/2.0/sql/warehouses", "warehouses")
    got = [w["id"] for w in listed]
    assert got == before + made and count >= n // 25
