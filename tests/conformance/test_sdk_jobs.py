"""The official SDK drives the Jobs API on the emulator: notebooks imported with the SDK's
Workspace API, job clusters, run_now and the SDK's run waiter, outputs, cancel, repair."""
import base64
from datetime import timedelta

import pytest
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
    w.jobs.delete(job.job_id)
    assert w.recorder.check() > 4


def test_submit_cancel_and_cancel_all(w, notebooks, cluster_spec):
    submitted = w.jobs.submit(run_name="sdk-once", tasks=[jobs.SubmitTask(
        task_key="slow", new_cluster=cluster_spec, notebook_task=jobs.NotebookTask(notebook_path=notebooks["slow"]))])
    cancelled = w.jobs.cancel_run(submitted.run_id).result(timeout=WAIT)
    assert cancelled.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert cancelled.state.result_state == jobs.RunResultState.CANCELED

    job = w.jobs.create(name="sdk-cancel-all", tasks=[jobs.Task(
        task_key="slow", new_cluster=cluster_spec, notebook_task=jobs.NotebookTask(notebook_path=notebooks["slow"]))])
    run_id = w.jobs.run_now(job.job_id).run_id
    w.jobs.cancel_all_runs(job_id=job.job_id)
    assert w.jobs.wait_get_run_job_terminated_or_skipped(run_id, timeout=WAIT).state.result_state == \
        jobs.RunResultState.CANCELED
    w.jobs.delete(job.job_id)
    assert w.recorder.check() > 4
