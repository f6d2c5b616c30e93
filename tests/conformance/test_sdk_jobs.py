"""The official SDK drives the Jobs API on the emulator: notebooks imported with the SDK's
Workspace API, job clusters, run_now and the SDK's run waiter, outputs, cancel, repair."""
import base64
from datetime import timedelta

import pytest
from databricks.sdk.errors import InvalidParameterValue, OperationFailed
from databricks.sdk.service import compute, jobs, workspace

WAIT = timedelta(seconds=90)
HOME = "/Users/emulator-user@example.com/sdk-jobs"


def notebook(w, name, source):
    path = f"{HOME}/{name}"
    w.workspace.import_(path, content=base64.b64encode(source.encode()).decode(),
                        format=workspace.ImportFormat.SOURCE, language=workspace.Language.PYTHON, overwrite=True)
    return path


@pytest.fixture(scope="module")
def notebooks(w):
    w.workspace.mkdirs(HOME)
    return {
        "ok": notebook(w, "ok", "# Databricks notebook source\nn = int(dbutils.widgets.get('n'))\n"
                                "dbutils.notebook.exit(str(n * 2))\n"),
        "flaky": notebook(w, "flaky", "# Databricks notebook source\n"
                                      "if dbutils.widgets.get('fail') == 'yes':\n    raise ValueError('boom')\n"
                                      "dbutils.notebook.exit('fixed')\n"),
        "slow": notebook(w, "slow", "# Databricks notebook source\nimport time\ntime.sleep(60)\n"),
    }


@pytest.fixture(scope="module")
def cluster_spec(w):
    return compute.ClusterSpec(spark_version=w.clusters.select_spark_version(latest=True, long_term_support=True),
                               node_type_id=w.clusters.select_node_type(local_disk=True), num_workers=1)


def test_job_create_run_now_wait_output(w, notebooks, cluster_spec):
    job = w.jobs.create(
        name="sdk-conformance", max_concurrent_runs=2,
        job_clusters=[jobs.JobCluster(job_cluster_key="main", new_cluster=cluster_spec)],
        parameters=[jobs.JobParameterDefinition(name="n", default="3")],
        tasks=[jobs.Task(task_key="double", job_cluster_key="main",
                         notebook_task=jobs.NotebookTask(notebook_path=notebooks["ok"]))])
    got = w.jobs.get(job.job_id)
    assert got.settings.name == "sdk-conformance" and got.settings.tasks[0].task_key == "double"
    assert got.settings.max_concurrent_runs == 2 and got.creator_user_name
    assert job.job_id in [j.job_id for j in w.jobs.list(name="sdk-conformance")]

    run = w.jobs.run_now(job.job_id, job_parameters={"n": "21"}).result(timeout=WAIT)
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert run.status.state == jobs.RunLifecycleStateV2State.TERMINATED
    assert run.status.termination_details.code == jobs.TerminationCodeCode.SUCCESS
    (task,) = run.tasks
    assert task.cluster_instance.cluster_id and task.state.result_state == jobs.RunResultState.SUCCESS
    with pytest.raises(InvalidParameterValue):  # a multitask run's output is its tasks'
        w.jobs.get_run_output(run.run_id)
    out = w.jobs.get_run_output(task.run_id)
    assert out.notebook_output.result == "42" and out.metadata.run_id == task.run_id
    exported = w.jobs.export_run(task.run_id)
    assert exported.views and exported.views[0].content
    assert run.run_id in [r.run_id for r in w.jobs.list_runs(job_id=job.job_id, expand_tasks=True)]

    w.jobs.update(job.job_id, new_settings=jobs.JobSettings(name="sdk-renamed"))
    assert w.jobs.get(job.job_id).settings.name == "sdk-renamed"
    w.jobs.reset(job.job_id, new_settings=jobs.JobSettings(
        name="sdk-reset", tasks=[jobs.Task(task_key="double", new_cluster=cluster_spec,
                                           notebook_task=jobs.NotebookTask(notebook_path=notebooks["ok"],
                                                                           base_parameters={"n": "1"}))]))
    assert w.jobs.get(job.job_id).settings.name == "sdk-reset"
    w.jobs.delete_run(run.run_id)
    w.jobs.delete(job.job_id)
    assert w.recorder.check() > 8


def test_failed_run_then_repair(w, notebooks, cluster_spec):
    job = w.jobs.create(name="sdk-repair", parameters=[jobs.JobParameterDefinition(name="fail", default="yes")],
                        tasks=[jobs.Task(task_key="flaky", new_cluster=cluster_spec,
                                         notebook_task=jobs.NotebookTask(notebook_path=notebooks["flaky"]))])
    waiter = w.jobs.run_now(job.job_id)
    # the SDK's waiter ends on TERMINATED whatever the result (it fails only on INTERNAL_ERROR)
    failed = waiter.result(timeout=WAIT)
    assert failed.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert failed.state.result_state == jobs.RunResultState.FAILED
    out = w.jobs.get_run_output(failed.tasks[0].run_id)
    assert "boom" in out.error and "ValueError" in out.error_trace

    repaired = w.jobs.repair_run(waiter.run_id, rerun_all_failed_tasks=True,
                                 job_parameters={"fail": "no"}).result(timeout=WAIT)
    assert repaired.state.result_state == jobs.RunResultState.SUCCESS
    assert repaired.repair_history and repaired.repair_history[-1].type == jobs.RepairHistoryItemType.REPAIR
    latest = [t for t in repaired.tasks if t.task_key == "flaky"][-1]
    assert w.jobs.get_run_output(latest.run_id).notebook_output.result == "fixed"
    # a second repair names the latest one; the history keeps both
    again = w.jobs.repair_run(waiter.run_id, rerun_tasks=["flaky"], job_parameters={"fail": "no"},
                              latest_repair_id=repaired.repair_history[-1].id).result(timeout=WAIT)
    history = w.jobs.get_run(waiter.run_id, include_history=True).repair_history
    assert [h.type for h in history] == [jobs.RepairHistoryItemType.ORIGINAL] + [jobs.RepairHistoryItemType.REPAIR] * 2
    assert again.state.result_state == jobs.RunResultState.SUCCESS
    w.jobs.delete(job.job_id)
    assert w.recorder.check() > 4


def test_submit_cancel_and_cancel_all(w, notebooks, cluster_spec):
    submitted = w.jobs.submit(run_name="sdk-once", tasks=[jobs.SubmitTask(
        task_key="slow", new_cluster=cluster_spec, notebook_task=jobs.NotebookTask(notebook_path=notebooks["slow"]))])
    cancelled = w.jobs.cancel_run(submitted.run_id).result(timeout=WAIT)
    assert cancelled.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert cancelled.state.result_state == jobs.RunResultState.CANCELED

    job = w.jobs.create(name="sdk-cancel-all", max_concurrent_runs=1, queue=jobs.QueueSettings(enabled=True),
                        tasks=[jobs.Task(task_key="slow", new_cluster=cluster_spec,
                                         notebook_task=jobs.NotebookTask(notebook_path=notebooks["slow"]))])
    first, second = (w.jobs.run_now(job.job_id).run_id for _ in range(2))
    queued = w.jobs.get_run(second).state
    assert queued.life_cycle_state == jobs.RunLifeCycleState.QUEUED and queued.queue_reason
    assert {first, second} <= {r.run_id for r in w.jobs.list_runs(job_id=job.job_id, active_only=True)}
    w.jobs.cancel_all_runs(job_id=job.job_id)
    for run_id in (first, second):
        assert w.jobs.wait_get_run_job_terminated_or_skipped(run_id, timeout=WAIT).state.result_state == \
            jobs.RunResultState.CANCELED
    w.jobs.delete(job.job_id)

    # a run that cannot start ends in INTERNAL_ERROR: the SDK's waiter raises OperationFailed
    with pytest.raises(OperationFailed, match="INTERNAL_ERROR.*Unable to access the notebook"):
        w.jobs.submit_and_wait(run_name="sdk-missing", timeout=WAIT, tasks=[jobs.SubmitTask(
            task_key="a", new_cluster=cluster_spec, notebook_task=jobs.NotebookTask(notebook_path=f"{HOME}/nope"))])
    assert w.recorder.check() > 4


def test_paged_arrays_and_lists(w, knobs, notebooks, cluster_spec):
    """jobs/get and runs/get page their arrays (2.2); the SDK merges the pages; lists page too."""
    knobs({"jobs_array_page_size": 1})
    tasks = [jobs.Task(task_key=f"t{i}", job_cluster_key="c",
                       notebook_task=jobs.NotebookTask(notebook_path=notebooks["ok"], base_parameters={"n": str(i)}))
             for i in range(3)]
    ids = [w.jobs.create(name=f"sdk-paged-{k}", tasks=tasks, job_clusters=[
        jobs.JobCluster(job_cluster_key="c", new_cluster=cluster_spec)]).job_id for k in range(2)]
    assert [t.task_key for t in w.jobs.get(ids[0]).settings.tasks] == ["t0", "t1", "t2"]
    run = w.jobs.run_now(ids[0]).result(timeout=WAIT)
    assert sorted(t.task_key for t in run.tasks) == ["t0", "t1", "t2"]
    assert sorted(w.jobs.get_run_output(t.run_id).notebook_output.result for t in run.tasks) == ["0", "2", "4"]
    assert {j.job_id for j in w.jobs.list(limit=1)} >= set(ids)
    assert len([a for a in w.recorder.answers if a["path"].endswith("/jobs/list")]) >= 2
    assert [r.run_id for r in w.jobs.list_runs(job_id=ids[0], limit=1)] == [run.run_id]
    for job_id in ids:
        w.jobs.delete(job_id)
    assert w.recorder.check() > 6


def test_rich_job_every_runnable_task_kind(w, notebooks, cluster_spec):
    """Settings with schedule, tags, notifications, health; condition, notebook, Python file, SQL
    file and run-job tasks with depends_on/run_if; each task's output read through the SDK."""
    import io

    w.workspace.upload(f"{HOME}/script.py", io.BytesIO(b"import sys\nprint('args', sys.argv[1:])\n"),
                       format=workspace.ImportFormat.AUTO, overwrite=True)
    w.workspace.upload(f"{HOME}/q.sql", io.BytesIO(b"SELECT :x AS x;\n"), format=workspace.ImportFormat.AUTO,
                       overwrite=True)
    warehouse = next(iter(w.warehouses.list())).id
    child = w.jobs.create(name="sdk-child", tasks=[jobs.Task(task_key="c", new_cluster=cluster_spec,
                          notebook_task=jobs.NotebookTask(notebook_path=notebooks["ok"],
                                                          base_parameters={"n": "5"}))]).job_id
    job = w.jobs.create(
        name="sdk-rich", tags={"team": "sdk"}, timeout_seconds=600,
        schedule=jobs.CronSchedule(quartz_cron_expression="0 0 5 * * ?", timezone_id="UTC",
                                   pause_status=jobs.PauseStatus.PAUSED),
        email_notifications=jobs.JobEmailNotifications(on_failure=["ops@example.com"]),
        health=jobs.JobsHealthRules(rules=[jobs.JobsHealthRule(
            metric=jobs.JobsHealthMetric.RUN_DURATION_SECONDS, op=jobs.JobsHealthOperator.GREATER_THAN, value=3600)]),
        parameters=[jobs.JobParameterDefinition(name="go", default="yes")],
        job_clusters=[jobs.JobCluster(job_cluster_key="main", new_cluster=cluster_spec)],
        tasks=[
            jobs.Task(task_key="check", condition_task=jobs.ConditionTask(
                op=jobs.ConditionTaskOp.EQUAL_TO, left="{{job.parameters.go}}", right="yes")),
            jobs.Task(task_key="nb", job_cluster_key="main", depends_on=[jobs.TaskDependency("check", outcome="true")],
                      notebook_task=jobs.NotebookTask(notebook_path=notebooks["ok"], base_parameters={"n": "4"})),
            jobs.Task(task_key="py", job_cluster_key="main", depends_on=[jobs.TaskDependency("nb")],
                      spark_python_task=jobs.SparkPythonTask(python_file=f"/Workspace{HOME}/script.py",
                                                             parameters=["a", "b"])),
            jobs.Task(task_key="sql", depends_on=[jobs.TaskDependency("nb")], run_if=jobs.RunIf.ALL_DONE,
                      sql_task=jobs.SqlTask(warehouse_id=warehouse, parameters={"x": "1"},
                                            file=jobs.SqlTaskFile(path=f"/Workspace{HOME}/q.sql"))),
            jobs.Task(task_key="child", depends_on=[jobs.TaskDependency("check", outcome="true")],
                      run_job_task=jobs.RunJobTask(job_id=child)),
        ]).job_id
    settings = w.jobs.get(job).settings
    assert settings.schedule.pause_status == jobs.PauseStatus.PAUSED and settings.tags == {"team": "sdk"}
    run = w.jobs.run_now(job).result(timeout=WAIT)
    assert run.state.result_state == jobs.RunResultState.SUCCESS, [(t.task_key, t.state) for t in run.tasks]
    by_key = {t.task_key: t for t in run.tasks}
    assert by_key["check"].condition_task.outcome == "true"
    assert w.jobs.get_run_output(by_key["nb"].run_id).notebook_output.result == "8"
    assert "args ['a', 'b']" in w.jobs.get_run_output(by_key["py"].run_id).logs
    assert w.jobs.get_run_output(by_key["sql"].run_id).sql_output is not None
    child_out = w.jobs.get_run_output(by_key["child"].run_id)
    assert child_out.run_job_output.run_id
    assert w.jobs.get_run(child_out.run_job_output.run_id).state.result_state == jobs.RunResultState.SUCCESS
    w.jobs.delete(job)
    w.jobs.delete(child)
    assert w.recorder.check() > 8
