"""Each action's annotations (read_only, destructive, idempotent, long_running, open_world) against
what its handler does, observed in the emulator's request log and its ``state.applied`` counters
(the changes it applied), through the scenario registry (one scenario per action).

* read_only: a clean run applies no change and sends only reads (GET, or the POSTs the API uses
  for reads); an action that is not read-only applies a change.
* destructive: it applies a change that deletes, stops, cancels, restarts or overwrites, or it runs
  code or arbitrary requests (open world), which may.
* idempotent: running it again with the same inputs applies nothing more (a replacement that
  leaves the same settings counts as nothing more); not idempotent: a second run applies again.
* long_running: it has a timeout, and with its waiting inputs it polls.
* open_world: it runs code, SQL or a job, or calls a path given as an input.
"""
import re
import time

import pytest

from databricks_connector import ConnectorError
from databricks_connector.runner import Connector

from tests import scenarios as S

ACTIONS = {a["key"]: a for a in Connector().spec()["actions"]}
READ_POSTS = ("/api/2.1/clusters/events", "/api/2.0/clusters/events",   # reads sent as POST (contract §5.3)
              "/api/2.0/mlflow/experiments/search", "/api/2.0/mlflow/runs/search",
              "/api/2.0/mlflow/registered-models/get-latest-versions")
READ_POST_PATTERNS = (re.compile(r"/serving-endpoints/[^/]+/invocations"),      # a model's answer changes nothing
                      re.compile(r"/api/2\.0/vector-search/indexes/[^/]+/query(-next-page)?"))
DESTROYING = {"delete", "permanent-delete", "destroy", "cancel", "cancel-all", "stop", "restart", "edit", "reset", "update", "uninstall", "set"}
RUNS_CODE = {"commands/execute", "statements/execute", "jobs/run-now", "jobs/runs/submit", "jobs/runs/repair", "apps/deploy"}
REPLACES = {"jobs/update": "job_id", "jobs/reset": "job_id"}            # repeated with the same settings: no change
# counters of requests whose effect the emulator counts apart: cancel-all counts each call, the runs it
# cancelled are counted in jobs/runs/cancelled
EFFECT_OF = {"jobs/runs/cancel-all": "jobs/runs/cancelled"}


def _read_post(path: str) -> bool:
    return path in READ_POSTS or any(p.fullmatch(path) for p in READ_POST_PATTERNS)


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


def _raw_create(emulator, connector, conn):
    """Raw Request at its worst: a POST that creates something, at a path given as an input."""
    body = '{"name": "raw-request", "tasks": [{"task_key": "main", "notebook_task": {"notebook_path": "/Shared/raw"}}]}'
    return {"url": "/2.2/jobs/create", "method": "POST", "data": body}


EVIDENCE = {"raw_request": _raw_create}        # inputs for actions whose annotations hold for their worst case


def _applied(emulator) -> dict:
    with emulator.state.lock:
        return {k: v for k, v in emulator.state.applied.items() if v}


def _delta(before: dict, after: dict) -> set:
    return {k for k, v in after.items() if v != before.get(k, 0)}


def _observe(emulator, connector, conn, key, inputs):
    before, since = _applied(emulator), len(emulator.requests)
    try:
        out, err = connector.run(key, conn, inputs), None
    except ConnectorError as exc:
        out, err = None, exc
    return out, err, _delta(before, _applied(emulator)), S.api_requests(emulator.requests[since:])


@pytest.mark.parametrize("key", sorted(ACTIONS))
def test_annotations_match_what_the_action_does(emulator, connector, pat, key):
    ann = ACTIONS[key]["annotations"]
    prepare = EVIDENCE.get(key, S.SCENARIOS[key].prepare)
    inputs = prepare(emulator, connector, pat)
    out, err, applied, requests = _observe(emulator, connector, pat, key, inputs)
    assert err is None, f"{key}: the clean run failed: {err!r}"

    writes = [r for r in requests if r["method"] not in ("GET", "HEAD") and not _read_post(r["path"])]
    if ann["read_only"]:
        assert not applied and not writes, f"{key} is read-only, yet applied {applied} with {writes}"
        assert not ann["destructive"], key
    else:
        assert applied, f"{key} is not read-only, yet a clean run applied no change"

    destroys = {a for a in applied if a.rsplit("/", 1)[-1] in DESTROYING}
    runs_code = applied & RUNS_CODE
    given_path = any(isinstance(v, str) and v.startswith("/") and not v.startswith("/Volumes/") and r["path"].endswith(v)
                     for r in requests
                     for v in inputs.values())
    open_world = bool(runs_code) or given_path
    assert ann["open_world"] == open_world, f"{key}: open_world is {ann['open_world']}, observed {open_world} ({applied})"
    assert ann["destructive"] == (bool(destroys) or open_world), \
        f"{key}: destructive is {ann['destructive']}, yet it applied {applied}"

    if not ann["read_only"]:
        _check_repeat(emulator, connector, pat, key, inputs, ann["idempotent"])
    assert ann["long_running"] == any(i["key"] == "timeout_seconds" for i in ACTIONS[key]["inputs"]), key


def _check_repeat(emulator, connector, conn, key, inputs, idempotent):
    """Run the action again with the same inputs: nothing more (idempotent) or a change again."""
    snapshot = None
    job_id = inputs.get("job_id")
    if job_id is not None:
        try:
            snapshot = connector.run("get_job", conn, {"job_id": job_id})["settings"]
        except ConnectorError:
            snapshot = None
    for attempt in range(60):           # a busy resource (restarting, repairing) is waited for, by count
        out, err, applied, _ = _observe(emulator, connector, conn, key, inputs)
        if err is None or err.type != "invalid_state":
            break
        time.sleep(0.05)
    if idempotent:
        extra = {a for a in applied - set(REPLACES) if not (a in EFFECT_OF and EFFECT_OF[a] not in applied)}
        assert not extra, f"{key} is idempotent, yet running it again applied {extra}"
        for name in applied & set(REPLACES):
            again = connector.run("get_job", conn, {"job_id": inputs[REPLACES[name]]})["settings"]
            assert again == snapshot, f"{key} is idempotent, yet running it again changed the job's settings"
    else:
        assert err is None and applied, f"{key} is not idempotent, yet running it again applied nothing ({err!r})"
        if applied <= set(REPLACES):
            again = connector.run("get_job", conn, {"job_id": inputs[REPLACES[next(iter(applied))]]})["settings"]
            assert again != snapshot, f"{key} is not idempotent, yet running it again left the same settings"


@pytest.mark.parametrize("key", sorted(k for k in ACTIONS if S.SCENARIOS[k].wait is not None))
def test_long_running_actions_poll_when_they_wait(emulator, connector, pat, key):
    assert ACTIONS[key]["annotations"]["long_running"], key
    inputs = S.SCENARIOS[key].wait(emulator, connector, pat)
    since = len(emulator.requests)
    connector.run(key, pat, inputs)
    gets = [r["path"] for r in S.api_requests(emulator.requests[since:]) if r["method"] == "GET"]
    assert max(gets.count(p) for p in set(gets)) >= 2, f"{key}: waiting made no repeated status check ({gets})"


def test_pickers_and_triggers_only_read(emulator, connector, pat):
    spec = Connector().spec()
    assert all(p["annotations"]["read_only"] for p in spec["pickers"])
    S.seed_cluster(emulator, "RUNNING")
    before, since = _applied(emulator), len(emulator.requests)
    for picker in ("select_cluster", "select_node_type", "select_spark_version", "select_sql_warehouse", "select_job",
                   "select_run"):
        connector.pick(picker, pat, {})
    for trigger in ("job_run_finished", "job_run_started", "cluster_state_changed"):
        connector.poll(trigger, pat, {})
    assert _delta(before, _applied(emulator)) == set()
    assert all(r["method"] in ("GET", "HEAD") or _read_post(r["path"]) for r in S.api_requests(emulator.requests[since:]))
