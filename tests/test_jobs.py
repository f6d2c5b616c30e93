"""Jobs and runs (Jobs API 2.2) over real HTTP against the emulator: the actions' wire requests,
their outputs and classified errors, and the emulator's run state machine. The tasks run real
code: notebooks and Python files put in the emulator's workspace through its Workspace API."""
import time
import uuid

import pytest

from databricks_connector.emulator.jobs import MULTI_TASK_OUTPUT
from databricks_connector.errors import ConnectorError
from tests.scenarios import seed_file, seed_notebook, seed_warehouse

J = "/api/2.2/jobs"
FAST_WAIT = {"poll_interval_seconds": 0.1}
D = "/Shared/test_jobs"

NOTEBOOKS = {
    f"{D}/extract": "print('extracting')\ndbutils.notebook.exit('extracted ' + dbutils.widgets.get('env'))",
    f"{D}/load": "dbutils.notebook.exit('loaded')",
    f"{D}/answer": "x = int(dbutils.widgets.get('x'))\nprint('computing')\n\n# COMMAND ----------\n\n"
                   "dbutils.notebook.exit(str(x * 7))",
    f"{D}/plain": "print('plain')",
}
FILES = {
    f"{D}/transform.py": "import sys\nprint('transform', sys.argv[1:])",
    f"{D}/divide.py": "print('about to fail')\n1 / 0",
    f"{D}/slow.py": "import time\ntime.sleep(1.5)\nprint('slept')",
    f"{D}/boom.py": "raise ValueError('boom: bad input')",
}


@pytest.fixture
def jobs(emulator):
    """Fast run timings (the conftest restores the configuration) and the tests' notebooks and files
    in the emulator's workspace."""
    emulator.config.update({"jobs_pending_seconds": 0.05, "jobs_task_seconds": 0.1, "jobs_cancel_seconds": 0.2})
    for path, source in NOTEBOOKS.items():
        seed_notebook(emulator, path, source)
    for path, source in FILES.items():
        seed_file(emulator, path, source)
    return emulator.config


def since(emulator, n, method=None, path=None):
    out = emulator.requests[n:]
    return [r for r in out if (method is None or r["method"] == method) and (path is None or r["path"] == path)]


def unique(prefix="job"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_job(connector, conn, tasks, **extra):
    inputs = {"name": extra.pop("name", unique()), "tasks": tasks}
    inputs.update(extra)
    return connector.run("create_job", conn, inputs)["job_id"]


def wait_run(connector, conn, run_id, *, life=("TERMINATED", "SKIPPED", "INTERNAL_ERROR"), timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        run = connector.run("get_run", conn, {"run_id": run_id})
        if run["state"]["life_cycle_state"] in life or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


CHAIN = [
    {"task_key": "extract", "notebook_task": {"notebook_path": f"{D}/extract"}},
    {"task_key": "transform", "depends_on": [{"task_key": "extract"}],
     "spark_python_task": {"python_file": f"{D}/transform.py", "parameters": ["{{job.parameters.env}}"]}},
    {"task_key": "load", "depends_on": [{"task_key": "transform"}],
     "notebook_task": {"notebook_path": f"{D}/load"}},
]


# --------------------------------------------------------------------------- jobs CRUD

def test_create_get_update_reset_delete_over_the_wire(emulator, conn, connector, jobs):
    n = len(emulator.requests)
    name = unique("crud")
    job_id = connector.run("create_job", conn, {
        "name": name, "tasks": CHAIN[:1], "cron_schedule": "0 0 2 * * ?", "timezone": "Europe/Paris",
        "parameters": '{"env": "prod"}', "tags": "team=data", "max_concurrent_runs": "3",
        "job_timeout_seconds": 600, "queue_enabled": "false",
        "settings": {"email_notifications": {"on_failure": ["ops@example.com"]}, "name": "overridden"}})["job_id"]
    create = since(emulator, n, "POST", J + "/create")
    assert len(create) == 1
    body = create[0]["json"]
    assert body["name"] == name and body["tasks"] == CHAIN[:1]
    assert body["schedule"] == {"quartz_cron_expression": "0 0 2 * * ?", "timezone_id": "Europe/Paris"}
    assert body["parameters"] == [{"name": "env", "default": "prod"}]
    assert body["tags"] == {"team": "data"} and body["max_concurrent_runs"] == 3
    assert body["timeout_seconds"] == 600 and body["queue"] == {"enabled": False}
    assert body["email_notifications"] == {"on_failure": ["ops@example.com"]}

    job = connector.run("get_job", conn, {"job_id": str(job_id)})
    assert since(emulator, n, "GET", J + "/get")[0]["query"] == {"job_id": [str(job_id)]}
    assert job["job_id"] == job_id and job["settings"]["name"] == name
    assert job["settings"]["schedule"]["timezone_id"] == "Europe/Paris" and "next_page_token" not in job

    n = len(emulator.requests)
    out = connector.run("update_job", conn, {"job_id": job_id, "new_settings": {"max_concurrent_runs": 5},
                                             "fields_to_remove": ["schedule"]})
    assert out == {"job_id": job_id, "updated": True}
    assert since(emulator, n, "POST", J + "/update")[0]["json"] == {
        "job_id": job_id, "new_settings": {"max_concurrent_runs": 5}, "fields_to_remove": ["schedule"]}
    s = connector.run("get_job", conn, {"job_id": job_id})["settings"]
    assert s["max_concurrent_runs"] == 5 and "schedule" not in s and s["tags"] == {"team": "data"}

    n = len(emulator.requests)
    connector.run("reset_job", conn, {"job_id": job_id, "settings": {"name": "reset-" + name, "tasks": CHAIN[:1]}})
    assert since(emulator, n, "POST", J + "/reset")[0]["json"] == {
        "job_id": job_id, "new_settings": {"name": "reset-" + name, "tasks": CHAIN[:1]}}
    s = connector.run("get_job", conn, {"job_id": job_id})["settings"]
    assert s["name"] == "reset-" + name and "tags" not in s

    n = len(emulator.requests)
    assert connector.run("delete_job", conn, {"job_id": job_id}) == {"job_id": job_id, "deleted": True}
    assert since(emulator, n, "POST", J + "/delete")[0]["json"] == {"job_id": job_id}
    with pytest.raises(ConnectorError) as err:
        connector.run("get_job", conn, {"job_id": job_id})
    assert err.value.type == "not_found" and f"Job {job_id} does not exist." in err.value.message


def test_update_needs_settings_or_fields(pat, connector):
    with pytest.raises(ConnectorError) as err:
        connector.run("update_job", pat, {"job_id": 1})
    assert err.value.type == "invalid_input"


def test_get_job_concatenates_every_page_of_its_arrays(emulator, pat, connector, jobs):
    jobs.jobs_array_page_size = 2
    tasks = [{"task_key": f"t{i}", "notebook_task": {"notebook_path": f"/n{i}"}} for i in range(7)]
    params = [{"name": f"p{i}", "default": str(i)} for i in range(5)]
    job_id = make_job(connector, pat, tasks, parameters=params)
    n = len(emulator.requests)
    job = connector.run("get_job", pat, {"job_id": job_id})
    assert [t["task_key"] for t in job["settings"]["tasks"]] == [f"t{i}" for i in range(7)]
    assert job["settings"]["parameters"] == params
    gets = since(emulator, n, "GET", J + "/get")
    assert len(gets) == 4
    assert "page_token" not in gets[0]["query"] and all("page_token" in g["query"] for g in gets[1:])
    # a listed job whose tasks did not fit (has_more) is completed with jobs/get
    name = connector.run("get_job", pat, {"job_id": job_id})["settings"]["name"]
    listed = connector.run("list_jobs", pat, {"name": name, "expand_tasks": True})["jobs"]
    assert len(listed[0]["settings"]["tasks"]) == 7 and listed[0]["has_more"] is False


# --------------------------------------------------------------------------- runs: the main story

def test_three_task_failure_output_and_repairs(emulator, pat, connector, jobs):
    # the transform step's file raises: the run fails at transform, load never runs
    seed_file(emulator, f"{D}/step.py", FILES[f"{D}/boom.py"])
    chain = [dict(CHAIN[1], spark_python_task={"python_file": f"{D}/step.py",
                                               "parameters": ["{{job.parameters.env}}"]}) if t["task_key"] == "transform"
             else t for t in CHAIN]
    job_id = make_job(connector, pat, chain, parameters={"env": "prod"})

    n = len(emulator.requests)
    with pytest.raises(ConnectorError) as err:
        connector.run("run_job_now", pat, {"job_id": job_id, "job_parameters": {"env": "test"},
                                           "wait_for_completion": True, **FAST_WAIT})
    e = err.value
    assert e.type == "operation_failed"
    run_id = e.details["run_id"]
    url = f"{emulator.url}/?o={emulator.workspace_id}#job/{job_id}/run/{run_id}"
    assert e.details["run_page_url"] == url and url in e.message
    assert "ValueError: boom: bad input" in e.message and "transform" in e.message
    assert {f["task_key"] for f in e.details["failed_tasks"]} == {"transform", "load"}
    run_now = since(emulator, n, "POST", J + "/run-now")[0]["json"]
    assert run_now["job_id"] == job_id and run_now["job_parameters"] == {"env": "test"}
    assert len(run_now["idempotency_token"]) == 36

    out = connector.run("get_run_output", pat, {"run_id": run_id})
    assert set(out["tasks"]) == {"extract", "transform", "load"} and out["task_count"] == 3
    assert out["state"]["result_state"] == "FAILED" and out["run_page_url"] == url
    t = out["tasks"]
    assert t["extract"]["state"]["result_state"] == "SUCCESS"
    # real code: the job parameter read as a widget, the exit value as the notebook's result
    assert t["extract"]["result"]["notebook_output"] == {"result": "extracted test", "truncated": False}
    assert t["transform"]["state"]["result_state"] == "FAILED"
    assert t["transform"]["error"] == "ValueError: boom: bad input"
    assert "Traceback" in t["transform"]["error_trace"] and "boom: bad input" in t["transform"]["error_trace"]
    assert t["load"]["state"]["result_state"] == "UPSTREAM_FAILED" and t["load"]["error"] is None
    # get-output was asked for each task run, never for the parent run
    outputs = since(emulator, n, "GET", J + "/runs/get-output")
    asked = {int(r["query"]["run_id"][0]) for r in outputs}
    assert run_id not in asked and {x["task_run_id"] for x in t.values()} <= asked

    # the file is fixed in the workspace; the repair runs the fixed code
    seed_file(emulator, f"{D}/step.py", FILES[f"{D}/transform.py"])
    # the first repair re-runs what failed with the run's own job parameters
    n = len(emulator.requests)
    rep = connector.run("repair_run", pat, {"run_id": run_id, "wait_for_completion": True, **FAST_WAIT})
    body = since(emulator, n, "POST", J + "/runs/repair")[0]["json"]
    assert body == {"run_id": run_id, "rerun_all_failed_tasks": True, "job_parameters": {"env": "test"}}
    assert rep["state"]["result_state"] == "SUCCESS" and rep["repair_id"]
    assert rep["result"]["tasks"]["load"]["result"]["notebook_output"]["result"] == "loaded"
    assert rep["result"]["tasks"]["transform"]["result"]["logs"].strip() == "transform ['test']"
    assert rep["run"]["tasks"][0]["run_id"] == t["extract"]["task_run_id"]    # extract was not re-run

    # the emulator insists on latest_repair_id from the second repair on ...
    raw = connector.session(pat).action()
    with pytest.raises(ConnectorError) as err:
        raw.post(J + "/runs/repair", {"run_id": run_id, "rerun_tasks": ["extract"]})
    assert err.value.status == 400 and err.value.error_code == "INVALID_PARAMETER_VALUE"
    # ... and the action reads it from the repair history
    n = len(emulator.requests)
    rep2 = connector.run("repair_run", pat, {"run_id": run_id, "rerun_tasks": ["extract"],
                                             "wait_for_completion": True, **FAST_WAIT})
    body = since(emulator, n, "POST", J + "/runs/repair")[0]["json"]
    assert body["latest_repair_id"] == rep["repair_id"] and body["rerun_tasks"] == ["extract"]
    assert body["job_parameters"] == {"env": "test"}
    assert rep2["state"]["result_state"] == "SUCCESS"
    history = connector.run("get_run", pat, {"run_id": run_id, "include_history": True})["repair_history"]
    assert [h["type"] for h in history] == ["ORIGINAL", "REPAIR", "REPAIR"]
    assert history[0]["state"]["result_state"] == "FAILED" and history[1]["id"] == rep["repair_id"]
    assert since(emulator, n, "GET", J + "/runs/get")[0]["query"]["include_history"] == ["true"]


def test_repair_of_an_active_run_is_invalid_state(pat, connector, jobs):
    jobs.jobs_task_seconds = 5
    job_id = make_job(connector, pat, CHAIN[:1])
    run_id = connector.run("run_job_now", pat, {"job_id": job_id})["run_id"]
    with pytest.raises(ConnectorError) as err:
        connector.run("repair_run", pat, {"run_id": run_id})
    assert err.value.type == "invalid_state" and err.value.error_code == "INVALID_STATE"
    connector.run("cancel_run", pat, {"run_id": run_id})


def test_run_now_retried_after_a_dropped_connection_starts_one_run(emulator, pat, connector, jobs):
    job_id = make_job(connector, pat, CHAIN[:1])
    before = emulator.state.applied["jobs/run-now"]
    n = len(emulator.requests)
    emulator.faults.add(J + "/run-now", "drop_after", method="POST")
    out = connector.run("run_job_now", pat, {"job_id": job_id})
    sent = since(emulator, n, "POST", J + "/run-now")
    assert len(sent) == 2 and sent[0]["json"]["idempotency_token"] == sent[1]["json"]["idempotency_token"]
    assert emulator.state.applied["jobs/run-now"] == before + 1
    assert out["idempotency_token"] == sent[0]["json"]["idempotency_token"]
    runs = connector.run("list_runs", pat, {"job_id": job_id})["runs"]
    assert [r["run_id"] for r in runs] == [out["run_id"]]
    assert out["state"]["life_cycle_state"] in ("PENDING", "RUNNING", "TERMINATED")
    assert out["run_page_url"].endswith(f"#job/{job_id}/run/{out['run_id']}")
    # the same token again (a platform re-running the step) is the same run
    again = connector.run("run_job_now", pat, {"job_id": job_id, "idempotency_token": out["idempotency_token"]})
    assert again["run_id"] == out["run_id"] and emulator.state.applied["jobs/run-now"] == before + 1


def test_waiting_times_out_and_cancels_the_run(emulator, pat, connector, jobs):
    jobs.jobs_task_seconds = 30
    job_id = make_job(connector, pat, CHAIN[:1])
    n = len(emulator.requests)
    with pytest.raises(ConnectorError) as err:
        connector.run("run_job_now", pat, {"job_id": job_id, "wait_for_completion": True, "timeout_seconds": 1,
                                           **FAST_WAIT})
    run_id = since(emulator, n, "GET", J + "/runs/get")[0]["query"]["run_id"][0]
    assert err.value.type == "timeout" and f"Cancelled run {run_id}" in err.value.message
    assert since(emulator, n, "POST", J + "/runs/cancel")[0]["json"] == {"run_id": int(run_id)}
    run = wait_run(connector, pat, int(run_id))
    assert run["state"]["life_cycle_state"] == "TERMINATED" and run["state"]["result_state"] == "CANCELED"
    assert run["state"]["user_cancelled_or_timedout"] is True
    assert run["status"]["termination_details"]["code"] == "USER_CANCELED"
    assert run["tasks"][0]["state"]["result_state"] == "CANCELED"


def test_waiting_times_out_without_cancel_when_asked(emulator, pat, connector, jobs):
    jobs.jobs_task_seconds = 30
    job_id = make_job(connector, pat, CHAIN[:1])
    n = len(emulator.requests)
    with pytest.raises(ConnectorError) as err:
        connector.run("run_job_now", pat, {"job_id": job_id, "wait_for_completion": True, "timeout_seconds": 1,
                                           "cancel_on_timeout": False, **FAST_WAIT})
    assert err.value.type == "timeout" and "not cancelled" in err.value.message
    assert not since(emulator, n, "POST", J + "/runs/cancel")
    connector.run("cancel_all_runs", pat, {"job_id": job_id})


# --------------------------------------------------------------------------- by name, outputs

def test_run_by_name(emulator, pat, connector, jobs):
    name = unique("named")
    with pytest.raises(ConnectorError) as err:
        connector.run("run_job_now", pat, {"job_name": name})
    assert err.value.type == "not_found" and "0 matches" in err.value.message
    job_id = make_job(connector, pat, CHAIN[:1], name=name)
    n = len(emulator.requests)
    out = connector.run("run_job_now", pat, {"job_name": name.upper()})
    assert out["job_id"] == job_id
    listed = since(emulator, n, "GET", J + "/list")[0]["query"]
    assert listed["name"] == [name.upper()] and listed["limit"] == ["100"]
    assert since(emulator, n, "POST", J + "/run-now")[0]["json"]["job_id"] == job_id
    make_job(connector, pat, CHAIN[:1], name=name)
    n = len(emulator.requests)
    with pytest.raises(ConnectorError) as err:
        connector.run("run_job_now", pat, {"job_name": name})
    assert err.value.type == "invalid_input" and "2 jobs" in err.value.message
    assert not since(emulator, n, "POST", J + "/run-now")
    with pytest.raises(ConnectorError) as err:
        connector.run("run_job_now", pat, {})
    assert err.value.type == "invalid_input"
    with pytest.raises(ConnectorError) as err:
        connector.run("run_job_now", pat, {"job_id": job_id, "job_name": name})
    assert err.value.type == "invalid_input"


def test_single_task_submit_run_output(emulator, conn, connector, jobs):
    n = len(emulator.requests)
    out = connector.run("submit_run", conn, {
        "run_name": "one-off", "settings": {"timeout_seconds": 120},
        "tasks": [{"task_key": "only", "notebook_task": {
            "notebook_path": f"{D}/answer", "base_parameters": {"x": "6"}}}],
        "wait_for_completion": True, **FAST_WAIT})
    body = since(emulator, n, "POST", J + "/runs/submit")[0]["json"]
    assert body["run_name"] == "one-off" and body["timeout_seconds"] == 120 and body["tasks"][0]["task_key"] == "only"
    assert body["idempotency_token"] == out["idempotency_token"]
    assert out["state"] == {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""}
    task = out["result"]["tasks"]["only"]
    assert task["result"]["notebook_output"]["result"] == "42" and task["error"] is None
    assert out["run"]["run_type"] == "SUBMIT_RUN" and out["run"]["run_name"] == "one-off"
    asked = [int(r["query"]["run_id"][0]) for r in since(emulator, n, "GET", J + "/runs/get-output")]
    assert asked == [task["task_run_id"]] and out["run_id"] not in asked


def test_a_waited_failed_run_fails_the_action_with_its_error(emulator, pat, connector, jobs):
    with pytest.raises(ConnectorError) as err:
        connector.run("submit_run", pat, {"tasks": [{"task_key": "divide", "spark_python_task": {
            "python_file": f"{D}/divide.py"}}],
            "wait_for_completion": True, **FAST_WAIT})
    e = err.value
    assert e.type == "operation_failed"
    assert "ZeroDivisionError: division by zero" in e.message and e.details["run_page_url"] in e.message
    assert e.details["run_page_url"].startswith(f"{emulator.url}/?o={emulator.workspace_id}#job/")
    task = e.details["result"]["tasks"]["divide"]
    assert task["error"] == "ZeroDivisionError: division by zero" and "Traceback" in task["error_trace"]
    assert 'File "/Shared/test_jobs/divide.py", line 2' in task["error_trace"]
    assert task["state"]["result_state"] == "FAILED" and task["result"]["logs"] == "about to fail\n"


def test_sql_task_runs_its_sql_file(emulator, pat, connector, jobs):
    wid = seed_warehouse(emulator, "RUNNING")
    seed_file(emulator, f"{D}/answer.sql", "SELECT 6 * 7 AS answer;\nSELECT 1 AS one")
    seed_file(emulator, f"{D}/bad.sql", "SELEC nope")
    out = connector.run("submit_run", pat, {"tasks": [
        {"task_key": "q", "sql_task": {"warehouse_id": wid, "file": {"path": f"{D}/answer.sql"}}},
        {"task_key": "bad", "sql_task": {"warehouse_id": wid, "file": {"path": f"{D}/bad.sql"}}, "run_if": "ALL_DONE",
         "depends_on": [{"task_key": "q"}]},
        {"task_key": "nowhere", "sql_task": {"warehouse_id": "0000000000000000", "file": {"path": f"{D}/answer.sql"}}}]})
    run = wait_run(connector, pat, out["run_id"])
    assert run["state"]["result_state"] == "FAILED"
    res = connector.run("get_run_output", pat, {"run_id": out["run_id"]})
    q = res["tasks"]["q"]
    assert q["state"]["result_state"] == "SUCCESS"
    qo = q["result"]["sql_output"]["query_output"]
    assert qo["query_text"] == "SELECT 6 * 7 AS answer;\nSELECT 1 AS one" and qo["warehouse_id"] == wid
    assert len(qo["sql_statements"]) == 2 and "result" not in qo       # Databricks sends no rows here
    assert "PARSE_SYNTAX_ERROR" in res["tasks"]["bad"]["error"]
    assert res["tasks"]["nowhere"]["error"] == "SQL warehouse 0000000000000000 does not exist."


def test_emulator_refuses_output_of_a_parent_run(emulator, pat, connector, jobs):
    out = connector.run("submit_run", pat, {"tasks": CHAIN[:1] + [
        {"task_key": "second", "notebook_task": {"notebook_path": f"{D}/load"}}]})
    raw = connector.session(pat).action()
    with pytest.raises(ConnectorError) as err:
        raw.get(J + "/runs/get-output", {"run_id": out["run_id"]})
    assert err.value.status == 400 and err.value.error_code == "INVALID_PARAMETER_VALUE"
    assert MULTI_TASK_OUTPUT in err.value.message
    # a single-task run's parent id too (2.1+); API 2.0 answers for its one task
    one = connector.run("submit_run", pat, {"tasks": [{"task_key": "only", "notebook_task": {
        "notebook_path": f"{D}/answer", "base_parameters": {"x": "6"}}}], "wait_for_completion": True, **FAST_WAIT})
    with pytest.raises(ConnectorError) as err:
        raw.get(J + "/runs/get-output", {"run_id": one["run_id"]})
    assert err.value.status == 400 and MULTI_TASK_OUTPUT in err.value.message
    legacy = raw.get("/api/2.0/jobs/runs/get-output", {"run_id": one["run_id"]})
    assert legacy["notebook_output"] == {"result": "42", "truncated": False}
    assert legacy["metadata"]["run_id"] == one["run"]["tasks"][0]["run_id"]
    with pytest.raises(ConnectorError) as err:
        raw.get(J + "/runs/get", {"run_id": 1})
    assert err.value.type == "not_found" and "Run 1 does not exist." in err.value.message


# --------------------------------------------------------------------------- lists

def test_lists_follow_more_than_three_pages(emulator, pat, connector, jobs):
    jobs.update({"jobs_page_cap": 2, "jobs_runs_page_cap": 2})
    name = unique("paged")
    ids = [make_job(connector, pat, CHAIN[:1], name=name if i < 7 else unique()) for i in range(8)]
    n = len(emulator.requests)
    out = connector.run("list_jobs", pat, {"name": name})
    assert sorted(j["job_id"] for j in out["jobs"]) == sorted(ids[:7]) and out["truncated"] is False
    pages = since(emulator, n, "GET", J + "/list")
    assert len(pages) == 4 and pages[0]["query"]["name"] == [name] and pages[0]["query"]["expand_tasks"] == ["false"]
    assert all("page_token" in p["query"] for p in pages[1:])
    assert "tasks" not in out["jobs"][0]["settings"]
    capped = connector.run("list_jobs", pat, {"name": name, "max_items": 3, "expand_tasks": True})
    assert capped["count"] == 3 and capped["truncated"] is True
    assert capped["jobs"][0]["settings"]["tasks"][0]["task_key"] == "extract"

    connector.run("update_job", pat, {"job_id": ids[0], "new_settings": {"max_concurrent_runs": 10}})
    started = [connector.run("run_job_now", pat, {"job_id": ids[0]})["run_id"] for _ in range(7)]
    n = len(emulator.requests)
    runs = connector.run("list_runs", pat, {"job_id": ids[0], "expand_tasks": True})
    assert [r["run_id"] for r in runs["runs"]] == sorted(started, reverse=True) and runs["truncated"] is False
    pages = since(emulator, n, "GET", J + "/runs/list")
    assert len(pages) == 4 and pages[0]["query"]["limit"] == ["25"] and pages[0]["query"]["job_id"] == [str(ids[0])]
    assert runs["runs"][0]["tasks"][0]["task_key"] == "extract"
    capped = connector.run("list_runs", pat, {"job_id": ids[0], "max_items": 3})
    assert capped["count"] == 3 and capped["truncated"] is True
    done = connector.run("list_runs", pat, {"job_id": ids[0], "completed_only": True, "run_type": "JOB_RUN"})
    q = since(emulator, n, "GET", J + "/runs/list")[-1]["query"]
    assert q["completed_only"] == ["true"] and q["run_type"] == ["JOB_RUN"]
    assert all(r["state"]["life_cycle_state"] == "TERMINATED" for r in done["runs"])
    with pytest.raises(ConnectorError) as err:
        connector.run("list_runs", pat, {"active_only": True, "completed_only": True})
    assert err.value.type == "invalid_input"
    picks = connector.pick("select_job", pat)
    assert {"label": name, "value": ids[0]} in picks                 # the integer Job ID inputs take (issue 13)


def test_emulator_list_limits(pat, connector, jobs):
    raw = connector.session(pat).action()
    with pytest.raises(ConnectorError) as err:
        raw.get(J + "/runs/list", {"limit": 26})
    assert err.value.status == 400 and "Invalid limit 26" in err.value.message
    with pytest.raises(ConnectorError) as err:
        raw.get(J + "/list", {"limit": 101})
    assert err.value.status == 400 and "Invalid limit" in err.value.message


# --------------------------------------------------------------------------- the rest

def test_queueing_cancel_all_delete_and_export(emulator, pat, connector, jobs):
    jobs.jobs_task_seconds = 30
    job_id = make_job(connector, pat, CHAIN[:1])           # 2.2: queueing on, max_concurrent_runs 1
    first = connector.run("run_job_now", pat, {"job_id": job_id})
    second = connector.run("run_job_now", pat, {"job_id": job_id})
    assert second["state"]["life_cycle_state"] == "QUEUED"
    queued = connector.run("get_run", pat, {"run_id": second["run_id"]})
    assert queued["status"]["queue_details"]["code"] == "MAX_CONCURRENT_RUNS_REACHED"
    active = connector.run("list_runs", pat, {"job_id": job_id, "active_only": True})
    assert {r["run_id"] for r in active["runs"]} == {first["run_id"], second["run_id"]}

    with pytest.raises(ConnectorError) as err:
        connector.run("delete_run", pat, {"run_id": first["run_id"]})
    assert err.value.type == "invalid_state"
    n = len(emulator.requests)
    assert connector.run("cancel_all_runs", pat, {"job_id": job_id}) == {"job_id": job_id, "cancel_requested": True}
    assert since(emulator, n, "POST", J + "/runs/cancel-all")[0]["json"] == {"job_id": job_id}
    for rid in (first["run_id"], second["run_id"]):
        assert wait_run(connector, pat, rid)["state"]["result_state"] == "CANCELED"
    with pytest.raises(ConnectorError) as err:
        connector.run("cancel_all_runs", pat, {})
    assert err.value.type == "invalid_input"

    run = connector.run("get_run", pat, {"run_id": first["run_id"]})
    n = len(emulator.requests)
    export = connector.run("export_run", pat, {"run_id": run["tasks"][0]["run_id"]})
    assert since(emulator, n, "GET", J + "/runs/export")[0]["query"] == {
        "run_id": [str(run["tasks"][0]["run_id"])], "views_to_export": ["CODE"]}
    assert export["count"] == 1 and "extracted" in export["views"][0]["content"]    # the notebook's source
    assert export["views"][0]["name"] == "extract" and export["views"][0]["type"] == "NOTEBOOK"

    n = len(emulator.requests)
    assert connector.run("delete_run", pat, {"run_id": first["run_id"]}) == {"run_id": first["run_id"], "deleted": True}
    assert since(emulator, n, "POST", J + "/runs/delete")[0]["json"] == {"run_id": first["run_id"]}
    with pytest.raises(ConnectorError) as err:
        connector.run("get_run", pat, {"run_id": first["run_id"]})
    assert err.value.type == "not_found"


def test_cancel_run_wire_and_get_run_pages(emulator, pat, connector, jobs):
    jobs.jobs_array_page_size = 2
    tasks = [{"task_key": f"t{i}", "notebook_task": {"notebook_path": f"{D}/plain"}} for i in range(5)]
    job_id = make_job(connector, pat, tasks, parameters=[{"name": f"p{i}", "default": "d"} for i in range(3)])
    jobs.jobs_task_seconds = 30
    rid = connector.run("run_job_now", pat, {"job_id": job_id})["run_id"]
    n = len(emulator.requests)
    run = connector.run("get_run", pat, {"run_id": rid})
    assert [t["task_key"] for t in run["tasks"]] == [f"t{i}" for i in range(5)]
    assert len(run["job_parameters"]) == 3 and "next_page_token" not in run
    assert len(since(emulator, n, "GET", J + "/runs/get")) == 3
    assert connector.run("cancel_run", pat, {"run_id": rid}) == {"run_id": rid, "cancel_requested": True}
    assert since(emulator, n, "POST", J + "/runs/cancel")[0]["json"] == {"run_id": rid}
    assert wait_run(connector, pat, rid)["state"]["result_state"] == "CANCELED"


def test_legacy_parameters_and_only_on_the_wire(emulator, pat, connector, jobs):
    job_id = make_job(connector, pat, CHAIN)
    n = len(emulator.requests)
    out = connector.run("run_job_now", pat, {
        "job_id": job_id, "notebook_params": "env=legacy", "python_params": '["a", "b"]',
        "sql_params": {"day": "2024-01-01"}, "pipeline_full_refresh": True, "only": ["extract", "transform"],
        "idempotency_token": "my-token-1", "wait_for_completion": True, **FAST_WAIT})
    body = since(emulator, n, "POST", J + "/run-now")[0]["json"]
    assert body == {"job_id": job_id, "idempotency_token": "my-token-1", "notebook_params": {"env": "legacy"},
                    "python_params": ["a", "b"], "sql_params": {"day": "2024-01-01"},
                    "pipeline_params": {"full_refresh": True}, "only": ["extract", "transform"]}
    assert out["idempotency_token"] == "my-token-1"
    tasks = out["result"]["tasks"]
    assert set(tasks) == {"extract", "transform"}
    assert tasks["extract"]["result"]["notebook_output"]["result"] == "extracted legacy"
    assert tasks["transform"]["result"]["logs"].strip() == "transform ['a', 'b']"
    assert out["run"]["overriding_parameters"]["python_params"] == ["a", "b"]
    with pytest.raises(ConnectorError) as err:
        connector.run("run_job_now", pat, {"job_id": job_id, "notebook_params": "a=1", "jar_params": '["x"]'})
    assert err.value.type == "invalid_input"


def test_emulator_queue_promotion_skip_and_slow_code(emulator, pat, connector, jobs):
    jobs.jobs_task_seconds = 0.3
    job_id = make_job(connector, pat, [{"task_key": "plain", "notebook_task": {"notebook_path": f"{D}/plain"}}])
    first = connector.run("run_job_now", pat, {"job_id": job_id})["run_id"]
    second = connector.run("run_job_now", pat, {"job_id": job_id})["run_id"]
    assert connector.run("get_run", pat, {"run_id": second})["state"]["life_cycle_state"] == "QUEUED"
    done = wait_run(connector, pat, second)
    assert done["state"]["result_state"] == "SUCCESS" and done["queue_duration"] > 0
    assert done["start_time"] <= done["end_time"]
    assert wait_run(connector, pat, first)["end_time"] <= done["end_time"]

    # queueing off: the second run is skipped
    connector.run("update_job", pat, {"job_id": job_id, "new_settings": {"queue": {"enabled": False}}})
    a = connector.run("run_job_now", pat, {"job_id": job_id})["run_id"]
    b = connector.run("run_job_now", pat, {"job_id": job_id})
    skipped = connector.run("get_run", pat, {"run_id": b["run_id"]})
    assert skipped["state"]["life_cycle_state"] == "SKIPPED" and "maximum concurrent runs" in skipped["state"]["state_message"]
    assert skipped["status"]["state"] == "TERMINATED"
    wait_run(connector, pat, a)

    # a task runs as long as its code does (and never blocks the emulator meanwhile)
    jobs.jobs_task_seconds = 0.05
    out = connector.run("submit_run", pat, {"tasks": [{"task_key": "slow", "spark_python_task": {
        "python_file": f"{D}/slow.py"}}]})
    run = wait_run(connector, pat, out["run_id"], life=("RUNNING",))
    assert run["state"]["life_cycle_state"] == "RUNNING"      # answered while the code still runs
    run = wait_run(connector, pat, out["run_id"])
    assert run["state"]["result_state"] == "SUCCESS" and run["tasks"][0]["execution_duration"] >= 1400
