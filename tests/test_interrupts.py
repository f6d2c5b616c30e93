"""Interrupts (issue 11 §3): SIGINT or SIGTERM in the middle of a CLI step ends it with exactly one
JSON document on stdout, {"error": {"type": "interrupted", ...}} with the ids the step started,
after cancelling what a timeout would cancel (statement, run with Cancel on Timeout, command),
and exit code 130. In the Python API, KeyboardInterrupt propagates after the same clean-up.

Real subprocesses of the CLI against the emulator of this test process; the signal is sent once
the emulator has seen the step's status polls, and the emulator's own counters show the cancel.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from databricks_connector.cli import EXIT_INTERRUPTED
from databricks_connector.errors import ConnectorError, Interrupted
from databricks_connector.runner import Connector
from databricks_connector.session import RetryPolicy
from databricks_connector.steps import INTERRUPT_CANCEL_SECONDS

from tests import scenarios as S
from tests.waittraps import Proxy

QUICK = Connector(retry_timeout=5, policy=RetryPolicy(base=0.05, cap=0.2))
MARGIN = 2.0       # process scheduling on a loaded 2-core machine; the step's own bound is the cancel budget


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


def _slow_job(emulator, conn):
    S.fast_jobs(emulator)
    tasks = [S.script_task(emulator, "main", "import time\ntime.sleep(60)")]
    return QUICK.run("create_job", conn, {"name": f"int-{uuid.uuid4().hex[:8]}", "tasks": tasks})["job_id"]


def _prep(key, emulator, conn):
    """(inputs, poll path, cancel (method, path), applied counter of the cancel, started id keys)"""
    if key == "run_job_now":
        return ({"job_id": _slow_job(emulator, conn), "wait_for_completion": True, "poll_interval_seconds": 0.1},
                r"/api/2\.2/jobs/runs/get", "jobs/runs/cancel", ("run_id",))
    if key == "execute_sql_statement":
        emulator.config.update({"sql_delays": {r"^SELECT 1$": 60}})
        return ({"warehouse_id": S.seed_warehouse(emulator, "RUNNING"), "statement": "SELECT 1",
                 "timeout_seconds": 4, "poll_interval_seconds": 0.1},       # under 5 s: no server-side wait
                r"/api/2\.0/sql/statements/[^/]+", "statements/cancel", ("statement_id",))
    if key == "run_command":
        emulator.config.context_start_seconds = 0.02
        return ({"cluster_id": S.seed_cluster(emulator, "RUNNING"), "language": "python", "wait_for_result": True,
                 "command": "import time\nfor _ in range(600): time.sleep(0.1)", "poll_interval_seconds": 0.1},
                r"/api/1\.2/commands/status", "commands/cancel", ("cluster_id", "context_id", "command_id"))
    raise AssertionError(key)


def _wait_for_polls(emulator, path, since, proc, n=2, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sum(1 for r in emulator.requests[since:] if r["method"] == "GET" and _match(path, r["path"])) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the CLI ended before waiting: {proc.communicate()}")
        time.sleep(0.02)
    raise AssertionError("the CLI never polled")


def _match(pattern, path):
    import re

    return re.fullmatch(pattern, path) is not None


def _cli(conn, key, inputs, tmp_path):
    conn_file = tmp_path / f"conn-{uuid.uuid4().hex[:6]}.json"
    conn_file.write_text(json.dumps(conn))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", "databricks_connector", "run", key, "--inputs-json",
                             json.dumps(inputs), "--connection", str(conn_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("key", ["run_job_now", "execute_sql_statement", "run_command"])
def test_a_signal_mid_wait_cancels_and_prints_one_interrupted_error(emulator, pat, tmp_path, key, sig):
    inputs, poll, applied, keys = _prep(key, emulator, pat)
    cancels = emulator.state.applied[applied]
    destroyed = emulator.state.applied["contexts/destroy"]
    since = len(emulator.requests)
    proc = _cli(pat, key, inputs, tmp_path)
    try:
        _wait_for_polls(emulator, poll, since, proc)
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED == 130, (out, err)
    doc = json.loads(out)                                    # exactly one JSON document
    assert list(doc) == ["error"] and doc["error"]["type"] == "interrupted", doc
    assert "Traceback" not in err
    started = doc["error"]["details"]["started"]
    assert set(keys) <= set(started), started
    for k in keys:
        assert any(str(started[k]) in (r["path"] + json.dumps(r["query"])) for r in emulator.requests[since:]), k
    assert emulator.state.applied[applied] == cancels + 1, "the emulator saw no cancel"
    assert all(c["ok"] for c in doc["error"]["details"]["cancel"])
    if key == "run_command":                                  # the context it made is gone too
        assert emulator.state.applied["contexts/destroy"] == destroyed + 1
    assert elapsed < INTERRUPT_CANCEL_SECONDS + MARGIN, f"answered {elapsed:.2f}s after the signal"


def test_an_interrupt_whose_cancel_hangs_still_answers_within_the_cancel_budget(emulator, pat, tmp_path):
    """The network stops answering, then Ctrl-C: the cancel cannot get through, and the CLI still
    prints its one JSON error within the interrupt's cancel budget, the cancel's failure in details."""
    proxy = Proxy(emulator.url)
    inputs, poll, applied, keys = _prep("run_job_now", emulator, pat)
    since = len(emulator.requests)
    proc = _cli({**pat, "host": proxy.url}, "run_job_now", inputs, tmp_path)
    try:
        _wait_for_polls(emulator, poll, since, proc)
        proxy.hang()
        time.sleep(0.3)                                       # the next poll is now stuck in the proxy
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        proxy.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    doc = json.loads(out)
    e = doc["error"]
    assert e["type"] == "interrupted" and e["details"]["started"]["run_id"]
    assert e["details"]["cancel"][0]["ok"] is False
    assert f"use Get Run with run_id {e['details']['started']['run_id']}" in e["hint"]
    assert elapsed < INTERRUPT_CANCEL_SECONDS + MARGIN, f"answered {elapsed:.2f}s after the signal"
    QUICK.run("cancel_run", pat, {"run_id": e["details"]["started"]["run_id"]})


def test_sigterm_before_anything_started_is_one_interrupted_error(emulator, pat, tmp_path):
    """A step that had not started anything yet (the run-now request is held by a slow server):
    still one JSON error and exit 130, saying it may have been applied."""
    emulator.faults.add(r"/api/2\.2/jobs/run-now", "delay", delay=5, method="POST")
    job_id = _slow_job(emulator, pat)
    since = len(emulator.requests)
    proc = _cli(pat, "run_job_now", {"job_id": job_id, "wait_for_completion": True}, tmp_path)
    try:
        end = time.monotonic() + 60
        while not any(r["path"] == "/api/2.2/jobs/run-now" for r in emulator.requests[since:]):
            assert time.monotonic() < end and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    e = json.loads(out)["error"]
    assert e["type"] == "interrupted" and e["details"]["starting"] == "run-now"
    assert "may have been applied" in e["message"]
    time.sleep(5)                                             # the held request lands; cancel that run
    QUICK.run("cancel_all_runs", pat, {"job_id": job_id})


@pytest.mark.parametrize("key", ["run_job_now", "execute_sql_statement", "run_command"])
def test_keyboard_interrupt_in_the_python_api_propagates_after_the_clean_up(emulator, pat, key):
    """Ctrl-C (a real SIGINT to the main thread) while a step waits: the same cancel, then a
    KeyboardInterrupt (an Interrupted carrying the interrupted error and the started ids)."""
    inputs, poll, applied, keys = _prep(key, emulator, pat)
    cancels = emulator.state.applied[applied]
    main = threading.main_thread().ident
    fired = []

    def progress(message, info):
        if info["event"] == "state" and not fired and not info["what"].startswith("execution context"):
            fired.append(1)
            threading.Timer(0.15, signal.pthread_kill, (main, signal.SIGINT)).start()

    with pytest.raises(KeyboardInterrupt) as exc:
        QUICK.run(key, pat, inputs, progress=progress)
    assert isinstance(exc.value, Interrupted)
    err = exc.value.error
    assert isinstance(err, ConnectorError) and err.type == "interrupted"
    assert set(keys) <= set(err.details["started"])
    assert emulator.state.applied[applied] == cancels + 1
    assert err.details["cancel"] and all(c["ok"] for c in err.details["cancel"])
