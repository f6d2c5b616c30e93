"""The emulator's jobs on real compute and real workspace objects, over HTTP: clusters a task needs,
job clusters, notebooks, scripts and wheels that run for real, asynchronous cancel, and run views
with the fields of the SDK's dataclasses only."""
import base64
import io
import time
import zipfile

import pytest

J = "/api/2.2/jobs"
C = "/api/2.1/clusters"
W = "/api/2.0/workspace"
SPEC = {"spark_version": "13.3.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 1}
# field names of the SDK's dataclasses (databricks-sdk, service/jobs.py)
RUN_FIELDS = set("""attempt_number cleanup_duration cluster_instance cluster_spec creator_user_name deployment_id
description duration_target effective_performance_target effective_usage_policy_id end_time environment_variables
execution_duration git_source has_more iterations job_clusters job_id job_parameters job_run_id next_page_token
number_in_job original_attempt_run_id overriding_parameters queue_duration repair_history run_duration run_id
run_name run_page_url run_type schedule setup_duration start_time state status tasks trigger trigger_info
version_id""".split())
RUN_TASK_FIELDS = set("""task_key ai_function_task ai_runtime_task alert_task attempt_number clean_rooms_notebook_task
cleanup_duration cluster_instance compute condition_task dashboard_task dbt_cloud_task dbt_platform_task dbt_task
depends_on description disable_auto_optimization disabled effective_performance_target email_notifications end_time
environment_key environment_variables_key execution_duration existing_cluster_id for_each_task gen_ai_compute_task
git_source job_cluster_key libraries max_retries min_retry_interval_millis new_cluster notebook_task
notification_settings pipeline_task power_bi_task python_operator_task python_wheel_task queue_duration
resolved_values retry_on_timeout run_duration run_id run_if run_job_task run_page_url setup_duration spark_jar_task
spark_python_task spark_submit_task sql_task start_time state status timeout_seconds webhook_notifications""".split())
RUN_OUTPUT_FIELDS = set("""ai_function_task_output ai_runtime_task_output alert_output clean_rooms_notebook_output
dashboard_output dbt_cloud_output dbt_output dbt_platform_output error error_trace info logs logs_truncated metadata
notebook_output run_job_output sql_output""".split())


@pytest.fixture
def jobs(emu):
    emu.config.update({"jobs_pending_seconds": 0.05, "jobs_task_seconds": 0.1, "jobs_cancel_seconds": 0.2})
    return emu


def put(api, path, content, **kw):
    data = content.encode() if isinstance(content, str) else content
    api.post(W + "/mkdirs", {"path": path.rsplit("/", 1)[0]})
    r = api.post(W + "/import", dict({"path": path, "content": base64.b64encode(data).decode(), "overwrite": True},
                                     **kw))
    assert r.status_code == 200, r.text


def notebook(api, path, source, language="PYTHON"):
    put(api, path, source, format="SOURCE", language=language)


def submit(api, tasks, **extra):
    r = api.post(J + "/runs/submit", dict({"run_name": "t", "tasks": tasks}, **extra))
    assert r.status_code == 200, r.text
    return r.json()["run_id"]


def run_of(api, rid):
    return api.get(J + "/runs/get", run_id=rid).json()


def wait(api, rid, life=("TERMINATED", "INTERNAL_ERROR", "SKIPPED"), timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        run = run_of(api, rid)
        if run["state"]["life_cycle_state"] in life or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def output(api, task_run_id):
    return api.get(J + "/runs/get-output", run_id=task_run_id).json()


def test_a_terminated_cluster_is_started_and_the_task_waits_for_it(emu, api, jobs):
    emu.config.update({"cluster_start_seconds": 60})
    cid = emu.state.add_cluster(state="TERMINATED", cluster_name="shared")
    notebook(api, "/Shared/j/hello", "dbutils.notebook.exit('hello')")
    rid = submit(api, [{"task_key": "a", "existing_cluster_id": cid, "notebook_task": {"notebook_path": "/Shared/j/hello"}}])
    run = run_of(api, rid)
    assert run["state"]["life_cycle_state"] == "PENDING" and run["tasks"][0]["state"]["life_cycle_state"] == "PENDING"
    assert api.get(C + "/get", cluster_id=cid).json()["state"] == "PENDING"          # the job started it
    assert run["tasks"][0]["cluster_instance"] == {"cluster_id": cid}                  # no Spark context yet
    emu.state.clock.advance(61)                                                        # the cluster is up
    run = wait(api, rid)
    task = run["tasks"][0]
    assert task["state"]["result_state"] == "SUCCESS"
    cluster = api.get(C + "/get", cluster_id=cid).json()
    assert cluster["state"] == "RUNNING"
    assert task["cluster_instance"] == {"cluster_id": cid, "spark_context_id": str(cluster["spark_context_id"])}
    assert task["setup_duration"] >= 60000                            # it waited for the cluster to start
    assert output(api, task["run_id"])["notebook_output"] == {"result": "hello", "truncated": False}
    starting = [e for e in api.post(C + "/events", {"cluster_id": cid}).json()["events"] if e["type"] == "STARTING"]
    assert len(starting) == 1


def test_a_missing_cluster_fails_the_run_with_databricks_message(api, jobs):
    notebook(api, "/Shared/j/hello", "dbutils.notebook.exit('hello')")
    rid = submit(api, [{"task_key": "a", "existing_cluster_id": "0000-000000-missing0",
                        "notebook_task": {"notebook_path": "/Shared/j/hello"}}])
    run = wait(api, rid)
    task = run["tasks"][0]
    msg = "Run executed on existing cluster ID 0000-000000-missing0 failed since the cluster does not exist."
    assert task["state"] == {"life_cycle_state": "INTERNAL_ERROR", "result_state": "FAILED", "state_message": msg,
                             "user_cancelled_or_timedout": False}
    assert task["status"]["termination_details"]["code"] == "RESOURCE_NOT_FOUND"
    assert run["state"]["life_cycle_state"] == "INTERNAL_ERROR" and run["state"]["result_state"] == "FAILED"
    assert msg in run["state"]["state_message"]
    assert output(api, task["run_id"])["error"] == msg


def test_job_clusters_exist_for_the_run_and_terminate_after(emu, api, jobs):
    emu.config.update({"jobs_task_seconds": 60})
    notebook(api, "/Shared/j/hello", "dbutils.notebook.exit('hello')")
    jid = api.post(J + "/create", {"name": "jc", "job_clusters": [{"job_cluster_key": "main", "new_cluster": SPEC}],
                                   "tasks": [{"task_key": "a", "job_cluster_key": "main",
                                              "notebook_task": {"notebook_path": "/Shared/j/hello"}},
                                             {"task_key": "b", "job_cluster_key": "main", "depends_on": [{"task_key": "a"}],
                                              "notebook_task": {"notebook_path": "/Shared/j/hello"}},
                                             {"task_key": "own", "new_cluster": SPEC,
                                              "notebook_task": {"notebook_path": "/Shared/j/hello"}}]}).json()["job_id"]
    rid = api.post(J + "/run-now", {"job_id": jid}).json()["run_id"]
    run = wait(api, rid, life=("RUNNING",))
    listed = api.get(C + "/list", **{"filter_by.cluster_sources": "JOB"}).json()["clusters"]
    names = {c["cluster_name"]: c for c in listed}
    shared = names[f"job-{jid}-run-{rid}-main"]
    own_task = next(t for t in run["tasks"] if t["task_key"] == "own")
    own = names[f"job-{jid}-run-{own_task['run_id']}"]
    assert shared["cluster_source"] == own["cluster_source"] == "JOB" and shared["state"] in ("PENDING", "RUNNING")
    assert api.post(C + "/start", {"cluster_id": shared["cluster_id"]}).status_code == 400
    r = api.post(J + "/runs/submit", {"tasks": [{"task_key": "x", "existing_cluster_id": shared["cluster_id"],
                                                 "notebook_task": {"notebook_path": "/Shared/j/hello"}}]})
    assert r.status_code == 400 and r.json()["message"] == "existing_cluster_id only supports all-purpose cluster IDs"
    for _ in range(40):                      # a, then b (after a), each RUNNING for 60 s of the workspace clock
        emu.state.clock.advance(61)
        time.sleep(0.1)
        if run_of(api, rid)["state"]["life_cycle_state"] == "TERMINATED":
            break
    run = wait(api, rid)
    assert run["state"]["result_state"] == "SUCCESS"
    by_key = {t["task_key"]: t for t in run["tasks"]}
    assert by_key["a"]["cluster_instance"]["cluster_id"] == by_key["b"]["cluster_instance"]["cluster_id"] == \
        shared["cluster_id"]
    assert by_key["a"]["cluster_instance"]["spark_context_id"] == by_key["b"]["cluster_instance"]["spark_context_id"]
    assert by_key["own"]["cluster_instance"]["spark_context_id"].isdigit()
    for cid in (shared["cluster_id"], own["cluster_id"]):
        d = api.get(C + "/get", cluster_id=cid).json()
        assert d["state"] in ("TERMINATING", "TERMINATED") and d["termination_reason"]["code"] == "JOB_FINISHED"


def test_a_job_cluster_that_cannot_launch_fails_its_task(emu, api, jobs):
    notebook(api, "/Shared/j/hello", "dbutils.notebook.exit('hello')")
    emu.config.update({"cluster_launch_failure": "CLOUD_PROVIDER_LAUNCH_FAILURE"})
    rid = submit(api, [{"task_key": "a", "new_cluster": SPEC, "notebook_task": {"notebook_path": "/Shared/j/hello"}}])
    task = wait(api, rid)["tasks"][0]
    assert task["state"]["life_cycle_state"] == "INTERNAL_ERROR"
    assert "CLOUD_PROVIDER_LAUNCH_FAILURE(CLOUD_FAILURE)" in task["state"]["state_message"]
    assert task["status"]["termination_details"]["code"] == "CLUSTER_ERROR"


def test_cancel_is_asynchronous_and_interrupts_the_code(emu, api, jobs):
    emu.config.update({"jobs_cancel_seconds": 30})
    notebook(api, "/Shared/j/sleepy", "import time\ntime.sleep(60)\ndbutils.notebook.exit('woke')")
    rid = submit(api, [{"task_key": "a", "notebook_task": {"notebook_path": "/Shared/j/sleepy"}}])
    wait(api, rid, life=("RUNNING",))
    time.sleep(0.3)
    assert api.post(J + "/runs/cancel", {"run_id": rid}).json() == {}
    run = run_of(api, rid)
    assert run["state"]["life_cycle_state"] == "TERMINATING" and run["end_time"] == 0
    assert run["tasks"][0]["state"]["life_cycle_state"] == "TERMINATING"
    emu.state.clock.advance(31)                               # past the clean-up
    run = wait(api, rid)
    assert run["state"]["life_cycle_state"] == "TERMINATED" and run["state"]["result_state"] == "CANCELED"
    assert run["state"]["user_cancelled_or_timedout"] is True
    assert run["status"]["termination_details"]["code"] == "USER_CANCELED"
    task = run["tasks"][0]
    assert task["cleanup_duration"] == 30000 and run["cleanup_duration"] == 30000     # single task: the run's too
    assert task["state"]["result_state"] == "CANCELED"
    assert "notebook_output" not in output(api, task["run_id"]) or \
        output(api, task["run_id"])["notebook_output"] == {}


def test_a_task_whose_cluster_goes_away_fails(emu, api, jobs):
    cid = emu.state.add_cluster(state="RUNNING")
    put(api, "/Shared/j/long.py", "import time\ntime.sleep(60)", format="AUTO")
    rid = submit(api, [{"task_key": "a", "existing_cluster_id": cid,
                        "spark_python_task": {"python_file": "/Shared/j/long.py"}}])
    wait(api, rid, life=("RUNNING",))
    assert api.post(C + "/delete", {"cluster_id": cid}).status_code == 200
    task = wait(api, rid)["tasks"][0]
    assert task["state"]["life_cycle_state"] == "INTERNAL_ERROR"
    assert task["state"]["state_message"] == f"Cluster {cid} was terminated during the run."


def test_a_task_past_its_timeout_ends_timedout(api, jobs):
    put(api, "/Shared/j/slow.py", "import time\ntime.sleep(60)", format="AUTO")
    rid = submit(api, [{"task_key": "a", "timeout_seconds": 1, "spark_python_task": {"python_file": "/Shared/j/slow.py"}}])
    run = wait(api, rid)
    assert run["tasks"][0]["state"]["result_state"] == "TIMEDOUT" and run["state"]["result_state"] == "TIMEDOUT"
    assert run["end_time"] - run["start_time"] < 30000                     # interrupted, not slept out


def test_views_carry_only_what_databricks_sends(api, jobs):
    notebook(api, "/Shared/j/hello", "dbutils.notebook.exit('hello')")
    rid = submit(api, [{"task_key": "a", "notebook_task": {"notebook_path": "/Shared/j/hello"}},
                       {"task_key": "b", "depends_on": [{"task_key": "a"}],
                        "notebook_task": {"notebook_path": "/Shared/j/hello"}}])
    run = wait(api, rid)
    assert set(run) <= RUN_FIELDS and "format" not in run
    for t in run["tasks"]:
        assert set(t) <= RUN_TASK_FIELDS, set(t) - RUN_TASK_FIELDS
    assert run["setup_duration"] == run["execution_duration"] == run["cleanup_duration"] == 0   # multitask
    task_run = run_of(api, run["tasks"][0]["run_id"])
    assert set(task_run) <= RUN_FIELDS, set(task_run) - RUN_FIELDS
    assert task_run["run_id"] == run["tasks"][0]["run_id"] and task_run["tasks"][0]["task_key"] == "a"
    out = output(api, run["tasks"][0]["run_id"])
    assert set(out) <= RUN_OUTPUT_FIELDS and set(out["metadata"]) <= RUN_FIELDS
    assert "notebook_task" not in out["metadata"] and "task_key" not in out["metadata"]
    listed = api.get(J + "/runs/list", expand_tasks="true").json()["runs"][0]
    assert set(listed) <= RUN_FIELDS and "format" not in listed
    for path in ("/runs/get-output", "/runs/export"):
        r = api.get(J + path, run_id=rid)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", path
    export = api.get(J + "/runs/export", run_id=run["tasks"][0]["run_id"]).json()
    assert export["views"][0]["type"] == "NOTEBOOK" and "dbutils.notebook.exit" in export["views"][0]["content"]


def test_notebooks_run_their_cells_with_widgets_sql_and_run(api, jobs):
    notebook(api, "/Shared/j/lib", "def double(x):\n    return 2 * x\n")
    notebook(api, "/Shared/j/main", "\n\n# COMMAND ----------\n\n".join([
        "dbutils.widgets.text('n', '5')\nn = int(dbutils.widgets.get('n'))",
        "# MAGIC %md\n# MAGIC # Heading: markdown cells do not run",
        "# MAGIC %run ./lib",
        "# MAGIC %sql\n# MAGIC SELECT 1 AS one",
        "answer = spark.sql('SELECT 6 * 7 AS a').first()[0]",
        "dbutils.notebook.exit(f'{double(n)} {answer}')",
        "raise RuntimeError('never reached: exit ended the notebook')"]))
    notebook(api, "/Shared/j/bad", "print('before')\n\n# COMMAND ----------\n\nx = dbutils.widgets.get('nope')")
    notebook(api, "/Shared/j/q", "SELECT 1 AS one;\nSELECT 2 AS two", language="SQL")
    notebook(api, "/Shared/j/scala", "println(1)", language="SCALA")
    rid = submit(api, [{"task_key": "default", "notebook_task": {"notebook_path": "/Shared/j/main"}},
                       {"task_key": "given", "notebook_task": {"notebook_path": "/Shared/j/main",
                                                               "base_parameters": {"n": "21"}}},
                       {"task_key": "bad", "notebook_task": {"notebook_path": "/Shared/j/bad"}},
                       {"task_key": "sql", "notebook_task": {"notebook_path": "/Shared/j/q"}},
                       {"task_key": "scala", "notebook_task": {"notebook_path": "/Shared/j/scala"}}])
    run = wait(api, rid)
    t = {x["task_key"]: x for x in run["tasks"]}
    assert output(api, t["default"]["run_id"])["notebook_output"]["result"] == "10 42"
    assert output(api, t["given"]["run_id"])["notebook_output"]["result"] == "42 42"
    bad = output(api, t["bad"]["run_id"])
    assert bad["error"] == "InputWidgetNotDefined: No input widget named nope is defined"
    assert "<command-2>" in bad["error_trace"] and t["bad"]["state"]["state_message"] == \
        "Workload failed, see run output for details"
    assert t["sql"]["state"]["result_state"] == "SUCCESS"
    assert t["scala"]["state"]["life_cycle_state"] == "INTERNAL_ERROR"
    assert "Python and SQL notebooks only" in t["scala"]["state"]["state_message"]


def _wheel() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello_pkg/__init__.py", "import sys\n\ndef main():\n    print('wheel', sys.argv[1:])\n")
        zf.writestr("hello_pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: hello-pkg\nVersion: 1.0\n")
        zf.writestr("hello_pkg-1.0.dist-info/entry_points.txt", "[console_scripts]\nhello = hello_pkg:main\n")
        zf.writestr("hello_pkg-1.0.dist-info/RECORD", "")
    return buf.getvalue()


def test_python_wheel_tasks_run_their_entry_point(api, jobs):
    whl = "/Shared/j/wheels/hello_pkg-1.0-py3-none-any.whl"
    put(api, whl, _wheel(), format="AUTO")
    lib = [{"whl": "/Workspace" + whl}, {"pypi": {"package": "ignored-here"}}]
    rid = submit(api, [
        {"task_key": "args", "libraries": lib,
         "python_wheel_task": {"package_name": "hello_pkg", "entry_point": "hello", "parameters": ["a", "b"]}},
        {"task_key": "named", "libraries": lib,
         "python_wheel_task": {"package_name": "hello_pkg", "entry_point": "main", "named_parameters": {"x": "1"}}},
        {"task_key": "missing", "libraries": [{"whl": "/Shared/j/wheels/none.whl"}],
         "python_wheel_task": {"package_name": "hello_pkg", "entry_point": "hello"}}])
    run = wait(api, rid)
    t = {x["task_key"]: x for x in run["tasks"]}
    assert output(api, t["args"]["run_id"])["logs"] == "wheel ['a', 'b']\n"
    assert output(api, t["named"]["run_id"])["logs"] == "wheel ['--x=1']\n"       # package.entry_point()
    assert t["missing"]["state"]["life_cycle_state"] == "INTERNAL_ERROR"
    assert t["missing"]["status"]["termination_details"]["code"] == "LIBRARY_INSTALLATION_ERROR"


def test_scripts_child_runs_and_what_cannot_run(api, jobs):
    put(api, "/Shared/j/args.py", "import sys\nprint(sys.argv)\nraise SystemExit(0)", format="AUTO")
    notebook(api, "/Shared/j/hello", "dbutils.notebook.exit('hello')")
    child = api.post(J + "/create", {"name": "child", "tasks": [
        {"task_key": "c", "notebook_task": {"notebook_path": "/Shared/j/hello"}}]}).json()["job_id"]
    rid = submit(api, [
        {"task_key": "script", "spark_python_task": {"python_file": "/Shared/j/args.py", "parameters": ["x"]}},
        {"task_key": "nofile", "spark_python_task": {"python_file": "/Shared/j/none.py"}},
        {"task_key": "dbfs", "spark_python_task": {"python_file": "dbfs:/x.py"}},
        {"task_key": "child", "run_job_task": {"job_id": child}},
        {"task_key": "jar", "spark_jar_task": {"main_class_name": "Main"}}])
    run = wait(api, rid)
    t = {x["task_key"]: x for x in run["tasks"]}
    assert output(api, t["script"]["run_id"])["logs"] == "['/Shared/j/args.py', 'x']\n"
    assert t["script"]["state"]["result_state"] == "SUCCESS"
    assert t["nofile"]["state"]["state_message"] == "Python file /Shared/j/none.py does not exist in the workspace."
    assert "workspace only" in t["dbfs"]["state"]["state_message"]
    child_run = output(api, t["child"]["run_id"])["run_job_output"]["run_id"]
    assert t["child"]["state"]["result_state"] == "SUCCESS"
    assert run_of(api, child_run)["job_id"] == child and run_of(api, child_run)["trigger"] == "RUN_JOB_TASK"
    assert "does not run spark_jar_task tasks" in t["jar"]["state"]["state_message"]


def test_settings_are_checked_when_a_job_is_created(api, jobs):
    bad = [({"notebook_task": {"notebook_path": "relative/nb"}}, "Invalid notebook_path: relative/nb."),
           ({"notebook_task": {"notebook_path": "/x"}, "new_cluster": dict(SPEC, node_type_id="huge.box")},
            "Node type huge.box is not supported."),
           ({"notebook_task": {"notebook_path": "/x"}, "existing_cluster_id": "a", "new_cluster": SPEC},
            "can use only one of"),
           ({"spark_python_task": {}}, "spark_python_task.python_file")]
    for body, text in bad:
        r = api.post(J + "/create", {"name": "bad", "tasks": [dict(body, task_key="t")]})
        assert r.status_code == 400 and text in r.json()["message"], (body, r.text)
