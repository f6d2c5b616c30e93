"""Scenarios of the jobs area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import SCENARIO_NOTEBOOK, fast_jobs, picker_scenario, scenario


# --------------------------------------------------------------------------- jobs

TASKS = [{"task_key": "main", "notebook_task": {"notebook_path": SCENARIO_NOTEBOOK}}]


def _job(emulator, connector, conn, name=None):
    fast_jobs(emulator)
    return connector.run("create_job", conn, {"name": name or f"scn-{uuid.uuid4().hex[:8]}", "tasks": TASKS})["job_id"]


def _run(emulator, connector, conn, *, finished=True, task_seconds=0.05):
    job_id = _job(emulator, connector, conn)
    fast_jobs(emulator, task_seconds)
    out = connector.run("run_job_now", conn, {"job_id": job_id, "wait_for_completion": finished,
                                              "poll_interval_seconds": 0.1, "timeout_seconds": 30})
    return job_id, out["run_id"]


def _unknown_job(emulator, connector, conn):
    return {"job_id": 999999}


def _unknown_run(emulator, connector, conn):
    return {"run_id": 999999}


@scenario("create_job", changes_state=True, applied=("jobs/create",),
          check=lambda out, inputs, conn: isinstance(out.get("job_id"), int))
def _create_job(emulator, connector, conn):
    return {"name": f"scn-{uuid.uuid4().hex[:8]}", "tasks": TASKS}


@scenario("get_job", check=lambda out, inputs, conn: out.get("job_id") == inputs["job_id"], failing=_unknown_job)
def _get_job(emulator, connector, conn):
    return {"job_id": _job(emulator, connector, conn)}


@scenario("list_jobs", check=lambda out, inputs, conn: out.get("count") == len(out.get("jobs", [])))
def _list_jobs(emulator, connector, conn):
    name = f"scn-{uuid.uuid4().hex[:8]}"
    _job(emulator, connector, conn, name)
    return {"name": name, "max_items": 5}


@scenario("update_job", changes_state=True, applied=("jobs/update",), retry_safe="natural", failing=lambda e, c, conn: {
    "job_id": 999999, "new_settings": {"max_concurrent_runs": 2}})
def _update_job(emulator, connector, conn):
    return {"job_id": _job(emulator, connector, conn), "new_settings": {"max_concurrent_runs": 2}}


@scenario("reset_job", changes_state=True, applied=("jobs/reset",), retry_safe="natural", failing=lambda e, c, conn: {
    "job_id": 999999, "settings": {"name": "x", "tasks": TASKS}})
def _reset_job(emulator, connector, conn):
    return {"job_id": _job(emulator, connector, conn), "settings": {"name": "reset", "tasks": TASKS}}


@scenario("delete_job", changes_state=True, applied=("jobs/delete",), failing=_unknown_job)
def _delete_job(emulator, connector, conn):
    return {"job_id": _job(emulator, connector, conn)}


def _wait_run_now(emulator, connector, conn):
    job_id = _job(emulator, connector, conn)
    fast_jobs(emulator, task_seconds=1.5)
    return {"job_id": job_id, "wait_for_completion": True, "poll_interval_seconds": 0.2, "timeout_seconds": 30}


@scenario("run_job_now", changes_state=True, applied=("jobs/run-now",), retry_safe="token", failing=_unknown_job,
          wait=_wait_run_now, check=lambda out, inputs, conn: isinstance(out.get("run_id"), int))
def _run_job_now(emulator, connector, conn):
    return {"job_id": _job(emulator, connector, conn)}


@scenario("submit_run", changes_state=True, applied=("jobs/runs/submit",), retry_safe="token",
          check=lambda out, inputs, conn: isinstance(out.get("run_id"), int))
def _submit_run(emulator, connector, conn):
    fast_jobs(emulator)
    return {"run_name": f"scn-{uuid.uuid4().hex[:8]}", "tasks": TASKS}


@scenario("run_notebook", changes_state=True, applied=("jobs/runs/submit",), retry_safe="token",
          main=("POST", r"/api/2\.2/jobs/runs/submit"),
          check=lambda out, inputs, conn: out.get("exit_value") == "done" and out["state"]["result_state"] == "SUCCESS",
          failing=lambda emulator, connector, conn: {"notebook_path": "/Shared/no-such-notebook", "timeout_seconds": 30,
                                                     "poll_interval_seconds": 0.1})
def _run_notebook(emulator, connector, conn):
    fast_jobs(emulator)
    return {"notebook_path": SCENARIO_NOTEBOOK, "base_parameters": {"day": "2024-01-01"}, "timeout_seconds": 60,
            "poll_interval_seconds": 0.1}


@scenario("get_run", check=lambda out, inputs, conn: out.get("run_id") == inputs["run_id"], failing=_unknown_run)
def _get_run(emulator, connector, conn):
    return {"run_id": _run(emulator, connector, conn, finished=False)[1]}


@scenario("get_run_output", failing=_unknown_run)
def _get_run_output(emulator, connector, conn):
    return {"run_id": _run(emulator, connector, conn)[1]}


@scenario("list_runs", check=lambda out, inputs, conn: out.get("count") == len(out.get("runs", [])))
def _list_runs(emulator, connector, conn):
    return {"job_id": _run(emulator, connector, conn, finished=False)[0], "max_items": 5}


@scenario("cancel_run", changes_state=True, applied=("jobs/runs/cancel",), retry_safe="natural", failing=_unknown_run)
def _cancel_run(emulator, connector, conn):
    return {"run_id": _run(emulator, connector, conn, finished=False, task_seconds=30)[1]}


@scenario("cancel_all_runs", changes_state=True, applied=("jobs/runs/cancel-all",), retry_safe="natural",
          failing=_unknown_job)
def _cancel_all_runs(emulator, connector, conn):
    return {"job_id": _run(emulator, connector, conn, finished=False, task_seconds=30)[0]}


@scenario("repair_run", changes_state=True, applied=("jobs/runs/repair",), failing=_unknown_run)
def _repair_run(emulator, connector, conn):
    return {"run_id": _run(emulator, connector, conn)[1], "rerun_tasks": ["main"]}


@scenario("delete_run", changes_state=True, applied=("jobs/runs/delete",), failing=_unknown_run)
def _delete_run(emulator, connector, conn):
    return {"run_id": _run(emulator, connector, conn)[1]}


@scenario("export_run", failing=_unknown_run)
def _export_run(emulator, connector, conn):
    _, run_id = _run(emulator, connector, conn)
    run = connector.run("get_run", conn, {"run_id": run_id})
    return {"run_id": run["tasks"][0]["run_id"]}


# --------------------------------------------------------------------------- pickers that take another input

@picker_scenario("select_job_task")
def _select_job_task(emulator, connector, conn):
    return {"job_id": _job(emulator, connector, conn)}


@picker_scenario("select_run_task")
def _select_run_task(emulator, connector, conn):
    return {"run_id": _run(emulator, connector, conn, finished=False)[1]}
