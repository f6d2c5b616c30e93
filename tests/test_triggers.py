"""Polling triggers against the emulator, across several polls with events arriving between them.

Every test drives the workspace through public actions (runs are started and cancelled, clusters
started and terminated, rows inserted with SQL), polls between the changes, and checks the one
property that matters: across all polls each event fires exactly once - none lost, none twice -
including runs that end out of order, listings larger than one poll may read, and a restart
from a state saved as JSON (a fresh Connector, as a new process would be). Nothing is timed: a run
or cluster is waited for by polling its state a bounded number of times.
"""
import json
import subprocess
import sys
import time
import uuid

import pytest

from databricks_connector import InputError
from databricks_connector.runner import Connector
from databricks_connector.triggers import MEMORY, Poll

from tests import scenarios as S

TASKS = [{"task_key": "main", "notebook_task": {"notebook_path": S.SCENARIO_NOTEBOOK}}]   # seeded by S.fast_jobs


@pytest.fixture(scope="module")
def emulator():
    """Triggers watch the whole workspace (every cluster, every run): an emulator of their own."""
    from tests.conftest import own_emulator

    with own_emulator() as emu:
        yield emu


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


class Stream:
    """Polls one trigger, keeping its state as JSON text (what a platform stores), and records
    every event it ever returned."""

    def __init__(self, connector, conn, trigger, inputs=None):
        self.connector, self.conn, self.trigger, self.inputs = connector, conn, trigger, dict(inputs or {})
        self.state = None
        self.events = []
        self.results = []

    def poll(self, connector=None, **extra):
        state = json.loads(self.state) if self.state else None
        out = (connector or self.connector).poll(self.trigger, self.conn, {**self.inputs, **extra}, state)
        self.state = json.dumps(out["state"])               # the caller owns the state, as JSON
        self.events += out["events"]
        self.results.append(out)
        return out

    def drain(self, limit=20):
        """Poll until a poll says there is no more to read now."""
        for _ in range(limit):
            if not self.poll()["more"]:
                return
        raise AssertionError(f"{self.trigger}: still more after {limit} polls")

    def keys(self, field):
        return [e[field] for e in self.events]


def _job(connector, conn):
    return connector.run("create_job", conn, {"name": f"trg-{uuid.uuid4().hex[:8]}", "tasks": TASKS,
                                              "max_concurrent_runs": 100})["job_id"]


def _start(connector, conn, job_id):
    return connector.run("run_job_now", conn, {"job_id": job_id})["run_id"]


def _ended(connector, conn, run_id, attempts=400):
    for _ in range(attempts):
        run = connector.run("get_run", conn, {"run_id": run_id})
        if run["state"]["life_cycle_state"] in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR"):
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not end")


def _cancel(connector, conn, *run_ids):
    for rid in run_ids:
        connector.run("cancel_run", conn, {"run_id": rid})
    for rid in run_ids:
        _ended(connector, conn, rid)


# --------------------------------------------------------------------------- Job Run Finished

def test_job_run_finished_fires_once_per_run_even_when_runs_end_out_of_order(emulator, connector, conn):
    S.fast_jobs(emulator, task_seconds=300)                   # runs end only when cancelled
    job = _job(connector, conn)
    before = _start(connector, conn, job)
    _cancel(connector, conn, before)                          # history: ended before the trigger was on
    stream = Stream(connector, conn, "job_run_finished", {"job_id": job})
    first = stream.poll()
    assert first["events"] == [] and first["activated"] is True
    a, b, c = (_start(connector, conn, job) for _ in range(3))
    assert stream.poll()["events"] == []                      # all three still running
    _cancel(connector, conn, c)                               # the newest ends first
    assert stream.poll()["events"] and stream.keys("run_id") == [c]
    assert stream.poll()["events"] == []                      # the overlap window re-reads c: not again
    _cancel(connector, conn, a)                               # then the oldest
    stream.poll()
    assert stream.keys("run_id") == [c, a]
    fresh = Connector()                                       # restart: a new process with the saved state
    _cancel(fresh, conn, b)
    stream.poll(connector=fresh)
    stream.poll(connector=fresh)
    assert stream.keys("run_id") == [c, a, b]
    assert before not in stream.keys("run_id")
    event = stream.events[-1]
    assert event["outcome"] == "CANCELED" and event["result_state"] == "CANCELED" and event["run"]["run_id"] == b
    assert event["end_time"] >= event["start_time"] and event["run_page_url"]


def test_job_run_finished_filters_outcomes_and_jobs(emulator, connector, conn):
    S.fast_jobs(emulator, task_seconds=300)
    job, other = _job(connector, conn), _job(connector, conn)
    stream = Stream(connector, conn, "job_run_finished", {"job_id": job, "result_states": ["SUCCESS"]})
    everything = Stream(connector, conn, "job_run_finished")
    stream.poll(), everything.poll()
    cancelled = _start(connector, conn, job)
    _cancel(connector, conn, cancelled)
    stream.poll(), everything.poll()
    S.fast_jobs(emulator, task_seconds=0.05)                  # these two finish successfully
    succeeded, elsewhere = _start(connector, conn, job), _start(connector, conn, other)
    _ended(connector, conn, succeeded), _ended(connector, conn, elsewhere)
    stream.poll(), everything.poll()
    assert stream.keys("run_id") == [succeeded]
    assert sorted(everything.keys("run_id")) == sorted([cancelled, succeeded, elsewhere])
    assert {e["run_id"]: e["outcome"] for e in everything.events}[cancelled] == "CANCELED"


def test_job_run_finished_since_replays_history(emulator, connector, conn):
    S.fast_jobs(emulator, task_seconds=300)
    job = _job(connector, conn)
    since = connector.run("get_job", conn, {"job_id": job})["created_time"]
    old = _start(connector, conn, job)
    _cancel(connector, conn, old)
    stream = Stream(connector, conn, "job_run_finished", {"job_id": job, "since": since})
    out = stream.poll()
    assert out["activated"] is True and stream.keys("run_id") == [old]
    stream.poll()
    assert stream.keys("run_id") == [old]


def test_a_listing_larger_than_one_poll_drains_without_loss(emulator, connector, conn):
    """30 runs end between two polls; runs/list gives at most 25 a page and each poll may read
    one page: the polls work through the backlog and every run fires once."""
    S.fast_jobs(emulator, task_seconds=300)
    job = _job(connector, conn)
    stream = Stream(connector, conn, "job_run_finished", {"job_id": job, "max_pages": 1})
    stream.poll()
    runs = [_start(connector, conn, job) for _ in range(30)]
    connector.run("cancel_all_runs", conn, {"job_id": job})
    for rid in runs:
        _ended(connector, conn, rid)
    n = len(emulator.requests)
    out = stream.poll()
    lists = [r for r in emulator.requests[n:] if r["path"].endswith("/runs/list")]
    assert len(lists) == 1 and out["more"] is True          # one page, and it says so
    stream.drain()
    assert sorted(stream.keys("run_id")) == sorted(runs)    # none lost, none twice
    started = Stream(connector, conn, "job_run_started", {"job_id": job, "max_pages": 1, "since": 0})
    started.drain()
    assert sorted(started.keys("run_id")) == sorted(runs)


def test_the_dedupe_memory_is_bounded(emulator, connector, conn):
    S.fast_jobs(emulator, task_seconds=300)
    job = _job(connector, conn)
    stream = Stream(connector, conn, "job_run_finished", {"job_id": job, "overlap_seconds": 0})
    stream.poll()
    runs = [_start(connector, conn, job) for _ in range(4)]
    _cancel(connector, conn, *runs)
    stream.poll()
    assert sorted(stream.keys("run_id")) == sorted(runs)
    later = _start(connector, conn, job)
    _cancel(connector, conn, later)
    stream.poll()
    seen = json.loads(stream.state)["seen"]
    assert set(seen) <= {str(r) for r in runs + [later]} and len(seen) < 5    # keys behind the window are gone
    poll = Poll("job_run_finished", {}, None)
    for i in range(MEMORY + 500):
        poll.emit(f"k{i}", {}, i)
    assert len(poll.result()["state"]["seen"]) == MEMORY and "k0" not in poll.result()["state"]["seen"]


# --------------------------------------------------------------------------- Job Run Started

def test_job_run_started_fires_once_per_new_run(emulator, connector, conn):
    S.fast_jobs(emulator, task_seconds=300)
    job = _job(connector, conn)
    old = _start(connector, conn, job)
    stream = Stream(connector, conn, "job_run_started", {"job_id": job})
    assert stream.poll()["events"] == []
    a = _start(connector, conn, job)
    stream.poll()
    b, c = _start(connector, conn, job), _start(connector, conn, job)
    stream.poll(connector=Connector())                        # restart from the saved state
    stream.poll()
    assert stream.keys("run_id") == [a, b, c] and old not in stream.keys("run_id")
    assert stream.events[0]["outcome"] is None and stream.events[0]["life_cycle_state"] in ("QUEUED", "PENDING", "RUNNING")
    connector.run("cancel_all_runs", conn, {"job_id": job})


def test_changed_filters_start_again_from_now_and_foreign_states_are_refused(emulator, connector, conn):
    S.fast_jobs(emulator, task_seconds=300)
    job = _job(connector, conn)
    stream = Stream(connector, conn, "job_run_started", {"job_id": job})
    stream.poll()
    _start(connector, conn, job)
    out = connector.poll("job_run_started", conn, {"job_id": _job(connector, conn)}, json.loads(stream.state))
    assert out["activated"] is True and out["events"] == []
    again = connector.poll("job_run_started", conn, {"job_id": job, "max_pages": 3}, json.loads(stream.state))
    assert again["activated"] is False and len(again["events"]) == 1     # an operational input keeps the state
    with pytest.raises(InputError) as err:
        connector.poll("job_run_finished", conn, {"job_id": job}, json.loads(stream.state))
    assert err.value.problems[0]["key"] == "state" and "job_run_started" in err.value.problems[0]["reason"]
    for bad in ("not json", [1, 2], {"v": 99}):
        with pytest.raises(InputError):
            connector.poll("job_run_started", conn, {"job_id": job}, bad)
    connector.run("cancel_all_runs", conn, {"job_id": job})


# --------------------------------------------------------------------------- Cluster State Changed

def _wait_state(connector, conn, cid, target):
    return connector.run("wait_for_cluster_state", conn, {"cluster_id": cid, "target_state": target,
                                                           "timeout_seconds": 30, "poll_interval_seconds": 0.1})


def test_cluster_state_changed_fires_once_per_state_change(emulator, connector, conn):
    cid = S.seed_cluster(emulator, "RUNNING")
    stream = Stream(connector, conn, "cluster_state_changed", {"cluster_id": cid})
    assert stream.poll()["events"] == []                      # its CREATING / RUNNING history does not fire
    connector.run("terminate_cluster", conn, {"cluster_id": cid})
    _wait_state(connector, conn, cid, "TERMINATED")
    stream.poll()
    assert stream.keys("state") == ["TERMINATING"]
    connector.run("start_terminated_cluster", conn, {"cluster_id": cid})
    stream.poll(connector=Connector())                        # restart from the saved state, mid-change
    _wait_state(connector, conn, cid, "RUNNING")
    stream.poll()
    stream.poll()
    assert stream.keys("state") == ["TERMINATING", "PENDING", "RUNNING"]
    assert stream.keys("event_type") == ["TERMINATING", "STARTING", "RUNNING"]
    assert len(set(stream.keys("event_id"))) == 3
    assert all(e["cluster_id"] == cid for e in stream.events)
    assert stream.events[0]["details"]["reason"]["code"] == "USER_REQUEST"


def test_every_cluster_is_watched_in_turn_and_states_filter(emulator, connector, conn):
    clusters = [S.seed_cluster(emulator, "RUNNING") for _ in range(3)]
    polls = connector.run("list_clusters", conn, {})["count"] + 10       # one cluster a poll, in turn
    every = Stream(connector, conn, "cluster_state_changed", {"max_pages": 2})
    running = Stream(connector, conn, "cluster_state_changed", {"states": ["RUNNING"]})
    for _ in range(polls):      # each poll lists and reads one cluster: `more` stays true, the turn goes round
        every.poll()
        running.poll()
    assert every.events == [] and running.events == []
    for cid in clusters:
        connector.run("restart_cluster", conn, {"cluster_id": cid})
    new = connector.run("create_cluster", conn, {"cluster_name": "trg-new", "spark_version": S.SPARK,
                                                 "node_type_id": S.NODE, "num_workers": 0})["cluster_id"]
    for cid in clusters + [new]:
        _wait_state(connector, conn, cid, "RUNNING")
    for _ in range(polls):
        every.poll()
        running.poll()
    mine = [e for e in every.events if e["cluster_id"] in clusters + [new]]
    assert sorted((e["cluster_id"], e["state"]) for e in mine) == sorted(
        [(c, s) for c in clusters for s in ("RESTARTING", "RUNNING")] + [(new, "PENDING"), (new, "RUNNING")])
    assert len({e["event_id"] for e in every.events}) == len(every.events)
    assert {(e["cluster_id"], e["state"]) for e in running.events if e["cluster_id"] in clusters + [new]} == \
        {(c, "RUNNING") for c in clusters + [new]}
    assert all(e["state"] == "RUNNING" for e in running.events)
    for cid in clusters + [new]:
        connector.run("terminate_cluster", conn, {"cluster_id": cid})


# --------------------------------------------------------------------------- New Rows from SQL

def _sql(connector, conn, wid, statement):
    return connector.run("execute_sql_statement", conn, {"warehouse_id": wid, "statement": statement,
                                                          "timeout_seconds": 30, "poll_interval_seconds": 0.1})


def test_new_rows_fire_once_in_order_across_batches_with_equal_cursor_values(emulator, connector, conn):
    wid = S.seed_warehouse(emulator, "RUNNING")
    table = f"trg_{uuid.uuid4().hex[:8]}"
    _sql(connector, conn, wid, f"CREATE TABLE {table} (id BIGINT, name STRING, ts TIMESTAMP)")
    _sql(connector, conn, wid, f"INSERT INTO {table} VALUES (1, 'old', TIMESTAMP '2024-01-01 00:00:00')")
    inputs = {"warehouse_id": wid, "query": f"SELECT id, name, ts FROM {table};", "cursor_column": "ts",
              "unique_key": "id", "max_rows": 2}
    stream = Stream(connector, conn, "new_sql_rows", inputs)
    assert stream.poll()["events"] == []                      # the existing row is history
    _sql(connector, conn, wid, f"INSERT INTO {table} VALUES (2, 'b', TIMESTAMP '2024-01-01 00:00:01'), "
                               f"(3, 'c', TIMESTAMP '2024-01-01 00:00:01'), (4, 'd', TIMESTAMP '2024-01-01 00:00:01')")
    out = stream.poll()
    assert out["more"] is True and [e["row"]["id"] for e in out["events"]] == [2, 3]   # a batch ends mid-timestamp
    stream.poll(connector=Connector())                        # restart: row 4 shares 3's timestamp
    _sql(connector, conn, wid, f"INSERT INTO {table} VALUES (5, 'e', TIMESTAMP '2024-01-01 00:00:02')")
    stream.drain()
    stream.drain()
    assert [e["row"]["id"] for e in stream.events] == [2, 3, 4, 5]
    assert stream.events[-1]["row"] == {"id": 5, "name": "e", "ts": stream.events[-1]["cursor"]}
    assert len({e["key"] for e in stream.events}) == 4
    replay = Stream(connector, conn, "new_sql_rows", {**inputs, "start_after": "0", "cursor_column": "id",
                                                      "unique_key": None, "max_rows": 10})
    replay.inputs.pop("unique_key")
    replay.poll()
    assert [e["row"]["id"] for e in replay.events] == [1, 2, 3, 4, 5]


def test_new_rows_without_a_unique_key_refuse_equal_cursor_values(emulator, connector, conn):
    wid = S.seed_warehouse(emulator, "RUNNING")
    table = f"trg_{uuid.uuid4().hex[:8]}"
    _sql(connector, conn, wid, f"CREATE TABLE {table} (id BIGINT, ts TIMESTAMP)")
    stream = Stream(connector, conn, "new_sql_rows", {"warehouse_id": wid, "query": f"SELECT * FROM {table}",
                                                      "cursor_column": "ts"})
    stream.poll()
    _sql(connector, conn, wid, f"INSERT INTO {table} VALUES (1, TIMESTAMP '2024-01-01 00:00:00'), "
                               f"(2, TIMESTAMP '2024-01-01 00:00:00')")
    with pytest.raises(InputError) as err:
        stream.poll()
    assert err.value.problems[0]["key"] == "unique_key"
    with pytest.raises(InputError) as err:
        connector.poll("new_sql_rows", conn, {"warehouse_id": wid, "query": f"SELECT * FROM {table}",
                                              "cursor_column": "nope", "start_after": "0"})
    assert err.value.problems[0]["key"] == "cursor_column"
    with pytest.raises(InputError):
        connector.poll("new_sql_rows", conn, {"warehouse_id": wid, "query": "SELECT 1", "cursor_column": "a`b"})


# --------------------------------------------------------------------------- the command line

def test_cli_poll_rewrites_its_state_file(emulator, connector, pat, tmp_path):
    S.fast_jobs(emulator, task_seconds=300)
    job = _job(connector, pat)
    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(pat))
    state = tmp_path / "state.json"

    def poll():
        p = subprocess.run([sys.executable, "-m", "databricks_connector", "poll", "job_run_started", f"job_id={job}",
                            "--connection", str(conn_file), "--state", str(state)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        return json.loads(p.stdout)

    first = poll()
    assert first["events"] == [] and first["activated"] is True and json.loads(state.read_text())["trigger"] == "job_run_started"
    a = _start(connector, pat, job)
    second = poll()
    assert [e["run_id"] for e in second["events"]] == [a] and second["activated"] is False
    assert poll()["events"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conn.json", "state.json"]     # no temporary file left
    connector.run("cancel_all_runs", pat, {"job_id": job})


# --------------------------------------------------------------------------- bounds and failures

def test_the_deadline_bounds_a_poll_and_a_failed_poll_loses_nothing(emulator, connector, conn):
    S.fast_jobs(emulator, task_seconds=300)
    job = _job(connector, conn)
    stream = Stream(connector, conn, "job_run_finished", {"job_id": job})
    stream.poll()
    runs = [_start(connector, conn, job) for _ in range(2)]
    _cancel(connector, conn, *runs)
    saved = stream.state
    emulator.faults.add(r"/api/2\.\d/jobs/runs/list", "delay", times=None, delay=30)
    from databricks_connector import ConnectorError

    with pytest.raises(ConnectorError) as err:          # the poll's own deadline ends the slow request
        connector.poll("job_run_finished", conn, {"job_id": job, "timeout_seconds": 1}, json.loads(saved))
    assert err.value.type in ("timeout", "network", "unavailable"), err.value
    emulator.faults.clear()
    assert stream.state == saved                        # the caller kept its state
    stream.poll()
    assert sorted(stream.keys("run_id")) == sorted(runs)
    past = Poll("job_run_finished", {}, None, deadline=time.monotonic() - 0.01)
    assert past.page() is False and past.more is True   # no page is started past the deadline


def test_a_workspace_with_more_clusters_than_a_list_page(emulator, connector, pat):
    """The cluster list is read a page a poll and continued by the next; a cluster on a later page
    is watched too, and a permanently deleted one is forgotten."""
    count = connector.run("list_clusters", pat, {})["count"]
    for _ in range(max(0, 101 - count)):
        S.seed_cluster(emulator, "RUNNING")
    stream = Stream(connector, pat, "cluster_state_changed", {"max_pages": 3})
    total = connector.run("list_clusters", pat, {})["count"]
    assert total > 100
    for _ in range(total // 2 + 5):                 # a list page and two clusters a poll: one round
        stream.poll()
    known = json.loads(stream.state)["data"]["names"]
    assert len(known) >= total
    last = sorted(known)[-1]                        # visited last in a round
    gone = sorted(known)[0]
    connector.run("terminate_cluster", pat, {"cluster_id": last})
    connector.run("permanently_delete_cluster", pat, {"cluster_id": gone})
    _wait_state(connector, pat, last, "TERMINATED")
    for _ in range(len(known) // 2 + 5):            # a round over every cluster known (listed or not)
        stream.poll()
    assert [(e["cluster_id"], e["state"]) for e in stream.events if e["cluster_id"] == last] == [(last, "TERMINATING")]
    assert gone not in json.loads(stream.state)["data"]["names"]
