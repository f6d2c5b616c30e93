"""Jobs API 2.2: jobs, runs, their outputs and repairs.

API 2.2 pages the big arrays of ``jobs/get`` (``tasks``, ``job_clusters``, ``parameters``,
``environments``) and ``runs/get`` (``tasks``, ``iterations``, ``job_clusters``,
``job_parameters``, ``repair_history``) at 100 elements; every read here follows
``next_page_token`` and concatenates them, as the official SDK does.
"""
from __future__ import annotations

import json
import uuid

from .. import pickers, results
from ..errors import ConnectorError, InputError

API = "/api/2.2/jobs"
JOB_ARRAYS = ("tasks", "job_clusters", "parameters", "environments")
RUN_ARRAYS = ("tasks", "iterations", "job_clusters", "job_parameters", "repair_history")
TERMINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
SUCCESS = ("SUCCESS", "SUCCESS_WITH_FAILURES")
LEGACY_LISTS = ("python_params", "jar_params", "spark_submit_params")
LEGACY_MAPS = ("notebook_params", "python_named_params", "sql_params")
RUN_OUTPUT_WORKERS = 10       # task outputs fetched at once (runs/get-output), in order
OUTPUT_FIELDS = ("notebook_output", "sql_output", "dbt_output", "run_job_output", "clean_rooms_notebook_output",
                 "logs", "logs_truncated", "info")


# --------------------------------------------------------------------------- paged reads

def _paged_get(session, path, params, holder_key=None, arrays=()):
    """GET an object whose arrays are paged (2.2) and return it with the arrays concatenated."""
    first = session.get(path, params)
    holder = first.get(holder_key) if holder_key else first
    seen = set()
    token = first.get("next_page_token")
    while token and token not in seen:
        seen.add(token)
        page = session.get(path, dict(params, page_token=token))
        src = page.get(holder_key) if holder_key else page
        if isinstance(holder, dict) and isinstance(src, dict):
            for name in arrays:
                more = src.get(name)
                if more:
                    holder.setdefault(name, [])
                    holder[name].extend(more)
        token = page.get("next_page_token")
    first.pop("next_page_token", None)
    first.pop("has_more", None)
    first.pop("prev_page_token", None)
    return first


def _fetch_job(session, job_id):
    return _paged_get(session, f"{API}/get", {"job_id": job_id}, "settings", JOB_ARRAYS)


def _fetch_run(session, run_id, **extra):
    params = {"run_id": run_id}
    params.update({k: v for k, v in extra.items() if v is not None})
    return _paged_get(session, f"{API}/runs/get", params, None, RUN_ARRAYS)


# --------------------------------------------------------------------------- jobs

def _parameters(value):
    """Job parameters from an array of {name, default}, a form's key-value list or an object."""
    if value is None:
        return None
    if isinstance(value, dict):
        return [{"name": str(k), "default": v if isinstance(v, str) else str(v)} for k, v in value.items()]
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict) and "name" in item:
                out.append({"name": str(item["name"]), "default": item.get("default", "")})
            elif isinstance(item, dict) and "key" in item:
                out.append({"name": str(item["key"]), "default": item.get("value", "")})
            else:
                raise InputError([{"key": "parameters", "label": "Parameters",
                                   "reason": 'each item must be {"name": ..., "default": ...}'}])
        return out
    raise InputError([{"key": "parameters", "label": "Parameters",
                       "reason": 'must be an array of {"name", "default"} or an object of name: default'}])


def _schedule(inputs):
    value = inputs.get("schedule")
    if inputs.get("cron_schedule"):
        value = {"quartz_cron_expression": inputs["cron_schedule"].strip()}
    if value is None:
        return None
    if not isinstance(value, dict) or not value.get("quartz_cron_expression"):
        raise InputError([{"key": "schedule", "label": "Schedule",
                           "reason": "must be a Quartz cron expression or an object with quartz_cron_expression"}])
    value = dict(value)
    value.setdefault("timezone_id", inputs.get("timezone") or "UTC")
    if inputs.get("pause_status"):
        value["pause_status"] = inputs["pause_status"]
    return value


def create_job(session, inputs):
    body = dict(inputs.get("settings") or {})
    structured = {
        "name": inputs.get("name"),
        "description": inputs.get("description"),
        "tasks": inputs.get("tasks"),
        "job_clusters": inputs.get("job_clusters"),
        "schedule": _schedule(inputs),
        "parameters": _parameters(inputs.get("parameters")),
        "tags": inputs.get("tags"),
        "max_concurrent_runs": inputs.get("max_concurrent_runs"),
        "timeout_seconds": inputs.get("job_timeout_seconds"),
        **_typed_settings(inputs),
    }
    body.update({k: v for k, v in structured.items() if v is not None})
    if inputs.get("queue_enabled") is not None:
        body["queue"] = {"enabled": inputs["queue_enabled"]}
    if not body.get("tasks") and not body.get("name"):
        raise InputError([{"key": "tasks", "label": "Tasks", "reason": "give at least a Name or Tasks (or Settings)"}])
    result = session.post(f"{API}/create", body, require=("job_id",))
    return {"job_id": result.get("job_id")}


def get_job(session, inputs):
    return _fetch_job(session, inputs["job_id"])


def list_jobs(session, inputs):
    params = {"limit": 100, "expand_tasks": bool(inputs.get("expand_tasks"))}
    if inputs.get("name"):
        params["name"] = inputs["name"]
    jobs, truncated = session.paginate(f"{API}/list", items="jobs", params=params, max_items=inputs.get("max_items"))
    if inputs.get("expand_tasks"):
        for job in jobs:
            if job.get("has_more"):
                full = _fetch_job(session, job["job_id"])
                job["settings"] = full.get("settings", job.get("settings"))
                job["has_more"] = False
    return {"jobs": jobs, "count": len(jobs), "truncated": truncated}


# typed JobSettings inputs of Create Job and Update Job (sent as given)
TYPED_SETTINGS = ("trigger", "webhook_notifications", "email_notifications", "performance_target")


def _typed_settings(inputs) -> dict:
    return {k: inputs[k] for k in TYPED_SETTINGS if inputs.get(k) is not None}


def update_job(session, inputs):
    new_settings = {**(inputs.get("new_settings") or {}), **_typed_settings(inputs)}
    if not new_settings and not inputs.get("fields_to_remove"):
        raise InputError([{"key": "new_settings", "label": "New Settings",
                           "reason": "or Fields to Remove is required"}])
    body = {"job_id": inputs["job_id"]}
    if new_settings:
        body["new_settings"] = new_settings
    if inputs.get("fields_to_remove"):
        body["fields_to_remove"] = list(inputs["fields_to_remove"])
    session.post(f"{API}/update", body, idempotent=True)
    return {"job_id": inputs["job_id"], "updated": True}


def reset_job(session, inputs):
    session.post(f"{API}/reset", {"job_id": inputs["job_id"], "new_settings": inputs["settings"]}, idempotent=True)
    return {"job_id": inputs["job_id"], "reset": True}


def delete_job(session, inputs):
    session.post(f"{API}/delete", {"job_id": inputs["job_id"]})
    return {"job_id": inputs["job_id"], "deleted": True}


def select_job(session, inputs):
    # the value is the integer Job ID inputs take
    return pickers.from_list(session, f"{API}/list", inputs, items="jobs", require=("job_id",), size_param="limit",
                             option=lambda j: {"label": (j.get("settings") or {}).get("name") or str(j["job_id"]),
                                               "value": j["job_id"]})


# --------------------------------------------------------------------------- runs: shaping

def _state(run):
    s = run.get("state") or {}
    return {"life_cycle_state": s.get("life_cycle_state"), "result_state": s.get("result_state"),
            "state_message": s.get("state_message", "")}


def _succeeded(run) -> bool:
    s = run.get("state") or {}
    return s.get("life_cycle_state") == "TERMINATED" and s.get("result_state") in SUCCESS


def _terminal(run) -> bool:
    return (run.get("state") or {}).get("life_cycle_state") in TERMINAL


def _outputs(session, run):
    """Every task's output, keyed by task_key, in the run's task order. get-output is called for
    each task run id (never for the parent of a multi-task run, which Databricks rejects), with
    bounded concurrency through the runtime's ordered fetch. A run whose runs/get answer has no
    tasks (a task run id, a single-task run) is its own task: its output is get-output of its own
    run id."""
    tasks = [t for t in run.get("tasks") or [] if isinstance(t, dict)]
    if not tasks and run.get("run_id") is not None:
        tasks = [dict(run, task_key=run.get("task_key") or str(run["run_id"]))]

    def fetch(task):
        if task.get("run_id") is None:
            return None
        return session.get(f"{API}/runs/get-output", {"run_id": task["run_id"]})

    out_tasks = {}
    for task, out in results.ordered(fetch, tasks, workers=RUN_OUTPUT_WORKERS, name="run-outputs"):
        key = task.get("task_key") or str(task.get("run_id"))
        entry = {"task_run_id": task.get("run_id"), "state": _state(task), "status": task.get("status"),
                 "run_page_url": task.get("run_page_url"), "result": None, "error": None, "error_trace": None}
        if isinstance(out, dict):
            result = {k: out[k] for k in OUTPUT_FIELDS if k in out}
            entry["result"] = result or None
            entry["error"] = out.get("error")
            entry["error_trace"] = out.get("error_trace")
            if (out.get("metadata") or {}).get("state"):
                entry["state"] = _state(out["metadata"])
        out_tasks[key] = entry
    return {"run_id": run.get("run_id"), "job_id": run.get("job_id"), "run_page_url": run.get("run_page_url"),
            "state": _state(run), "task_count": len(out_tasks), "tasks": out_tasks}


def _failure(run, result, note=""):
    state = _state(run)
    failed = []
    for key, t in (result.get("tasks") or {}).items():
        ts = t.get("state") or {}
        if ts.get("result_state") in SUCCESS or ts.get("result_state") in ("EXCLUDED", None) and not t.get("error"):
            continue
        failed.append({"task_key": key, "result_state": ts.get("result_state"),
                       "error": t.get("error") or ts.get("state_message") or None,
                       "run_page_url": t.get("run_page_url")})
    outcome = state["result_state"] or state["life_cycle_state"]
    lines = "; ".join(f"{f['task_key']} {f['result_state']}: {str(f['error']).rstrip('.')}" if f["error"] else
                      f"{f['task_key']} {f['result_state']}" for f in failed)
    message = f"Run {run.get('run_id')} ended {outcome}"
    if state.get("state_message"):
        message += f" ({state['state_message']})"
    if lines:
        message += f". Failed tasks: {lines}"
    message += f". Run page: {run.get('run_page_url')}{note}"
    return ConnectorError("operation_failed", message, hint="Open the run page for the full logs; fix the task and "
                          "use Repair Run to re-run only what failed.",
                          details={"run_id": run.get("run_id"), "run_page_url": run.get("run_page_url"),
                                   "state": state, "failed_tasks": failed, "result": result})


def _wait(session, run_id, inputs, *, repair_id=None):
    """Wait for a run (or its repair) to end; return (run, result). A run that does not succeed
    raises operation_failed; on timeout the run is cancelled when On Timeout is cancel."""
    params = {"run_id": run_id}
    if repair_id is not None:
        params["include_history"] = True

    def ours(run):
        # After a repair, the run must show that repair before its end state counts.
        if repair_id is None or run.get("next_page_token"):
            return True
        return any(h.get("id") == repair_id for h in run.get("repair_history") or [])

    def poll():
        run = session.get(f"{API}/runs/get", params)
        if isinstance(run, dict) and run.get("run_page_url"):
            session.add_started(run_page_url=run["run_page_url"])
        s = run.get("state") or {}
        state = s.get("life_cycle_state") or "UNKNOWN"
        if s.get("result_state"):
            state = f"{state}/{s['result_state']}"
        return _terminal(run) and ours(run), run, state

    note = None
    if inputs.get("on_timeout", "cancel") == "cancel":
        def cancel():
            session.post(f"{API}/runs/cancel", {"run_id": run_id}, idempotent=True)
            return f"Cancelled run {run_id}."
        session.on_cancel(f"run {run_id}", cancel)
    else:
        def note():
            return f"Run {run_id} is still running (not cancelled)."

    what = f"run {run_id}" if repair_id is None else f"repair {repair_id} of run {run_id}"
    session.wait(poll, what=what, timeout=inputs["timeout_seconds"],
                 interval=inputs["poll_interval_seconds"], on_timeout=note, follow_up="get_run")
    run = _fetch_run(session, run_id)
    result = _outputs(session, run)
    if not _succeeded(run):
        raise _failure(run, result)
    return run, result


def _started(session, run_id, inputs, extra, repair_id=None):
    """Output for a run that was just started (run-now, submit, repair): waited or not."""
    if inputs.get("wait"):
        run, result = _wait(session, run_id, inputs, repair_id=repair_id)
        out = {"run_id": run_id, **extra, "run_page_url": run.get("run_page_url"), "state": _state(run),
               "result": result, "run": run}
        if run.get("number_in_job") is not None:
            out.setdefault("number_in_job", run.get("number_in_job"))
        return out
    run = session.get(f"{API}/runs/get", {"run_id": run_id})
    out = {"run_id": run_id, **extra, "run_page_url": run.get("run_page_url"), "state": _state(run)}
    if run.get("number_in_job") is not None:
        out.setdefault("number_in_job", run.get("number_in_job"))
    return out


# --------------------------------------------------------------------------- runs

def _job_id_by_name(session, name):
    jobs, _ = session.paginate(f"{API}/list", items="jobs", params={"limit": 100, "name": name})
    exact = [j for j in jobs if ((j.get("settings") or {}).get("name") or "").lower() == name.lower()]
    if not exact:
        raise ConnectorError("not_found", f"No job is named {name!r} (0 matches).",
                             hint="Check the name (matched exactly, ignoring case) or give the Job ID.",
                             details={"job_name": name, "matches": 0})
    if len(exact) > 1:
        ids = [j["job_id"] for j in exact]
        raise ConnectorError("invalid_input", f"{len(exact)} jobs are named {name!r} (job ids {ids}); "
                             "give the Job ID instead.", hint="Job names are not unique; use the Job ID.",
                             details={"job_name": name, "matches": len(exact), "job_ids": ids})
    return exact[0]["job_id"]


def _legacy_params(inputs, body):
    for k in LEGACY_LISTS + LEGACY_MAPS:
        if inputs.get(k) is not None:
            body[k] = inputs[k]
    if inputs.get("pipeline_full_refresh") is not None:
        body["pipeline_params"] = {"full_refresh": inputs["pipeline_full_refresh"]}


def run_job_now(session, inputs):
    if inputs.get("notebook_params") and inputs.get("jar_params"):
        raise InputError([{"key": "jar_params", "label": "JAR Parameters",
                           "reason": "cannot be combined with Notebook Parameters"}])
    job_id = inputs.get("job_id")
    if job_id is None:
        job_id = _job_id_by_name(session, inputs["job_name"])
    token = inputs.get("idempotency_token") or str(uuid.uuid4())
    body = {"job_id": job_id, "idempotency_token": token}
    if inputs.get("parameters"):
        body["job_parameters"] = inputs["parameters"]
    _legacy_params(inputs, body)
    if inputs.get("only"):
        body["only"] = list(inputs["only"])
    if inputs.get("queue_enabled") is not None:
        body["queue"] = {"enabled": inputs["queue_enabled"]}
    started = _start_run(session, "run-now", body)
    return _started(session, started["run_id"], inputs, {"job_id": started["job_id"],
                                                         "number_in_job": started.get("number_in_job"),
                                                         "idempotency_token": started["idempotency_token"]})


def _start_run(session, name, body, idempotent=True):
    """The request that starts a run (run-now, submit, repair), recorded with what it sent that the
    output reports (job id, idempotency token), so a resumed step reports the same."""
    path = {"run-now": "run-now", "submit": "runs/submit", "repair": "runs/repair"}[name]
    sent = {k: body[k] for k in ("job_id", "idempotency_token", "run_id", "latest_repair_id", "job_parameters")
            if k in body}
    return session.start(name, lambda: {**sent, **session.post(f"{API}/{path}", body, idempotent=idempotent,
                                                                       require=("repair_id",) if name == "repair" else ("run_id",))},
                         ids=lambda r: {"run_id": r.get("run_id")}, follow_up="get_run")


def submit_run(session, inputs):
    body = dict(inputs.get("settings") or {})
    if inputs.get("run_name"):
        body["run_name"] = inputs["run_name"]
    if inputs.get("tasks"):
        body["tasks"] = inputs["tasks"]
    if not body.get("tasks"):
        raise InputError([{"key": "tasks", "label": "Tasks", "reason": "is required (here or in Settings)"}])
    token = inputs.get("idempotency_token") or body.get("idempotency_token") or str(uuid.uuid4())
    body["idempotency_token"] = token
    started = _start_run(session, "submit", body)
    return _started(session, started["run_id"], inputs, {"idempotency_token": started["idempotency_token"]})


def run_notebook(session, inputs):
    """One notebook task in a one-time run: on the given cluster, a new one, or serverless compute
    (no compute field); always waits, and lifts the notebook's exit value out of its output."""
    path = inputs["notebook_path"]
    task = {"task_key": "notebook", "notebook_task": {"notebook_path": path, "source": "WORKSPACE"}}
    if inputs.get("base_parameters"):
        task["notebook_task"]["base_parameters"] = {k: v if isinstance(v, str) else json.dumps(v)
                                                    for k, v in inputs["base_parameters"].items()}
    if inputs.get("cluster_id"):
        task["existing_cluster_id"] = inputs["cluster_id"]
    elif inputs.get("new_cluster"):
        task["new_cluster"] = inputs["new_cluster"]
    token = inputs.get("idempotency_token") or str(uuid.uuid4())
    body = {"run_name": inputs.get("run_name") or path.rsplit("/", 1)[-1], "tasks": [task],
            "idempotency_token": token}
    started = _start_run(session, "submit", body)
    out = _started(session, started["run_id"], {**inputs, "wait": True},
                   {"idempotency_token": started["idempotency_token"]})
    notebook = (((out["result"] or {}).get("tasks") or {}).get("notebook") or {}).get("result") or {}
    notebook = notebook.get("notebook_output") or {}
    out["exit_value"] = notebook.get("result")
    if notebook.get("truncated"):
        out["truncated"] = True
    out.pop("number_in_job", None)
    return out


def get_run(session, inputs):
    return _fetch_run(session, inputs["run_id"], include_history=inputs.get("include_history") or None,
                      include_resolved_values=inputs.get("include_resolved_values") or None)


def get_run_output(session, inputs):
    run = _fetch_run(session, inputs["run_id"])
    return _outputs(session, run)


def list_runs(session, inputs):
    if inputs.get("active_only") and inputs.get("completed_only"):
        raise InputError([{"key": "completed_only", "label": "Completed Only",
                           "reason": "cannot be combined with Active Only"}])
    params = {"limit": 25}
    for k in ("job_id", "run_type", "start_time_from", "start_time_to"):
        if inputs.get(k) is not None:
            params[k] = inputs[k]
    for k in ("active_only", "completed_only", "expand_tasks"):
        if inputs.get(k):
            params[k] = True
    runs, truncated = session.paginate(f"{API}/runs/list", items="runs", params=params,
                                       max_items=inputs.get("max_items"))
    return {"runs": runs, "count": len(runs), "truncated": truncated}


def cancel_run(session, inputs):
    session.post(f"{API}/runs/cancel", {"run_id": inputs["run_id"]}, idempotent=True)
    return {"run_id": inputs["run_id"], "cancel_requested": True}


def cancel_all_runs(session, inputs):
    if inputs.get("job_id") is None and not inputs.get("all_queued_runs"):
        raise InputError([{"key": "job_id", "label": "Job ID", "reason": "or All Queued Runs is required"}])
    body = {}
    if inputs.get("job_id") is not None:
        body["job_id"] = inputs["job_id"]
    if inputs.get("all_queued_runs"):
        body["all_queued_runs"] = True
    session.post(f"{API}/runs/cancel-all", body, idempotent=True)
    return {**body, "cancel_requested": True}


def repair_run(session, inputs):
    run_id = inputs["run_id"]
    run = _fetch_run(session, run_id, include_history=True)
    body = {"run_id": run_id}
    if inputs.get("rerun_tasks"):
        body["rerun_tasks"] = list(inputs["rerun_tasks"])
    else:
        body["rerun_all_failed_tasks"] = True
    if inputs.get("rerun_dependent_tasks"):
        body["rerun_dependent_tasks"] = True
    latest = inputs.get("latest_repair_id")
    if latest is None:
        repairs = [h for h in run.get("repair_history") or [] if h.get("type") == "REPAIR" and h.get("id") is not None]
        if repairs:
            latest = max(repairs, key=lambda h: (h.get("start_time") or 0, h["id"]))["id"]
    if latest is not None:
        body["latest_repair_id"] = latest
    # Re-send the run's own parameters so a repair never falls back to the job's defaults.
    if inputs.get("parameters") is not None:
        body["job_parameters"] = inputs["parameters"]
    else:
        params = {p["name"]: p.get("value", p.get("default")) for p in run.get("job_parameters") or []
                  if p.get("name") is not None and (p.get("value", p.get("default")) is not None)}
        if params:
            body["job_parameters"] = {k: v if isinstance(v, str) else str(v) for k, v in params.items()}
    overriding = run.get("overriding_parameters") or {}
    for k in LEGACY_LISTS + LEGACY_MAPS + ("pipeline_params", "dbt_commands"):
        if overriding.get(k) is not None:
            body[k] = overriding[k]
    _legacy_params(inputs, body)
    repaired = _start_run(session, "repair", body, idempotent=False)
    extra = {"repair_id": repaired.get("repair_id"), "latest_repair_id": repaired.get("latest_repair_id"),
             "job_parameters": repaired.get("job_parameters")}
    return _started(session, run_id, inputs, extra, repair_id=repaired.get("repair_id"))


def delete_run(session, inputs):
    session.post(f"{API}/runs/delete", {"run_id": inputs["run_id"]})
    return {"run_id": inputs["run_id"], "deleted": True}


def export_run(session, inputs):
    try:
        out = session.get(f"{API}/runs/export", {"run_id": inputs["run_id"],
                                                 "views_to_export": inputs.get("views_to_export") or "CODE"})
    except ConnectorError as exc:
        if exc.type == "bad_request" and "multiple tasks" in exc.message:
            raise _export_each_task(session, inputs["run_id"], exc) from None
        raise
    views = out.get("views") or []
    return {"run_id": inputs["run_id"], "views": views, "count": len(views)}


def _export_each_task(session, run_id, exc: ConnectorError) -> ConnectorError:
    """Databricks exports task runs only: name each task run of the parent in the hint."""
    try:
        tasks = [{"task_key": t.get("task_key"), "run_id": t.get("run_id")} for t in _fetch_run(session, run_id).get("tasks") or []
                 if t.get("run_id") is not None]
    except ConnectorError:
        tasks = []
    listed = ", ".join(f"{t['run_id']} ({t['task_key']})" for t in tasks[:20]) + (", ..." if len(tasks) > 20 else "")
    hint = (f"Run {run_id} has {len(tasks)} tasks: export each task run with Export Run and its run_id"
            + (f": {listed}." if tasks else " (Get Run lists them under tasks[].run_id)."))
    return ConnectorError(exc.type, exc.message, hint=hint, status=exc.status, error_code=exc.error_code,
                          details={**(exc.details or {}), "run_id": run_id, "task_runs": tasks})


# --------------------------------------------------------------------------- pickers: runs and tasks

def _outcome(run):
    """How a run ended: its result state, or its terminal life-cycle state; None while it runs."""
    s = run.get("state") or {}
    if not _terminal(run):
        return None
    return s.get("result_state") or s.get("life_cycle_state")


def select_run(session, inputs):
    params = {}
    if inputs.get("job_id") is not None:
        params["job_id"] = inputs["job_id"]

    def option(r):
        state = _outcome(r) or (r.get("state") or {}).get("life_cycle_state") or "UNKNOWN"
        return {"label": f"{r.get('run_name') or r.get('job_id') or 'run'} #{r['run_id']} ({state})", "value": r["run_id"]}
    return pickers.from_list(session, f"{API}/runs/list", inputs, items="runs", params=params, require=("run_id",),
                             size_param="limit", max_page=25, option=option)


def select_job_task(session, inputs):
    tasks = (_fetch_job(session, inputs["job_id"]).get("settings") or {}).get("tasks") or []
    return pickers.select([{"label": t["task_key"] + (f" - {t['description']}" if t.get("description") else ""),
                            "value": t["task_key"]} for t in tasks if t.get("task_key")], inputs)


def select_run_task(session, inputs):
    tasks = _fetch_run(session, inputs["run_id"]).get("tasks") or []
    return pickers.select([{"label": f"{t['task_key']} ({_outcome(t) or (t.get('state') or {}).get('life_cycle_state') or 'UNKNOWN'})",
                            "value": t["task_key"]} for t in tasks if t.get("task_key")], inputs)


# --------------------------------------------------------------------------- triggers (polling; see connector/triggers.py)

def _run_event(run):
    s = run.get("state") or {}
    start, end = run.get("start_time"), run.get("end_time") or None
    return {"run_id": run["run_id"], "job_id": run.get("job_id"), "run_name": run.get("run_name"),
            "run_type": run.get("run_type"), "trigger": run.get("trigger"),
            "life_cycle_state": s.get("life_cycle_state"), "result_state": s.get("result_state"),
            "outcome": _outcome(run), "state_message": s.get("state_message"), "start_time": start,
            "end_time": end, "duration_ms": end - start if end and start else None,
            "run_page_url": run.get("run_page_url"), "run": run}


def _runs_between(session, inputs, **extra):
    """fetch(lo, hi, token) over runs/list: the runs started in [lo, hi], newest first."""
    base = {"limit": 25, **extra}
    if inputs.get("job_id") is not None:
        base["job_id"] = inputs["job_id"]

    def fetch(lo, hi, token):
        params = dict(base, start_time_from=max(0, int(lo)))
        if hi is not None:
            params["start_time_to"] = int(hi)
        if token:
            params["page_token"] = token
        page = session.get(f"{API}/runs/list", params)
        return page.get("runs") or [], page.get("next_page_token")
    return fetch


def _newest_start(session, inputs) -> int:
    runs, _ = _runs_between(session, inputs)(0, None, None)
    return max((r.get("start_time") or 0 for r in runs), default=0)


def _start(run):
    return run.get("start_time") or 0


def _end(run):
    return run.get("end_time") or _start(run)


def job_run_finished(session, inputs, poll):
    """Each run that ends after activation fires once. The cursor is the start time of the oldest
    run still in flight (a long run holds it), else of the newest run seen; runs started in the
    window behind it are listed each poll and the ended ones not yet emitted fire, oldest first."""
    if poll.first:
        if poll.since is not None:
            poll.cursor = poll.since
        else:
            # Activation: the runs going now will fire when they end; the cursor holds at the oldest.
            active, token = [], None
            fetch = _runs_between(session, inputs, active_only=True)
            for _ in range(40):
                batch, token = fetch(0, None, token)
                active.extend(batch)
                if not token:
                    break
            poll.cursor = min((_start(r) for r in active), default=None)
            if poll.cursor is None:
                poll.cursor = _newest_start(session, inputs)
    wanted = set(inputs.get("result_states") or ())
    runs, complete = poll.scan_newest_first(_runs_between(session, inputs), time_of=_start,
                                            floor=poll.cursor - poll.overlap_ms)
    in_flight = []
    for run in sorted(runs, key=lambda r: (_end(r), r["run_id"])):
        if not _terminal(run):
            in_flight.append(_start(run))
        elif poll.is_new(_end(run)) and (not wanted or _outcome(run) in wanted):
            poll.emit(run["run_id"], _run_event(run), _start(run))
    if complete:
        poll.cursor = min(in_flight) if in_flight else max([poll.cursor, *map(_start, runs)])
    return poll.result(floor=poll.cursor - poll.overlap_ms)


def job_run_started(session, inputs, poll):
    """Each run started after activation fires once (queued or started). The cursor is the start
    time of the newest run seen; the window behind it is read again each poll for runs listed late."""
    if poll.first:
        poll.cursor = poll.since if poll.since is not None else _newest_start(session, inputs)
    runs, complete = poll.scan_newest_first(_runs_between(session, inputs), time_of=_start,
                                            floor=poll.cursor - poll.overlap_ms)
    for run in sorted(runs, key=lambda r: (_start(r), r["run_id"])):
        if poll.is_new(_start(run)):
            poll.emit(run["run_id"], _run_event(run), _start(run))
    if complete:
        poll.cursor = max([poll.cursor, *map(_start, runs)])
    return poll.result(floor=poll.cursor - poll.overlap_ms)
