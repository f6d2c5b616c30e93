"""One scenario per action: how to prepare the emulator for it and which inputs make it succeed.

The reliability tests (faults, fuzzing, concurrency, secrets) run over every action in the
manifest through this registry, so a new action is covered as soon as its scenario is written,
and ``test_faults.py::test_every_action_has_a_scenario`` fails loudly until it is.

A scenario is a function ``(emulator, connector, conn) -> inputs`` that seeds what the action
needs (clusters through ``emulator.state.add_cluster``, warehouses through the emulator's SQL
area, or objects created through the connector's own actions) and returns valid inputs, plus
metadata:

* ``changes_state``: the action's main request changes workspace state;
* ``applied``: the ``emulator.state.applied`` keys whose counters prove a change was applied
  (a clean run raises their sum by exactly one);
* ``retry_safe``: what makes re-sending the main request safe: ``"token"`` (an idempotency token
  the server de-duplicates), ``"natural"`` (repeating it is harmless: stop, terminate, cancel,
  pin, a full replacement), or ``None`` (repeating it would apply it twice);
* ``main``: ``(method, path regex)`` of the request faults are injected into; when ``None`` it is
  discovered from a clean run (the first request for a read, the first non-GET for a change);
* ``wait``: inputs that make the action wait (polling) for a while, for the token-expiry case;
* ``check``: ``(output, inputs, conn) -> bool``, the answer belongs to this request (concurrency);
* ``failing``: inputs that make the action fail with a classified error (a not-found id).
"""
from __future__ import annotations

import atexit
import json
import re
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import quote

PAT_USER = "emulator-user@example.com"
SPARK = "13.3.x-scala2.12"
NODE = "i3.xlarge"


@dataclass(frozen=True)
class Scenario:
    key: str
    prepare: Callable
    changes_state: bool = False
    applied: tuple = ()
    retry_safe: Optional[str] = None
    main: Optional[tuple] = None
    wait: Optional[Callable] = None
    check: Optional[Callable] = None
    failing: Optional[Callable] = None
    own_read_timeout: bool = False      # the action sets its own read timeout for its main request

    @property
    def safe_to_resend(self) -> bool:
        return self.retry_safe is not None


SCENARIOS: dict[str, Scenario] = {}


def scenario(key: str, **meta):
    def deco(fn):
        SCENARIOS[key] = Scenario(key, fn, **meta)
        return fn
    return deco


# --------------------------------------------------------------------------- helpers

def manifest_actions(connector) -> list[str]:
    return [a["key"] for a in connector.manifest["actions"]]


def user_name(conn: dict) -> str:
    """The userName the emulator reports for a connection."""
    return conn["client_id"] if conn["type"] == "service_principal" else PAT_USER


def seed_cluster(emulator, state: str = "RUNNING", **fields) -> str:
    fields.setdefault("cluster_name", f"scn-{uuid.uuid4().hex[:8]}")
    fields.setdefault("spark_version", SPARK)
    fields.setdefault("node_type_id", NODE)
    fields.setdefault("num_workers", 1)
    return emulator.state.add_cluster(state=state, **fields)


def seed_warehouse(emulator, state: str = "RUNNING", name: str | None = None) -> str:
    """A warehouse in a settled state (no pending transition)."""
    hook = getattr(emulator.state, "add_warehouse", None)
    if hook is not None:
        try:
            return hook(name=name or f"scn-{uuid.uuid4().hex[:8]}", state=state)
        except TypeError:
            pass
    from databricks_connector.emulator import warehouses as wmod

    st = emulator.state
    with st.lock:
        store = wmod.warehouses(st)
        wh = wmod._new(st, {"name": name or f"scn-{uuid.uuid4().hex[:8]}", "cluster_size": "Small",
                            "warehouse_type": "PRO", "enable_serverless_compute": True}, PAT_USER)
        wh["state"] = state
        wh["num_clusters"] = 1 if state in ("RUNNING", "STOPPING") else 0
        wh["_transitions"] = []
        store[wh["id"]] = wh
        return wh["id"]


def sql_settings(emulator):
    from databricks_connector.emulator.warehouses import sql_settings as _s

    return _s(emulator.state)


def applied(emulator, keys) -> int:
    with emulator.state.lock:
        return sum(emulator.state.applied[k] for k in keys)


def new_requests(emulator, since: int) -> list[dict]:
    return emulator.requests[since:]


def api_requests(reqs) -> list[dict]:
    """Requests to the workspace API (not the token endpoint or discovery)."""
    return [r for r in reqs if not r["path"].startswith(("/oidc/", "/.well-known/", "/__emulator/"))]


_MAIN: dict = {}
_MAIN_LOCK = threading.Lock()
_PREPARED: dict = {}


def prepared(emulator, connector, conn, key: str) -> dict:
    """The inputs of a read-only scenario, prepared once per connection and reused (reads leave the
    prepared objects as they were); a state-changing scenario is prepared afresh every time."""
    sc = SCENARIOS[key]
    if sc.changes_state:
        return sc.prepare(emulator, connector, conn)
    ident = (key, conn["type"], conn.get("client_id") or conn.get("token"))
    with _MAIN_LOCK:
        if ident not in _PREPARED:
            _PREPARED[ident] = sc.prepare(emulator, connector, conn)
        return dict(_PREPARED[ident])


def main_request(emulator, connector, conn, key: str) -> tuple[str, str]:
    """(method, fullmatch regex) of the action's main request, from a clean run (cached)."""
    sc = SCENARIOS[key]
    if sc.main is not None:
        return sc.main
    with _MAIN_LOCK:
        if key in _MAIN:
            return _MAIN[key]
        inputs = sc.prepare(emulator, connector, conn)
        since = len(emulator.requests)
        connector.run(key, conn, inputs)
        reqs = api_requests(new_requests(emulator, since))
        assert reqs, f"{key}: a clean run made no API request"
        pick = next((r for r in reqs if r["method"] != "GET"), reqs[0]) if sc.changes_state else reqs[0]
        values = {str(v) for v in inputs.values() if isinstance(v, (str, int)) and not isinstance(v, bool)}
        values |= {quote(v, safe="") for v in list(values)}
        segments = [("[^/]+" if seg in values and seg else re.escape(seg)) for seg in pick["path"].split("/")]
        _MAIN[key] = (pick["method"], "/".join(segments))
        return _MAIN[key]


# --------------------------------------------------------------------------- figures

STATS: dict[str, int] = {}
_STATS_LOCK = threading.Lock()


def count(name: str, n: int = 1) -> None:
    with _STATS_LOCK:
        STATS[name] = STATS.get(name, 0) + n


NOTES: list = []


def note(text: str) -> None:
    with _STATS_LOCK:
        NOTES.append(text)


def figures() -> dict:
    with _STATS_LOCK:
        out = dict(STATS)
    if "fault cases run" in out:
        out.setdefault("duplicates found", 0)      # a state change applied twice where that was not safe
    return dict(sorted(out.items()))


@atexit.register
def _print_figures() -> None:  # pragma: no cover - printed after pytest's own summary
    if STATS:
        sys.__stderr__.write("\nRELIABILITY FIGURES " + json.dumps(figures(), sort_keys=True) + "\n")
        for text in NOTES:
            sys.__stderr__.write(f"  {text}\n")


# --------------------------------------------------------------------------- identity

@scenario("get_current_user", check=lambda out, inputs, conn: out.get("userName") == user_name(conn))
def _get_current_user(emulator, connector, conn):
    return {}


# --------------------------------------------------------------------------- clusters: reads

def _unknown_cluster(emulator, connector, conn):
    return {"cluster_id": "0000-000000-missing0"}


@scenario("get_cluster", check=lambda out, inputs, conn: out.get("cluster_id") == inputs["cluster_id"],
          failing=_unknown_cluster)
def _get_cluster(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING")}


@scenario("list_clusters", check=lambda out, inputs, conn: isinstance(out.get("clusters"), list)
          and out["count"] == len(out["clusters"]))
def _list_clusters(emulator, connector, conn):
    seed_cluster(emulator, "RUNNING")
    return {"states": ["RUNNING"], "max_items": 5}


@scenario("list_node_types")
def _list_node_types(emulator, connector, conn):
    return {}


@scenario("list_spark_versions")
def _list_spark_versions(emulator, connector, conn):
    return {}


@scenario("get_cluster_events", failing=_unknown_cluster, retry_safe="natural",   # a read sent as a POST
          check=lambda out, inputs, conn: isinstance(out.get("events"), list))
def _get_cluster_events(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "max_items": 10}


def _wait_cluster(target):
    def prep(emulator, connector, conn):
        emulator.config.cluster_start_seconds = 1.5
        emulator.config.cluster_terminate_seconds = 1.5
        cid = seed_cluster(emulator, "PENDING" if target == "RUNNING" else "TERMINATING")
        return {"cluster_id": cid, "target_state": target, "timeout_seconds": 30, "poll_interval_seconds": 0.2}
    return prep


@scenario("wait_for_cluster_state", failing=_unknown_cluster,
          check=lambda out, inputs, conn: out.get("cluster_id") == inputs["cluster_id"],
          wait=_wait_cluster("RUNNING"))
def _wait_for_cluster_state(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "target_state": "RUNNING", "timeout_seconds": 10,
            "poll_interval_seconds": 0.1}


# --------------------------------------------------------------------------- clusters: changes

@scenario("create_cluster", changes_state=True, applied=("clusters/create",), retry_safe="token",
          check=lambda out, inputs, conn: bool(out.get("cluster_id")))
def _create_cluster(emulator, connector, conn):
    return {"cluster_name": f"scn-{uuid.uuid4().hex[:8]}", "spark_version": SPARK, "node_type_id": NODE,
            "num_workers": 0}


@scenario("edit_cluster", changes_state=True, applied=("clusters/edit",),
          failing=_unknown_cluster)
def _edit_cluster(emulator, connector, conn):
    cid = seed_cluster(emulator, "TERMINATED")
    return {"cluster_id": cid, "cluster_name": "edited", "spark_version": SPARK, "node_type_id": NODE,
            "num_workers": 2}


@scenario("resize_cluster", changes_state=True, applied=("clusters/resize",),
          failing=_unknown_cluster)
def _resize_cluster(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "num_workers": 3}


def _lifecycle(state, **extra):
    def prep(emulator, connector, conn):
        return {"cluster_id": seed_cluster(emulator, state), **extra}
    return prep


def _wait_start(emulator, connector, conn):
    emulator.config.cluster_start_seconds = 1.5
    return {"cluster_id": seed_cluster(emulator, "TERMINATED"), "wait_for_state": True, "timeout_seconds": 30,
            "poll_interval_seconds": 0.2}


scenario("start_terminated_cluster", changes_state=True, applied=("clusters/start",), failing=_unknown_cluster,
         wait=_wait_start)(_lifecycle("TERMINATED"))
scenario("restart_cluster", changes_state=True, applied=("clusters/restart",), failing=_unknown_cluster)(
    _lifecycle("RUNNING"))
scenario("terminate_cluster", changes_state=True, applied=("clusters/delete",), retry_safe="natural",
         failing=_unknown_cluster)(_lifecycle("RUNNING"))
scenario("permanently_delete_cluster", changes_state=True, applied=("clusters/permanent-delete",),
         failing=_unknown_cluster)(_lifecycle("TERMINATED"))
scenario("pin_cluster", changes_state=True, applied=("clusters/pin",), retry_safe="natural",
         failing=_unknown_cluster)(_lifecycle("RUNNING"))


@scenario("unpin_cluster", changes_state=True, applied=("clusters/unpin",), retry_safe="natural",
          failing=_unknown_cluster)
def _unpin(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING", is_pinned=True)}


# --------------------------------------------------------------------------- warehouses

def _unknown_warehouse(emulator, connector, conn):
    return {"warehouse_id": "0000000000000000"}


@scenario("get_sql_warehouse", check=lambda out, inputs, conn: out.get("id") == inputs["warehouse_id"],
          failing=_unknown_warehouse)
def _get_sql_warehouse(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "RUNNING")}


@scenario("list_sql_warehouses", check=lambda out, inputs, conn: out.get("count") == len(out.get("warehouses", [])))
def _list_sql_warehouses(emulator, connector, conn):
    return {"max_items": 5}


def _wait_warehouse_start(emulator, connector, conn):
    sql_settings(emulator).warehouse_start_seconds = 1.5
    return {"warehouse_id": seed_warehouse(emulator, "STOPPED"), "wait_for_state": True, "timeout_seconds": 30,
            "poll_interval_seconds": 0.2}


@scenario("start_sql_warehouse", changes_state=True, applied=("warehouses/start",), retry_safe="natural",
          failing=_unknown_warehouse, wait=_wait_warehouse_start,
          check=lambda out, inputs, conn: out.get("id") == inputs["warehouse_id"])
def _start_sql_warehouse(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "STOPPED")}


@scenario("stop_sql_warehouse", changes_state=True, applied=("warehouses/stop",), retry_safe="natural",
          failing=_unknown_warehouse, check=lambda out, inputs, conn: out.get("id") == inputs["warehouse_id"])
def _stop_sql_warehouse(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "RUNNING")}


# --------------------------------------------------------------------------- raw request

@scenario("raw_request", main=("GET", r"/api/2\.0/preview/scim/v2/Me"),
          check=lambda out, inputs, conn: out.get("userName") == user_name(conn))
def _raw_request(emulator, connector, conn):
    return {"url": "/2.0/preview/scim/v2/Me", "method": "GET"}


# --------------------------------------------------------------------------- emulator settings and cleanup

_CLEANUP: list = []


def snapshot_settings(emulator):
    """Save the SQL and jobs areas' knobs (the conftest restores only the core config); returns a
    function that restores them and cleans up what scenarios left running (execution contexts)."""
    sql = sql_settings(emulator)
    saved_sql = sql.as_dict()
    jobs = _jobs_store(emulator)
    saved_jobs = dict(vars(jobs.config))
    ctx_start = emulator.config.__dict__.get("context_start_seconds", _MISSING)

    def restore():
        while _CLEANUP:
            fn = _CLEANUP.pop()
            try:
                fn()
            except Exception:  # noqa: BLE001 - cleanup is best effort
                pass
        sql.update(saved_sql)
        jobs.config.__dict__.update(saved_jobs)
        if ctx_start is _MISSING:
            emulator.config.__dict__.pop("context_start_seconds", None)
        else:
            emulator.config.context_start_seconds = ctx_start
    return restore


_MISSING = object()


def _jobs_store(emulator):
    from databricks_connector.emulator.jobs import store_of

    return store_of(emulator.state)


def fast_jobs(emulator, task_seconds: float = 0.05):
    cfg = _jobs_store(emulator).config
    cfg.pending_seconds = 0.02
    cfg.task_seconds = task_seconds


# --------------------------------------------------------------------------- commands (API 1.2)

def _context(emulator, connector, conn, cluster_id=None):
    emulator.config.context_start_seconds = 0.02     # read by emulator/commands.py; restored by snapshot_settings
    cluster_id = cluster_id or seed_cluster(emulator, "RUNNING")
    out = connector.run("create_execution_context", conn, {"cluster_id": cluster_id, "language": "python",
                                                            "wait_for_state": True, "poll_interval_seconds": 0.1,
                                                            "timeout_seconds": 30})
    return cluster_id, out["context_id"]


def _destroy_later(connector, conn, cluster_id, context_id):
    """A context that ran python holds a python process: destroy it after the test."""
    _CLEANUP.append(lambda: connector.run("destroy_execution_context", conn,
                                          {"cluster_id": cluster_id, "context_id": context_id}))


def _unknown_context(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "context_id": "1234567890123456789"}


@scenario("create_execution_context", changes_state=True, applied=("contexts/create",),
          check=lambda out, inputs, conn: bool(out.get("context_id")), failing=_unknown_cluster)
def _create_execution_context(emulator, connector, conn):
    cid = seed_cluster(emulator, "RUNNING")
    return {"cluster_id": cid, "language": "sql"}


@scenario("destroy_execution_context", changes_state=True, applied=("contexts/destroy",), failing=_unknown_context)
def _destroy_execution_context(emulator, connector, conn):
    cid, ctx = _context(emulator, connector, conn)
    return {"cluster_id": cid, "context_id": ctx}


@scenario("run_command", changes_state=True, applied=("commands/execute",), failing=_unknown_context,
          check=lambda out, inputs, conn: bool(out.get("command_id")))
def _run_command(emulator, connector, conn):
    cid, ctx = _context(emulator, connector, conn)
    return {"cluster_id": cid, "context_id": ctx, "language": "sql", "command": "SELECT 1 AS one"}


def _command(emulator, connector, conn, command, language="sql", wait=True):
    cid, ctx = _context(emulator, connector, conn)
    if language == "python":
        _destroy_later(connector, conn, cid, ctx)
    out = connector.run("run_command", conn, {"cluster_id": cid, "context_id": ctx, "language": language,
                                              "command": command, "wait_for_result": wait,
                                              "poll_interval_seconds": 0.1, "timeout_seconds": 30})
    return {"cluster_id": cid, "context_id": ctx, "command_id": out["command_id"]}


@scenario("get_command_status", check=lambda out, inputs, conn: out.get("id") == inputs["command_id"],
          failing=lambda e, c, conn: {**_unknown_context(e, c, conn), "command_id": "0" * 32})
def _get_command_status(emulator, connector, conn):
    return _command(emulator, connector, conn, "SELECT 1 AS one")


@scenario("cancel_command", changes_state=True, applied=("commands/cancel",), retry_safe="natural",
          failing=lambda e, c, conn: {**_unknown_context(e, c, conn), "command_id": "0" * 32})
def _cancel_command(emulator, connector, conn):
    return _command(emulator, connector, conn, "import time\ntime.sleep(20)", language="python", wait=False)


# --------------------------------------------------------------------------- SQL statements

def _unknown_statement(emulator, connector, conn):
    return {"statement_id": "01ef0000-0000-0000-0000-000000000000"}


@scenario("execute_sql_statement", changes_state=True, applied=("statements/execute",), failing=_unknown_warehouse,
          own_read_timeout=True,   # the POST waits server-side: its read timeout is wait_timeout + 30 s
          check=lambda out, inputs, conn: out.get("status", {}).get("state") == "SUCCEEDED")
def _execute_sql_statement(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "RUNNING"), "statement": "SELECT 1 AS one",
            "poll_interval_seconds": 0.2, "timeout_seconds": 30}


def _statement(emulator, connector, conn):
    out = connector.run("execute_sql_statement", conn, {"warehouse_id": seed_warehouse(emulator, "RUNNING"),
                                                         "statement": "SELECT 1 AS one", "timeout_seconds": 30,
                                                         "poll_interval_seconds": 0.2})
    return out["statement_id"]


@scenario("get_statement", check=lambda out, inputs, conn: out.get("statement_id") == inputs["statement_id"],
          failing=_unknown_statement)
def _get_statement(emulator, connector, conn):
    return {"statement_id": _statement(emulator, connector, conn)}


@scenario("get_statement_result_chunk", failing=_unknown_statement)
def _get_statement_result_chunk(emulator, connector, conn):
    return {"statement_id": _statement(emulator, connector, conn), "chunk_index": 0}


@scenario("cancel_statement", changes_state=True, applied=("statements/cancel",), retry_safe="natural",
          failing=_unknown_statement)
def _cancel_statement(emulator, connector, conn):
    settings = sql_settings(emulator)
    saved = settings.statement_execution_seconds
    settings.statement_execution_seconds = 30
    try:
        out = connector.run("execute_sql_statement", conn, {"warehouse_id": seed_warehouse(emulator, "RUNNING"),
                                                             "statement": "SELECT 1 AS one",
                                                             "wait_for_result": False})
        connector.run("get_statement", conn, {"statement_id": out["statement_id"]})   # PENDING -> RUNNING
    finally:
        settings.statement_execution_seconds = saved
    return {"statement_id": out["statement_id"]}


# --------------------------------------------------------------------------- jobs

TASKS = [{"task_key": "main", "notebook_task": {"notebook_path": "/Shared/scenario"}}]


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
