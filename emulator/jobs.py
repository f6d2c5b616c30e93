r"""Jobs API (contract §9), served under /api/2.0, /api/2.1 and /api/2.2.

Jobs and runs live in ``state.area("jobs")`` (a :class:`JobsStore`). Runs move through the real
state machine: every request first "ticks" the store to the current time, and while runs are
active a ticker thread does so every 50 ms, so runs progress without being polled. Transitions
are computed at the instant they would have happened.

Run model
* A run is [QUEUED ->] PENDING -> RUNNING [-> TERMINATING] -> TERMINATED (+ result_state);
  SKIPPED when the concurrency limit is hit and queueing is off (or ``max_concurrent_runs`` is 0).
* Each task waits (BLOCKED) for its ``depends_on`` tasks, then its ``run_if`` condition
  (ALL_SUCCESS default) decides: run it, or end it UPSTREAM_FAILED / UPSTREAM_CANCELED / EXCLUDED.
* A task runs on real compute: an ``existing_cluster_id`` must exist (a missing one fails the task
  with Databricks' message; a terminated one is started and the task is PENDING meanwhile; a job
  cluster cannot be one); ``job_cluster_key`` and ``new_cluster`` make job clusters
  (``cluster_source: JOB``, in clusters/list) that terminate when the run (or the task) ends.
  Without compute (``environment_key``, serverless) a task runs at once. Task runs carry
  ``cluster_instance`` ({cluster_id, spark_context_id}).
* Then the task is PENDING for ``jobs_pending_seconds`` and RUNNING at least ``jobs_task_seconds``
  and as long as its code runs:
  - ``notebook_task``: the notebook at ``notebook_path`` (Workspace API; a missing one fails the
    task) runs cell by cell in a fresh Python worker; ``dbutils.widgets.get`` reads its base
    parameters, the job parameters and ``notebook_params``; ``dbutils.notebook.exit(value)`` sets
    ``notebook_output.result``; an exception fails the task with ``error`` and ``error_trace``.
    SQL notebooks and ``%sql`` cells run on the SQL engine; ``%run`` inlines another notebook.
  - ``spark_python_task``: the workspace file ``python_file`` runs as a script with its
    ``parameters`` (or ``python_params``) in ``sys.argv[1:]``; stdout becomes ``logs``.
  - ``python_wheel_task``: the wheels of the task's ``libraries`` (workspace files) go on
    sys.path and ``entry_point`` (from the wheel's entry points, else ``package.entry_point``) is
    called with ``parameters`` / ``named_parameters`` as sys.argv.
  - ``sql_task.file``: the workspace SQL file runs on the SQL engine (``sql_output``).
  - ``condition_task`` compares; ``run_job_task`` runs another job and waits for it.
  - any other task type fails, saying the emulator does not run it.
* Cancelling is asynchronous: the run is TERMINATING for ``jobs_cancel_seconds`` (the tasks' code
  is interrupted, clusters cleaned up), then TERMINATED/CANCELED with that ``cleanup_duration``;
  a run past its ``timeout_seconds`` does the same and ends TIMEDOUT; a task past its own
  ``timeout_seconds`` ends TIMEDOUT.
* Both ``state`` and ``status`` are reported, on the run and on each task. runs/get-output and
  runs/export take a task run id; the parent run id answers 400 INVALID_PARAMETER_VALUE (on 2.0
  the parent of a single-task run is accepted, as there).

Lists are linear in their size: jobs/list and runs/list page with keyset tokens over sorted
indexes (every item once, in order, however many pages), and a tick touches active runs only.
Timings and limits are the ``jobs_*`` fields of the one ``Config`` (docs/emulator.md). Applied
creations are counted in ``state.applied["jobs/run-now"]``, ``["jobs/runs/submit"]`` (a repeated
idempotency token is not counted), ``jobs/create``, ``jobs/runs/repair``, ...
"""

from __future__ import annotations

import bisect
import copy
import html
import importlib
import io
import itertools
import json
import re
import secrets
import threading
import zipfile
from typing import Any, Dict, List, Optional

from .api import (ApiError, copy_json, decode_cursor, encode_cursor, invalid_parameter, invalid_state,
                  json_response, not_found, parse_bool, route)

V = r"/api/(?P<version>2\.[012])/jobs"

TERMINAL_LIFE_CYCLES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
TASK_TYPES = ("notebook_task", "spark_python_task", "spark_jar_task", "python_wheel_task", "sql_task",
              "dbt_task", "pipeline_task", "run_job_task", "condition_task", "for_each_task",
              "spark_submit_task", "clean_rooms_notebook_task", "dashboard_task", "power_bi_task",
              "gen_ai_compute_task")
RUNNABLE = ("notebook_task", "spark_python_task", "python_wheel_task", "sql_task", "condition_task", "run_job_task")
NEEDS_COMPUTE = ("notebook_task", "spark_python_task", "python_wheel_task", "spark_jar_task", "spark_submit_task")
COMPUTE_FIELDS = ("existing_cluster_id", "new_cluster", "job_cluster_key", "environment_key")
RUN_ARRAYS = ("tasks", "iterations", "job_clusters", "job_parameters", "repair_history")
JOB_ARRAYS = ("tasks", "job_clusters", "parameters", "environments")
LEGACY_PARAMS = ("notebook_params", "python_params", "jar_params", "spark_submit_params",
                 "python_named_params", "sql_params", "dbt_commands", "pipeline_params")
MULTI_TASK_OUTPUT = ("Retrieving the output of runs with multiple tasks is not supported. Please retrieve "
                     "the output of each individual task run instead.")
MULTI_TASK_EXPORT = ("Exporting runs with multiple tasks is not supported. Please export each individual "
                     "task run instead.")
WORKLOAD_FAILED = "Workload failed, see run output for details"
NOTEBOOK_RESULT_LIMIT = 5 * 1024 * 1024
LOGS_LIMIT = 5 * 1024 * 1024

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

class JobsStore:
    """Jobs and runs, with the sorted indexes the lists page over."""

    def __init__(self) -> None:
        self.jobs: Dict[int, dict] = {}
        self.job_ids: List[int] = []                # ascending; ids of deleted jobs are skipped
        self.by_name: Dict[str, List[int]] = {}     # lower-case name -> ascending job ids
        self.runs: Dict[int, dict] = {}
        self.run_keys: List[tuple] = []             # ascending (created ms, run id)
        self.job_run_keys: Dict[int, List[tuple]] = {}
        self.active: set = set()                    # run ids that are QUEUED, running or cleaning up
        self.active_by_job: Dict[int, set] = {}     # job id -> its active run ids
        self.task_index: Dict[int, tuple] = {}      # task run id -> (parent run id, task_key)
        self.tokens: Dict[str, int] = {}            # idempotency token -> run id
        self.last_end: Dict[int, int] = {}          # job id -> latest end time of its runs
        self.ids = itertools.count(secrets.randbelow(9 * 10 ** 11) + 10 ** 11)
        self.run_ids = itertools.count(secrets.randbelow(9 * 10 ** 12) + 10 ** 14)
        self.ticker: Optional[threading.Thread] = None
        self.closed = False
        self.close_registered = False

    # -- jobs
    def add_job(self, job: dict) -> None:
        jid = job["job_id"]
        self.jobs[jid] = job
        _insert(self.job_ids, jid)
        _insert(self.by_name.setdefault(_name_key(job), []), jid)

    def rename(self, job: dict, old_settings: dict) -> None:
        old = (old_settings.get("name") or "").lower()
        new = _name_key(job)
        if old != new:
            _discard(self.by_name.get(old), job["job_id"])
            _insert(self.by_name.setdefault(new, []), job["job_id"])

    def remove_job(self, job: dict) -> None:
        del self.jobs[job["job_id"]]
        _discard(self.by_name.get(_name_key(job)), job["job_id"])
        if len(self.job_ids) > 2 * len(self.jobs) + 64:
            self.job_ids = sorted(self.jobs)

    # -- runs
    def activate(self, run: dict) -> None:
        self.active.add(run["run_id"])
        self.active_by_job.setdefault(run["job_id"], set()).add(run["run_id"])

    def deactivate(self, run: dict) -> None:
        self.active.discard(run["run_id"])
        ids = self.active_by_job.get(run["job_id"])
        if ids is not None:
            ids.discard(run["run_id"])
            if not ids:
                del self.active_by_job[run["job_id"]]

    def add_run(self, run: dict) -> None:
        key = (run["created"], run["run_id"])
        self.runs[run["run_id"]] = run
        _insert(self.run_keys, key)
        _insert(self.job_run_keys.setdefault(run["job_id"], []), key)


def _name_key(job: dict) -> str:
    return (job["settings"].get("name") or "").lower()


def _insert(seq: list, item) -> None:
    if not seq or seq[-1] < item:
        seq.append(item)
    else:
        bisect.insort(seq, item)


def _discard(seq: Optional[list], item) -> None:
    if seq:
        i = bisect.bisect_left(seq, item)
        if i < len(seq) and seq[i] == item:
            del seq[i]


def store_of(state) -> JobsStore:
    """The jobs area of a workspace (``state.area("jobs")`` once the area exists)."""
    s = state.area("jobs", JobsStore)
    if not isinstance(s, JobsStore):        # someone asked for the area before this module did
        with state.lock:
            s = state.areas["jobs"] = JobsStore()
    return s


def _cfg(state, name: str):
    return getattr(state.config, f"jobs_{name}")


def _ensure_ticker(st, store: JobsStore) -> None:
    """While runs are active, tick every 50 ms so they progress without being polled."""
    if store.ticker is not None and store.ticker.is_alive():
        return
    if not store.active or store.closed:
        return

    def loop():
        import time as _time
        while not store.closed:
            _time.sleep(0.05)
            with st.lock:
                if store.closed:
                    return
                tick(st)
                if not store.active:
                    store.ticker = None
                    return

    def stop():
        store.closed = True
        for run in list(store.runs.values()):
            for t in run["all_task_runs"]:
                prog = t.get("program")
                if prog is not None and not prog.done():
                    prog.cancel()

    if not store.close_registered:
        store.close_registered = True
        st.on_close(stop)
    store.ticker = threading.Thread(target=loop, name="emulator-jobs-ticker", daemon=True)
    store.ticker.start()


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

_RUN_IF = ("ALL_SUCCESS", "AT_LEAST_ONE_SUCCESS", "NONE_FAILED", "ALL_DONE", "AT_LEAST_ONE_FAILED", "ALL_FAILED")


def _check_cluster_spec(st, spec: Any, where: str) -> None:
    from .clusters import validate_spec
    try:
        validate_spec(st, spec)
    except ApiError as e:
        raise invalid_parameter(f"{where}: {e.message}") from None


def _validate_task_body(st, t: dict, key: str) -> None:
    """A task's compute and its task type's required fields."""
    compute = [k for k in COMPUTE_FIELDS if t.get(k) is not None]
    if len(compute) > 1:
        raise invalid_parameter(f"Task {key} can use only one of existing_cluster_id, new_cluster, job_cluster_key "
                                f"and environment_key (found {', '.join(compute)}).")
    if t.get("new_cluster") is not None:
        _check_cluster_spec(st, t["new_cluster"], f"Task {key}: new_cluster")
    cid = t.get("existing_cluster_id")
    if cid is not None:
        if not isinstance(cid, str) or not cid:
            raise invalid_parameter(f"Task {key}: existing_cluster_id must be a cluster id.")
        from .clusters import lookup
        c = lookup(st, cid)
        if c is not None and c.source == "JOB":
            raise invalid_parameter("existing_cluster_id only supports all-purpose cluster IDs")
    nb = t.get("notebook_task")
    if nb is not None:
        path = nb.get("notebook_path") if isinstance(nb, dict) else None
        if not path or not isinstance(path, str):
            raise invalid_parameter(f"Task {key}: Missing required field: notebook_task.notebook_path")
        if (nb.get("source") or "WORKSPACE") == "WORKSPACE" and not path.startswith("/"):
            raise invalid_parameter(f"Invalid notebook_path: {path}. Only absolute paths are currently supported. "
                                    "Paths must begin with '/'.")
        if nb.get("base_parameters") is not None and not isinstance(nb["base_parameters"], dict):
            raise invalid_parameter(f"Task {key}: notebook_task.base_parameters must be a map of string to string.")
    sp = t.get("spark_python_task")
    if sp is not None:
        if not isinstance(sp, dict) or not sp.get("python_file"):
            raise invalid_parameter(f"Task {key}: Missing required field: spark_python_task.python_file")
        if sp.get("parameters") is not None and not isinstance(sp["parameters"], list):
            raise invalid_parameter(f"Task {key}: spark_python_task.parameters must be an array of strings.")
    wt = t.get("python_wheel_task")
    if wt is not None:
        missing = [f for f in ("package_name", "entry_point") if not (isinstance(wt, dict) and wt.get(f))]
        if missing:
            raise invalid_parameter(f"Task {key}: Missing required field(s): "
                                    + ", ".join(f"python_wheel_task.{f}" for f in missing))
    sql = t.get("sql_task")
    if sql is not None:
        if not isinstance(sql, dict) or not sql.get("warehouse_id"):
            raise invalid_parameter(f"Task {key}: Missing required field: sql_task.warehouse_id")
        kinds = [k for k in ("query", "file", "alert", "dashboard") if sql.get(k) is not None]
        if len(kinds) != 1:
            raise invalid_parameter(f"Task {key}: sql_task needs exactly one of query, file, alert and dashboard.")
        if sql.get("file") is not None and not (isinstance(sql["file"], dict) and sql["file"].get("path")):
            raise invalid_parameter(f"Task {key}: Missing required field: sql_task.file.path")
        if sql.get("query") is not None and not (isinstance(sql["query"], dict) and sql["query"].get("query_id")):
            raise invalid_parameter(f"Task {key}: Missing required field: sql_task.query.query_id")
    rj = t.get("run_job_task")
    if rj is not None and not (isinstance(rj, dict) and rj.get("job_id") is not None):
        raise invalid_parameter(f"Task {key}: Missing required field: run_job_task.job_id")


def _validate_tasks(st, tasks: Any, job_clusters: list, *, submit: bool = False) -> list:
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
        to = t.get("timeout_seconds")
        if to is not None and (not isinstance(to, int) or isinstance(to, bool) or to < 0):
            raise invalid_parameter(f"Task {key}: invalid timeout_seconds {to!r}.")
        _validate_task_body(st, t, key)
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


def _validate_settings(st, s: dict, version: str) -> dict:
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
        _check_cluster_spec(st, c.get("new_cluster"), f"Job cluster {k}: new_cluster")
    _validate_tasks(st, s.get("tasks"), jcs)
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
    offset = _cursor_int(token, kind, "o") if token else 0
    more = False
    for n in names:
        arr = holder.get(n)
        if not isinstance(arr, list):
            continue
        holder[n] = arr[offset:offset + page]
        if len(arr) > offset + page:
            more = True
    if more:
        obj["next_page_token"] = encode_cursor(kind, o=offset + page)
        obj["has_more"] = True
    else:
        obj["has_more"] = False
    return obj


def _cursor_int(token: str, kind: str, field: str) -> int:
    data = decode_cursor(token, kind)
    value = data.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid_parameter(f"Invalid page token: {token}")
    return value


# --------------------------------------------------------------------------- jobs endpoints

@route("POST", V + r"/create")
def create_job(req):
    body = req.body
    st = req.state
    acl = body.get("access_control_list")
    if acl is not None and not isinstance(acl, list):
        raise invalid_parameter("access_control_list must be an array.")
    settings = {k: v for k, v in body.items() if k != "access_control_list"}
    with st.lock:
        settings = _validate_settings(st, settings, req.params["version"])
        store = store_of(st)
        jid = next(store.ids)
        store.add_job({"job_id": jid, "creator_user_name": _user(req), "run_as_user_name": _user(req),
                       "created_time": _ms(st), "settings": settings})
        if acl:
            from .permissions import set_initial
            set_initial(st, "jobs", str(jid), acl)
        st.applied["jobs/create"] += 1
    return {"job_id": jid}


@route("GET", V + r"/get")
def get_job(req):
    st = req.state
    with st.lock:
        job = _job(req, req.param("job_id"))
        out = copy_json(job)
        return _paged(out, out["settings"], JOB_ARRAYS, req.q("page_token"), req.params["version"],
                      int(_cfg(st, "array_page_size")), "job")


def _list_item(j: dict, expand: bool, page: int, version: str) -> dict:
    s = j["settings"]
    if expand:
        settings = dict(s)
        more = False
        for n in ("tasks", "job_clusters"):
            if isinstance(s.get(n), list):
                more = more or len(s[n]) > page
                settings[n] = s[n][:page]
    else:
        settings = {k: v for k, v in s.items() if k not in ("tasks", "job_clusters")}
    item = {"job_id": j["job_id"], "creator_user_name": j["creator_user_name"],
            "created_time": j["created_time"], "settings": settings}
    if expand and version == "2.2":
        item["has_more"] = more
    return item


def _keyset(ids: list, live, token: Optional[str], kind: str, limit: int, offset: int, *, reverse: bool,
            lo: int = 0, hi: Optional[int] = None):
    """One page of a keyset listing over the sorted ``ids[lo:hi]`` (largest first when ``reverse``):
    (items, next token, previous token). ``live(id)`` -> the item, or None (deleted, filtered out).
    A page costs O(page + skipped ids), so a whole listing, however many pages, is linear."""
    hi = len(ids) if hi is None else hi
    direction = "next"
    if token:
        cur = decode_cursor(token, kind)
        direction = cur.get("d", "next")
        pos = cur.get("p")
        if (direction not in ("next", "prev") or not isinstance(pos, list) or not pos
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in pos)):
            raise invalid_parameter(f"Invalid page token: {token}")
        pos = tuple(pos) if len(pos) > 1 else pos[0]
    forward = (direction == "next") != reverse      # walking towards larger ids?
    if not token:
        i = hi - 1 if reverse else lo
    elif forward:
        i = max(lo, bisect.bisect_right(ids, pos, lo, hi))
    else:
        i = min(hi, bisect.bisect_left(ids, pos, lo, hi)) - 1
    step = 1 if forward else -1
    items, keys = [], []
    skip = offset if not token else 0
    while lo <= i < hi and len(items) < limit:
        item = live(ids[i])
        if item is not None:
            if skip:
                skip -= 1
            else:
                items.append(item)
                keys.append(ids[i])
        i += step
    more = False
    while lo <= i < hi:
        if live(ids[i]) is not None:
            more = True
            break
        i += step
    if direction == "prev":
        items.reverse()
        keys.reverse()
        has_next, has_prev = bool(items), more
    else:
        has_next, has_prev = more, bool(token) or offset > 0

    def tok(d, key):
        return encode_cursor(kind, d=d, p=list(key) if isinstance(key, tuple) else [key])

    nxt = tok("next", keys[-1]) if has_next and keys else None
    prev = tok("prev", keys[0]) if has_prev and keys else None
    return items, nxt, prev


@route("GET", V + r"/list")
def list_jobs(req):
    st = req.state
    version = req.params["version"]
    limit = req.q_int("limit", 20)
    maxl = int(_cfg(st, "list_max_limit"))
    if limit is None or limit < 1 or limit > maxl:
        raise invalid_parameter(f"Invalid limit {limit} - it has to be between 1 and {maxl}.")
    limit = min(limit, int(_cfg(st, "page_cap")))
    offset = req.q_int("offset", 0) or 0
    if offset < 0:
        raise invalid_parameter("offset must not be negative.")
    name = req.q("name")
    expand = req.q_bool("expand_tasks", False)
    page = int(_cfg(st, "array_page_size"))
    with st.lock:
        store = store_of(st)
        ids = store.by_name.get(name.lower(), []) if name else store.job_ids
        jobs = store.jobs

        found, nxt, prev = _keyset(ids, jobs.get, req.q("page_token"), "jobs", limit, offset, reverse=False)
        out: dict = {"has_more": bool(nxt)}
        if found:
            out["jobs"] = [_list_item(j, expand, page, version) for j in found]
        if nxt:
            out["next_page_token"] = nxt
        if prev:
            out["prev_page_token"] = prev
        return json_response(out)


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
        old = job["settings"]
        job["settings"] = _validate_settings(st, s, req.params["version"])
        store_of(st).rename(job, old)
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
        old = job["settings"]
        job["settings"] = _validate_settings(st, new, req.params["version"])
        store_of(st).rename(job, old)
        st.applied["jobs/reset"] += 1
    return {}


@route("POST", V + r"/delete")
def delete_job(req):
    st = req.state
    with st.lock:
        job = _job(req, req.body.get("job_id"))
        store_of(st).remove_job(job)
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
         "not_before": not_before, "ready_at": None, "run_at": None, "min_done": None, "done_at": None,
         "cleanup_ms": 0, "result_state": None, "life_cycle_final": None, "state_message": "",
         "termination": None, "user_cancelled": False, "output": {}, "error": None, "error_trace": None,
         "repair_id": None, "cluster_id": None, "started_cluster": False, "owned_cluster": False,
         "program": None, "sync_outcome": None, "plan": None, "source": None, "child_run_id": None,
         "condition_result": None, "started": False}
    run["all_task_runs"].append(t)
    return t


def _create_run(st, store: JobsStore, *, job: Optional[dict], settings: dict, body: dict, run_type: str,
                kind: str, user: str, base_url: str, trigger: str = "ONE_TIME") -> int:
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
    from .clusters import lookup
    for t in spec_tasks:
        c = lookup(st, t.get("existing_cluster_id")) if t.get("existing_cluster_id") else None
        if c is not None and c.source == "JOB":
            raise invalid_parameter("existing_cluster_id only supports all-purpose cluster IDs")
    rid = next(store.run_ids)
    job_id = job["job_id"] if job else next(store.ids)
    queue = body.get("queue") if isinstance(body.get("queue"), dict) else settings.get("queue")
    run = {
        "run_id": rid, "job_id": job_id, "number_in_job": rid, "original_attempt_run_id": rid,
        "run_name": body.get("run_name") or settings.get("name") or "Untitled",
        "run_type": run_type, "trigger": trigger, "creator_user_name": user,
        "created": now, "exec_start": None, "end_time": 0, "phase": "NEW",
        "result_state": None, "state_message": "", "user_cancelled": False, "life_cycle_final": None,
        "termination": None, "queue_details": None, "cleanup_ms": 0,
        "job_clusters": copy.deepcopy(settings.get("job_clusters") or []),
        "job_parameters": _job_params(settings, jp),
        "overriding_parameters": overriding,
        "timeout_seconds": int(settings.get("timeout_seconds") or 0),
        "queue_enabled": bool((queue or {}).get("enabled")),
        "max_concurrent": settings.get("max_concurrent_runs", 1) if job else None,
        "all_task_runs": [], "repairs": [], "cancel_at": None, "stop": None, "deleted": False,
        "base_url": base_url, "idempotency_token": token, "kind": kind,
        "git_source": copy.deepcopy(settings.get("git_source")), "clusters": {},
    }
    for spec in spec_tasks:
        _new_task_run(store, run, spec)
    store.add_run(run)
    if token is not None:
        store.tokens[token] = rid
    st.applied[kind] += 1
    _admit(st, store, run, now)
    _ensure_ticker(st, store)
    return rid


def _job_active(store: JobsStore, job_id: int, exclude=None) -> List[dict]:
    return [store.runs[i] for i in store.active_by_job.get(job_id, ()) if store.runs[i] is not exclude]


def _admit(st, store: JobsStore, run: dict, now: int) -> None:
    """A new run starts, queues, or is skipped by the job's concurrency limit."""
    if run["max_concurrent"] is None:
        _start(store, run, now)
        return
    others = _job_active(store, run["job_id"], exclude=run)
    running = [r for r in others if r["phase"] in ("ACTIVE", "CLEANUP")]
    queued = [r for r in others if r["phase"] == "QUEUED"]
    limit = int(run["max_concurrent"])
    if limit > 0 and len(running) < limit and not queued:
        _start(store, run, now)
    elif limit > 0 and run["queue_enabled"]:
        run["phase"] = "QUEUED"
        store.activate(run)
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
            t.update(phase="DONE", life_cycle_final="SKIPPED", done_at=now, state_message="The run was skipped.")


def _start(store: JobsStore, run: dict, at: int) -> None:
    run["phase"] = "ACTIVE"
    store.activate(run)
    run["exec_start"] = at
    run["queue_details"] = None
    for t in run["all_task_runs"]:
        if t["phase"] == "BLOCKED" and not t["not_before"]:
            t["not_before"] = at


# --------------------------------------------------------------------------- the clock

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


def _fail_task(t: dict, at: int, message: str, termination: tuple, *, internal: bool = True,
               error: Optional[str] = None) -> None:
    """A task that cannot run (missing compute or code, unsupported): it ends now."""
    prog = t.get("program")
    if prog is not None and not prog.done():
        prog.cancel()
    if t["ready_at"] is None:
        t["ready_at"] = at
    t.update(phase="DONE", run_at=t["run_at"] if t["run_at"] is not None and t["run_at"] <= at else at,
             done_at=at, result_state="FAILED", life_cycle_final="INTERNAL_ERROR" if internal else None,
             state_message=message, termination=termination, error=error or message)


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
                if any(d["phase"] != "DONE" or d["done_at"] > horizon for d in deps):
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
                if t["spec"].get("disabled"):
                    t.update(phase="DONE", ready_at=ready, run_at=ready, done_at=ready, result_state="DISABLED",
                             state_message="This task is disabled.")
                elif not ok:
                    msg = {"UPSTREAM_FAILED": "Upstream task(s) failed.",
                           "UPSTREAM_CANCELED": "Upstream task(s) were canceled.",
                           "EXCLUDED": "The task was excluded because its run-if condition was not met."}[skipped_as]
                    t.update(phase="DONE", ready_at=ready, run_at=ready, done_at=ready, result_state=skipped_as,
                             state_message=msg)
                else:
                    t["ready_at"] = ready
                    t["phase"] = "WAITING"
                    _acquire_compute(st, store, run, t, ready)
                progress = True
            elif t["phase"] == "WAITING":
                since = _compute_ready(st, run, t, horizon)
                if since is None:
                    continue
                if t["phase"] == "DONE":
                    progress = True
                    continue
                run_at = max(t["ready_at"], since) + pending_ms
                t.update(phase="SCHEDULED", run_at=run_at, min_done=run_at + task_ms)
                progress = True
            elif t["phase"] == "SCHEDULED":
                if not t["started"] and t["run_at"] <= horizon:
                    _plan(st, store, run, t)            # its notebook, file or wheels must exist now
                    if t["phase"] == "SCHEDULED":
                        _begin(st, store, run, t)
                    progress = True
                lost = _cluster_lost(st, t) if t["phase"] == "SCHEDULED" and t["started"] else None
                if lost:
                    _fail_task(t, max(t["run_at"], min(horizon, _ms(st))), lost, ("CLUSTER_ERROR", "CLIENT_ERROR"))
                    progress = True
                elif t["phase"] == "SCHEDULED" and t["started"]:
                    limit = int(t["spec"].get("timeout_seconds") or 0)
                    if limit and t["run_at"] + limit * 1000 <= horizon:
                        _timeout_task(st, run, t, t["run_at"] + limit * 1000, limit)
                        progress = True
                    elif t["min_done"] <= horizon and _finish_task(st, store, run, t, horizon):
                        progress = True


def _timeout_task(st, run: dict, t: dict, at: int, limit: int) -> None:
    prog = t.get("program")
    if prog is not None:
        prog.cancel()
    if t.get("child_run_id") is not None:
        child = store_of(st).runs.get(t["child_run_id"])
        if child is not None:
            _cancel(st, child, at)
    t.update(phase="DONE", done_at=at, result_state="TIMEDOUT", user_cancelled=True,
             state_message=f"Task {t['spec']['task_key']} timed out after {limit} seconds.",
             error=f"Task {t['spec']['task_key']} timed out after {limit} seconds.")
    _release_task_cluster(st, t, at)


def _finish_run(st, store: JobsStore, run: dict, at: int) -> None:
    tasks = _tasks_now(run)
    results = [_task_result(t) for t in tasks]
    run["end_time"] = at
    if run["stop"] is not None:
        stop = run["stop"]
        run["life_cycle_final"] = "TERMINATED"
        run["result_state"] = stop["result"]
        run["state_message"] = stop["message"]
        run["user_cancelled"] = True
        run["termination"] = ("USER_CANCELED", "SUCCESS") if stop["result"] == "CANCELED" else ("CANCELED", "CLIENT_ERROR")
    elif any(t["life_cycle_final"] == "INTERNAL_ERROR" for t in tasks):
        bad = next(t for t in tasks if t["life_cycle_final"] == "INTERNAL_ERROR")
        run["life_cycle_final"] = "INTERNAL_ERROR"
        run["result_state"] = "FAILED"
        run["state_message"] = _failure_message(run, bad)
        run["termination"] = bad["termination"] or ("INTERNAL_ERROR", "INTERNAL_ERROR")
    elif any(r == "CANCELED" for r in results) and not any(r in _FAILED for r in results):
        run["life_cycle_final"] = "TERMINATED"
        run["result_state"] = "CANCELED"
        run["state_message"] = run["state_message"] or "Run cancelled."
        run["termination"] = ("USER_CANCELED", "SUCCESS")
    elif any(r == "TIMEDOUT" for r in results):
        t = next(t for t in tasks if _task_result(t) == "TIMEDOUT")
        run["life_cycle_final"] = "TERMINATED"
        run["result_state"] = "TIMEDOUT"
        run["state_message"] = _failure_message(run, t)
        run["termination"] = ("CANCELED", "CLIENT_ERROR")
    elif any(r in _FAILED for r in results):
        run["life_cycle_final"] = "TERMINATED"
        run["result_state"] = "FAILED"
        failed = [t for t in tasks if _task_result(t) == "FAILED"] or [t for t in tasks if _task_result(t) in _FAILED]
        run["state_message"] = _failure_message(run, failed[0])
        run["termination"] = ("RUN_EXECUTION_ERROR", "CLIENT_ERROR")
    else:
        run["life_cycle_final"] = "TERMINATED"
        run["result_state"] = "SUCCESS"
        run["state_message"] = ""
        run["termination"] = ("SUCCESS", "SUCCESS")
    _complete(st, store, run)


def _failure_message(run: dict, t: dict) -> str:
    key = t["spec"]["task_key"]
    msg = f"Task {key} failed with message: {(t['state_message'] or WORKLOAD_FAILED).rstrip('.')}."
    downstream = any(key in [d["task_key"] for d in (x["spec"].get("depends_on") or [])] for x in _tasks_now(run))
    if downstream:
        msg += " This caused all downstream tasks to get skipped."
    return msg


def _complete(st, store: JobsStore, run: dict) -> None:
    """The run has ended (at its end_time): clean up its clusters, free its concurrency slot."""
    run["phase"] = "DONE"
    at = run["end_time"]
    store.deactivate(run)
    store.last_end[run["job_id"]] = max(store.last_end.get(run["job_id"], 0), at)
    from .clusters import lookup, terminate_job_cluster
    owned = [t["cluster_id"] for t in run["all_task_runs"] if t.get("owned_cluster") and t.get("cluster_id")]
    for cid in list(run["clusters"].values()) + owned:
        c = lookup(st, cid)
        if c is not None:
            terminate_job_cluster(st, c, at / 1000.0)
    if run["repairs"]:
        run["repairs"][-1]["end_time"] = at


def _stop(st, store: JobsStore, run: dict, at: int, result: str, message: str) -> None:
    """Cancel or time out an active run at ``at``: its running tasks are interrupted, the run is
    TERMINATING while they clean up (``jobs_cancel_seconds``), then TERMINATED."""
    cleanup = int(float(_cfg(st, "cancel_seconds")) * 1000)
    started_any = False
    for t in _tasks_now(run):
        if t["phase"] == "DONE" and t["done_at"] <= at:
            continue
        prog = t.get("program")
        if prog is not None:
            prog.cancel()
        if t.get("child_run_id") is not None:
            child = store.runs.get(t["child_run_id"])
            if child is not None:
                _cancel(st, child, at)
        started = t["phase"] in ("WAITING", "SCHEDULED") or (t["phase"] == "DONE" and t["done_at"] > at)
        if started:
            started_any = True
            t.update(phase="DONE", done_at=at + cleanup, cleanup_ms=cleanup, result_state=result,
                     user_cancelled=True, state_message=message, life_cycle_final=None)
            if t["run_at"] is None or t["run_at"] > at:
                t["run_at"] = at
        else:
            t.update(phase="DONE", done_at=at, result_state=result, user_cancelled=True,
                     state_message="The task was canceled before it started." if result == "CANCELED" else message)
        _release_task_cluster(st, t, t["done_at"])
    run["stop"] = {"result": result, "message": message}
    run["cleanup_ms"] = cleanup if started_any else 0
    run["end_time"] = at + run["cleanup_ms"]
    run["phase"] = "CLEANUP"
    run["user_cancelled"] = True
    run["state_message"] = message


def _tick_run(st, store: JobsStore, run: dict, now: int) -> None:
    if run["phase"] == "CLEANUP":
        if run["end_time"] <= now:
            _finish_run(st, store, run, run["end_time"])
        return
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
    if all(t["phase"] == "DONE" and t["done_at"] <= horizon for t in tasks):
        _finish_run(st, store, run, max([t["done_at"] for t in tasks] + [run["exec_start"] or run["created"]]))
        return
    if run["cancel_at"] is not None and run["cancel_at"] <= now and (limit_at is None or run["cancel_at"] <= limit_at):
        _stop(st, store, run, run["cancel_at"], "CANCELED", "Run cancelled.")
    elif limit_at is not None and limit_at <= now:
        _stop(st, store, run, limit_at, "TIMEDOUT", f"Run timed out after {run['timeout_seconds']} seconds.")
    else:
        return
    if run["end_time"] <= now:
        _finish_run(st, store, run, run["end_time"])


def tick(st, now: Optional[int] = None) -> None:
    """Bring every active run up to ``now`` (ms): task progress, completions, queue promotions."""
    store = store_of(st)
    now = _ms(st) if now is None else now
    for _ in range(100):
        changed = False
        for rid in sorted(store.active):
            run = store.runs[rid]
            if run["phase"] in ("ACTIVE", "CLEANUP"):
                _tick_run(st, store, run, now)
        by_job: Dict[int, List[dict]] = {}
        for job_id, rids in store.active_by_job.items():
            runs = [store.runs[i] for i in rids]
            if any(r["phase"] == "QUEUED" for r in runs):
                by_job[job_id] = [r for r in runs if r["max_concurrent"] is not None and not r.get("deleted")]
        for job_id, runs in by_job.items():
            queued = sorted([r for r in runs if r["phase"] == "QUEUED"], key=lambda r: r["run_id"])
            if not queued:
                continue
            busy = [r for r in runs if r["phase"] in ("ACTIVE", "CLEANUP")]
            for r in queued:
                if len(busy) >= max(1, int(r["max_concurrent"] or 1)):
                    break
                start = max(r["created"], min(now, store.last_end.get(job_id, 0)))
                _start(store, r, start)
                busy.append(r)
                changed = True
        if not changed:
            return


# --------------------------------------------------------------------------- compute

def _task_type(spec: dict) -> str:
    return next((k for k in TASK_TYPES if spec.get(k) is not None), "")


def _missing_cluster(t: dict, at: int, cid: str) -> None:
    _fail_task(t, at, f"Run executed on existing cluster ID {cid} failed since the cluster does not exist.",
               ("RESOURCE_NOT_FOUND", "CLIENT_ERROR"))


def _acquire_compute(st, store: JobsStore, run: dict, t: dict, at: int) -> None:
    """The task is ready at ``at`` (ms): find, start or create its cluster (it stays WAITING, i.e.
    PENDING, until the cluster runs)."""
    from .clusters import create_job_cluster, lookup, start_for_job
    spec = t["spec"]
    if _task_type(spec) not in NEEDS_COMPUTE:
        return
    secs = at / 1000.0
    if spec.get("existing_cluster_id"):
        cid = spec["existing_cluster_id"]
        t["cluster_id"] = cid
        c = lookup(st, cid)
        if c is None:
            _missing_cluster(t, at, cid)
        elif c.source == "JOB":
            _fail_task(t, at, "existing_cluster_id only supports all-purpose cluster IDs",
                       ("INVALID_CLUSTER_REQUEST", "CLIENT_ERROR"))
        elif c.state == "TERMINATED":
            start_for_job(st, c, secs, run["creator_user_name"])
            t["started_cluster"] = True
        return
    if spec.get("job_cluster_key"):
        key = spec["job_cluster_key"]
        cid = run["clusters"].get(key)
        if cid is None or lookup(st, cid) is None:
            jc = next((x for x in run["job_clusters"] if x.get("job_cluster_key") == key), None)
            c = create_job_cluster(st, (jc or {}).get("new_cluster") or {}, run["creator_user_name"],
                                   f"job-{run['job_id']}-run-{run['run_id']}-{key}", secs)
            run["clusters"][key] = c.id
            cid = c.id
        t["cluster_id"] = cid
        return
    if spec.get("new_cluster"):
        c = create_job_cluster(st, spec["new_cluster"], run["creator_user_name"],
                               f"job-{run['job_id']}-run-{t['run_id']}", secs)
        t["cluster_id"] = c.id
        t["owned_cluster"] = True


def _compute_ready(st, run: dict, t: dict, horizon: int) -> Optional[int]:
    """When the task's compute became usable (ms), or None while it is not yet; a cluster that
    could not start fails the task (then its phase is DONE and the time is returned)."""
    from .clusters import lookup, start_for_job
    if t["phase"] != "WAITING":
        return t["done_at"]
    cid = t.get("cluster_id")
    if cid is None:
        return t["ready_at"]
    c = lookup(st, cid)
    if c is None:
        _missing_cluster(t, max(t["ready_at"], min(horizon, _ms(st))), cid)
        return t["done_at"]
    if c.state in ("RUNNING", "RESIZING") and c.running_since is not None:
        since = max(t["ready_at"], c.running_since)
        return since if since <= horizon else None
    if c.state == "TERMINATED":
        at = max(t["ready_at"], min(horizon, int(c.details.get("terminated_time") or t["ready_at"])))
        if t["started_cluster"] or c.source == "JOB":
            reason = c.details.get("termination_reason") or {}
            code, rtype = reason.get("code", "UNKNOWN"), reason.get("type", "CLOUD_FAILURE")
            _fail_task(t, at, f"Unexpected failure while waiting for the cluster ({cid}) to be ready: Cluster {cid} "
                              f"is in unexpected state Terminated: {code}({rtype}).",
                       ("CLUSTER_ERROR", "CLOUD_FAILURE" if rtype == "CLOUD_FAILURE" else "CLIENT_ERROR"))
            return t["done_at"]
        start_for_job(st, c, at / 1000.0, run["creator_user_name"])   # it was terminating: start it again
        t["started_cluster"] = True
        return None
    if c.state in ("ERROR", "UNKNOWN"):
        _fail_task(t, max(t["ready_at"], min(horizon, _ms(st))),
                   f"Unexpected failure while waiting for the cluster ({cid}) to be ready: Cluster {cid} is in "
                   f"unexpected state {c.state.capitalize()}.", ("CLUSTER_ERROR", "CLOUD_FAILURE"))
        return t["done_at"]
    return None        # PENDING, RESTARTING, TERMINATING: wait


def _cluster_lost(st, t: dict) -> Optional[str]:
    """Why a running task lost its cluster (terminated, gone, restarted), or None."""
    cid = t.get("cluster_id")
    if not cid or t.get("spark_context_id") is None:
        return None
    from .clusters import lookup
    c = lookup(st, cid)
    if c is None or c.state in ("TERMINATING", "TERMINATED", "ERROR", "UNKNOWN"):
        return f"Cluster {cid} was terminated during the run."
    ctx = c.details.get("spark_context_id")
    if ctx is not None and str(ctx) != t["spark_context_id"]:
        return f"The Spark driver of cluster {cid} restarted during the run."
    return None


def _release_task_cluster(st, t: dict, at: int) -> None:
    if t.get("owned_cluster") and t.get("cluster_id"):
        from .clusters import lookup, terminate_job_cluster
        c = lookup(st, t["cluster_id"])
        if c is not None:
            terminate_job_cluster(st, c, at / 1000.0)


# --------------------------------------------------------------------------- executing a task

def _engines():
    return importlib.import_module(__package__ + ".pyrunner")


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


def _sql_engine(st):
    from .sqlengine import engine_for
    return engine_for(st)


def _workspace_path(path: str) -> str:
    return path[len("/Workspace"):] if path.startswith("/Workspace/") else path


_NOT_FOUND = ("RESOURCE_NOT_FOUND", "CLIENT_ERROR")
_BAD_CONFIG = ("INVALID_RUN_CONFIGURATION", "CLIENT_ERROR")


def _plan(st, store: JobsStore, run: dict, t: dict) -> None:
    """What the task will run, read when it is scheduled: its notebook, file or wheels must exist
    now (else it fails, like Databricks, before running)."""
    from . import workspace
    spec = t["spec"]
    kind = _task_type(spec)
    at = t["run_at"]
    ov = run["overriding_parameters"]
    user = run["creator_user_name"]
    if kind not in RUNNABLE:
        _fail_task(t, at, f"The emulator does not run {kind} tasks; it runs notebook_task, spark_python_task, "
                          "python_wheel_task, sql_task (file), condition_task and run_job_task.", _BAD_CONFIG)
        return
    if kind == "notebook_task":
        nb = spec["notebook_task"]
        path = nb["notebook_path"]
        if (nb.get("source") or ("GIT" if run.get("git_source") else "WORKSPACE")) == "GIT":
            _fail_task(t, at, "Notebooks from a Git repository (source GIT) are not supported by the emulator.",
                       _BAD_CONFIG)
            return
        node = workspace.resolve(st, path)
        if node is None or node.object_type != "NOTEBOOK":
            _fail_task(t, at, f'Unable to access the notebook "{path}". Either it does not exist, or the identity '
                              f"used to run this job, {user}, lacks the required permissions.", _NOT_FOUND)
            return
        try:
            cells = workspace.notebook_cells(st, node)
        except workspace.NotebookError as e:
            _fail_task(t, at, str(e), _BAD_CONFIG)
            return
        widgets = {p["name"]: str(p.get("value", p.get("default", ""))) for p in run["job_parameters"]}
        widgets.update({k: str(_refs(v, run, t)) for k, v in (nb.get("base_parameters") or {}).items()})
        widgets.update({k: str(v) for k, v in (ov.get("notebook_params") or {}).items()})
        t["source"] = (node.name, node.language, node.source)
        t["plan"] = {"cells": cells, "widgets": widgets, "argv": [node.path], "repl": True, "file": None}
    elif kind == "spark_python_task":
        sp = spec["spark_python_task"]
        path = sp["python_file"]
        if (sp.get("source") or ("GIT" if run.get("git_source") else "WORKSPACE")) == "GIT":
            _fail_task(t, at, "Python files from a Git repository (source GIT) are not supported by the emulator.",
                       _BAD_CONFIG)
            return
        if re.match(r"^[a-z][a-z0-9+.-]*:", path):
            _fail_task(t, at, f"The emulator runs Python files from the workspace only; {path} is not a workspace "
                              "path.", _BAD_CONFIG)
            return
        node = workspace.resolve(st, path)
        if node is None or node.object_type != "FILE":
            _fail_task(t, at, f"Python file {path} does not exist in the workspace.", _NOT_FOUND)
            return
        try:
            code = (node.data or b"").decode("utf-8")
        except UnicodeDecodeError:
            _fail_task(t, at, f"Python file {path} is not UTF-8 text.", _BAD_CONFIG)
            return
        params = ov.get("python_params") if ov.get("python_params") is not None else sp.get("parameters") or []
        t["plan"] = {"cells": [code], "argv": [path] + [str(_refs(p, run, t)) for p in params], "repl": False,
                     "file": path}
    elif kind == "python_wheel_task":
        plan = _wheel_plan(st, run, t)
        if plan is not None:
            t["plan"] = plan
    elif kind == "sql_task":
        _sql_plan(st, run, t)


def _wheel_plan(st, run: dict, t: dict) -> Optional[dict]:
    from . import workspace
    spec = t["spec"]
    wt = spec["python_wheel_task"]
    ov = run["overriding_parameters"]
    at = t["run_at"]
    files, problems = {}, []
    for lib in spec.get("libraries") or []:
        whl = lib.get("whl") if isinstance(lib, dict) else None
        if not whl:
            continue
        node = workspace.resolve(st, whl) if whl.startswith("/") else None
        if node is None or node.object_type != "FILE":
            problems.append(f"{whl}: the emulator installs wheels from workspace files only, and there is none "
                            "at this path" if whl.startswith("/") else f"{whl}: not a workspace path")
            continue
        files[whl.rsplit("/", 1)[-1]] = node.data or b""
    if problems:
        _fail_task(t, at, "Library installation failed for library due to user error. Error messages:\n"
                   + "\n".join(problems), ("LIBRARY_INSTALLATION_ERROR", "CLIENT_ERROR"))
        return None
    package, entry = wt["package_name"], wt["entry_point"]
    target = None
    for data in files.values():
        target = target or _entry_point(data, entry)
    module, _, attrs = (target or f"{package.replace('-', '_')}:{entry}").partition(":")
    attrs = [a for a in (attrs or entry).split(".") if a]
    code = ("import importlib as _dbx_importlib\n"
            f"_dbx_entry = _dbx_importlib.import_module({module.strip()!r})\n"
            f"for _dbx_name in {attrs!r}:\n"
            "    _dbx_entry = getattr(_dbx_entry, _dbx_name)\n"
            "_dbx_entry()\n")
    if ov.get("python_named_params") is not None or (wt.get("named_parameters") and ov.get("python_params") is None):
        named = ov.get("python_named_params") if ov.get("python_named_params") is not None else wt["named_parameters"]
        params = [f"--{k}={_refs(v, run, t)}" for k, v in named.items()]
    else:
        raw = ov.get("python_params") if ov.get("python_params") is not None else wt.get("parameters") or []
        params = [str(_refs(p, run, t)) for p in raw]
    return {"cells": [code], "argv": [package] + params, "repl": False, "file": None, "files": files,
            "path": list(files)}


def _entry_point(wheel: bytes, name: str) -> Optional[str]:
    """``module:attr`` of the entry point ``name`` in a wheel's metadata, or None."""
    import configparser
    try:
        zf = zipfile.ZipFile(io.BytesIO(wheel))
        meta = next((n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")), None)
        if meta is None:
            return None
        cp = configparser.ConfigParser(delimiters=("=",))
        cp.optionxform = str
        cp.read_string(zf.read(meta).decode("utf-8"))
    except (zipfile.BadZipFile, configparser.Error, UnicodeDecodeError, OSError):
        return None
    for section in cp.sections():
        if name in cp[section]:
            return cp[section][name].split("[", 1)[0].strip()
    return None


def _sql_plan(st, run: dict, t: dict) -> None:
    from . import workspace
    sql = t["spec"]["sql_task"]
    at = t["run_at"]
    wid = sql.get("warehouse_id")
    try:
        from .warehouses import warehouses
        wh = warehouses(st).get(wid)
        known = True
    except Exception:  # noqa: BLE001 - the SQL area may be absent or changed: do not check
        wh, known = None, False
    if known and (wh is None or wh.get("state") == "DELETED"):
        _fail_task(t, at, f"SQL warehouse {wid} does not exist.", _NOT_FOUND)
        return
    if sql.get("file") is not None:
        f = sql["file"]
        if (f.get("source") or ("GIT" if run.get("git_source") else "WORKSPACE")) == "GIT":
            _fail_task(t, at, "SQL files from a Git repository (source GIT) are not supported by the emulator.",
                       _BAD_CONFIG)
            return
        node = workspace.resolve(st, f["path"])
        if node is None or node.object_type != "FILE":
            _fail_task(t, at, f"SQL file {f['path']} does not exist in the workspace.", _NOT_FOUND)
            return
        text = _refs((node.data or b"").decode("utf-8", "replace"), run, t)
        values = {k: _refs(v, run, t) for k, v in (sql.get("parameters") or {}).items()}
        values.update(run["overriding_parameters"].get("sql_params") or {})
        t["plan"] = {"sql": workspace.split_sql(text), "text": text, "values": values, "warehouse_id": wid}
    elif sql.get("query") is not None:
        _fail_task(t, at, f"Query {sql['query']['query_id']} does not exist (the emulator has no saved queries; "
                          "use sql_task.file).", _NOT_FOUND)
    else:
        _fail_task(t, at, "SQL alert and dashboard tasks are not supported by the emulator.", _BAD_CONFIG)


class _Background:
    """A function run on a thread (a task's SQL): ``done()``, ``result``, ``cancel()`` (best effort)."""

    def __init__(self, fn) -> None:
        self.result = None
        self._done = threading.Event()

        def main():
            try:
                self.result = fn()
            except Exception as e:  # noqa: BLE001
                self.result = {"status": "internal", "error": f"Emulator engine error: {e!r}"}
            self._done.set()

        threading.Thread(target=main, name="emulator-task-sql", daemon=True).start()

    def done(self) -> bool:
        return self._done.is_set()

    def outcome(self):
        return self.result

    def cancel(self) -> None:
        pass


def _run_sql_plan(engine, plan: dict) -> dict:
    from .pyrunner import run_sql_once
    keys = []
    for statement in plan["sql"]:
        params = [{"name": k, "value": None if v is None else str(v)} for k, v in plan["values"].items()
                  if re.search(r":" + re.escape(k) + r"\b", statement)]
        res = run_sql_once(engine, statement, params or None) or {}
        keys.append({"lookup_key": secrets.token_hex(8)})
        if res.get("resultType") == "error":
            return {"status": "error", "error": _plain(res.get("summary")) or "Query failed",
                    "error_trace": res.get("cause") or "", "statements": keys}
    return {"status": "ok", "statements": keys}


def _plain(text: Optional[str]) -> Optional[str]:
    if not text:
        return text
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(text).strip()


def _begin(st, store: JobsStore, run: dict, t: dict) -> None:
    """The task starts RUNNING: its code starts now."""
    t["started"] = True
    spec = t["spec"]
    kind = _task_type(spec)
    plan = t.get("plan") or {}
    c = st.clusters.get(t["cluster_id"]) if t.get("cluster_id") else None
    if c is not None and c.details.get("spark_context_id") is not None:
        t["spark_context_id"] = str(c.details["spark_context_id"])      # the Spark context it runs in
    if kind == "condition_task":
        t["sync_outcome"] = _condition_task(run, t)
    elif kind == "run_job_task":
        t["sync_outcome"] = _start_child(st, store, run, t)
    elif kind == "sql_task":
        engine = _sql_engine(st)
        t["program"] = _Background(lambda: _run_sql_plan(engine, plan))
    else:
        pyrunner = _engines()
        t["program"] = pyrunner.Program(
            plan["cells"], timeout=float(_cfg(st, "python_timeout")), sql_engine=_sql_engine(st),
            argv=plan.get("argv"), widgets=plan.get("widgets"), repl=plan.get("repl", False),
            file=plan.get("file"), files=plan.get("files"), path=plan.get("path")).start()


def _start_child(st, store: JobsStore, run: dict, t: dict) -> Optional[dict]:
    rj = t["spec"]["run_job_task"]
    job = store.jobs.get(_int_or_none(rj.get("job_id")))
    if job is None:
        return {"result": "FAILED", "error": f"Job {rj.get('job_id')} does not exist.", "internal": True,
                "termination": _NOT_FOUND}
    params = {k: _refs(v, run, t) for k, v in (rj.get("job_parameters") or {}).items()}
    body = {"job_parameters": params} if params else {}
    for k in ("notebook_params", "python_params", "python_named_params", "sql_params"):
        if rj.get(k) is not None:
            body[k] = rj[k]
    t["child_run_id"] = _create_run(st, store, job=job, settings=job["settings"], body=body, run_type="JOB_RUN",
                                    kind="jobs/run-job-task", user=run["creator_user_name"],
                                    base_url=run["base_url"], trigger="RUN_JOB_TASK")
    return None


def _int_or_none(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


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


def _outcome(st, store: JobsStore, run: dict, t: dict) -> Optional[dict]:
    """The task's outcome, or None while its code (or child run) still runs."""
    if t.get("sync_outcome") is not None:
        return t["sync_outcome"]
    if t.get("child_run_id") is not None:
        child = store.runs.get(t["child_run_id"])
        if child is None or child["phase"] != "DONE":
            return None
        out = {"run_job_output": {"run_id": child["run_id"]}}
        if child["result_state"] in ("SUCCESS", "SUCCESS_WITH_FAILURES"):
            return dict(out, result="SUCCESS")
        return dict(out, result="FAILED", error=f"Run {child['run_id']} of job {child['job_id']} ended "
                                               f"{child['result_state'] or child['life_cycle_final']}: "
                                               f"{child['state_message']}")
    prog = t.get("program")
    if prog is None:
        return {"result": "INTERNAL_ERROR", "error": "The task has nothing to run."}
    if not prog.done():
        return None
    o = prog.outcome() or {}
    status = o.get("status")
    logs = o.get("logs") or ""
    if status in ("ok", "exit"):
        out = {"result": "SUCCESS", "logs": logs}
        if status == "exit":
            out["notebook_result"] = o.get("value")
        if "statements" in o:
            out["statements"] = o["statements"]
        return out
    if status == "cancelled":
        return {"result": "CANCELED", "logs": logs}
    if status == "timeout":
        return {"result": "FAILED", "error": o.get("error"), "logs": logs}
    if status == "error":
        return {"result": "FAILED", "error": o.get("error") or "Workload failed", "error_trace": o.get("error_trace"),
                "logs": logs, "statements": o.get("statements")}
    return {"result": "INTERNAL_ERROR", "error": o.get("error") or "Emulator engine error"}


def _finish_task(st, store: JobsStore, run: dict, t: dict, horizon: int) -> bool:
    o = _outcome(st, store, run, t)
    if o is None:
        return False            # the code still runs: the task stays RUNNING
    t["done_at"] = max(t["min_done"], min(horizon, st.now_ms()))
    t["condition_result"] = o.get("condition_result")
    result = o.get("result", "SUCCESS")
    t["phase"] = "DONE"
    spec = t["spec"]
    kind = _task_type(spec)
    output: Dict[str, Any] = {}
    if kind == "notebook_task":
        value = o.get("notebook_result")
        if value is not None:
            output["notebook_output"] = {"result": value[:NOTEBOOK_RESULT_LIMIT],
                                         "truncated": len(value) > NOTEBOOK_RESULT_LIMIT}
        else:
            output["notebook_output"] = {}
    elif kind in ("spark_python_task", "python_wheel_task"):
        logs = o.get("logs") or ""
        output["logs"] = logs[-LOGS_LIMIT:]
        output["logs_truncated"] = len(logs) > LOGS_LIMIT
    elif kind == "sql_task":
        plan = t.get("plan") or {}
        wid = spec["sql_task"].get("warehouse_id")
        output["sql_output"] = {"query_output": {
            "query_text": plan.get("text"), "warehouse_id": wid, "endpoint_id": wid,
            "sql_statements": o.get("statements") or [],
            "output_link": f"{run['base_url']}/sql/history?o={st.workspace_id}"}}
    elif kind == "run_job_task" and o.get("run_job_output"):
        output["run_job_output"] = o["run_job_output"]
    t["output"] = output
    t["program"] = None
    if result == "INTERNAL_ERROR" or o.get("internal"):
        t["life_cycle_final"] = "INTERNAL_ERROR"
        t["result_state"] = "FAILED"
        t["state_message"] = o.get("error") or "An internal error occurred."
        t["termination"] = o.get("termination") or ("INTERNAL_ERROR", "INTERNAL_ERROR")
        t["error"] = o.get("error")
    elif result == "SUCCESS":
        t["result_state"] = "SUCCESS"
        t["state_message"] = ""
    else:
        t["result_state"] = result
        t["error"] = o.get("error") or WORKLOAD_FAILED
        t["error_trace"] = o.get("error_trace")
        t["state_message"] = WORKLOAD_FAILED if kind in ("notebook_task", "spark_python_task",
                                                          "python_wheel_task") else t["error"]
        if result in ("CANCELED", "TIMEDOUT"):
            t["user_cancelled"] = True
    _release_task_cluster(st, t, t["done_at"])
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
        if life == "INTERNAL_ERROR" and not termination:
            code, ttype = "INTERNAL_ERROR", "INTERNAL_ERROR"
        if life == "SKIPPED" and not termination:
            code, ttype = "SKIPPED", "SUCCESS"
        status["termination_details"] = {"code": code, "type": ttype, "message": message or ""}
    if life == "QUEUED" and queue_details:
        status["queue_details"] = dict(queue_details)
    return state, status


def _task_life(run: dict, t: dict, now: int) -> str:
    if run["phase"] == "QUEUED":
        return "QUEUED"
    if t["phase"] == "BLOCKED":
        return "BLOCKED" if t["spec"].get("depends_on") else "PENDING"
    if t["phase"] == "WAITING":
        return "PENDING"
    if t["phase"] == "SCHEDULED":
        return "PENDING" if now < t["run_at"] else "RUNNING"
    if t["cleanup_ms"] and now < t["done_at"]:
        return "TERMINATING"
    return t["life_cycle_final"] or "TERMINATED"


def _cluster_instance(st, t: dict) -> Optional[dict]:
    cid = t.get("cluster_id")
    if not cid:
        return None
    out = {"cluster_id": cid}
    if not t.get("spark_context_id") and t["phase"] in ("SCHEDULED", "DONE") and t.get("run_at") is not None:
        c = st.clusters.get(cid)         # the Spark context the task ran in (kept when the cluster restarts)
        ctx = c.details.get("spark_context_id") if c is not None and c.state in ("RUNNING", "RESIZING") else None
        if ctx is not None:
            t["spark_context_id"] = str(ctx)
    if t.get("spark_context_id"):
        out["spark_context_id"] = t["spark_context_id"]
    return out


def _timings(t: dict, now: int) -> dict:
    start = t["ready_at"] or 0
    done = t["phase"] == "DONE" and not (t["cleanup_ms"] and now < t["done_at"])
    end = t["done_at"] if done else 0
    out = {"start_time": start, "end_time": end, "setup_duration": 0, "execution_duration": 0,
           "cleanup_duration": t["cleanup_ms"] if done else 0}
    if t["ready_at"] is not None and t["run_at"] is not None:
        until = t["done_at"] if t["phase"] == "DONE" else now
        out["setup_duration"] = max(0, min(t["run_at"], until) - t["ready_at"])
        exec_end = (t["done_at"] - t["cleanup_ms"]) if t["phase"] == "DONE" else now
        out["execution_duration"] = max(0, min(exec_end, now) - t["run_at"])
    out["run_duration"] = (end - start) if end and start else 0
    return out


def _task_view(st, run: dict, t: dict, now: int) -> dict:
    """A RunTask: the task's settings and its run."""
    out = copy_json(t["spec"])
    out["run_id"] = t["run_id"]
    out["attempt_number"] = t["attempt_number"]
    if t.get("condition_result") is not None and isinstance(out.get("condition_task"), dict):
        out["condition_task"]["outcome"] = t["condition_result"]
    life = _task_life(run, t, now)
    final = life not in ("QUEUED", "BLOCKED", "PENDING", "RUNNING", "TERMINATING")
    result = t["result_state"] if final and life != "SKIPPED" else None
    msg = t["state_message"]
    if life == "BLOCKED":
        msg = "Waiting for upstream tasks to finish."
    elif not final and life != "TERMINATING":
        msg = ""
    term = None
    if final and result:
        term = t["termination"] or _TERMINATION.get(result)
        if result == "CANCELED" and not t["user_cancelled"]:
            term = ("CANCELED", "SUCCESS")
    state, status = _state_objects(life, result, msg, t["user_cancelled"] and final, term, None)
    out["state"] = state
    out["status"] = status
    out.update(_timings(t, now))
    if run["phase"] == "QUEUED":
        out["queue_duration"] = max(0, now - run["created"])
    ci = _cluster_instance(st, t)
    if ci:
        out["cluster_instance"] = ci
    out["run_page_url"] = _page_url(run["base_url"], st, run["job_id"], t["run_id"])
    return out


def _cluster_spec(spec: dict) -> Optional[dict]:
    for k in ("existing_cluster_id", "job_cluster_key", "new_cluster"):
        if spec.get(k) is not None:
            out = {k: copy_json(spec[k])}
            if spec.get("libraries"):
                out["libraries"] = copy_json(spec["libraries"])
            return out
    return None


def _task_run_view(st, run: dict, t: dict, now: int) -> dict:
    """A task run seen as a Run (runs/get and get-output ``metadata`` for a task run id)."""
    task = _task_view(st, run, t, now)
    out = {"job_id": run["job_id"], "run_id": t["run_id"], "number_in_job": t["run_id"],
           "original_attempt_run_id": t["run_id"], "attempt_number": t["attempt_number"],
           "creator_user_name": run["creator_user_name"], "run_name": t["spec"]["task_key"],
           "run_type": run["run_type"], "trigger": run["trigger"], "state": task["state"], "status": task["status"]}
    for k in ("start_time", "end_time", "setup_duration", "execution_duration", "cleanup_duration", "run_duration",
              "queue_duration", "cluster_instance", "run_page_url"):
        if k in task:
            out[k] = task[k]
    cs = _cluster_spec(t["spec"])
    if cs:
        out["cluster_spec"] = cs
    if run["job_parameters"]:
        out["job_parameters"] = copy_json(run["job_parameters"])
    if run["overriding_parameters"]:
        out["overriding_parameters"] = copy_json(run["overriding_parameters"])
    out["tasks"] = [task]
    return out


def _run_life(run: dict, now: int) -> str:
    if run["phase"] == "QUEUED":
        return "QUEUED"
    if run["phase"] == "DONE":
        return run["life_cycle_final"] or "TERMINATED"
    if run["phase"] == "CLEANUP" or run["cancel_at"] is not None:
        return "TERMINATING"
    tasks = _tasks_now(run)
    if any(t["phase"] == "DONE" or (t["phase"] == "SCHEDULED" and now >= t["run_at"]) for t in tasks):
        return "RUNNING"
    return "PENDING"


def _run_state(run: dict, now: int):
    life = _run_life(run, now)
    result = run["result_state"] if run["phase"] == "DONE" and life in ("TERMINATED", "INTERNAL_ERROR") else None
    msg = run["state_message"] if run["phase"] in ("DONE", "CLEANUP") or life == "QUEUED" else ""
    return _state_objects(life, result, msg, run["user_cancelled"] and run["phase"] in ("DONE", "CLEANUP"),
                          run["termination"] if run["phase"] == "DONE" else None, run["queue_details"])


def _run_view(st, run: dict, now: int, *, with_tasks: bool = True, history: bool = True) -> dict:
    state, status = _run_state(run, now)
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
        "job_parameters": copy_json(run["job_parameters"]),
        "job_clusters": copy_json(run["job_clusters"]),
    }
    tasks = _tasks_now(run)
    if len(tasks) == 1:                # durations are per run for a single task, 0 for multitask runs
        timing = _timings(tasks[0], now)
        for k in ("setup_duration", "execution_duration", "cleanup_duration"):
            out[k] = timing[k]
        ci = _cluster_instance(st, tasks[0])
        if ci:
            out["cluster_instance"] = ci
        cs = _cluster_spec(tasks[0]["spec"])
        if cs:
            out["cluster_spec"] = cs
    if run["kind"] in ("jobs/run-now", "jobs/run-job-task"):
        out["job_run_id"] = run["run_id"]
    if run["overriding_parameters"]:
        out["overriding_parameters"] = copy_json(run["overriding_parameters"])
    if run["git_source"]:
        out["git_source"] = copy_json(run["git_source"])
    if with_tasks:
        out["tasks"] = [_task_view(st, run, t, now) for t in tasks]
        out["iterations"] = []
    if history:
        out["repair_history"] = _repair_history(st, run, now)
    return out


def _repair_history(st, run: dict, now: int) -> List[dict]:
    first_ids = [t["run_id"] for t in run["all_task_runs"] if t["repair_id"] is None]
    if run["repairs"]:
        first = run["repairs"][0]
        o_state, o_status = _state_objects("TERMINATED", first["prev_result"], first["prev_message"], False,
                                           first["prev_termination"], None)
        o_end = first["prev_end"]
    else:
        o_state, o_status = _run_state(run, now)
        o_end = run["end_time"] if run["phase"] == "DONE" else 0
    hist = [{"type": "ORIGINAL", "id": run["run_id"], "start_time": run["created"], "end_time": o_end,
             "state": o_state, "status": o_status, "task_run_ids": first_ids}]
    for i, rep in enumerate(run["repairs"]):
        if i == len(run["repairs"]) - 1:
            state, status = _run_state(run, now)
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
        if body.get("performance_target") is not None and not isinstance(body["performance_target"], str):
            raise invalid_parameter("performance_target must be a string.")
        rid = _create_run(st, store_of(st), job=job, settings=job["settings"], body=dict(body, run_name=None),
                          run_type="JOB_RUN", kind="jobs/run-now", user=_user(req), base_url=req.base_url)
        return {"run_id": rid, "number_in_job": rid}


@route("POST", V + r"/runs/submit")
def submit_run(req):
    body = req.body
    st = req.state
    tasks = body.get("tasks")
    if not tasks:
        raise invalid_parameter("Missing required field: tasks")
    settings = {"name": body.get("run_name") or "Untitled", "tasks": tasks,
                "timeout_seconds": body.get("timeout_seconds") or 0, "git_source": body.get("git_source"),
                "queue": body.get("queue") or {"enabled": False}}
    with st.lock:
        _validate_tasks(st, tasks, [], submit=True)
        tick(st)
        rid = _create_run(st, store_of(st), job=None, settings=settings, body=body, run_type="SUBMIT_RUN",
                          kind="jobs/runs/submit", user=_user(req), base_url=req.base_url)
        return {"run_id": rid}


@route("GET", V + r"/runs/get")
def get_run(req):
    st = req.state
    with st.lock:
        tick(st)
        now = _ms(st)
        run, task = _run(req, req.param("run_id"), allow_task=True)
        if task is not None:
            return _task_run_view(st, run, task, now)
        out = _run_view(st, run, now)
        return _paged(out, out, RUN_ARRAYS, req.q("page_token"), req.params["version"],
                      int(_cfg(st, "array_page_size")), "run")


def _task_of(req, run: dict, task: Optional[dict], message: str) -> dict:
    """The task run a get-output / export asks for: a task run id, never a parent run id (on API
    2.0 the parent of a single-task run stands for its task)."""
    if task is not None:
        return task
    tasks = _tasks_now(run)
    if req.params["version"] == "2.0" and len(tasks) == 1:
        return tasks[0]
    raise invalid_parameter(message)


@route("GET", V + r"/runs/get-output")
def get_run_output(req):
    st = req.state
    with st.lock:
        tick(st)
        now = _ms(st)
        run, task = _run(req, req.param("run_id"), allow_task=True)
        task = _task_of(req, run, task, MULTI_TASK_OUTPUT)
        out: Dict[str, Any] = {"metadata": _task_run_view(st, run, task, now)}
        if task["phase"] == "DONE" and now >= task["done_at"]:
            out.update(copy_json(task["output"]))
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
    if offset < 0:
        raise invalid_parameter("offset must not be negative.")
    job_id = req.q("job_id")
    jid = _int_id(job_id, "job_id") if job_id not in (None, "") else None
    run_type = req.q("run_type")
    if run_type and run_type not in ("JOB_RUN", "WORKFLOW_RUN", "SUBMIT_RUN"):
        raise invalid_parameter(f"Invalid run_type {run_type}: one of JOB_RUN, WORKFLOW_RUN, SUBMIT_RUN.")
    t_from = req.q_int("start_time_from")
    t_to = req.q_int("start_time_to")
    expand = req.q_bool("expand_tasks", False)
    page_size = int(_cfg(st, "array_page_size"))
    with st.lock:
        tick(st)
        now = _ms(st)
        store = store_of(st)
        keys = store.job_run_keys.get(jid, []) if jid is not None else store.run_keys
        lo = bisect.bisect_left(keys, (t_from, -1)) if t_from is not None else 0
        hi = bisect.bisect_right(keys, (t_to, float("inf"))) if t_to is not None else len(keys)
        runs = store.runs

        def live(key):
            r = runs.get(key[1])
            if r is None or r.get("deleted"):
                return None
            if run_type and r["run_type"] != run_type:
                return None
            if active_only and r["phase"] not in ("QUEUED", "ACTIVE", "CLEANUP"):
                return None
            if completed_only and r["phase"] != "DONE":
                return None
            return r

        found, nxt, prev = _keyset(keys, live, req.q("page_token"), "runs", limit, offset, reverse=True,
                                   lo=lo, hi=hi)
        items = [_list_view(st, r, now, expand, page_size) for r in found]
        head = {"has_more": bool(nxt)}
        if nxt:
            head["next_page_token"] = nxt
        if prev:
            head["prev_page_token"] = prev
        body = json.dumps(head, separators=(",", ":")).encode()
        if items:
            body = body[:-1] + b',"runs":[' + b",".join(items) + b"]}"
        return 200, body, {"Content-Type": "application/json"}


def _list_view(st, run: dict, now: int, expand: bool, page_size: int) -> bytes:
    """A runs/list item, serialised; a finished run's is kept (it no longer changes; a repair
    makes the run active again and drops it)."""
    cache = run.get("_list_views")
    if run["phase"] == "DONE" and cache and cache[0] == (expand, page_size):
        return cache[1]
    v = _run_view(st, run, now, with_tasks=expand, history=False)
    if expand:
        v.pop("iterations", None)
        if len(v["tasks"]) > page_size:
            v["tasks"] = v["tasks"][:page_size]
            v["has_more"] = True
    data = json.dumps(v, separators=(",", ":")).encode()
    run["_list_views"] = ((expand, page_size), data) if run["phase"] == "DONE" else None
    return data


def _cancel(st, run: dict, now: int) -> bool:
    """Cancel a run: a queued one ends at once, a running one cleans up first (TERMINATING)."""
    store = store_of(st)
    if run["phase"] == "QUEUED":
        run["phase"] = "ACTIVE"
        run["exec_start"] = now
        run["queue_details"] = None
        for t in run["all_task_runs"]:
            if t["phase"] == "BLOCKED":
                t.update(phase="DONE", done_at=now, result_state="CANCELED", user_cancelled=True,
                         state_message="The task was canceled before it started.")
        run["stop"] = {"result": "CANCELED", "message": "Run cancelled."}
        run["end_time"] = now
        _finish_run(st, store, run, now)
        return True
    if run["phase"] == "ACTIVE" and run["cancel_at"] is None:
        run["cancel_at"] = now
        for t in _tasks_now(run):                 # the code is interrupted now
            prog = t.get("program")
            if prog is not None and not prog.done():
                prog.cancel()
        _tick_run(st, store, run, now)
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
        store = store_of(st)
        if job_id is not None:
            jid = _job(req, job_id)["job_id"]
            runs = [store.runs[i] for i in sorted(store.active_by_job.get(jid, ()))]
        else:
            runs = [store.runs[i] for i in sorted(store.active)]
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
            keys = [k for k, t in current.items()
                    if _task_result(t) not in ("SUCCESS", "SUCCESS_WITH_FAILURES", "EXCLUDED", "DISABLED")]
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
        for k in [t["spec"]["task_key"] for t in _tasks_now(run)]:
            if k in keys:
                t = _new_task_run(store, run, current[k]["spec"], attempt=0, not_before=now)
                t["repair_id"] = repair_id
                rep["task_run_ids"].append(t["run_id"])
        run["repairs"].append(rep)
        run.update(phase="ACTIVE", end_time=0, result_state=None, life_cycle_final=None, state_message="",
                   user_cancelled=False, termination=None, cancel_at=None, stop=None, cleanup_ms=0, clusters={},
                   _list_views=None)
        store.activate(run)
        if run["exec_start"] is None or run["timeout_seconds"]:
            run["exec_start"] = now
        st.applied["jobs/runs/repair"] += 1
        _ensure_ticker(st, store)
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
        task = _task_of(req, run, task, MULTI_TASK_EXPORT)
        if task["spec"].get("notebook_task") is None:
            raise invalid_parameter(f"Run {task['run_id']} is not a notebook task run; only notebook runs can be "
                                    "exported.")
        out = []
        if views in ("CODE", "ALL"):
            from .workspace import notebook_html, resolve
            if task.get("source") is None:
                node = resolve(st, task["spec"]["notebook_task"]["notebook_path"])
                source = (node.name, node.language, node.source) if node is not None and node.source else None
            else:
                source = task["source"]
            path = task["spec"]["notebook_task"]["notebook_path"]
            name, language, text = source or (path.rsplit("/", 1)[-1], "PYTHON", "")
            out.append({"content": notebook_html(name, language, text), "name": name, "type": "NOTEBOOK"})
        return {"views": out}
