"""Command Execution API 1.2 (contract §6): execution contexts and commands.

camelCase wire names (clusterId, contextId, commandId), Title-case statuses, errors in the
1.2 shape ``{"error": "..."}`` (plus an ``error_code`` so clients can classify them).

* A context needs a RUNNING (or RESIZING) cluster; it is Pending for
  ``config.context_start_seconds`` and then Running. It dies (status Error) when its cluster
  restarts or terminates (the cluster's spark_context_id changes or it stops running).
* Commands: Queued (``config.command_queue_seconds``) -> Running -> Finished. Python runs for
  real in one subprocess per context (pyrunner.PythonContext: state kept across commands, the
  emulator process isolated); SQL runs on the workspace's shared SqlEngine; scala and r answer
  an error result. A failing command ends Finished with ``results.resultType == "error"``.
  Cancel: Cancelling -> Cancelled.

Execution runs on one worker thread per command (a command may take long; the HTTP request that
submitted it must return at once); statuses are computed on read.
"""
from __future__ import annotations

import random
import secrets
import threading
from typing import Any, Dict, Optional

from .api import HttpError, route

MAX_CONTEXTS_PER_CLUSTER = 145
LANGUAGES = ("python", "scala", "sql", "r")
_LIVE_CLUSTER_STATES = ("RUNNING", "RESIZING")


def _cfg(state, name: str, default: float) -> float:
    return float(getattr(state.config, name, default))


def sql_engine(state, principal=None, cancel_event=None):
    """The workspace's SQL engine as seen by one caller (created on first use)."""
    from .sqlengine import session_for
    return session_for(state, principal, cancel_event=cancel_event)


class Error12(HttpError):
    """A 1.2-shaped error: {"error": message} plus an error_code to classify it."""

    def __init__(self, status: int, message: str, error_code: Optional[str] = None):
        body: Dict[str, Any] = {"error": message}
        if error_code:
            body["error_code"] = error_code
        super().__init__(status, body)


class Context:
    def __init__(self, cid: str, cluster_id: str, language: str, created: float, spark_context_id):
        self.id = cid
        self.cluster_id = cluster_id
        self.language = language
        self.created = created
        self.spark_context_id = spark_context_id
        self.dead = False           # cluster restarted/terminated, or destroyed
        self.commands: Dict[str, "Command"] = {}
        self.python = None          # pyrunner.PythonContext, started on the first python command
        self.run_lock = threading.Lock()   # commands of one context run one at a time


class Command:
    def __init__(self, cid: str, ctx: Context, language: str, source: str, created: float, principal=None):
        self.id = cid
        self.principal = principal  # who submitted it: current_user() of its SQL
        self.ctx = ctx
        self.language = language
        self.source = source
        self.created = created
        self.started = False
        self.done = False
        self.results: Optional[dict] = None
        self.cancel_requested = False
        self.cancel_event = threading.Event()
        self.lost = False           # the context died before the command finished
        self.py_command = None      # the pyrunner.Command of a python command once submitted


def _store(state) -> Dict[str, Context]:
    return state.area("commands", dict)


# --------------------------------------------------------------------------- lookups

def _field(req, name: str, where: str = "body") -> str:
    v = req.body.get(name) if where == "body" else req.q(name)
    if not v or not isinstance(v, str):
        raise Error12(400, f"Missing required parameter: {name}", "INVALID_PARAMETER_VALUE")
    return v


def _running_cluster(req, cluster_id: str):
    from .clusters import refresh
    c = req.state.clusters.get(cluster_id)
    if c is None:
        raise Error12(400, f"Cluster {cluster_id} does not exist", "INVALID_PARAMETER_VALUE")
    refresh(req.state, c)
    if c.state not in _LIVE_CLUSTER_STATES:
        raise Error12(400, f"Cluster {cluster_id} is not running (state {c.state}); "
                           "execution contexts need a RUNNING cluster.", "INVALID_STATE")
    return c


def _check_alive(state, ctx: Context) -> None:
    """Mark a context dead when its cluster restarted, terminated or vanished."""
    if ctx.dead:
        return
    from .clusters import refresh
    c = state.clusters.get(ctx.cluster_id)
    if c is not None:
        refresh(state, c)
    if c is None or c.state not in _LIVE_CLUSTER_STATES or c.details.get("spark_context_id") != ctx.spark_context_id:
        _kill(ctx)


def _kill(ctx: Context) -> None:
    ctx.dead = True
    for cmd in ctx.commands.values():
        if not cmd.done:
            cmd.lost = True
            cmd.cancel_event.set()
    py, ctx.python = ctx.python, None
    if py is not None:
        threading.Thread(target=_close_quietly, args=(py,), daemon=True).start()


def _close_quietly(py) -> None:
    try:
        py.close()
    except Exception:  # noqa: BLE001
        pass


def _context(req, cluster_id: str, context_id: str, *, live: bool = True) -> Context:
    ctx = _store(req.state).get(context_id)
    if ctx is None or ctx.cluster_id != cluster_id:
        # unknown cluster first, like the service
        if cluster_id not in req.state.clusters:
            raise Error12(400, f"Cluster {cluster_id} does not exist", "INVALID_PARAMETER_VALUE")
        raise Error12(400, f"Execution context {context_id} does not exist on cluster {cluster_id}",
                      "INVALID_PARAMETER_VALUE")
    _check_alive(req.state, ctx)
    return ctx


def _context_status(state, ctx: Context) -> str:
    if ctx.dead:
        return "Error"
    if state.now() < ctx.created + _cfg(state, "context_start_seconds", 0.3):
        return "Pending"
    return "Running"


# --------------------------------------------------------------------------- contexts

@route("POST", r"/api/1\.2/contexts/create")
def create_context(req):
    st = req.state
    cluster_id = _field(req, "clusterId")
    language = req.body.get("language") or "python"
    if language not in LANGUAGES:
        raise Error12(400, f"Unsupported language: {language}. Use one of {', '.join(LANGUAGES)}.",
                      "INVALID_PARAMETER_VALUE")
    with st.lock:
        c = _running_cluster(req, cluster_id)
        store = _store(st)
        for ctx in store.values():
            _check_alive(st, ctx)
        open_ = [x for x in store.values() if x.cluster_id == cluster_id and not x.dead]
        if len(open_) >= MAX_CONTEXTS_PER_CLUSTER:
            raise Error12(400, f"Too many execution contexts are open right now "
                               f"(Limit set currently to {MAX_CONTEXTS_PER_CLUSTER})", "RESOURCE_EXHAUSTED")
        cid = str(random.randint(10 ** 18, 9 * 10 ** 18))
        store[cid] = Context(cid, cluster_id, language, st.now(), c.details.get("spark_context_id"))
        st.applied["contexts/create"] += 1
        return {"id": cid}


@route("GET", r"/api/1\.2/contexts/status")
def context_status(req):
    st = req.state
    cluster_id, context_id = _field(req, "clusterId", "query"), _field(req, "contextId", "query")
    with st.lock:
        ctx = _context(req, cluster_id, context_id)
        return {"id": ctx.id, "status": _context_status(st, ctx)}


@route("POST", r"/api/1\.2/contexts/destroy")
def destroy_context(req):
    st = req.state
    cluster_id, context_id = _field(req, "clusterId"), _field(req, "contextId")
    with st.lock:
        ctx = _context(req, cluster_id, context_id)
        _kill(ctx)
        del _store(st)[ctx.id]
        st.applied["contexts/destroy"] += 1
        return {"id": ctx.id}


# --------------------------------------------------------------------------- commands

@route("POST", r"/api/1\.2/commands/execute")
def execute(req):
    st = req.state
    body = req.body
    cluster_id, context_id = _field(req, "clusterId"), _field(req, "contextId")
    source = body.get("command")
    if not isinstance(source, str):
        raise Error12(400, "Missing required parameter: command", "INVALID_PARAMETER_VALUE")
    language = body.get("language") or "python"
    if language not in LANGUAGES:
        raise Error12(400, f"Unsupported language: {language}. Use one of {', '.join(LANGUAGES)}.",
                      "INVALID_PARAMETER_VALUE")
    with st.lock:
        _running_cluster(req, cluster_id)
        ctx = _context(req, cluster_id, context_id)
        if ctx.dead:
            raise Error12(400, f"Execution context {context_id} is not running: its cluster restarted "
                               "or terminated. Create a new context.", "INVALID_STATE")
        if _context_status(st, ctx) != "Running":
            raise Error12(400, f"Execution context {context_id} is not ready yet (Pending); try again "
                               "when its status is Running.", "INVALID_STATE")
        cmd = Command(secrets.token_hex(16), ctx, language, source, st.now(), req.principal)
        ctx.commands[cmd.id] = cmd
        st.applied["commands/execute"] += 1
    threading.Thread(target=_run, args=(st, cmd), name=f"emu-command-{cmd.id[:8]}", daemon=True).start()
    return {"id": cmd.id}


def _command(req, where: str):
    cluster_id = _field(req, "clusterId", where)
    context_id = _field(req, "contextId", where)
    command_id = _field(req, "commandId", where)
    ctx = _context(req, cluster_id, context_id)
    cmd = ctx.commands.get(command_id)
    if cmd is None:
        raise Error12(400, f"Command {command_id} does not exist in execution context {context_id}",
                      "INVALID_PARAMETER_VALUE")
    return cmd


def _command_status(state, cmd: Command) -> str:
    if cmd.lost:
        return "Error"
    if cmd.cancel_requested:
        return "Cancelled" if cmd.done else "Cancelling"
    if cmd.done:
        return "Finished"
    if not cmd.started or state.now() < cmd.created + _cfg(state, "command_queue_seconds", 0.1):
        return "Queued"
    return "Running"


@route("GET", r"/api/1\.2/commands/status")
def command_status(req):
    st = req.state
    with st.lock:
        cmd = _command(req, "query")
        status = _command_status(st, cmd)
        out: Dict[str, Any] = {"id": cmd.id, "status": status}
        if status == "Finished":
            out["results"] = dict(cmd.results or {"resultType": "text", "data": ""})
        elif status == "Error":
            out["results"] = {"resultType": "error", "summary": "The execution context was lost: its cluster "
                              "restarted or terminated.", "cause": "ContextLost"}
        else:
            out["results"] = None
        return out


@route("POST", r"/api/1\.2/commands/cancel")
def cancel(req):
    st = req.state
    with st.lock:
        cmd = _command(req, "body")
        handle = None
        if not cmd.done and not cmd.cancel_requested:
            cmd.cancel_requested = True
            cmd.cancel_event.set()
            handle = cmd.py_command
            st.applied["commands/cancel"] += 1
    if handle is not None:
        try:
            handle.cancel()
        except Exception:  # noqa: BLE001
            pass
    return {"id": cmd.id}


# --------------------------------------------------------------------------- execution

def _error(summary: str, cause: str = "") -> dict:
    return {"resultType": "error", "summary": summary, "cause": cause or summary}


def _run(state, cmd: Command) -> None:
    ctx = cmd.ctx
    with ctx.run_lock:                  # one command at a time per context, in submission order
        if cmd.cancel_event.is_set():
            _finish(state, cmd, None)
            return
        with state.lock:
            cmd.started = True
        try:
            results = _execute(state, cmd)
        except Exception as exc:  # noqa: BLE001 - an emulator bug must still finish the command
            results = _error(f"Emulator error: {exc!r}")
        _finish(state, cmd, results)


def _finish(state, cmd: Command, results) -> None:
    with state.lock:
        cmd.results = results
        cmd.done = True
        if not cmd.cancel_requested and not cmd.lost:
            state.applied["commands/finished"] += 1


def _execute(state, cmd: Command) -> dict:
    if cmd.language == "sql":
        from .pyrunner import sql_command_results
        return sql_command_results(sql_engine(state, cmd.principal, cmd.cancel_event), cmd.source)
    if cmd.language != "python":
        return _error(f"The emulator only runs python and sql commands; {cmd.language} is not supported.",
                      f"UnsupportedLanguage: {cmd.language} commands cannot run in the Databricks emulator "
                      "(python and sql only).")
    ctx = cmd.ctx
    with state.lock:
        if ctx.dead:
            return _error("The execution context was lost.")
        py = ctx.python
    if py is None:
        from .pyrunner import PythonContext
        fresh = PythonContext(sql_engine=sql_engine(state, cmd.principal))   # a subprocess: outside the lock
        with state.lock:
            if ctx.python is None and not ctx.dead:
                ctx.python, fresh = fresh, None
                state.on_close(lambda p=ctx.python: _close_quietly(p))
            py = ctx.python
        if fresh is not None:
            _close_quietly(fresh)
        if py is None:
            return _error("The execution context was lost.")
    handle = py.submit(cmd.source)
    with state.lock:
        cmd.py_command = handle
        cancelled = cmd.cancel_event.is_set()
    if cancelled:
        handle.cancel()
    handle.wait()
    return handle.results
