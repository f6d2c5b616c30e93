r"""Jobs API (contract §9), served under /api/2.0, /api/2.1 and /api/2.2.

Jobs and runs live in ``state.area("jobs")`` (a :class:`JobsStore`). Runs move through the real
state machine lazily: every request first "ticks" the store to the current time, computing each
transition at the instant it would have happened (no background threads).

Run model
* A run is [QUEUED ->] PENDING -> RUNNING -> TERMINATED (+ result_state); SKIPPED when the
  concurrency limit is hit and queueing is off (or ``max_concurrent_runs`` is 0).
* Each task waits (life_cycle BLOCKED) for its ``depends_on`` tasks, then its ``run_if``
  condition (ALL_SUCCESS default) decides: run it (PENDING for ``pending_seconds``, RUNNING for
  ``task_seconds``), or end it with UPSTREAM_FAILED / UPSTREAM_CANCELED / EXCLUDED.
* A task's outcome is decided when it finishes: a preset outcome (``JobsStore.preset_outcome``)
  wins; else a ``sql_task`` runs its query on the SQL engine, and a ``spark_python_task`` or
  ``notebook_task`` with inline code runs it like a 1.2 command (``pyrunner.run_python_once``);
  anything else succeeds.
* Both ``state`` (life_cycle_state, result_state, state_message, user_cancelled_or_timedout) and
  ``status`` (state, termination_details, queue_details) are reported, on the run and on each task.

Emulator extensions (documented for tests and the demo)
* Inline code: ``spark_python_task.python_code`` or ``notebook_task.python_code`` (also accepted
  at the task's top level as ``python_code``). Python tasks see their ``parameters`` (plus legacy
  ``python_params``) in ``sys.argv[1:]``; notebook tasks read ``dbutils.widgets.get(name)`` (base
  parameters, job parameters, notebook_params) and end with ``dbutils.notebook.exit(value)``,
  which becomes ``notebook_output.result``. stdout becomes ``logs``; an exception fails the task
  with ``error`` = the 1.2 summary and ``error_trace`` = the cause.
* SQL: ``sql_task.query.query_text`` (what the real API calls a saved query is given inline) or
  the shortcut ``sql_task.query_text``. ``{{job.parameters.<name>}}`` references are resolved in
  query text and task parameters. The result rows are returned in ``sql_output.query_output.result``
  ({columns, rows}) besides the real fields.
* Inline code runs on a worker thread (never under the state lock): a task stays RUNNING at least
  ``task_seconds`` and as long as its code runs.
* Timings and page sizes: ``store.config`` (a :class:`JobsConfig`); a field ``jobs_<name>`` on the
  workspace Config, when present, wins over it. ``jobs_page_cap`` / ``runs_page_cap`` cap a list
  page below the requested limit (so tests see many pages); ``array_page_size`` pages the arrays of
  jobs/get and runs/get.
* Control interface for tests: ``store_of(emulator.state)`` (the same object as
  ``emulator.state.area("jobs")`` once the area exists) has ``preset_outcome(job_id or run_id,
  task_key, "FAILED", error="boom", times=1)``, ``clear_presets()``, ``config`` and ``reset()``.
  Applied creations are counted in ``state.applied["jobs/run-now"]`` and ``["jobs/runs/submit"]``
  (a repeated idempotency token is not counted), and ``jobs/create``, ``jobs/runs/repair``, ...
"""

from __future__ import annotations

import copy
import html
import importlib
import itertools
import json
import re
import secrets
from typing import Any, Dict, List, Optional

from .api import (decode_page_token, encode_page_token, page_envelope, invalid_parameter, invalid_state,
                  not_found, parse_bool, route)

V = r"/api/(?P<version>2\.[012])/jobs"

ACTIVE_LIFE_CYCLES = ("QUEUED", "PENDING", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY")
TERMINAL_LIFE_CYCLES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
TASK_TYPES = ("notebook_task", "spark_python_task", "spark_jar_task", "python_wheel_task", "sql_task",
              "dbt_task", "pipeline_task", "run_job_task", "condition_task", "for_each_task",
              "spark_submit_task", "clean_rooms_notebook_task", "dashboard_task", "power_bi_task",
              "gen_ai_compute_task")
RUN_ARRAYS = ("tasks", "iterations", "job_clusters", "job_parameters", "repair_history")
JOB_ARRAYS = ("tasks", "job_clusters", "parameters", "environments")
LEGACY_PARAMS = ("notebook_params", "python_params", "jar_params", "spark_submit_params",
                 "python_named_params", "sql_params", "dbt_commands", "pipeline_params")
MULTI_TASK_OUTPUT = ("Retrieving the output of runs with multiple tasks is not supported. Please retrieve "
                     "the output of each individual task run instead.")
_EXIT_MARK = "__DBX_NOTEBOOK_EXIT__"

# result_state -> (status.termination_details code, type)
_TERMINATION = {
    "SUCCESS": ("SUCCESS", "SUCCESS"),
    "SUCCESS_WITH_FAILURES": ("SUCCESS_WITH_FAILURES", "SUCCESS"),
    "FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
    "TIMEDOUT": ("CANCELED", "CLIENT_ERROR"),
    "CANCELED": ("USER_CANCELED", "SUCCESS"),
    "UPSTREAM_FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),     # [UNVERIFIED]
    "UPSTREAM_CANCELED": ("USER_CANCELED", "SUCCESS"),              # [UNVERIFIED]
    "EXCLUDED": ("SUCCESS", "SUCCESS"),                             # [UNVERIFIED]
    "MAXIMUM_CONCURRENT_RUNS_REACHED": ("MAX_CONCURRENT_RUNS_EXCEEDED", "CLIENT_ERROR"),
    "DISABLED": ("DISABLED", "CLIENT_ERROR"),
}


# --------------------------------------------------------------------------- store

class JobsConfig:
    """Knobs of the jobs area. Tests change them at any time (and restore them)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pending_seconds = 0.2         # task PENDING (cluster / context setup)
        self.task_seconds = 0.5            # task RUNNING
        self.array_page_size = 100         # paged arrays of jobs/get and runs/get (2.2)
        self.runs_list_max_limit = 25      # runs/list: larger limits answer 400
        self.jobs_list_max_limit = 100     # jobs/list: limit 1..100
        self.jobs_page_cap = 100           # jobs/list: most jobs per page, whatever the limit
        self.runs_page_cap = 25            # runs/list: most runs per page, whatever the limit
        self.parent_output_single_task = True   # runs/get-output accepts a single-task parent run id
        self.python_timeout = 60.0         # seconds for inline task code

    def as_dict(self) -> dict:
        return dict(vars(self))


class JobsStore:
    def __init__(self) -> None:
        self.config = JobsConfig()
        self.jobs: Dict[int, dict] = {}
        self.runs: Dict[int, dict] = {}
        self.task_index: Dict[int, tuple] = {}      # task run id -> (parent run id, task_key)
        self.tokens: Dict[str, int] = {}            # idempotency token -> run id
        self.presets: List[dict] = []
        self.ids = itertools.count(secrets.randbelow(9 * 10 ** 11) + 10 ** 11)
        self.run_ids = itertools.count(secrets.randbelow(9 * 10 ** 12) + 10 ** 14)
        self._executor = None

    def executor(self):
        """Worker threads for tasks' inline code (created on first use)."""
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="emulator-jobs")
        return self._executor

    def preset_outcome(self, target_id: int, task_key: Optional[str], result_state: str = "FAILED", *,
                       error: Optional[str] = None, error_trace: Optional[str] = None,
                       logs: Optional[str] = None, notebook_result: Optional[str] = None,
                       times: Optional[int] = 1) -> dict:
        """The next ``times`` executions of ``task_key`` (any task when None) in runs of job
        ``target_id`` (or in run ``target_id``) end with ``result_state`` (SUCCESS, FAILED,
        TIMEDOUT, CANCELED or INTERNAL_ERROR) and the given output. ``times=None``: always."""
        p = {"target": int(target_id), "task_key": task_key, "result_state": result_state.upper(),
             "error": error, "error_trace": error_trace, "logs": logs, "notebook_result": notebook_result,
             "remaining": times}
        self.presets.append(p)
        return p

    def clear_presets(self) -> None:
        self.presets.clear()

    def reset(self) -> None:
        """Forget every job, run and preset; restore the config."""
        self.jobs.clear()
        self.runs.clear()
        self.task_index.clear()
        self.tokens.clear()
        self.presets.clear()
        self.config.reset()


def store_of(state) -> JobsStore:
    """The jobs area of a workspace (``state.area("jobs")`` once the area exists)."""
    s = state.area("jobs", JobsStore)
    if not isinstance(s, JobsStore):        # someone asked for the area before this module did
        with state.lock:
            s = state.areas["jobs"] = JobsStore()
    return s


def _cfg(state, name: str):
    v = getattr(state.config, f"jobs_{name}", None)
    return v if v is not None else getattr(store_of(state).config, name)


# --------------------------------------------------------------------------- small helpers

def _user(req) -> str:
    return req.principal.user_name if req.principal else "emulator-user@example.com"


def _int_id(value: Any, name: str) -> int:
    if value is None or value == "":
        raise invalid_parameter(f"Missing required field: {name}")
    if isinstance(value, bool):
        raise invalid_parameter(f"Invalid value for {name}: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_parameter(f"Invalid value for {name}: {value!r}. It must be an integer.") from None


def _job(req, job_id: Any) -> dict:
    jid = _int_id(job_id, "job_id")
    job = store_of(req.state).jobs.get(jid)
    if job is None:
        raise not_found(req.config, f"Job {jid} does not exist.")
    return job


def _run(req, run_id: Any, *, allow_task: bool = False):
    """(parent run, task run or None)."""
    rid = _int_id(run_id, "run_id")
    store = store_of(req.state)
    run = store.runs.get(rid)
    if run is not None and not run.get("deleted"):
        return run, None
    if allow_task and rid in store.task_index:
        parent_id, key = store.task_index[rid]
        parent = store.runs.get(parent_id)
        if parent is not None and not parent.get("deleted"):
            for t in parent["all_task_runs"]:
                if t["run_id"] == rid:
                    return parent, t
    raise not_found(req.config, f"Run {rid} does not exist.")


def _page_url(base: str, state, job_id: int, run_id: int) -> str:
    return f"{base}/?o={state.workspace_id}#job/{job_id}/run/{run_id}"


def _ms(state) -> int:
    return state.now_ms()


def _bool_body(body: dict, name: str, default=None):
    if name not in body or body[name] is None:
        return default
    return parse_bool(body[name], name)


# --------------------------------------------------------------------------- settings validation

def _validate_tasks(tasks: Any, job_clusters: list, *, submit: bool = False) -> list:
    if tasks is None:
        return []
    if not isinstance(tasks, list):
        raise invalid_parameter("tasks must be an array.")
    if len(tasks) > 1000:
        raise invalid_parameter("A job can have at most 1000 tasks.")
    keys = set()
    for t in tasks:
        if not isinstance(t, dict):
            raise invalid_parameter("Each task must be an object.")
        key = t.get("task_key")
        if not key or not isinstance(key, str):
            raise invalid_parameter("Missing required field: task_key")
        if not re.fullmatch(r"[\w\-.]{1,100}", key):
            raise invalid_parameter(f"Invalid task_key {key!r}: use letters, digits, '-', '_' and '.' (at most 100).")
        if key in keys:
            raise invalid_parameter(f"Task key {key} is duplicated. Task keys must be unique.")
        keys.add(key)
        types = [k for k in TASK_TYPES if t.get(k) is not None]
        if len(types) != 1:
            raise invalid_parameter(f"Task {key} must have exactly one task type, e.g. notebook_task, "
                                    f"spark_python_task or sql_task (found {len(types)}).")
        jck = t.get("job_cluster_key")
        if jck is not None:
            if submit:
                raise invalid_parameter(f"Task {key}: job_cluster_key is not supported in runs/submit.")
            if jck not in {c.get("job_cluster_key") for c in job_clusters or []}:
                raise invalid_parameter(f"Task {key} refers to job cluster {jck}, which is not defined in job_clusters.")
        if t.get("run_if") is not None and t["run_if"] not in _RUN_IF:
            raise invalid_parameter(f"Task {key}: invalid run_if {t['run_if']!r}.")
    for t in tasks:
        for dep in t.get("depends_on") or []:
            dk = dep.get("task_key") if isinstance(dep, dict) else None
            if dk not in keys:
                raise invalid_parameter(f"Task {t['task_key']} depends on {dk}, which is not a task of this job.")
    _check_cycles(tasks)
    return tasks


def _check_cycles(tasks: list) -> None:
    deps = {t["task_key"]: [d["task_key"] for d in t.get("depends_on") or []] for t in tasks}
    seen, stack = set(), set()

    def visit(k):
        if k in stack:
            raise invalid_parameter(f"The task dependencies contain a cycle through task {k}.")
        if k in seen:
            return
        stack.add(k)
        for d in deps.get(k, []):
            visit(d)
        stack.discard(k)
        seen.add(k)

    for k in deps:
        visit(k)


def _validate_settings(s: dict, version: str) -> dict:
    if not isinstance(s, dict):
        raise invalid_parameter("new_settings must be an object.")
    s = copy.deepcopy(s)
    s.pop("format", None)
    jcs = s.get("job_clusters") or []
    if not isinstance(jcs, list):
        raise invalid_parameter("job_clusters must be an array.")
    jkeys = set()
    for c in jcs:
        k = c.get("job_cluster_key") if isinstance(c, dict) else None
        if not k:
            raise invalid_parameter("Missing required field: job_clusters.job_cluster_key")
        if k in jkeys:
            raise invalid_parameter(f"Job cluster key {k} is duplicated.")
        jkeys.add(k)
    _validate_tasks(s.get("tasks"), jcs)
    mcr = s.get("max_concurrent_runs")
    if mcr is not None and (not isinstance(mcr, int) or isinstance(mcr, bool) or not 0 <= mcr <= 1000):
        raise invalid_parameter(f"Invalid max_concurrent_runs {mcr!r}: it must be between 0 and 1000.")
    to = s.get("timeout_seconds")
    if to is not None and (not isinstance(to, int) or isinstance(to, bool) or to < 0):
        raise invalid_parameter(f"Invalid timeout_seconds {to!r}.")
    tags = s.get("tags")
    if tags is not None:
        if not isinstance(tags, dict):
            raise invalid_parameter("tags must be an object of string values.")
        if len(tags) > 25:
            raise invalid_parameter(f"A job can have at most 25 tags; got {len(tags)}.")
    params = s.get("parameters")
    if params is not None:
        if not isinstance(params, list):
            raise invalid_parameter("parameters must be an array of {name, default}.")
        names = set()
        for p in params:
            if not isinstance(p, dict) or not p.get("name"):
                raise invalid_parameter("Each job parameter needs a name and a default.")
            if "default" not in p:
                raise invalid_parameter(f"Job parameter {p['name']} needs a default value.")
            if p["name"] in names:
                raise invalid_parameter(f"Job parameter {p['name']} is duplicated.")
            names.add(p["name"])
    sched = s.get("schedule")
    if sched is not None:
        if not isinstance(sched, dict) or not sched.get("quartz_cron_expression") or not sched.get("timezone_id"):
            raise invalid_parameter("schedule requires quartz_cron_expression and timezone_id.")
        if sched.get("pause_status", "UNPAUSED") not in ("PAUSED", "UNPAUSED"):
            raise invalid_parameter("schedule.pause_status must be PAUSED or UNPAUSED.")
    q = s.get("queue")
    if q is not None and (not isinstance(q, dict) or "enabled" not in q):
        raise invalid_parameter("queue requires the field enabled.")
    s.setdefault("name", "Untitled")
    s.setdefault("email_notifications", {})
    s.setdefault("webhook_notifications", {})
    s.setdefault("timeout_seconds", 0)
    s.setdefault("max_concurrent_runs", 1)
    if version == "2.2":
        s.setdefault("queue", {"enabled": True})
    s["format"] = "MULTI_TASK"
    return s


# --------------------------------------------------------------------------- paged arrays (2.2)

def _paged(obj: dict, holder: dict, names, token: Optional[str], version: str, page: int, kind: str):
    """Cut the arrays ``names`` of ``holder`` to one page; set next_page_token on ``obj``."""
    if version != "2.2":
        return obj
    offset = decode_page_token(token, kind) if token else 0
    more = False
    for n in names:
        arr = holder.get(n)
        if not isinstance(arr, list):
            continue
        holder[n] = arr[offset:offset + page]
        if len(arr) > offset + page:
            more = True
    if more:
        obj["next_page_token"] = encode_page_token(offset + page, kind)
        obj["has_more"] = True
    else:
        obj["has_more"] = False
    return obj


# --------------------------------------------------------------------------- jobs endpoints

@route("POST", V + r"/create")
def create_job(req):
    body = req.body
    settings = {k: v for k, v in body.items() if k != "access_control_list"}
    settings = _validate_settings(settings, req.params["version"])
    st = req.state
    with st.lock:
        store = store_of(st)
        jid = next(store.ids)
        store.jobs[jid] = {"job_id": jid, "creator_user_name": _user(req), "run_as_user_name": _user(req),
                           "created_time": _ms(st), "settings": settings}
        st.applied["jobs/create"] += 1
    return {"job_id": jid}


def _job_view(job: dict) -> dict:
    return copy.deepcopy(job)


@route("GET", V + r"/get")
def get_job(req):
    st = req.state
    with st.lock:
        job = _job(req, req.param("job_id"))
        out = _job_view(job)
        return _paged(out, out["settings"], JOB_ARRAYS, req.q("page_token"), req.params["version"],
                      int(_cfg(st, "array_page_size")), "job")


@route("GET", V + r"/list")
def list_jobs(req):
    st = req.state
    version = req.params["version"]
    limit = req.q_int("limit", 20)
    maxl = int(_cfg(st, "jobs_list_max_limit"))
    if limit is None or limit < 1 or limit > maxl:
        raise invalid_parameter(f"Invalid limit {limit} - it has to be between 1 and {maxl}.")
    limit = min(limit, int(_cfg(st, "jobs_page_cap")))
    offset = req.q_int("offset", 0) or 0
    token = req.q("page_token")
    if token:
        offset = decode_page_token(token, "jobs")
    name = req.q("name")
    expand = req.q_bool("expand_tasks", False)
    page = int(_cfg(st, "array_page_size"))
    with st.lock:
        jobs = sorted(store_of(st).jobs.values(), key=lambda j: j["job_id"])
        if name:
            jobs = [j for j in jobs if (j["settings"].get("name") or "").lower() == name.lower()]
        chunk = jobs[offset:offset + limit]
        items = []
        for j in chunk:
            item = {"job_id": j["job_id"], "creator_user_name": j["creator_user_name"],
                    "created_time": j["created_time"], "settings": copy.deepcopy(j["settings"])}
            s = item["settings"]
            if expand:
                more = False
                for n in ("tasks", "job_clusters"):
                    if isinstance(s.get(n), list):
                        more = more or len(s[n]) > page
                        s[n] = s[n][:page]
                if version == "2.2":
                    item["has_more"] = more
            else:
                for n in ("tasks", "job_clusters"):
                    s.pop(n, None)
            items.append(item)
        return page_envelope("jobs", items, offset, limit, len(jobs))


def _merge_keyed(old: list, new: list, key: str) -> list:
    out = [copy.deepcopy(x) for x in old or []]
    index = {x.get(key): i for i, x in enumerate(out)}
    for item in new or []:
        k = item.get(key)
        if k in index:
            out[index[k]] = copy.deepcopy(item)
        else:
            index[k] = len(out)
            out.append(copy.deepcopy(item))
    return out


@route("POST", V + r"/update")
def update_job(req):
    body = req.body
    st = req.state
    new = body.get("new_settings") or {}
    remove = body.get("fields_to_remove") or []
    if not isinstance(new, dict) or not isinstance(remove, list):
        raise invalid_parameter("new_settings must be an object and fields_to_remove an array.")
    with st.lock:
        job = _job(req, body.get("job_id"))
        s = copy.deepcopy(job["settings"])
        for k, v in new.items():
            if k == "tasks":
                s["tasks"] = _merge_keyed(s.get("tasks"), v, "task_key")
            elif k == "job_clusters":
                s["job_clusters"] = _merge_keyed(s.get("job_clusters"), v, "job_cluster_key")
            else:
                s[k] = copy.deepcopy(v)
        for f in remove:
            if not isinstance(f, str):
                raise invalid_parameter("fields_to_remove must be strings.")
            if "/" in f:
                arr, _, key = f.partition("/")
                kname = {"tasks": "task_key", "job_clusters": "job_cluster_key"}.get(arr)
                if kname is None:
                    raise invalid_parameter(f"Invalid field to remove: {f}")
                before = s.get(arr) or []
                after = [x for x in before if x.get(kname) != key]
                if len(after) == len(before):
                    raise invalid_parameter(f"Cannot remove {f}: no such element.")
                s[arr] = after
            else:
                s.pop(f, None)
        job["settings"] = _validate_settings(s, req.params["version"])
        st.applied["jobs/update"] += 1
    return {}


@route("POST", V + r"/reset")
def reset_job(req):
    body = req.body
    st = req.state
    new = body.get("new_settings")
    if not isinstance(new, dict):
        raise invalid_parameter("Missing required field: new_settings")
    with st.lock:
        job = _job(req, body.get("job_id"))
        job["settings"] = _validate_settings(new, req.params["version"])
        st.applied["jobs/reset"] += 1
    return {}


@route("POST", V + r"/delete")
def delete_job(req):
    st = req.state
    with st.lock:
        job = _job(req, req.body.get("job_id"))
        store = store_of(st)
        del store.jobs[job["job_id"]]
        st.applied["jobs/delete"] += 1
    return {}


# --------------------------------------------------------------------------- runs: creation

def _job_params(settings: dict, given: Optional[dict]) -> List[dict]:
    out, given = [], dict(given or {})
    for p in settings.get("parameters") or []:
        item = {"name": p["name"], "default": p.get("default", "")}
        item["value"] = str(given.pop(p["name"])) if p["name"] in given else item["default"]
        out.append(item)
    for k, v in given.items():
        out.append({"name": k, "value": str(v)})
    return out


def _new_task_run(store: JobsStore, run: dict, spec: dict, attempt: int = 0, not_before: int = 0) -> dict:
    tid = next(store.run_ids)
    store.task_index[tid] = (run["run_id"], spec["task_key"])
    t = {"spec": copy.deepcopy(spec), "run_id": tid, "attempt_number": attempt, "phase": "BLOCKED",
         "not_before": not_before, "ready_at": None, "run_at": None, "done_at": None,
         "result_state": None, "life_cycle_final": None, "state_message": "", "user_cancelled": False,
         "output": {}, "error": None, "error_trace": None, "repair_id": None}
    run["all_task_runs"].append(t)
    return t


def _create_run(req, *, job: Optional[dict], settings: dict, body: dict, run_type: str, kind: str) -> int:
    st = req.state
    store = store_of(st)
    token = body.get("idempotency_token")
    if token is not None:
        if not isinstance(token, str) or len(token) > 64:
            raise invalid_parameter("idempotency_token must be a string of at most 64 characters.")
        if token in store.tokens:
            rid = store.tokens[token]
            run = store.runs.get(rid)
            if run is None or run.get("deleted"):
                raise invalid_state(f"The run created with idempotency token {token} was deleted.")
            return rid
    now = _ms(st)
    rid = next(store.run_ids)
    job_id = job["job_id"] if job else next(store.ids)
    overriding = {k: copy.deepcopy(body[k]) for k in LEGACY_PARAMS if body.get(k) is not None}
    if body.get("notebook_params") is not None and body.get("jar_params") is not None:
        raise invalid_parameter("notebook_params and jar_params cannot be specified together.")
    jp = body.get("job_parameters")
    if jp is not None and not isinstance(jp, dict):
        raise invalid_parameter("job_parameters must be a map of string to string.")
    only = body.get("only")
    spec_tasks = settings.get("tasks") or []
    if only:
        keys = {k.strip("+") for k in only}
        unknown = keys - {t["task_key"] for t in spec_tasks}
        if unknown:
            raise invalid_parameter(f"Tasks {sorted(unknown)} in 'only' are not part of the job.")
        spec_tasks = [t for t in spec_tasks if t["task_key"] in keys]
        spec_tasks = [dict(t, depends_on=[d for d in t.get("depends_on") or [] if d["task_key"] in keys])
                      for t in spec_tasks]
    queue = body.get("queue") if isinstance(body.get("queue"), dict) else settings.get("queue")
    run = {
        "run_id": rid, "job_id": job_id, "number_in_job": rid, "original_attempt_run_id": rid,
        "run_name": body.get("run_name") or settings.get("name") or "Untitled",
        "run_type": run_type, "trigger": "ONE_TIME", "creator_user_name": _user(req),
        "created": now, "start_time": now, "exec_start": None, "end_time": 0, "phase": "NEW",
        "result_state": None, "state_message": "", "user_cancelled": False, "life_cycle_final": None,
        "termination": None, "queue_details": None,
        "job_clusters": copy.deepcopy(settings.get("job_clusters") or []),
        "job_parameters": _job_params(settings, jp),
        "overriding_parameters": overriding,
        "timeout_seconds": int(settings.get("timeout_seconds") or 0),
        "queue_enabled": bool((queue or {}).get("enabled")),
        "max_concurrent": settings.get("max_concurrent_runs", 1) if job else None,
        "all_task_runs": [], "repairs": [], "cancel_at": None, "deleted": False,
        "base_url": req.base_url, "idempotency_token": token, "kind": kind,
        "git_source": copy.deepcopy(settings.get("git_source")),
    }
    for spec in spec_tasks:
        _new_task_run(store, run, spec)
    store.runs[rid] = run
    if token is not None:
        store.tokens[token] = rid
    st.applied[kind] += 1
    _admit(st, store, run, now)
    return rid


def _active(run: dict) -> bool:
    return run["phase"] in ("QUEUED", "ACTIVE")


def _admit(st, store: JobsStore, run: dict, now: int) -> None:
    """A new run starts, queues, or is skipped by the job's concurrency limit."""
    if run["max_concurrent"] is None:
        _start(run, now)
        return
    others = [r for r in store.runs.values() if r["job_id"] == run["job_id"] and r is not run
              and not r.get("deleted") and _active(r)]
    running = [r for r in others if r["phase"] == "ACTIVE"]
    queued = [r for r in others if r["phase"] == "QUEUED"]
    limit = int(run["max_concurrent"])
    if limit > 0 and len(running) < limit and not queued:
        _start(run, now)
    elif limit > 0 and run["queue_enabled"]:
        run["phase"] = "QUEUED"
        run["queue_details"] = {"code": "MAX_CONCURRENT_RUNS_REACHED",
                                "message": f"Queued because the limit of {limit} concurrent runs of this job was reached."}
    else:
        run["phase"] = "DONE"
        run["life_cycle_final"] = "SKIPPED"
        run["result_state"] = None
        run["end_time"] = now
        run["state_message"] = (f"Skipping this run because the limit of {limit} maximum concurrent runs "
                                f"has been reached.")
        run["termination"] = ("MAX_CONCURRENT_RUNS_EXCEEDED", "CLIENT_ERROR")
        for t in run["all_task_runs"]:
            t.update(phase="DONE", life_cycle_final="SKIPPED", done_at=now, ready_at=now,
                     state_message="The run was skipped.")


def _start(run: dict, at: int) -> None:
    run["phase"] = "ACTIVE"
    run["exec_start"] = at
    run["queue_details"] = None
    for t in run["all_task_runs"]:
        if t["phase"] == "BLOCKED" and not t["not_before"]:
            t["not_before"] = at


# --------------------------------------------------------------------------- the clock

_RUN_IF = ("ALL_SUCCESS", "AT_LEAST_ONE_SUCCESS", "NONE_FAILED", "ALL_DONE", "AT_LEAST_ONE_FAILED", "ALL_FAILED")
_FAILED = ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED", "INTERNAL_ERROR")
_CANCELED = ("CANCELED", "UPSTREAM_CANCELED")


def _tasks_now(run: dict) -> List[dict]:
    """The current attempt of each task, in job order."""
    latest: Dict[str, dict] = {}
    for t in run["all_task_runs"]:
        latest[t["spec"]["task_key"]] = t
    return list(latest.values())


def _task_result(t: dict) -> str:
    if t["life_cycle_final"] == "INTERNAL_ERROR":
        return "INTERNAL_ERROR"
    if t["life_cycle_final"] == "SKIPPED":
        return "SKIPPED"
    return t["result_state"] or ""


def _condition(run_if: str, results: List[str]):
    """(run it?, result when not run)."""
    succ = sum(r in ("SUCCESS", "SUCCESS_WITH_FAILURES") for r in results)
    failed = sum(r in _FAILED for r in results)
    canceled = sum(r in _CANCELED for r in results)
    n = len(results)
    if run_if == "ALL_SUCCESS":
        if succ == n or n == 0:
            return True, None
        return False, "UPSTREAM_CANCELED" if canceled and not failed else "UPSTREAM_FAILED"
    if run_if == "AT_LEAST_ONE_SUCCESS":
        return (succ > 0 or n == 0), "UPSTREAM_FAILED"
    if run_if == "NONE_FAILED":
        return failed == 0, "UPSTREAM_FAILED"
    if run_if == "ALL_DONE":
        return True, None
    if run_if == "AT_LEAST_ONE_FAILED":
        return failed > 0, "EXCLUDED"
    if run_if == "ALL_FAILED":
        return (failed == n and n > 0), "EXCLUDED"
    return True, None


def _advance_tasks(st, store: JobsStore, run: dict, horizon: int) -> None:
    pending_ms = int(float(_cfg(st, "pending_seconds")) * 1000)
    task_ms = int(float(_cfg(st, "task_seconds")) * 1000)
    progress = True
    while progress:
        progress = False
        current = {t["spec"]["task_key"]: t for t in _tasks_now(run)}
        for t in current.values():
            if t["phase"] == "BLOCKED":
                deps = [current.get(d["task_key"]) for d in t["spec"].get("depends_on") or []]
                deps = [d for d in deps if d is not None]
                if any(d["phase"] != "DONE" for d in deps):
                    continue
                ready = max([t["not_before"]] + [d["done_at"] for d in deps])
                if ready > horizon:
                    continue
                ok, skipped_as = _condition(t["spec"].get("run_if") or "ALL_SUCCESS",
                                            [_task_result(d) for d in deps])
                # only the dependencies' recorded outcome (and optional outcome filter) matter
                for d, dep in zip(deps, [x for x in t["spec"].get("depends_on") or [] if current.get(x["task_key"])]):
                    want = dep.get("outcome")
                    if want is not None and str(d.get("condition_result", "")).lower() != str(want).lower():
                        ok, skipped_as = False, "EXCLUDED"
                t["ready_at"] = ready
                if t["spec"].get("disabled"):
                    t.update(phase="DONE", run_at=ready, done_at=ready, result_state="DISABLED",
                             state_message="This task is disabled.")
                elif not ok:
                    msg = {"UPSTREAM_FAILED": "Upstream task(s) failed.",
                           "UPSTREAM_CANCELED": "Upstream task(s) were canceled.",
                           "EXCLUDED": "The task was excluded because its run-if condition was not met."}[skipped_as]
                    t.update(phase="DONE", run_at=ready, done_at=ready, result_state=skipped_as, state_message=msg)
                else:
                    t.update(phase="SCHEDULED", run_at=ready + pending_ms, done_at=ready + pending_ms + task_ms)
                    _begin(st, store, run, t)
                progress = True
            elif t["phase"] == "SCHEDULED" and t["done_at"] <= horizon:
                if _finish_task(st, store, run, t, horizon):
                    progress = True


def _finish_run(run: dict, at: int) -> None:
    tasks = _tasks_now(run)
    results = [_task_result(t) for t in tasks]
    run["phase"] = "DONE"
    run["end_time"] = at
    if any(t["life_cycle_final"] == "INTERNAL_ERROR" for t in tasks):
        run["life_cycle_final"] = "INTERNAL_ERROR"
        run["result_state"] = "FAILED"
        bad = next(t for t in tasks if t["life_cycle_final"] == "INTERNAL_ERROR")
        run["state_message"] = f"Task {bad['spec']['task_key']} failed with an internal error: {bad['state_message']}"
        run["termination"] = ("INTERNAL_ERROR", "INTERNAL_ERROR")
    elif run["user_cancelled"] or (any(r == "CANCELED" for r in results) and not any(r in _FAILED for r in results)):
        run["life_cycle_final"] = "TERMINATED"
        run["result_state"] = "CANCELED"
        run["state_message"] = run["state_message"] or "Run cancelled."
        run["termination"] = ("USER_CANCELED", "SUCCESS")
    elif any(r == "TIMEDOUT" for r in results):
        run["life_cycle_final"] = "TERMINATED"
        run["result_state"] = "TIMEDOUT"
        run["termination"] = ("CANCELED", "CLIENT_ERROR")
    elif any(r in _FAILED for r in results):
        run["life_cycle_final"] = "TERMINATED"
        run["result_state"] = "FAILED"
        failed = [t for t in tasks if _task_result(t) == "FAILED"] or [t for t in tasks if _task_result(t) in _FAILED]
        if failed:
            t = failed[0]
            run["state_message"] = (f"Task {t['spec']['task_key']} failed with message: "
                                    f"{t['error'] or 'Workload failed, see run output for details.'}")
        run["termination"] = ("RUN_EXECUTION_ERROR", "CLIENT_ERROR")
    else:
        run["life_cycle_final"] = "TERMINATED"
        run["result_state"] = "SUCCESS"
        run["state_message"] = ""
        run["termination"] = ("SUCCESS", "SUCCESS")
    if run["repairs"]:
        rep = run["repairs"][-1]
        rep["end_time"] = at
    else:
        run["original_end"] = at


def _tick_run(st, store: JobsStore, run: dict, now: int) -> None:
    if run["phase"] != "ACTIVE":
        return
    horizon = now
    limit_at = None
    if run["timeout_seconds"] and run["exec_start"] is not None:
        limit_at = run["exec_start"] + run["timeout_seconds"] * 1000
        horizon = min(horizon, limit_at)
    if run["cancel_at"] is not None:
        horizon = min(horizon, run["cancel_at"])
    _advance_tasks(st, store, run, horizon)
    tasks = _tasks_now(run)
    if all(t["phase"] == "DONE" for t in tasks):
        _finish_run(run, max([t["done_at"] for t in tasks] + [run["exec_start"] or run["created"]]))
        return
    stop = None
    if run["cancel_at"] is not None and run["cancel_at"] <= now:
        stop, result, cancelled, msg = run["cancel_at"], "CANCELED", True, "Run cancelled."
    if limit_at is not None and limit_at <= now and (stop is None or limit_at < stop):
        stop, result, cancelled, msg = limit_at, "TIMEDOUT", True, (
            f"Run timed out after {run['timeout_seconds']} seconds.")
    if stop is None:
        return
    for t in tasks:
        if t["phase"] != "DONE":
            t.update(phase="DONE", done_at=stop, result_state=result, user_cancelled=cancelled,
                     state_message=msg if t["phase"] == "SCHEDULED" else (
                         "The task was canceled before it started." if result == "CANCELED" else msg))
            if t["ready_at"] is None:
                t["ready_at"] = stop
                t["run_at"] = stop
    run["user_cancelled"] = True
    run["state_message"] = msg
    _finish_run(run, stop)
    if result == "TIMEDOUT":
        run["result_state"] = "TIMEDOUT"
        run["termination"] = ("CANCELED", "CLIENT_ERROR")


def tick(st, now: Optional[int] = None) -> None:
    """Bring every run up to ``now`` (ms): task progress, completions, queue promotions."""
    store = store_of(st)
    now = _ms(st) if now is None else now
    for _ in range(100):
        changed = False
        for run in sorted(store.runs.values(), key=lambda r: r["run_id"]):
            if run["phase"] == "ACTIVE":
                _tick_run(st, store, run, now)
        by_job: Dict[int, List[dict]] = {}
        for run in store.runs.values():
            if run["max_concurrent"] is not None and not run.get("deleted"):
                by_job.setdefault(run["job_id"], []).append(run)
        for job_id, runs in by_job.items():
            queued = sorted([r for r in runs if r["phase"] == "QUEUED"], key=lambda r: r["run_id"])
            if not queued:
                continue
            active = [r for r in runs if r["phase"] == "ACTIVE"]
            freed = [r["end_time"] for r in runs if r["phase"] == "DONE" and r["end_time"]]
            for r in queued:
                if len(active) >= max(1, int(r["max_concurrent"] or 1)):
                    break
                start = max([r["created"]] + [f for f in freed if f <= now])
                _start(r, start)
                active.append(r)
                changed = True
        if not changed:
            return


# --------------------------------------------------------------------------- executing a task

def _engines():
    try:
        return importlib.import_module(__package__ + ".pyrunner")
    except ImportError:
        return None


def _refs(text: Any, run: dict, t: dict) -> Any:
    """Resolve {{job.parameters.x}}, {{job.id}}, {{job.run_id}}, {{task.name}}, {{task.run_id}}."""
    if not isinstance(text, str) or "{{" not in text:
        return text
    params = {p["name"]: p.get("value", p.get("default", "")) for p in run["job_parameters"]}

    def sub(m):
        ref = m.group(1).strip()
        if ref.startswith("job.parameters."):
            return str(params.get(ref[len("job.parameters."):], m.group(0)))
        return str({"job.id": run["job_id"], "job.run_id": run["run_id"], "task.name": t["spec"]["task_key"],
                    "task.run_id": t["run_id"], "job.name": run["run_name"]}.get(ref, m.group(0)))

    return re.sub(r"\{\{\s*([^}]+?)\s*\}\}", sub, text)


def _inline_code(spec: dict) -> Optional[str]:
    for k in ("spark_python_task", "notebook_task"):
        sub = spec.get(k)
        if isinstance(sub, dict) and isinstance(sub.get("python_code"), str):
            return sub["python_code"]
    if isinstance(spec.get("python_code"), str):
        return spec["python_code"]
    return None


def _prelude(argv: List[str], widgets: Dict[str, str]) -> str:
    return (
        "import sys as _dbx_sys, json as _dbx_json\n"
        f"_dbx_sys.argv = {argv!r}\n"
        "class _DbxWidgets:\n"
        f"    _values = {widgets!r}\n"
        "    def get(self, name):\n"
        "        if name not in self._values:\n"
        "            raise ValueError('No input widget named ' + name + ' is defined')\n"
        "        return self._values[name]\n"
        "    getArgument = get\n"
        "    def text(self, name, default='', label=None):\n"
        "        self._values.setdefault(name, default)\n"
        "class _DbxNotebookExit(Exception):\n"
        "    pass\n"
        "class _DbxNotebook:\n"
        "    def exit(self, value):\n"
        f"        raise _DbxNotebookExit({_EXIT_MARK!r} + _dbx_json.dumps(str(value)) + {_EXIT_MARK!r})\n"
        "class _DbxUtils:\n"
        "    widgets = _DbxWidgets()\n"
        "    notebook = _DbxNotebook()\n"
        "dbutils = _DbxUtils()\n"
    )


def _with_prelude(prelude: str, code: str) -> str:
    """The prelude runs from one line, so the user's line numbers are off by one only."""
    return f"exec({prelude!r})\n{code}"


def _start_python(st, store: "JobsStore", run: dict, t: dict, code: str) -> None:
    """Start a task's inline code on a worker thread (user code never runs under the state lock)."""
    spec = t["spec"]
    ov = run["overriding_parameters"]
    if spec.get("spark_python_task") is not None:
        sp = spec["spark_python_task"]
        params = ov.get("python_params") if ov.get("python_params") is not None else sp.get("parameters") or []
        argv = [sp.get("python_file", "task.py")] + [str(_refs(p, run, t)) for p in params]
        widgets: Dict[str, str] = {}
    else:
        nb = spec.get("notebook_task") or {}
        argv = [nb.get("notebook_path", "notebook")]
        widgets = {p["name"]: str(p.get("value", p.get("default", ""))) for p in run["job_parameters"]}
        widgets.update({k: str(_refs(v, run, t)) for k, v in (nb.get("base_parameters") or {}).items()})
        widgets.update({k: str(v) for k, v in (ov.get("notebook_params") or {}).items()})
    engines = _engines()
    if engines is None or not hasattr(engines, "run_python_once"):
        t["sync_outcome"] = {"result": "SUCCESS",
                             "logs": "(the emulator's Python runner is not available; outcome simulated)\n"}
        return
    source = _with_prelude(_prelude(argv, widgets), code)
    timeout = float(_cfg(st, "python_timeout"))
    engine = _sql_engine(st)
    t["future"] = store.executor().submit(engines.run_python_once, source, timeout, sql_engine=engine)


def _python_outcome(res: dict, is_notebook: bool) -> dict:
    res = res or {}
    if res.get("resultType") == "error":
        text = html.unescape(f"{res.get('summary') or ''}\n{res.get('cause') or ''}")
        m = re.search(re.escape(_EXIT_MARK) + r"(.*?)" + re.escape(_EXIT_MARK), text, re.S)
        if m and is_notebook:
            try:
                value = json.loads(m.group(1))
            except ValueError:
                value = m.group(1).strip('"')
            return {"result": "SUCCESS", "notebook_result": value, "logs": res.get("data") or ""}
        return {"result": "FAILED", "error": _plain(res.get("summary")) or "Workload failed",
                "error_trace": res.get("cause") or "", "logs": res.get("data") if isinstance(res.get("data"), str) else ""}
    data = res.get("data")
    logs = data if isinstance(data, str) else (json.dumps(data) if data is not None else "")
    out = {"result": "SUCCESS", "logs": logs}
    if is_notebook:
        out["notebook_result"] = None
    return out


def _plain(text: Optional[str]) -> Optional[str]:
    if not text:
        return text
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(text).strip()


def _run_sql(st, run: dict, t: dict) -> dict:
    sql = t["spec"].get("sql_task") or {}
    q = sql.get("query")
    text = None
    if isinstance(q, dict):
        text = q.get("query_text")
    if text is None:
        text = sql.get("query_text")
    if not isinstance(text, str):
        return {"result": "SUCCESS", "sql": {"warehouse_id": sql.get("warehouse_id"), "query_text": None}}
    text = _refs(text, run, t)
    engines = _engines()
    if engines is None or not hasattr(engines, "run_sql_once"):
        return {"result": "SUCCESS", "sql": {"warehouse_id": sql.get("warehouse_id"), "query_text": text},
                "logs": "(the emulator's SQL engine is not available; outcome simulated)\n"}
    engine = _sql_engine(st)
    values = {k: _refs(v, run, t) for k, v in (sql.get("parameters") or {}).items()}
    values.update(run["overriding_parameters"].get("sql_params") or {})
    params = [{"name": k, "value": None if v is None else str(v)} for k, v in values.items()
              if re.search(r":" + re.escape(k) + r"\b", text)]
    res = engines.run_sql_once(engine, text, params or None)
    res = res or {}
    if res.get("resultType") == "error":
        return {"result": "FAILED", "error": _plain(res.get("summary")) or "Query failed",
                "error_trace": res.get("cause") or "",
                "sql": {"warehouse_id": sql.get("warehouse_id"), "query_text": text}}
    result = None
    if res.get("resultType") == "table":
        cols = [c.get("name") if isinstance(c, dict) else c for c in res.get("schema") or []]
        result = {"columns": cols, "rows": res.get("data") or []}
    elif res.get("data") is not None:
        result = {"text": res.get("data")}
    return {"result": "SUCCESS", "sql": {"warehouse_id": sql.get("warehouse_id"), "query_text": text,
                                          "result": result}}


def _sql_engine(st):
    from .sqlengine import engine_for
    return engine_for(st)


def _take_preset(store: JobsStore, run: dict, key: str) -> Optional[dict]:
    for p in store.presets:
        if p["target"] in (run["job_id"], run["run_id"]) and p["task_key"] in (None, key) and (
                p["remaining"] is None or p["remaining"] > 0):
            if p["remaining"] is not None:
                p["remaining"] -= 1
            out = {"result": p["result_state"], "error": p["error"], "error_trace": p["error_trace"],
                   "logs": p["logs"], "notebook_result": p["notebook_result"]}
            if p["result_state"] != "SUCCESS" and not out["error"]:
                out["error"] = f"Task {key} failed (preset outcome {p['result_state']})."
            return out
    return None


def _begin(st, store: JobsStore, run: dict, t: dict) -> None:
    """A task starts: a preset outcome is taken now; inline Python starts running now."""
    t["future"] = None
    t["sync_outcome"] = _take_preset(store, run, t["spec"]["task_key"])
    if t["sync_outcome"] is not None:
        return
    spec = t["spec"]
    if spec.get("condition_task") is None and spec.get("sql_task") is None:
        code = _inline_code(spec)
        if code is not None:
            try:
                _start_python(st, store, run, t, code)
            except Exception as e:  # noqa: BLE001
                t["sync_outcome"] = {"result": "INTERNAL_ERROR", "error": f"Emulator engine error: {e!r}"}


def _outcome(st, store: JobsStore, run: dict, t: dict) -> Optional[dict]:
    """The task's outcome, or None while its code is still running."""
    if t.get("sync_outcome") is not None:
        return t["sync_outcome"]
    spec = t["spec"]
    fut = t.get("future")
    if fut is not None:
        if not fut.done():
            return None
        try:
            return _python_outcome(fut.result(), spec.get("notebook_task") is not None)
        except Exception as e:  # noqa: BLE001 - an engine failure is an internal error of the task
            return {"result": "INTERNAL_ERROR", "error": f"Emulator engine error: {e!r}"}
    try:
        if spec.get("condition_task") is not None:
            return _condition_task(run, t)
        if spec.get("sql_task") is not None:
            return _run_sql(st, run, t)
    except Exception as e:  # noqa: BLE001
        return {"result": "INTERNAL_ERROR", "error": f"Emulator engine error: {e!r}"}
    if spec.get("notebook_task") is not None:
        return {"result": "SUCCESS", "notebook_result": None}
    return {"result": "SUCCESS", "logs": ""}


_OPS = {"EQUAL_TO": lambda a, b: a == b, "NOT_EQUAL": lambda a, b: a != b,
        "GREATER_THAN": lambda a, b: a > b, "GREATER_THAN_OR_EQUAL": lambda a, b: a >= b,
        "LESS_THAN": lambda a, b: a < b, "LESS_THAN_OR_EQUAL": lambda a, b: a <= b}


def _condition_task(run: dict, t: dict) -> dict:
    c = t["spec"]["condition_task"]
    left, right = str(_refs(c.get("left", ""), run, t)), str(_refs(c.get("right", ""), run, t))
    op = _OPS.get(c.get("op"))
    if op is None:
        return {"result": "FAILED", "error": f"Invalid condition_task op {c.get('op')!r}."}
    try:
        a, b = float(left), float(right)
    except ValueError:
        a, b = left, right
    return {"result": "SUCCESS", "condition_result": "true" if op(a, b) else "false"}


def _finish_task(st, store: JobsStore, run: dict, t: dict, horizon: int) -> bool:
    o = _outcome(st, store, run, t)
    if o is None:
        return False            # the code still runs: the task stays RUNNING
    t["done_at"] = max(t["done_at"], min(horizon, st.now_ms()))
    t["future"] = None
    t["condition_result"] = o.get("condition_result")
    result = o.get("result", "SUCCESS")
    t["phase"] = "DONE"
    spec = t["spec"]
    output: Dict[str, Any] = {}
    if spec.get("notebook_task") is not None:
        output["notebook_output"] = ({"result": o["notebook_result"], "truncated": False}
                                     if o.get("notebook_result") is not None else {})
    if spec.get("sql_task") is not None:
        sql = o.get("sql") or {"warehouse_id": (spec.get("sql_task") or {}).get("warehouse_id")}
        qo = {"query_text": sql.get("query_text"), "warehouse_id": sql.get("warehouse_id"),
              "endpoint_id": sql.get("warehouse_id"), "sql_statements": [{"lookup_key": secrets.token_hex(8)}],
              "output_link": f"{run['base_url']}/sql/history?o=0"}
        if sql.get("result") is not None:
            qo["result"] = sql["result"]
        output["sql_output"] = {"query_output": qo}
    if o.get("logs") is not None and spec.get("notebook_task") is None and spec.get("sql_task") is None:
        output["logs"] = o["logs"]
        output["logs_truncated"] = False
    elif o.get("logs"):
        output["logs"] = o["logs"]
        output["logs_truncated"] = False
    t["output"] = output
    if result == "INTERNAL_ERROR":
        t["life_cycle_final"] = "INTERNAL_ERROR"
        t["result_state"] = "FAILED"
        t["state_message"] = o.get("error") or "An internal error occurred."
        t["error"] = o.get("error")
    elif result == "SUCCESS":
        t["result_state"] = "SUCCESS"
        t["state_message"] = ""
    else:
        t["result_state"] = result
        t["error"] = o.get("error") or "Workload failed, see run output for details."
        t["error_trace"] = o.get("error_trace")
        t["state_message"] = t["error"]
        if result in ("CANCELED", "TIMEDOUT"):
            t["user_cancelled"] = True
    return True


# --------------------------------------------------------------------------- views

def _state_objects(life: str, result: Optional[str], message: str, cancelled: bool,
                   termination: Optional[tuple], queue_details: Optional[dict]):
    state = {"life_cycle_state": life, "state_message": message or "", "user_cancelled_or_timedout": bool(cancelled)}
    if result:
        state["result_state"] = result
    if life == "QUEUED" and queue_details:
        state["queue_reason"] = queue_details.get("message")
    status_state = {"SKIPPED": "TERMINATED", "INTERNAL_ERROR": "TERMINATED",
                    "WAITING_FOR_RETRY": "WAITING"}.get(life, life)
    status = {"state": status_state}
    if status_state == "TERMINATED":
        code, ttype = termination or _TERMINATION.get(result or "", ("SUCCESS", "SUCCESS"))
        if life == "INTERNAL_ERROR":
            code, ttype = "INTERNAL_ERROR", "INTERNAL_ERROR"
        if life == "SKIPPED" and not termination:
            code, ttype = "SKIPPED", "SUCCESS"
        status["termination_details"] = {"code": code, "type": ttype, "message": message or ""}
    if life == "QUEUED" and queue_details:
        status["queue_details"] = dict(queue_details)
    return state, status


def _task_view(st, run: dict, t: dict, now: int) -> dict:
    out = copy.deepcopy(t["spec"])
    out["run_id"] = t["run_id"]
    out["attempt_number"] = t["attempt_number"]
    if t.get("condition_result") is not None and isinstance(out.get("condition_task"), dict):
        out["condition_task"]["outcome"] = t["condition_result"]
    if run["phase"] == "QUEUED":
        life = "QUEUED"
    elif t["phase"] == "BLOCKED":
        life = "BLOCKED" if t["spec"].get("depends_on") else "PENDING"
    elif t["phase"] == "SCHEDULED":
        life = "PENDING" if now < t["run_at"] else "RUNNING"
    else:
        life = t["life_cycle_final"] or "TERMINATED"
    result = t["result_state"] if t["phase"] == "DONE" and life not in ("SKIPPED",) else None
    if life == "INTERNAL_ERROR":
        result = None
    msg = t["state_message"]
    if t["phase"] == "BLOCKED" and life == "BLOCKED":
        msg = "Waiting for upstream tasks to finish."
    term = None
    if t["phase"] == "DONE" and result:
        term = _TERMINATION.get(result)
        if result == "CANCELED" and not t["user_cancelled"]:
            term = ("CANCELED", "SUCCESS")
    state, status = _state_objects(life, result, msg, t["user_cancelled"], term, None)
    out["state"] = state
    out["status"] = status
    started = t["ready_at"] is not None
    out["start_time"] = t["ready_at"] or 0
    out["end_time"] = t["done_at"] if t["phase"] == "DONE" else 0
    if started and t["run_at"] is not None:
        setup_end = min(t["run_at"], now if t["phase"] != "DONE" else t["done_at"])
        out["setup_duration"] = max(0, setup_end - t["ready_at"])
        exec_end = t["done_at"] if t["phase"] == "DONE" else now
        out["execution_duration"] = max(0, exec_end - t["run_at"]) if exec_end >= t["run_at"] else 0
    else:
        out["setup_duration"] = 0
        out["execution_duration"] = 0
    out["cleanup_duration"] = 0
    out["run_duration"] = (out["end_time"] - out["start_time"]) if out["end_time"] else 0
    if run["phase"] == "QUEUED":
        out["queue_duration"] = max(0, now - run["created"])
    if t["spec"].get("existing_cluster_id"):
        out["cluster_instance"] = {"cluster_id": t["spec"]["existing_cluster_id"]}
    out["run_page_url"] = _page_url(run["base_url"], st, run["job_id"], t["run_id"])
    return out


def _run_life(run: dict, now: int) -> str:
    if run["phase"] == "QUEUED":
        return "QUEUED"
    if run["phase"] == "DONE":
        return run["life_cycle_final"] or "TERMINATED"
    tasks = _tasks_now(run)
    if run["cancel_at"] is not None:
        return "TERMINATING"
    if any(t["phase"] == "DONE" or (t["phase"] == "SCHEDULED" and now >= t["run_at"]) for t in tasks):
        return "RUNNING"
    return "PENDING"


def _run_view(st, run: dict, now: int, *, with_tasks: bool = True) -> dict:
    life = _run_life(run, now)
    result = run["result_state"] if run["phase"] == "DONE" and life == "TERMINATED" else None
    if run["phase"] == "DONE" and life == "INTERNAL_ERROR":
        result = None
    state, status = _state_objects(life, result, run["state_message"], run["user_cancelled"], run["termination"],
                                   run["queue_details"])
    start = run["exec_start"] if run["exec_start"] is not None else run["created"]
    end = run["end_time"] if run["phase"] == "DONE" else 0
    out = {
        "job_id": run["job_id"], "run_id": run["run_id"], "number_in_job": run["number_in_job"],
        "original_attempt_run_id": run["original_attempt_run_id"], "attempt_number": 0,
        "creator_user_name": run["creator_user_name"], "run_name": run["run_name"], "run_type": run["run_type"],
        "trigger": run["trigger"], "state": state, "status": status,
        "start_time": run["created"], "end_time": end,
        "setup_duration": 0, "execution_duration": 0, "cleanup_duration": 0,
        "run_duration": (end - run["created"]) if end else 0,
        "queue_duration": max(0, (start if run["phase"] != "QUEUED" else now) - run["created"]),
        "run_page_url": _page_url(run["base_url"], st, run["job_id"], run["run_id"]),
        "format": "MULTI_TASK",
        "job_parameters": copy.deepcopy(run["job_parameters"]),
        "job_clusters": copy.deepcopy(run["job_clusters"]),
    }
    if run["kind"] == "jobs/run-now":
        out["job_run_id"] = run["run_id"]
    if run["overriding_parameters"]:
        out["overriding_parameters"] = copy.deepcopy(run["overriding_parameters"])
    if run["git_source"]:
        out["git_source"] = copy.deepcopy(run["git_source"])
    if with_tasks:
        out["tasks"] = [_task_view(st, run, t, now) for t in _tasks_now(run)]
        out["iterations"] = []
    out["repair_history"] = _repair_history(st, run, now)
    return out


def _repair_history(st, run: dict, now: int) -> List[dict]:
    first_ids = [t["run_id"] for t in run["all_task_runs"] if t["repair_id"] is None]
    if run["repairs"]:
        o_state, o_status = _state_objects("TERMINATED", run["repairs"][0]["prev_result"],
                                           run["repairs"][0]["prev_message"], False,
                                           run["repairs"][0]["prev_termination"], None)
        o_end = run["repairs"][0]["prev_end"]
    else:
        life = _run_life(run, now)
        result = run["result_state"] if run["phase"] == "DONE" and life == "TERMINATED" else None
        o_state, o_status = _state_objects(life, result, run["state_message"], run["user_cancelled"],
                                           run["termination"], run["queue_details"])
        o_end = run["end_time"] if run["phase"] == "DONE" else 0
    hist = [{"type": "ORIGINAL", "id": run["run_id"], "start_time": run["created"], "end_time": o_end,
             "state": o_state, "status": o_status, "task_run_ids": first_ids}]
    for i, rep in enumerate(run["repairs"]):
        last = i == len(run["repairs"]) - 1
        if last:
            life = _run_life(run, now)
            result = run["result_state"] if run["phase"] == "DONE" and life == "TERMINATED" else None
            state, status = _state_objects(life, result, run["state_message"], run["user_cancelled"],
                                           run["termination"], None)
            end = run["end_time"] if run["phase"] == "DONE" else 0
        else:
            nxt = run["repairs"][i + 1]
            state, status = _state_objects("TERMINATED", nxt["prev_result"], nxt["prev_message"], False,
                                           nxt["prev_termination"], None)
            end = nxt["prev_end"]
        hist.append({"type": "REPAIR", "id": rep["repair_id"], "start_time": rep["start_time"], "end_time": end,
                     "state": state, "status": status, "task_run_ids": list(rep["task_run_ids"])})
    return hist


# --------------------------------------------------------------------------- runs endpoints

@route("POST", V + r"/run-now")
def run_now(req):
    body = req.body
    st = req.state
    with st.lock:
        tick(st)
        job = _job(req, body.get("job_id"))
        settings = job["settings"]
        if body.get("performance_target") is not None and not isinstance(body["performance_target"], str):
            raise invalid_parameter("performance_target must be a string.")
        rid = _create_run(req, job=job, settings=settings, body=dict(body, run_name=None), run_type="JOB_RUN",
                          kind="jobs/run-now")
        return {"run_id": rid, "number_in_job": rid}


@route("POST", V + r"/runs/submit")
def submit_run(req):
    body = req.body
    st = req.state
    tasks = body.get("tasks")
    if not tasks:
        raise invalid_parameter("Missing required field: tasks")
    _validate_tasks(tasks, [], submit=True)
    settings = {"name": body.get("run_name") or "Untitled", "tasks": tasks,
                "timeout_seconds": body.get("timeout_seconds") or 0, "git_source": body.get("git_source"),
                "queue": body.get("queue") or {"enabled": False}}
    with st.lock:
        tick(st)
        rid = _create_run(req, job=None, settings=settings, body=body, run_type="SUBMIT_RUN", kind="jobs/runs/submit")
        return {"run_id": rid}


@route("GET", V + r"/runs/get")
def get_run(req):
    st = req.state
    with st.lock:
        tick(st)
        now = _ms(st)
        run, task = _run(req, req.param("run_id"), allow_task=True)
        if task is not None:
            out = _task_view(st, run, task, now)
            out["job_id"] = run["job_id"]
            out["run_name"] = run["run_name"]
            out["run_type"] = run["run_type"]
            out["parent_run_id"] = run["run_id"]
            return out
        out = _run_view(st, run, now)
        return _paged(out, out, RUN_ARRAYS, req.q("page_token"), req.params["version"],
                      int(_cfg(st, "array_page_size")), "run")


@route("GET", V + r"/runs/get-output")
def get_run_output(req):
    st = req.state
    with st.lock:
        tick(st)
        now = _ms(st)
        run, task = _run(req, req.param("run_id"), allow_task=True)
        if task is None:
            tasks = _tasks_now(run)
            if len(tasks) != 1 or not _cfg(st, "parent_output_single_task"):
                raise invalid_parameter(MULTI_TASK_OUTPUT)
            task = tasks[0]
        meta = _task_view(st, run, task, now)
        meta.update(job_id=run["job_id"], run_name=run["run_name"], run_type=run["run_type"],
                    parent_run_id=run["run_id"])
        out: Dict[str, Any] = {"metadata": meta}
        if task["phase"] == "DONE":
            out.update(copy.deepcopy(task["output"]))
            if task["error"]:
                out["error"] = task["error"]
            if task["error_trace"]:
                out["error_trace"] = task["error_trace"]
        return out


@route("GET", V + r"/runs/list")
def list_runs(req):
    st = req.state
    limit = req.q_int("limit", 20)
    maxl = int(_cfg(st, "runs_list_max_limit"))
    if limit == 0:
        limit = maxl
    if limit is None or limit < 0 or limit > maxl:
        raise invalid_parameter(f"Invalid limit {limit} - it has to be no more than {maxl}")
    active_only = req.q_bool("active_only", False)
    completed_only = req.q_bool("completed_only", False)
    if active_only and completed_only:
        raise invalid_parameter("active_only and completed_only cannot both be true.")
    limit = min(limit, int(_cfg(st, "runs_page_cap")))
    offset = req.q_int("offset", 0) or 0
    token = req.q("page_token")
    if token:
        offset = decode_page_token(token, "runs")
    job_id = req.q("job_id")
    run_type = req.q("run_type")
    t_from = req.q_int("start_time_from")
    t_to = req.q_int("start_time_to")
    expand = req.q_bool("expand_tasks", False)
    with st.lock:
        tick(st)
        now = _ms(st)
        runs = [r for r in store_of(st).runs.values() if not r.get("deleted")]
        if job_id not in (None, ""):
            jid = _int_id(job_id, "job_id")
            runs = [r for r in runs if r["job_id"] == jid]
        if run_type:
            runs = [r for r in runs if r["run_type"] == run_type]
        if active_only:
            runs = [r for r in runs if r["phase"] in ("QUEUED", "ACTIVE")]
        if completed_only:
            runs = [r for r in runs if r["phase"] == "DONE"]
        if t_from is not None:
            runs = [r for r in runs if r["created"] >= t_from]
        if t_to is not None:
            runs = [r for r in runs if r["created"] <= t_to]
        runs.sort(key=lambda r: (r["created"], r["run_id"]), reverse=True)
        chunk = runs[offset:offset + limit]
        items = []
        for r in chunk:
            v = _run_view(st, r, now, with_tasks=expand)
            v.pop("iterations", None)
            v.pop("repair_history", None)
            if expand and len(v["tasks"]) > int(_cfg(st, "array_page_size")):
                v["tasks"] = v["tasks"][: int(_cfg(st, "array_page_size"))]
                v["has_more"] = True
            items.append(v)
        return page_envelope("runs", items, offset, limit, len(runs))


def _cancel(st, run: dict, now: int) -> bool:
    if run["phase"] == "QUEUED":
        _start(run, now)
        run["cancel_at"] = now
        _tick_run(st, store_of(st), run, now)
        return True
    if run["phase"] == "ACTIVE" and run["cancel_at"] is None:
        run["cancel_at"] = now
        return True
    return False


@route("POST", V + r"/runs/cancel")
def cancel_run(req):
    st = req.state
    with st.lock:
        tick(st)
        run, _ = _run(req, req.body.get("run_id"))
        if _cancel(st, run, _ms(st)):
            st.applied["jobs/runs/cancel"] += 1
    return {}


@route("POST", V + r"/runs/cancel-all")
def cancel_all(req):
    body = req.body
    st = req.state
    all_queued = _bool_body(body, "all_queued_runs", False)
    job_id = body.get("job_id")
    if job_id is None and not all_queued:
        raise invalid_parameter("Either job_id or all_queued_runs must be specified.")
    with st.lock:
        tick(st)
        now = _ms(st)
        runs = list(store_of(st).runs.values())
        if job_id is not None:
            jid = _job(req, job_id)["job_id"]
            runs = [r for r in runs if r["job_id"] == jid]
        if all_queued and job_id is None:
            runs = [r for r in runs if r["phase"] == "QUEUED"]
        n = sum(1 for r in runs if not r.get("deleted") and _cancel(st, r, now))
        st.applied["jobs/runs/cancel-all"] += 1
        st.applied["jobs/runs/cancelled"] += n
    return {}


@route("POST", V + r"/runs/delete")
def delete_run(req):
    st = req.state
    with st.lock:
        tick(st)
        run, _ = _run(req, req.body.get("run_id"))
        if run["phase"] != "DONE":
            raise invalid_state(f"Run {run['run_id']} is active and cannot be deleted. Cancel it first.")
        run["deleted"] = True
        st.applied["jobs/runs/delete"] += 1
    return {}


@route("POST", V + r"/runs/repair")
def repair_run(req):
    body = req.body
    st = req.state
    with st.lock:
        tick(st)
        now = _ms(st)
        store = store_of(st)
        run, _ = _run(req, body.get("run_id"))
        if run["phase"] != "DONE":
            raise invalid_state(f"Run {run['run_id']} is still active; only a finished run can be repaired.")
        rerun = body.get("rerun_tasks")
        all_failed = _bool_body(body, "rerun_all_failed_tasks", False)
        if rerun and all_failed:
            raise invalid_parameter("Only one of rerun_tasks and rerun_all_failed_tasks can be specified.")
        if not rerun and not all_failed:
            raise invalid_parameter("Either rerun_tasks or rerun_all_failed_tasks must be specified.")
        latest = body.get("latest_repair_id")
        if run["repairs"]:
            if latest is None:
                raise invalid_parameter(f"Run {run['run_id']} has been repaired before; latest_repair_id "
                                        f"({run['repairs'][-1]['repair_id']}) is required.")
            if _int_id(latest, "latest_repair_id") != run["repairs"][-1]["repair_id"]:
                raise invalid_parameter(f"latest_repair_id {latest} is not the latest repair of run "
                                        f"{run['run_id']} ({run['repairs'][-1]['repair_id']}).")
        current = {t["spec"]["task_key"]: t for t in _tasks_now(run)}
        if rerun:
            if not isinstance(rerun, list):
                raise invalid_parameter("rerun_tasks must be an array of task keys.")
            unknown = [k for k in rerun if k not in current]
            if unknown:
                raise invalid_parameter(f"Tasks {unknown} are not part of run {run['run_id']}.")
            keys = list(dict.fromkeys(rerun))
        else:
            keys = [k for k, t in current.items() if _task_result(t) not in ("SUCCESS", "SUCCESS_WITH_FAILURES", "EXCLUDED", "DISABLED")]
            if not keys:
                raise invalid_parameter(f"Run {run['run_id']} has no failed tasks to repair.")
        if _bool_body(body, "rerun_dependent_tasks", False) or all_failed:
            changed = True
            while changed:
                changed = False
                for k, t in current.items():
                    if k not in keys and any(d["task_key"] in keys for d in t["spec"].get("depends_on") or []):
                        keys.append(k)
                        changed = True
        jp = body.get("job_parameters")
        if jp is not None:
            if not isinstance(jp, dict):
                raise invalid_parameter("job_parameters must be a map of string to string.")
            byname = {p["name"]: p for p in run["job_parameters"]}
            for k, v in jp.items():
                if k in byname:
                    byname[k]["value"] = str(v)
                else:
                    run["job_parameters"].append({"name": k, "value": str(v)})
        for k in LEGACY_PARAMS:
            if body.get(k) is not None:
                run["overriding_parameters"][k] = copy.deepcopy(body[k])
        repair_id = next(store.run_ids)
        rep = {"repair_id": repair_id, "start_time": now, "end_time": 0, "task_run_ids": [],
               "prev_result": run["result_state"], "prev_message": run["state_message"],
               "prev_termination": run["termination"], "prev_end": run["end_time"]}
        order = [t["spec"]["task_key"] for t in _tasks_now(run)]
        for k in order:
            if k in keys:
                old = current[k]
                t = _new_task_run(store, run, old["spec"], attempt=0, not_before=now)
                t["repair_id"] = repair_id
                rep["task_run_ids"].append(t["run_id"])
        run["repairs"].append(rep)
        run.update(phase="ACTIVE", end_time=0, result_state=None, life_cycle_final=None, state_message="",
                   user_cancelled=False, termination=None, cancel_at=None)
        if run["exec_start"] is None:
            run["exec_start"] = now
        if run["timeout_seconds"]:
            run["exec_start"] = now
        st.applied["jobs/runs/repair"] += 1
        return {"repair_id": repair_id}


@route("GET", V + r"/runs/export")
def export_run(req):
    st = req.state
    views = (req.q("views_to_export") or "CODE").upper()
    if views not in ("CODE", "DASHBOARDS", "ALL"):
        raise invalid_parameter(f"Invalid views_to_export {views}: one of CODE, DASHBOARDS, ALL.")
    with st.lock:
        tick(st)
        run, task = _run(req, req.param("run_id"), allow_task=True)
        if task is None:
            tasks = _tasks_now(run)
            if len(tasks) != 1:
                raise invalid_parameter("Exporting runs with multiple tasks is not supported. Please export "
                                        "each individual task run instead.")
            task = tasks[0]
        out = []
        if views in ("CODE", "ALL"):
            spec = task["spec"]
            name = ((spec.get("notebook_task") or {}).get("notebook_path")
                    or (spec.get("spark_python_task") or {}).get("python_file") or spec["task_key"])
            code = _inline_code(spec) or ""
            content = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(str(name))}</title>"
                       f"</head><body><pre>{html.escape(code)}</pre></body></html>")
            out.append({"content": content, "name": str(name).rsplit("/", 1)[-1], "type": "NOTEBOOK"})
        return {"views": out}
