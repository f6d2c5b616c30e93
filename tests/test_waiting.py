"""The waiting mechanism over real HTTP (issue 11 §3, issue 13's progress and poll intervals, issue
15's resumable form): what a step started is in every error, cancels on timeout have their own
budget and never replace the error, progress lines, polls that start short and back off, Run
Command's own execution contexts, and Pending / Connector.resume for every waiting action.

Traps: emulator faults injected in the middle of a wait (from the progress callback, after the
first poll), the token endpoint failing mid-wait, and a loopback proxy (tests/waittraps.py) that
starts refusing or stops answering.
"""
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import requests

from databricks_connector import waiting
from databricks_connector.errors import ConnectorError, Pending
from databricks_connector.runner import Connector
from databricks_connector.session import RetryPolicy
from databricks_connector.steps import CANCEL_SECONDS

from tests import scenarios as S
from tests.helpers import fresh_sp
from tests.waittraps import Proxy

FAST = RetryPolicy(base=0.05, cap=0.2)
QUICK = Connector(retry_timeout=5, policy=FAST)


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


class Progress:
    """A progress callback that records every line and can act on one (inject a fault mid-wait)."""

    def __init__(self, when=None, action=None):
        self.lines = []
        self.when = when          # (event, what prefix)
        self.action = action
        self.fired = False

    def __call__(self, message, info):
        self.lines.append((message, dict(info)))
        if self.action and not self.fired and self.when and info.get("event") == self.when[0] \
                and str(info.get("what", "")).startswith(self.when[1]):
            self.fired = True
            self.action()

    def events(self, name=None):
        return [i for _, i in self.lines if name is None or i["event"] == name]


def _job(emulator, connector, conn, code="import time\ntime.sleep(30)"):
    S.fast_jobs(emulator, task_seconds=0.05)
    name = f"wait-{uuid.uuid4().hex[:8]}"
    tasks = [S.script_task(emulator, "main", code)]
    return connector.run("create_job", conn, {"name": name, "tasks": tasks})["job_id"]


def _requests_since(emulator, n):
    return emulator.requests[n:]


def _seen_in_requests(reqs, value) -> bool:
    value = str(value)
    for r in reqs:
        if value in r["path"] or any(value in v for vs in r["query"].values() for v in vs):
            return True
        if isinstance(r.get("json"), dict) and value in json.dumps(r["json"]):
            return True
    return False


# --------------------------------------------------------------------------- what a step starts

def _prep_run_job_now(emulator, connector, conn):
    return {"job_id": _job(emulator, connector, conn), "wait_for_completion": True}


def _prep_submit_run(emulator, connector, conn):
    S.fast_jobs(emulator, task_seconds=0.05)
    return {"run_name": "wait-submit", "wait_for_completion": True,
            "tasks": [S.script_task(emulator, "main", "import time\ntime.sleep(30)")]}


def _prep_sql(emulator, connector, conn):
    emulator.config.update({"sql_delays": {r"^SELECT 1 AS one$": 60}})
    # under 5 s: no server-side wait in the submit, so the step polls at once
    return {"warehouse_id": S.seed_warehouse(emulator, "RUNNING"), "statement": "SELECT 1 AS one", "timeout_seconds": 4}


def _prep_command(emulator, connector, conn):
    emulator.config.context_start_seconds = 0.02
    return {"cluster_id": S.seed_cluster(emulator, "RUNNING"), "wait_for_result": True, "language": "python",
            "command": "import time\nfor _ in range(600): time.sleep(0.1)"}


def _prep_create_cluster(emulator, connector, conn):
    emulator.config.cluster_start_seconds = 60
    return {"cluster_name": f"wait-{uuid.uuid4().hex[:6]}", "spark_version": S.SPARK, "node_type_id": S.NODE,
            "num_workers": 0, "wait_for_state": True}


def _prep_warehouse(emulator, connector, conn):
    S.sql_settings(emulator).warehouse_start_seconds = 60
    return {"warehouse_id": S.seed_warehouse(emulator, "STOPPED"), "wait_for_state": True}


# key -> (prepare, what the main wait is called, poll (method, path regex), started ids, follow-up label, cancel path)
STARTERS = {
    "run_job_now": (_prep_run_job_now, "run ", r"/api/2\.2/jobs/runs/get", ("run_id", "run_page_url"), "Get Run",
                    r"/api/2\.2/jobs/runs/cancel"),
    "submit_run": (_prep_submit_run, "run ", r"/api/2\.2/jobs/runs/get", ("run_id", "run_page_url"), "Get Run",
                   r"/api/2\.2/jobs/runs/cancel"),
    "execute_sql_statement": (_prep_sql, "SQL statement", r"/api/2\.0/sql/statements/[^/]+", ("statement_id",),
                              "SQL: Get Statement", r"/api/2\.0/sql/statements/[^/]+/cancel"),
    "run_command": (_prep_command, "command", r"/api/1\.2/commands/status", ("cluster_id", "context_id", "command_id"),
                    "Get Command Status", r"/api/1\.2/commands/cancel"),
    "create_cluster": (_prep_create_cluster, "cluster", r"/api/2\.1/clusters/get", ("cluster_id",),
                       "Wait for Cluster State", None),
    "start_sql_warehouse": (_prep_warehouse, "SQL warehouse", r"/api/2\.0/sql/warehouses/[^/]+", ("warehouse_id",),
                            "Get SQL Warehouse", None),
}


def _follow_up(label, keys, started):
    ids = [k for k in keys if k != "run_page_url"]
    parts = [f"{k} {started[k]}" for k in ids]
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"use {label} with {joined}"


def _check_started(emulator, since, err, key):
    _, _, _, keys, label, _ = STARTERS[key]
    started = (err.details or {}).get("started") or {}
    assert set(keys) <= set(started), f"{key}: details.started is {started!r} ({err!r})"
    reqs = _requests_since(emulator, since)
    for k in keys:
        if k != "run_page_url":
            assert _seen_in_requests(reqs, started[k]), f"{key}: {k}={started[k]} was never polled"
    if "run_page_url" in keys:
        assert str(started["run_id"]) in started["run_page_url"]
    assert _follow_up(label, keys, started) in err.hint, err.hint
    json.dumps(err.to_dict())


MID_WAIT_FAULTS = ["token_rejected", "malformed_answer", "token_endpoint_fails"]


@pytest.mark.parametrize("fault", MID_WAIT_FAULTS)
@pytest.mark.parametrize("key", list(STARTERS))
def test_an_error_in_the_middle_of_a_wait_carries_what_the_step_started(emulator, key, fault):
    """After the first poll, the workspace starts failing: the PAT is rejected, an answer is cut, or
    (service principal) the token expires and the token endpoint answers garbage. The step's error
    names every id it started and the action to follow it up with."""
    prep, what, poll, *_ = STARTERS[key]
    conn = fresh_sp(emulator) if fault == "token_endpoint_fails" else emulator.connections()["personal_access_token"]
    inputs = {"timeout_seconds": 30, "poll_interval_seconds": 0.1, **prep(emulator, QUICK, conn)}

    def inject():
        if fault == "token_rejected":
            emulator.faults.add(poll, "invalid_token", times=None, method="GET")
        elif fault == "malformed_answer":
            emulator.faults.add(poll, "malformed_json", times=1, method="GET")
        else:
            emulator.faults.add("/oidc/v1/token", "malformed_json", times=None, method="POST")
            emulator.expire_tokens()

    progress = Progress(("state", what), inject)
    since = len(emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        QUICK.run(key, conn, inputs, progress=progress)
    emulator.faults.clear()
    err = exc.value
    assert progress.fired, f"{key}: the wait never reached its first poll"
    want = {"token_rejected": "authentication", "malformed_answer": "server_error",
            "token_endpoint_fails": "authentication"}[fault]
    assert err.type == want, repr(err)
    _check_started(emulator, since, err, key)
    assert "before running the step again" in err.hint


@pytest.mark.parametrize("key", ["run_job_now", "execute_sql_statement", "run_command"])
def test_a_wait_whose_polls_keep_failing_times_out_cancels_and_names_the_ids(emulator, pat, key):
    """The server answers 500 to every poll after the first: the wait ends at its timeout (not the
    retry budget), cancels what it started (the cancel request gets through), and says so."""
    prep, what, poll, _, _, cancel_path = STARTERS[key]
    inputs = {**prep(emulator, QUICK, pat), "timeout_seconds": 2, "poll_interval_seconds": 0.1}
    progress = Progress(("state", what), lambda: emulator.faults.add(poll, "500", times=None, method="GET"))
    since = len(emulator.requests)
    cancels = emulator.count("POST", cancel_path)
    with pytest.raises(ConnectorError) as exc:
        QUICK.run(key, pat, inputs, progress=progress)
    emulator.faults.clear()
    err = exc.value
    assert err.type == "timeout", repr(err)
    _check_started(emulator, since, err, key)
    assert emulator.count("POST", cancel_path) == cancels + 1
    assert err.details["cancel"][0]["ok"] is True and "cancelled" in err.message.lower()
    if key != "execute_sql_statement":          # (Execute SQL words its own timeout hint, then the follow-up)
        assert err.hint.startswith("It was cancelled"), err.hint
    assert progress.events("timeout"), "no final progress line"


@pytest.mark.parametrize("key", ["run_job_now", "execute_sql_statement", "run_command", "create_cluster"])
def test_a_proxy_that_starts_refusing_mid_wait(emulator, pat, key):
    """The network path goes away in the middle of the wait (connections refused): the step ends
    within its timeout plus the cancel's own budget, with the ids it started; a cancel that cannot
    get through is in details.cancel and the error stays the wait's."""
    prep, what, *_ = STARTERS[key]
    proxy = Proxy(emulator.url)
    conn = {**pat, "host": proxy.url}
    inputs = {**prep(emulator, QUICK, pat), "timeout_seconds": 2, "poll_interval_seconds": 0.1}
    progress = Progress(("state", what), proxy.refuse)
    since = len(emulator.requests)
    started = time.monotonic()
    try:
        with pytest.raises(ConnectorError) as exc:
            Connector(policy=FAST).run(key, conn, inputs, progress=progress)
    finally:
        proxy.close()
    elapsed = time.monotonic() - started
    err = exc.value
    assert err.type in ("timeout", "network"), repr(err)
    _check_started(emulator, since, err, key)
    # the wait's timeout, one poll's grace, the cancel's budget: far below the 300 s retry budget
    assert elapsed < 2 + 10 + CANCEL_SECONDS + 30, f"took {elapsed:.0f}s"
    if err.type == "timeout" and STARTERS[key][5]:
        assert err.details["cancel"] and not err.details["cancel"][0]["ok"]
        assert "Cancelling it failed" in err.hint


def test_a_cancel_that_hangs_has_its_own_short_budget_and_never_replaces_the_error(emulator, pat):
    """The wait times out, then the cancel meets a proxy that accepts and never answers. With the
    connector's default 300 s retry budget, the cancel still ends within its own few seconds; the
    error is the timeout, with the cancel's failure in its details."""
    proxy = Proxy(emulator.url)
    conn = {**pat, "host": proxy.url}
    inputs = {**_prep_run_job_now(emulator, QUICK, pat), "timeout_seconds": 1, "poll_interval_seconds": 0.1}
    default = Connector()                                     # retry_timeout 300 s
    assert default.session_options == {} and default.session(conn).retry_timeout == 300
    progress = Progress(("timeout", "run "), proxy.hang)      # polls answer; the cancel meets the hang
    started = time.monotonic()
    try:
        with pytest.raises(ConnectorError) as exc:
            default.run("run_job_now", conn, inputs, progress=progress)
    finally:
        proxy.close()
    elapsed = time.monotonic() - started
    err = exc.value
    assert err.type == "timeout" and "Timed out" in err.message, repr(err)
    cancel = err.details["cancel"]
    assert len(cancel) == 1 and cancel[0]["ok"] is False and cancel[0]["what"].startswith("run ")
    assert cancel[0]["error"]["type"] in ("timeout", "network")
    assert proxy.hung_requests(b"POST /api/2.2/jobs/runs/cancel") >= 1
    assert elapsed < 1 + CANCEL_SECONDS + 30, f"took {elapsed:.0f}s"
    assert "Cancelling it failed" in err.hint and f"use Get Run with run_id {err.details['started']['run_id']}" in err.hint


def test_a_timeout_without_cancel_names_the_follow_up(emulator, pat):
    inputs = {**_prep_run_job_now(emulator, QUICK, pat), "timeout_seconds": 1, "poll_interval_seconds": 0.1,
              "cancel_on_timeout": False}
    with pytest.raises(ConnectorError) as exc:
        QUICK.run("run_job_now", pat, inputs, progress=False)
    err = exc.value
    run_id = err.details["started"]["run_id"]
    assert err.type == "timeout" and "not cancelled" in err.message and "cancel" not in err.details
    assert f"use Get Run with run_id {run_id}" in err.hint and "still RUNNING" in err.hint
    QUICK.run("cancel_run", pat, {"run_id": run_id})


def test_wait_for_cluster_state_timeout_names_wait_for_cluster_state(emulator, pat):
    cid = S.seed_cluster(emulator, "PENDING", transitions=False)
    with pytest.raises(ConnectorError) as exc:
        QUICK.run("wait_for_cluster_state", pat, {"cluster_id": cid, "timeout_seconds": 1}, progress=False)
    assert exc.value.type == "timeout"
    assert f"use Wait for Cluster State with cluster_id {cid}" in exc.value.hint
    assert "started" not in (exc.value.details or {})          # it started nothing


def test_an_operation_that_fails_carries_what_it_started(emulator, pat):
    job_id = _job(emulator, QUICK, pat, code="raise ValueError('boom')")
    with pytest.raises(ConnectorError) as exc:
        QUICK.run("run_job_now", pat, {"job_id": job_id, "wait_for_completion": True, "poll_interval_seconds": 0.1},
                  progress=False)
    err = exc.value
    assert err.type == "operation_failed"
    assert err.details["started"]["run_id"] == err.details["run_id"]
    assert f"use Get Run with run_id {err.details['run_id']}" in err.hint


# --------------------------------------------------------------------------- progress

def test_progress_goes_to_a_callable_with_elapsed_time_state_and_a_final_line(emulator, pat):
    emulator.config.cluster_start_seconds = 1.0
    progress = Progress()
    out = QUICK.run("start_terminated_cluster", pat, {"cluster_id": S.seed_cluster(emulator, "TERMINATED"),
                                                      "wait_for_state": True}, progress=progress)
    assert out["state"] == "RUNNING"
    events = [i["event"] for _, i in progress.lines]
    assert events[0] == "start" and events[-1] == "done" and "state" in events
    for message, info in progress.lines:
        assert info["what"] == f"cluster {out['cluster_id']} to be RUNNING"
        assert isinstance(info["elapsed_seconds"], float)
        if info["event"] == "start":
            assert "timeout 1200s" in message
        else:
            assert f"{info['elapsed_seconds']:.1f}s" in message
        assert info["started"] == {"cluster_id": out["cluster_id"]}
    states = [i["state"] for i in progress.events("state")]
    assert "PENDING" in states
    assert progress.lines[-1][1]["state"] == "RUNNING" and "done" in progress.lines[-1][0]


def test_progress_lines_come_while_the_state_does_not_change(emulator, pat, monkeypatch):
    """At least every PROGRESS_EVERY seconds (25 s; 0.2 s here) a line with the elapsed time, also
    between two polls."""
    monkeypatch.setattr(waiting, "PROGRESS_EVERY", 0.2)
    cid = S.seed_cluster(emulator, "PENDING", transitions=False)
    progress = Progress()
    with pytest.raises(ConnectorError):
        QUICK.run("wait_for_cluster_state", pat, {"cluster_id": cid, "timeout_seconds": 2, "poll_interval_seconds": 5},
                  progress=progress)
    beats = progress.events("heartbeat")
    assert len(beats) >= 3, progress.lines
    assert all(b["state"] == "PENDING" for b in beats)
    assert [b["elapsed_seconds"] for b in beats] == sorted(b["elapsed_seconds"] for b in beats)
    assert emulator.count("GET", r"/api/2\.1/clusters/get") >= 1
    assert progress.events("timeout")


def test_progress_none_prints_to_stderr_and_false_is_silent(emulator, pat, capfd):
    emulator.config.cluster_start_seconds = 0.3
    QUICK.run("start_terminated_cluster", pat, {"cluster_id": S.seed_cluster(emulator, "TERMINATED"),
                                                "wait_for_state": True})
    out, err = capfd.readouterr()
    assert out == "" and "[progress] cluster" in err and "done" in err
    QUICK.run("start_terminated_cluster", pat, {"cluster_id": S.seed_cluster(emulator, "TERMINATED"),
                                                "wait_for_state": True}, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and "[progress]" not in err


def test_cli_quiet_silences_progress(emulator, pat, tmp_path):
    emulator.config.cluster_start_seconds = 0.3
    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(pat))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for quiet in (False, True):
        cid = S.seed_cluster(emulator, "TERMINATED")
        args = [sys.executable, "-m", "databricks_connector", "run", "start_terminated_cluster", f"cluster_id={cid}",
                "wait_for_state=true", "--connection", str(conn_file)] + (["--quiet"] if quiet else [])
        p = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        assert json.loads(p.stdout)["state"] == "RUNNING"
        assert ("[progress]" in p.stderr) is (not quiet), p.stderr


# --------------------------------------------------------------------------- poll intervals

def test_the_backoff_schedule_starts_short_and_stays_sane_for_an_hour():
    pauses = waiting.schedule()
    first = [next(pauses) for _ in range(400)]
    assert first[0] < 1 and first[0] == waiting.DEFAULT_INTERVAL
    assert first == sorted(first) and max(first) == waiting.MAX_INTERVAL <= 30
    elapsed, polls = 0.0, 1
    for p in first:
        if elapsed >= 3600:
            break
        elapsed += p
        polls += 1
    assert polls <= 200, f"an hour-long wait polls {polls} times"


def test_a_quick_command_is_reported_at_once_with_the_default_interval(emulator, pat):
    """A command that is done in about 200 ms (still running at the first poll): a few status
    polls, and the step ends long before the old default interval (5 s) could have passed."""
    emulator.config.context_start_seconds = 0.02
    cid = S.seed_cluster(emulator, "RUNNING")
    ctx = QUICK.run("create_execution_context", pat, {"cluster_id": cid, "language": "python", "wait_for_state": True,
                                                      "poll_interval_seconds": 0.1}, progress=False)["context_id"]
    QUICK.run("run_command", pat, {"cluster_id": cid, "context_id": ctx, "command": "1", "wait_for_result": True,
                                   "poll_interval_seconds": 0.1}, progress=False)       # the worker is warm
    before = emulator.count("GET", "/api/1.2/commands/status")
    progress = Progress()
    started = time.monotonic()
    out = QUICK.run("run_command", pat, {"cluster_id": cid, "context_id": ctx, "command": "import time\ntime.sleep(0.2)\n42",
                                         "wait_for_result": True}, progress=progress)
    elapsed = time.monotonic() - started
    QUICK.run("destroy_execution_context", pat, {"cluster_id": cid, "context_id": ctx})
    assert out["status"] == "Finished" and out["results"]["data"] == "42"
    assert progress.events("state")[0]["state"] in ("Queued", "Running")      # not done at the first poll
    polls = emulator.count("GET", "/api/1.2/commands/status") - before
    assert 2 <= polls <= 4, polls
    assert elapsed < 5, f"{elapsed:.1f}s"


def test_polls_back_off_with_the_default_interval(emulator, pat):
    """A 4 s cluster start with the default interval: more polls than a fixed 5 s interval makes
    (2), far fewer than a fixed 0.25 s one (16)."""
    emulator.config.cluster_start_seconds = 4
    cid = S.seed_cluster(emulator, "TERMINATED")
    before = emulator.count("GET", r"/api/2\.1/clusters/get")
    QUICK.run("start_terminated_cluster", pat, {"cluster_id": cid, "wait_for_state": True}, progress=False)
    polls = emulator.count("GET", r"/api/2\.1/clusters/get") - before
    assert 4 <= polls <= 11, polls
    gaps = [b["time"] - a["time"] for a, b in zip(
        [r for r in emulator.requests if r["path"] == "/api/2.1/clusters/get"][-polls:],
        [r for r in emulator.requests if r["path"] == "/api/2.1/clusters/get"][-polls + 1:])]
    assert gaps[-1] > gaps[0], gaps


def test_default_poll_interval_is_well_under_a_second(connector):
    for action in ("run_command", "execute_sql_statement", "run_job_now", "wait_for_cluster_state",
                   "start_sql_warehouse"):
        inp = {i["key"]: i for i in connector.action(action)["inputs"]}["poll_interval_seconds"]
        assert inp["default"] < 1, (action, inp["default"])


# --------------------------------------------------------------------------- execution contexts

def _open_contexts(emulator, cluster_id, n):
    h = {"Authorization": f"Bearer {emulator.pat}"}
    for _ in range(n):
        r = requests.post(emulator.url + "/api/1.2/contexts/create", json={"clusterId": cluster_id, "language": "sql"},
                          headers=h, timeout=10)
        assert r.status_code == 200, r.text


def _context_exists(emulator, cluster_id, context_id) -> bool:
    r = requests.get(emulator.url + "/api/1.2/contexts/status", params={"clusterId": cluster_id, "contextId": context_id},
                     headers={"Authorization": f"Bearer {emulator.pat}"}, timeout=10)
    return r.status_code == 200


def test_run_command_destroys_the_context_it_created_so_the_cluster_never_fills_up(emulator, pat):
    """A cluster holds 145 contexts. With 144 open, three Run Commands without a context each make
    one, wait, and destroy it: all three succeed (today the second fails, typed rate_limited).
    Then the 146th context is refused as invalid_state with a hint."""
    emulator.config.context_start_seconds = 0.02
    cid = S.seed_cluster(emulator, "RUNNING")
    _open_contexts(emulator, cid, 144)
    made, destroyed = emulator.state.applied["contexts/create"], emulator.state.applied["contexts/destroy"]
    for i in range(3):
        out = QUICK.run("run_command", pat, {"cluster_id": cid, "language": "sql", "command": f"SELECT {i} AS i",
                                             "wait_for_result": True, "poll_interval_seconds": 0.1}, progress=False)
        assert out["status"] == "Finished" and out["context_destroyed"] is True
        assert not _context_exists(emulator, cid, out["context_id"])
    assert emulator.state.applied["contexts/create"] - made == 3
    assert emulator.state.applied["contexts/destroy"] - destroyed == 3
    QUICK.run("create_execution_context", pat, {"cluster_id": cid, "language": "sql"})      # the 145th
    with pytest.raises(ConnectorError) as exc:
        QUICK.run("run_command", pat, {"cluster_id": cid, "language": "sql", "command": "SELECT 1",
                                       "wait_for_result": True}, progress=False)
    assert exc.value.type == "invalid_state", repr(exc.value)
    assert "Destroy Execution Context" in exc.value.hint and "Execution Context ID" in exc.value.hint
    with pytest.raises(ConnectorError) as exc:
        QUICK.run("create_execution_context", pat, {"cluster_id": cid, "language": "sql"})
    assert exc.value.type == "invalid_state"
    QUICK.run("restart_cluster", pat, {"cluster_id": cid})       # drops them all


def test_keep_context_keeps_the_context_it_created(emulator, pat):
    emulator.config.context_start_seconds = 0.02
    cid = S.seed_cluster(emulator, "RUNNING")
    out = QUICK.run("run_command", pat, {"cluster_id": cid, "language": "sql", "command": "SELECT 1 AS one",
                                         "wait_for_result": True, "keep_context": True, "poll_interval_seconds": 0.1},
                    progress=False)
    assert "context_destroyed" not in out and _context_exists(emulator, cid, out["context_id"])
    # a given context is never destroyed either
    again = QUICK.run("run_command", pat, {"cluster_id": cid, "context_id": out["context_id"], "language": "sql",
                                           "command": "SELECT 2 AS two", "wait_for_result": True}, progress=False)
    assert "context_destroyed" not in again and _context_exists(emulator, cid, out["context_id"])


def test_a_command_that_fails_or_times_out_still_destroys_the_context_it_created(emulator, pat):
    emulator.config.context_start_seconds = 0.02
    cid = S.seed_cluster(emulator, "RUNNING")
    with pytest.raises(ConnectorError) as exc:
        QUICK.run("run_command", pat, {"cluster_id": cid, "language": "python", "command": "1/0",
                                       "wait_for_result": True, "poll_interval_seconds": 0.1}, progress=False)
    err = exc.value
    assert err.type == "operation_failed" and err.details["context_destroyed"] is True
    assert not _context_exists(emulator, cid, err.details["started"]["context_id"])

    destroyed = emulator.state.applied["contexts/destroy"]
    with pytest.raises(ConnectorError) as exc:
        QUICK.run("run_command", pat, {"cluster_id": cid, "language": "python", "command": "import time\ntime.sleep(60)",
                                       "wait_for_result": True, "timeout_seconds": 1, "poll_interval_seconds": 0.1},
                  progress=False)
    err = exc.value
    assert err.type == "timeout"
    assert [c["what"].split(" ")[0] for c in err.details["cancel"]] == ["command", "execution"]
    assert all(c["ok"] for c in err.details["cancel"])
    assert emulator.state.applied["contexts/destroy"] == destroyed + 1
    assert not _context_exists(emulator, cid, err.details["started"]["context_id"])


# --------------------------------------------------------------------------- hints

def test_exporting_a_multi_task_run_says_to_export_each_task_run(emulator, pat):
    S.fast_jobs(emulator)
    tasks = [{"task_key": k, "notebook_task": {"notebook_path": S.SCENARIO_NOTEBOOK}} for k in ("a", "b")]
    tasks[1]["depends_on"] = [{"task_key": "a"}]
    job_id = QUICK.run("create_job", pat, {"name": f"multi-{uuid.uuid4().hex[:6]}", "tasks": tasks})["job_id"]
    run = QUICK.run("run_job_now", pat, {"job_id": job_id, "wait_for_completion": True, "poll_interval_seconds": 0.1},
                    progress=False)
    with pytest.raises(ConnectorError) as exc:
        QUICK.run("export_run", pat, {"run_id": run["run_id"]})
    err = exc.value
    task_runs = {t["task_key"]: t["run_id"] for t in run["run"]["tasks"]}
    assert "export each task run" in err.hint
    for key, rid in task_runs.items():
        assert f"{rid} ({key})" in err.hint
    assert {t["run_id"] for t in err.details["task_runs"]} == set(task_runs.values())
    one = QUICK.run("export_run", pat, {"run_id": task_runs["a"]})        # and that works
    assert one["count"] == 1


# --------------------------------------------------------------------------- Pending and resume

def _prep_pending(key, emulator, connector, conn):
    """Inputs that make each waiting action wait about a second, and a check of its output."""
    wait = {"timeout_seconds": 60, "poll_interval_seconds": 0.1}
    cfg, sql = emulator.config, S.sql_settings(emulator)
    if key == "create_cluster":
        inputs = {**_prep_create_cluster(emulator, connector, conn), **wait}
        cfg.cluster_start_seconds = 1
        return inputs, lambda o: o["state"] == "RUNNING"
    if key == "start_terminated_cluster":
        cfg.cluster_start_seconds = 1
        return ({"cluster_id": S.seed_cluster(emulator, "TERMINATED"), "wait_for_state": True, **wait},
                lambda o: o["state"] == "RUNNING")
    if key == "restart_cluster":
        cfg.cluster_restart_seconds = 1
        return ({"cluster_id": S.seed_cluster(emulator, "RUNNING"), "wait_for_state": True, **wait},
                lambda o: o["state"] == "RUNNING")
    if key == "terminate_cluster":
        cfg.cluster_terminate_seconds = 1
        return ({"cluster_id": S.seed_cluster(emulator, "RUNNING"), "wait_for_state": True, **wait},
                lambda o: o["state"] == "TERMINATED")
    if key == "wait_for_cluster_state":
        cfg.cluster_start_seconds = 1
        return {"cluster_id": S.seed_cluster(emulator, "PENDING"), **wait}, lambda o: o["state"] == "RUNNING"
    if key == "run_command":
        cfg.context_start_seconds = 0.3
        return ({**_prep_command(emulator, connector, conn), "command": "import time\ntime.sleep(1)\n6 * 7", **wait},
                lambda o: o["results"]["data"] == "42" and o["context_destroyed"] is True)
    if key == "start_sql_warehouse":
        sql.warehouse_start_seconds = 1
        return ({"warehouse_id": S.seed_warehouse(emulator, "STOPPED"), "wait_for_state": True, **wait},
                lambda o: o["state"] == "RUNNING")
    if key == "stop_sql_warehouse":
        sql.warehouse_stop_seconds = 1
        return ({"warehouse_id": S.seed_warehouse(emulator, "RUNNING"), "wait_for_state": True, **wait},
                lambda o: o["state"] == "STOPPED")
    if key == "execute_sql_statement":
        sql.update({"sql_delays": {r"^SELECT 42 AS x$": 1}})
        return ({"warehouse_id": S.seed_warehouse(emulator, "RUNNING"), "statement": "SELECT 42 AS x", **wait},
                lambda o: o["rows"] == [{"x": 42}])
    done = lambda o: o["state"]["result_state"] == "SUCCESS"    # noqa: E731
    code = "import time\ntime.sleep(1)\nprint('ok')"
    if key == "run_job_now":
        return {"job_id": _job(emulator, connector, conn, code=code), "wait_for_completion": True, **wait}, done
    if key == "submit_run":
        S.fast_jobs(emulator)
        return {"run_name": "pending", "wait_for_completion": True, **wait,
                "tasks": [S.script_task(emulator, "main", code)]}, done
    if key == "repair_run":
        job_id = _job(emulator, connector, conn, code=code)
        run = connector.run("run_job_now", conn, {"job_id": job_id, "wait_for_completion": True, **wait}, progress=False)
        return {"run_id": run["run_id"], "rerun_tasks": ["main"], "wait_for_completion": True, **wait}, done
    raise AssertionError(key)


PENDING_ACTIONS = ["create_cluster", "start_terminated_cluster", "restart_cluster", "terminate_cluster",
                   "wait_for_cluster_state", "run_command", "start_sql_warehouse", "stop_sql_warehouse",
                   "execute_sql_statement", "run_job_now", "submit_run", "repair_run"]
APPLIED = {"create_cluster": ("clusters/create",), "start_terminated_cluster": ("clusters/start",),
           "restart_cluster": ("clusters/restart",), "terminate_cluster": ("clusters/delete",),
           "wait_for_cluster_state": (), "run_command": ("commands/execute",),
           "start_sql_warehouse": ("warehouses/start",), "stop_sql_warehouse": ("warehouses/stop",),
           "execute_sql_statement": ("statements/execute",), "run_job_now": ("jobs/run-now",),
           "submit_run": ("jobs/runs/submit",), "repair_run": ("jobs/runs/repair",)}


def _secrets_of(emulator, conn):
    return [v for v in (emulator.pat, emulator.client_secret, conn.get("token"), conn.get("client_secret")) if v]


def _drive(key, conn, pending, *, budget=0.3, limit=400):
    """Resume a Pending until it ends, each time from a fresh Connector and a JSON round trip of the
    document (what a stateless server does); returns (output, rounds)."""
    rounds = 0
    while True:
        assert rounds < limit
        doc = json.loads(json.dumps(pending.resume))
        assert doc["action"] == key
        time.sleep(min(pending.retry_after, 0.5))
        try:
            return Connector(retry_timeout=30, policy=FAST).resume(doc, conn, budget=budget, progress=False), rounds
        except Pending as again:
            pending = again
            rounds += 1


@pytest.mark.parametrize("key", PENDING_ACTIONS)
def test_every_waiting_action_can_go_pending_and_be_resumed_without_starting_twice(emulator, pat, key):
    inputs, check = _prep_pending(key, emulator, QUICK, pat)
    before = S.applied(emulator, APPLIED[key])
    ctx_before = emulator.state.applied["contexts/create"]
    started = time.monotonic()
    with pytest.raises(Pending) as exc:
        Connector(retry_timeout=30, policy=FAST).run(key, pat, inputs, budget=0, progress=False)
    assert time.monotonic() - started < 5
    pending = exc.value
    text = json.dumps(pending.resume)
    for secret in _secrets_of(emulator, pat):
        assert secret not in text
    assert pending.retry_after > 0 and isinstance(pending.state, str)
    assert pending.resume["started"] == pending.started
    if APPLIED[key]:
        assert pending.started, f"{key}: Pending before starting anything"
    out, rounds = _drive(key, pat, pending)
    assert check(out), out
    assert S.applied(emulator, APPLIED[key]) - before == (1 if APPLIED[key] else 0)
    if key == "run_command":
        assert emulator.state.applied["contexts/create"] - ctx_before == 1
    assert rounds >= 1, "the operation never needed a second resume: the test proves too little"


def test_a_resumed_wait_keeps_its_original_deadline_and_cancels_on_timeout(emulator, pat):
    inputs = {**_prep_run_job_now(emulator, QUICK, pat), "timeout_seconds": 1, "poll_interval_seconds": 0.1}
    with pytest.raises(Pending) as exc:
        QUICK.run("run_job_now", pat, inputs, budget=0, progress=False)
    run_id = exc.value.started["run_id"]
    cancels = emulator.count("POST", "/api/2.2/jobs/runs/cancel")
    time.sleep(1.2)                                     # the step's deadline passes while nobody holds it
    with pytest.raises(ConnectorError) as err:
        Connector().resume(exc.value.resume, pat, budget=30, progress=False)
    assert err.value.type == "timeout" and f"Cancelled run {run_id}" in err.value.message
    assert err.value.details["started"]["run_id"] == run_id
    assert emulator.count("POST", "/api/2.2/jobs/runs/cancel") == cancels + 1
    assert emulator.count("GET", r"/api/2\.2/jobs/runs/get") >= 2


def test_a_budget_returns_pending_only_when_the_wait_would_pass_it(emulator, pat):
    """A budget larger than the wait: the call just returns the output. A short one: Pending, whose
    backoff goes on where it stopped (the resumed wait polls less and less often)."""
    emulator.config.cluster_start_seconds = 0.3
    out = QUICK.run("start_terminated_cluster", pat, {"cluster_id": S.seed_cluster(emulator, "TERMINATED"),
                                                      "wait_for_state": True, "poll_interval_seconds": 0.1},
                    budget=30, progress=False)
    assert out["state"] == "RUNNING"
    emulator.config.cluster_start_seconds = 60
    cid = S.seed_cluster(emulator, "TERMINATED")
    with pytest.raises(Pending) as exc:
        QUICK.run("start_terminated_cluster", pat, {"cluster_id": cid, "wait_for_state": True,
                                                    "poll_interval_seconds": 0.1}, budget=0.5, progress=False)
    delays = [exc.value.resume["waits"][0]["delay"]]
    doc = exc.value.resume
    for _ in range(3):
        with pytest.raises(Pending) as again:
            QUICK.resume(doc, pat, budget=0, progress=False)
        doc = again.value.resume
        delays.append(doc["waits"][0]["delay"])
    assert delays == sorted(delays) and delays[-1] > delays[0]
    assert doc["waits"][0]["polls"] >= 4
    QUICK.run("terminate_cluster", pat, {"cluster_id": cid})


def test_resume_in_another_process(emulator, pat):
    """The resume document alone (and the connection, passed separately) is enough: a second
    process finishes the step, and the statement is executed once."""
    inputs, check = _prep_pending("execute_sql_statement", emulator, QUICK, pat)
    emulator.config.update({"sql_delays": {r"^SELECT 42 AS x$": 1.5}})
    before = emulator.state.applied["statements/execute"]
    with pytest.raises(Pending) as exc:
        QUICK.run("execute_sql_statement", pat, inputs, budget=0, progress=False)
    code = ("import json, sys\nfrom databricks_connector.runner import Connector\n"
            "doc = json.load(sys.stdin)\n"
            "print(json.dumps(Connector().resume(doc['resume'], doc['connection'], progress=False)))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run([sys.executable, "-c", code], input=json.dumps({"resume": exc.value.resume, "connection": pat}),
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert check(json.loads(p.stdout))
    assert emulator.state.applied["statements/execute"] - before == 1


@pytest.mark.parametrize("doc", [None, [], {"version": 1}, {"version": 9, "action": "run_job_now", "inputs": {},
                                                             "starts": [], "waits": []},
                                 {"version": 1, "action": "run_job_now", "inputs": {}, "starts": [],
                                  "waits": [{"deadline": "soon"}]}])
def test_a_document_that_is_not_a_resume_is_refused_before_any_request(emulator, pat, doc):
    since = len(emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        QUICK.resume(doc, pat)
    assert exc.value.type == "invalid_input" and "Pending" in exc.value.hint
    assert len(emulator.requests) == since
