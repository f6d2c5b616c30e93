"""Python execution contexts for the emulator's Command Execution API 1.2 (and Python job tasks).

Each PythonContext owns one worker subprocess (``python -I -u _pyworker.py``) started in a fresh
temporary directory with a scrubbed environment (PATH, HOME=<tempdir>, LANG, TMPDIR only), so
nothing from the emulator process environment leaks into user code. State persists across the
commands of one context; commands run one at a time in submission order.

    ctx = PythonContext(sql_engine=engine)
    cmd = ctx.submit("x = 41\\nx + 1")        # Command: .id .status .results .done() .wait()
    cmd.result(timeout=10)                    # {"resultType": "text", "data": "42"}
    ctx.execute("print(x)")                   # blocking shortcut
    ctx.cancel()                              # interrupt the running command (KeyboardInterrupt)
    ctx.close()

Command status values follow 1.2: Queued -> Running -> (Cancelling ->) Finished | Cancelled | Error.
A user exception ends as status Finished with ``results.resultType == "error"``.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from .sqlengine import SqlError, hive_type, json_value

__all__ = ["PythonContext", "Command", "Program", "sql_command_results", "run_python_once", "run_sql_once",
           "MAX_OUTPUT"]

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_pyworker.py")
MAX_OUTPUT = 1 << 20          # characters of captured stdout kept per command
SQL_MAX_ROWS = 10000          # rows returned in a 1.2 SQL table result
_CANCEL_GRACE = 3.0           # seconds of SIGINTs before the worker is killed and restarted
_EOF = object()


class Command:
    """One submitted command (Future-like)."""

    def __init__(self, ctx: "PythonContext", code: str, timeout: float | None, options: dict | None = None):
        self.id = uuid.uuid4().hex
        self.code = code
        self.timeout = timeout
        self.options = dict(options or {})
        self.status = "Queued"
        self.results: dict | None = None
        self.submitted_at = time.time()
        self.finished_at: float | None = None
        self._ctx = ctx
        self._done = threading.Event()
        self._cancel = False
        self.stdout = ""            # what the code printed (also when it failed)

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> dict:
        if not self._done.wait(timeout):
            raise TimeoutError(f"command {self.id} still {self.status}")
        return self.results

    def cancel(self) -> None:
        self._ctx._cancel_command(self)

    def _finish(self, status: str, results: dict | None):
        self.status = status
        self.results = results
        self.finished_at = time.time()
        self._done.set()

    def __repr__(self):
        return f"Command({self.id[:8]}, {self.status})"


class PythonContext:
    def __init__(self, sql_engine=None, *, max_output: int = MAX_OUTPUT, default_timeout: float | None = None,
                 start_timeout: float = 30.0):
        self.id = uuid.uuid4().hex
        self._engine = sql_engine
        self._max_output = max_output
        self._default_timeout = default_timeout
        self._start_timeout = start_timeout
        self._lock = threading.RLock()
        self._queue: "queue.Queue[Command | None]" = queue.Queue()
        self._current: Command | None = None
        self._commands: dict[str, Command] = {}
        self._closed = False
        self._proc = None
        self._tmp = None
        self._start_worker()
        self._runner = threading.Thread(target=self._run_loop, name=f"pyctx-{self.id[:8]}", daemon=True)
        self._runner.start()

    # ---------------------------------------------------------------- worker process
    def _start_worker(self):
        self._tmp = tempfile.mkdtemp(prefix="dbx-emu-py-")
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": self._tmp,
               "LANG": "C.UTF-8", "TMPDIR": self._tmp}
        r1, w1 = os.pipe()   # parent -> worker
        r2, w2 = os.pipe()   # worker -> parent
        errlog = open(os.path.join(self._tmp, ".worker-stderr"), "wb")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-u", WORKER, str(r1), str(w2)], cwd=self._tmp, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog, pass_fds=(r1, w2),
                close_fds=True, start_new_session=True)
        finally:
            errlog.close()
            os.close(r1)
            os.close(w2)
        self._to = os.fdopen(w1, "w", encoding="utf-8", newline="\n")
        self._from = os.fdopen(r2, "r", encoding="utf-8", newline="\n")
        self._inbox: "queue.Queue" = queue.Queue()
        threading.Thread(target=self._reader, args=(self._from, self._inbox), daemon=True,
                         name=f"pyctx-read-{self.id[:8]}").start()
        try:
            msg = self._inbox.get(timeout=self._start_timeout)
        except queue.Empty:
            msg = _EOF
        if msg is _EOF or msg.get("op") != "ready":
            err = self._stderr_tail()
            self._kill_worker()
            raise RuntimeError(f"Python worker failed to start: {err}")

    @staticmethod
    def _reader(stream, inbox):
        try:
            for line in stream:
                try:
                    inbox.put(json.loads(line))
                except ValueError:
                    continue
        except (OSError, ValueError):
            pass
        inbox.put(_EOF)

    def _stderr_tail(self) -> str:
        try:
            with open(os.path.join(self._tmp, ".worker-stderr"), "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def _send(self, obj) -> bool:
        try:
            self._to.write(json.dumps(obj) + "\n")
            self._to.flush()
            return True
        except (OSError, ValueError):
            return False

    def _signal(self, sig=signal.SIGINT):
        p = self._proc
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except OSError:
                pass

    def _kill_worker(self):
        p, self._proc = self._proc, None
        if p is not None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                try:
                    p.kill()
                except OSError:
                    pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for s in (getattr(self, "_to", None), getattr(self, "_from", None)):
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _restart_worker(self):
        self._kill_worker()
        if not self._closed:
            self._start_worker()

    # ---------------------------------------------------------------- public API
    @property
    def alive(self) -> bool:
        return not self._closed and self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def status(self) -> str:
        """1.2 context status: Running while usable, Error once closed/dead."""
        return "Running" if self.alive else "Error"

    @property
    def workdir(self) -> str | None:
        """The worker's working directory (its HOME and TMPDIR; removed with the context)."""
        return self._tmp

    def submit(self, code: str, timeout: float | None = None, **options) -> Command:
        """Queue a command; returns immediately with a Command in status Queued. ``options`` go
        to the worker with the code (see _pyworker: repl, file, argv, widgets, path)."""
        if self._closed:
            raise RuntimeError("context is closed")
        cmd = Command(self, code if isinstance(code, str) else str(code),
                      timeout if timeout is not None else self._default_timeout, options)
        with self._lock:
            self._commands[cmd.id] = cmd
        self._queue.put(cmd)
        return cmd

    start_execute = submit

    def get_command(self, command_id: str) -> Command | None:
        return self._commands.get(command_id)

    def execute(self, code: str, timeout: float = 60.0) -> dict:
        """Run code and block until done; returns the 1.2 ``results`` object."""
        cmd = self.submit(code, timeout)
        cmd.wait()
        return cmd.results

    def cancel(self, command_id: str | None = None) -> None:
        """Cancel the running command (or the given one, which may still be queued)."""
        with self._lock:
            cmd = self._commands.get(command_id) if command_id else self._current
        if cmd is not None:
            self._cancel_command(cmd)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            pending = [c for c in self._commands.values() if not c.done()]
        for c in pending:
            c._cancel = True
        self._queue.put(None)
        self._kill_worker()
        self._runner.join(5)
        for c in pending:
            if not c.done():
                c._finish("Cancelled", _cancelled_results())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if not self._closed:
                self._closed = True
                self._kill_worker()
        except Exception:
            pass

    # ---------------------------------------------------------------- internals
    def _cancel_command(self, cmd: Command):
        with self._lock:
            if cmd.done():
                return
            cmd._cancel = True
            if cmd.status == "Queued":
                cmd._finish("Cancelled", _cancelled_results())
            elif cmd.status == "Running":
                cmd.status = "Cancelling"
                self._signal()

    def _run_loop(self):
        while True:
            cmd = self._queue.get()
            if cmd is None or self._closed:
                return
            with self._lock:
                if cmd.done():
                    continue
                cmd.status = "Running"
                self._current = cmd
            try:
                status, results = self._run_one(cmd)
            except Exception as e:  # never let the runner thread die
                status, results = "Error", {"resultType": "error", "summary": f"{type(e).__name__}: {e}",
                                            "cause": repr(e)}
            with self._lock:
                self._current = None
                if not cmd.done():
                    cmd._finish(status, results)

    def _run_one(self, cmd: Command):
        if self._proc is None or self._proc.poll() is not None:
            if self._closed:
                return "Cancelled", _cancelled_results()
            self._restart_worker()
        if not self._send(dict(cmd.options, op="exec", id=cmd.id, code=cmd.code, max_output=self._max_output)):
            self._restart_worker()
            return "Error", _err("WorkerError", "could not send the command to the Python worker")
        start = time.monotonic()
        deadline = start + cmd.timeout if cmd.timeout else None
        timed_out = False
        first_sig = last_sig = None
        inbox = self._inbox
        while True:
            try:
                msg = inbox.get(timeout=0.05)
            except queue.Empty:
                msg = None
            if msg is _EOF:
                if self._closed:
                    return "Cancelled", _cancelled_results()
                tail = self._stderr_tail()
                self._restart_worker()
                if timed_out:
                    return "Finished", _timeout_results(cmd.timeout)
                if cmd._cancel:
                    return "Cancelled", _cancelled_results()
                return "Finished", _err("WorkerCrashed", "the Python process exited unexpectedly; the "
                                        "context state was reset", tail)
            if msg is not None:
                op = msg.get("op")
                if op == "sql":
                    self._send(self._sql_reply(msg))
                    continue
                if op == "result" and msg.get("id") == cmd.id:
                    cmd.stdout = msg.get("stdout") or ""
                    if timed_out:
                        return "Finished", _timeout_results(cmd.timeout)
                    if msg.get("cancelled") and cmd._cancel:
                        return "Cancelled", _cancelled_results()
                    return "Finished", msg.get("results") or {"resultType": "text", "data": ""}
                continue
            now = time.monotonic()
            if deadline is not None and not timed_out and now > deadline:
                timed_out = True
            if cmd._cancel or timed_out:
                if first_sig is None:
                    first_sig = last_sig = now
                    self._signal()
                elif now - first_sig > _CANCEL_GRACE:
                    self._kill_worker()  # EOF arrives through the reader -> restart above
                    first_sig = float("inf")
                elif now - last_sig > 0.5:
                    last_sig = now
                    self._signal()

    def _sql_reply(self, msg) -> dict:
        if self._engine is None:
            return {"op": "sql_error", "message": "No SQL engine is attached to this context."}
        try:
            res = self._engine.execute(msg.get("statement") or "", msg.get("parameters") or None)
        except SqlError as e:
            return {"op": "sql_error", "message": e.message, "sql_state": e.sql_state}
        except Exception as e:
            return {"op": "sql_error", "message": f"{type(e).__name__}: {e}"}
        return {"op": "sql_result", "columns": res.columns,
                "rows": [[json_value(v) for v in r] for r in res.rows]}


# -------------------------------------------------------------------- result shapes


def _err(kind: str, message: str, cause: str = "") -> dict:
    return {"resultType": "error", "summary": f"{kind}: {message}", "cause": cause or f"{kind}: {message}"}


def _cancelled_results() -> dict:
    return {"resultType": "error", "summary": "Command cancelled",
            "cause": "KeyboardInterrupt: the command was cancelled"}


def _timeout_results(timeout) -> dict:
    return _err("CommandTimeoutException", f"Command exceeded the timeout of {timeout:g} seconds and was "
                "interrupted")


def sql_command_results(engine, statement: str, parameters: list[dict] | None = None,
                        catalog: str | None = None, schema: str | None = None,
                        max_rows: int = SQL_MAX_ROWS) -> dict:
    """Run SQL for a 1.2 ``language: sql`` command; returns the 1.2 table or error results."""
    try:
        res = engine.execute(statement, parameters, catalog, schema, row_limit=max_rows)
    except SqlError as e:
        return {"resultType": "error", "summary": e.message,
                "cause": f"org.apache.spark.sql.AnalysisException: {e.message}"
                if not e.sql_state.startswith("22") else f"org.apache.spark.SparkException: {e.message}"}
    return {"resultType": "table",
            "data": [[json_value(v) for v in row] for row in res.rows],
            "schema": [{"name": c["name"], "type": hive_type(c["type_text"]), "metadata": "{}"}
                       for c in res.columns],
            "truncated": bool(res.truncated),
            "isJsonSchema": False}


def run_python_once(code: str, timeout: float = 60.0, sql_engine=None) -> dict:
    """Fresh context, run ``code``, close; returns the 1.2 results dict."""
    ctx = PythonContext(sql_engine=sql_engine)
    try:
        return ctx.execute(code, timeout=timeout)
    finally:
        ctx.close()


def run_sql_once(engine, statement: str, parameters: list[dict] | None = None, catalog: str | None = None,
                 schema: str | None = None) -> dict:
    return sql_command_results(engine, statement, parameters, catalog, schema)


# -------------------------------------------------------------------- programs (job tasks)

_PROGRAM_SLOTS = threading.BoundedSemaphore(8)   # worker processes running job tasks at once


class Program:
    """One job task's code in a fresh context, on its own thread: ``cells`` run in order in one
    namespace (a notebook's cells, or a script as one cell) and stop at the first error or at
    ``dbutils.notebook.exit``. ``outcome()`` once ``done()``:

        {"status": "ok" | "exit" | "error" | "cancelled" | "timeout",
         "logs": stdout of the cells run, "value": the exit value,
         "error": "ZeroDivisionError: division by zero", "error_trace": traceback}

    ``cancel()`` interrupts it (the task was cancelled); ``files`` ({name: bytes}) are written to the
    worker's directory first and ``path`` names (relative to it) go first on sys.path."""

    def __init__(self, cells, *, timeout: float = 3600.0, sql_engine=None, argv=None, widgets=None,
                 repl: bool = False, file: str | None = None, files: dict | None = None, path=None,
                 on_done=None):
        self.cells = [c for c in cells]
        self.timeout = float(timeout)
        self._engine = sql_engine
        self._argv = argv
        self._widgets = widgets
        self._repl = repl
        self._file = file
        self._files = dict(files or {})
        self._path = list(path or [])
        self._on_done = on_done
        self._ctx: PythonContext | None = None
        self._lock = threading.Lock()
        self._cancelled = False
        self._done = threading.Event()
        self._outcome: dict | None = None
        self._thread = threading.Thread(target=self._main, name="emulator-task", daemon=True)

    def start(self) -> "Program":
        self._thread.start()
        return self

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def outcome(self) -> dict | None:
        return self._outcome

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            ctx = self._ctx
        if ctx is not None:
            ctx.cancel()

    def _main(self) -> None:
        try:
            out = self._run()
        except Exception as e:  # noqa: BLE001 - an engine failure is the task's internal error
            out = {"status": "internal", "error": f"{type(e).__name__}: {e}", "logs": ""}
        self._outcome = out
        self._done.set()
        if self._on_done is not None:
            try:
                self._on_done(self)
            except Exception:  # noqa: BLE001 - a callback must not kill the thread
                pass

    def _run(self) -> dict:
        logs: list[str] = []
        with _PROGRAM_SLOTS:
            if self._cancelled:
                return {"status": "cancelled", "logs": ""}
            ctx = PythonContext(sql_engine=self._engine, default_timeout=self.timeout)
            with self._lock:
                self._ctx = ctx
                cancelled = self._cancelled
            try:
                if cancelled:
                    return {"status": "cancelled", "logs": ""}
                for name, data in self._files.items():
                    with open(os.path.join(ctx.workdir, name), "wb") as fh:
                        fh.write(data)
                deadline = time.monotonic() + self.timeout
                for i, cell in enumerate(self.cells):
                    options = {"repl": self._repl}
                    if i == 0:
                        if self._argv is not None:
                            options["argv"] = list(self._argv)
                        if self._widgets is not None:
                            options["widgets"] = dict(self._widgets)
                        if self._path:
                            options["path"] = [os.path.join(ctx.workdir, p) for p in self._path]
                    if self._file:
                        options["file"] = self._file
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return {"status": "timeout", "logs": "".join(logs),
                                "error": f"The task's code ran longer than {self.timeout:g} seconds."}
                    cmd = ctx.submit(cell, timeout=left, **options)
                    cmd.wait()
                    res = cmd.results or {}
                    if cmd.status == "Cancelled" or self._cancelled:
                        return {"status": "cancelled", "logs": "".join(logs)}
                    kind = res.get("resultType")
                    if kind == "exit":
                        logs.append(_with_newline(cmd.stdout))
                        return {"status": "exit", "value": res.get("data"), "logs": "".join(logs)}
                    if kind == "error":
                        logs.append(_with_newline(cmd.stdout))
                        summary = res.get("summary") or "Error"
                        if summary.startswith("CommandTimeoutException"):
                            return {"status": "timeout", "logs": "".join(logs),
                                    "error": f"The task's code ran longer than {self.timeout:g} seconds."}
                        return {"status": "error", "logs": "".join(logs), "error": summary,
                                "error_trace": res.get("cause") or summary}
                    if kind == "text":
                        logs.append(_with_newline(res.get("data") or ""))
                return {"status": "ok", "logs": "".join(logs)}
            finally:
                ctx.close()


def _with_newline(text: str) -> str:
    return text + "\n" if text and not text.endswith("\n") else text
