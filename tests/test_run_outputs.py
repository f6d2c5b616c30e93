"""Get Run Output over real HTTP: the output of a run whose runs/get has no tasks (a task run id, a
single-task run of the older shape), and every task's output fetched in parallel, in order, with
bounded concurrency (counted at a proxy on loopback, never timed)."""
import threading
import time

import pytest

from tests.scenarios import seed_notebook
from tests.tamper import TamperProxy

J = "/api/2.2/jobs"
NOTEBOOK = "/Shared/test_run_outputs/answer"


@pytest.fixture
def jobs(emulator):
    """Fast run timings (the conftest restores the configuration) and a notebook that answers its
    parameter, in the emulator's workspace."""
    emulator.config.update({"jobs_pending_seconds": 0.05, "jobs_task_seconds": 0.1})
    seed_notebook(emulator, NOTEBOOK, "dbutils.notebook.exit(dbutils.widgets.get('result'))")


@pytest.fixture
def proxy(emulator):
    with TamperProxy(emulator.url, ca_bundle=emulator.connections()["personal_access_token"].get("ca_bundle")) as p:
        yield p


def finished_run(connector, conn, tasks, timeout=60.0):
    run_id = connector.run("submit_run", conn, {"tasks": tasks})["run_id"]
    deadline = time.monotonic() + timeout
    while True:
        run = connector.run("get_run", conn, {"run_id": run_id})
        if run["state"]["life_cycle_state"] in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR"):
            return run
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.05)


def notebook(key, result):
    return {"task_key": key, "notebook_task": {"notebook_path": NOTEBOOK, "base_parameters": {"result": result}}}


def test_the_output_of_a_task_run_id(connector, pat, emulator, jobs):
    run = finished_run(connector, pat, [notebook("first", "one"), notebook("second", "two")])
    task_run_id = next(t["run_id"] for t in run["tasks"] if t["task_key"] == "second")
    n = len(emulator.requests)
    out = connector.run("get_run_output", pat, {"run_id": task_run_id})
    assert out["run_id"] == task_run_id and out["task_count"] == 1 and list(out["tasks"]) == ["second"]
    task = out["tasks"]["second"]
    assert task["task_run_id"] == task_run_id and task["result"] == {"notebook_output": {"result": "two", "truncated": False}}
    assert task["state"]["result_state"] == "SUCCESS"
    asked = [r["query"]["run_id"] for r in emulator.requests[n:] if r["path"] == J + "/runs/get-output"]
    assert asked == [[str(task_run_id)]]


def test_a_single_task_run_answered_without_tasks(connector, pat, proxy, jobs):
    """A workspace of the older shape (the proxy serves Jobs API 2.0's get-output, where the parent
    of a single-task run stands for its task, and drops the tasks array from runs/get): the output
    is runs/get-output of the run itself, not an empty ``tasks``."""
    run = finished_run(connector, pat, [notebook("only", "the result")])
    proxy.on(rf"^{J}/runs/get$", lambda a: a.edit(lambda d: d.pop("tasks", None)))
    proxy.rewrite(r"^/api/2\.2/jobs/runs/get-output", "/api/2.0/jobs/runs/get-output")
    out = connector.run("get_run_output", proxy.connection(pat), {"run_id": run["run_id"]})
    assert out["task_count"] == 1
    (entry,) = out["tasks"].values()
    assert entry["task_run_id"] == run["run_id"]
    assert entry["result"] == {"notebook_output": {"result": "the result", "truncated": False}}
    assert len(proxy.requests(rf"^{J}/runs/get-output$")) == 1


def test_every_task_output_in_parallel_and_in_order(connector, pat, proxy, jobs):
    from databricks_connector.actions.jobs import RUN_OUTPUT_WORKERS

    keys = [f"t{i:02d}" for i in range(40)]
    run = finished_run(connector, pat, [notebook(k, f"r-{k}") for k in reversed(keys)])
    order = [t["task_key"] for t in run["tasks"]]
    lock = threading.Lock()
    live = {"now": 0, "max": 0}

    def slow(a):                      # every get-output answer is held a moment, so overlaps can be counted
        with lock:
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
        time.sleep(0.05)
        with lock:
            live["now"] -= 1
    proxy.on(rf"^{J}/runs/get-output$", slow)
    out = connector.run("get_run_output", proxy.connection(pat), {"run_id": run["run_id"]})
    assert list(out["tasks"]) == order and out["task_count"] == 40
    assert all(out["tasks"][k]["result"]["notebook_output"]["result"] == f"r-{k}" for k in keys)
    assert len(proxy.requests(rf"^{J}/runs/get-output$")) == 40                # one each, never the parent
    assert 1 < live["max"] <= RUN_OUTPUT_WORKERS


def test_a_failing_output_call_fails_the_step_without_hanging(connector, pat, proxy, jobs):
    from databricks_connector.errors import ConnectorError

    run = finished_run(connector, pat, [notebook(f"t{i}", "x") for i in range(12)])
    victim = run["tasks"][5]["run_id"]

    def refuse(a):
        if f"run_id={victim}" in a.query:
            a.status = 404
            a.json = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run {victim} does not exist."}
    proxy.on(rf"^{J}/runs/get-output$", refuse)
    with pytest.raises(ConnectorError) as err:
        connector.run("get_run_output", proxy.connection(pat), {"run_id": run["run_id"]})
    assert err.value.type == "not_found" and str(victim) in err.value.message
