"""The fault matrix: every action (from tests/scenarios/) against every injected fault.

For each case the action either succeeds after bounded retries or fails within its deadline with
a classified error and a hint, and a request that changes state is never applied twice: it is
re-sent only when the API makes that safe (an idempotency token, a naturally idempotent call, or
an answer saying the request was not processed: 429, 503, a rejected token).
"""
import threading
import time

import pytest

from databricks_connector import ConnectorError
from databricks_connector.runner import Connector
from databricks_connector.session import RetryPolicy

from tests import scenarios as S
from tests.helpers import fresh_sp

ERROR_TYPES = {"invalid_input", "bad_request", "authentication", "permission_denied", "not_found", "invalid_state",
               "conflict", "rate_limited", "unavailable", "server_error", "network", "timeout", "operation_failed",
               "configuration", "internal"}
FAST = RetryPolicy(base=0.05, cap=0.2)          # the default rules, with short backoff to keep the matrix fast
DEADLINE = 10.0


def bounded_by(deadline: float) -> float:
    """The most a call bounded by ``deadline`` may take on a slow, noisy machine: twice the deadline
    plus 5 s. Every request ends by its deadline (connector/session.py); the defects this guards
    against ran to the 300 s retry budget, far past this bound, while a pass never needs the margin."""
    return 2 * deadline + 5

MATRIX = Connector(retry_timeout=DEADLINE, read_timeout=5, policy=FAST)
QUICK = Connector(retry_timeout=3, policy=FAST)                    # for a Retry-After past the deadline
SLOWREAD = Connector(retry_timeout=DEADLINE, read_timeout=0.3, policy=FAST)

# fault name -> (emulator fault kwargs, connector)
FAULTS = {
    "429": (dict(kind="429"), MATRIX),
    "429_retry_after": (dict(kind="429", retry_after=0.2), MATRIX),   # Databricks sends whole seconds; 0.2 keeps it fast
    "429_retry_after_past_deadline": (dict(kind="429", retry_after=60), QUICK),
    "503": (dict(kind="503"), MATRIX),
    "500": (dict(kind="500"), MATRIX),
    "502_html": (dict(kind="502_html"), MATRIX),
    "drop_before": (dict(kind="drop_before"), MATRIX),
    "drop_after": (dict(kind="drop_after"), MATRIX),
    "read_timeout": (dict(kind="delay", delay=0.7), SLOWREAD),
    "malformed_json": (dict(kind="malformed_json"), MATRIX),
    "invalid_token": (dict(kind="invalid_token"), MATRIX),
}
SP_FAULTS = ["503", "drop_after", "invalid_token"]
# The token request is the same whatever the action: its faults run for one action of each kind
# (a read, a change made safe by a token, a change that must not be repeated, a wait).
TOKEN_FAULT_ACTIONS = ["get_current_user", "list_clusters", "create_cluster", "run_job_now", "execute_sql_statement",
                       "run_command", "start_sql_warehouse"]

def cases(keys, faults, core=None):
    """Every (action, fault) pair, or with ``core`` a sample by kind (tests/scenarios: sampled)."""
    pairs = [(k, f) for k in keys for f in faults] if core is None else S.sampled(keys, faults, core)
    return [pytest.param(key, fault, id=f"{key}-{fault}") for key, fault in pairs]


# The faults every action that changes state meets (a refusal to retry, an answer lost after the
# change was applied); every fault runs for two actions of each kind, and one of them in turn for
# every other action (a read meets one fault: its GET is retried by the same rule as every GET).
def CORE(key):
    sc = S.SCENARIOS.get(key)
    return ("503", "drop_after") if sc is None or sc.changes_state else ()


TOKEN_FAULTS = {
    "token_429": (dict(kind="429"), MATRIX),
    "token_503": (dict(kind="503"), MATRIX),
    "token_500": (dict(kind="500"), MATRIX),
    "token_wrong_json": (dict(kind="malformed_json"), MATRIX),
    "token_429_past_deadline": (dict(kind="429", retry_after=60), QUICK),
    "token_drop_after": (dict(kind="drop_after"), MATRIX),          # a token was issued, its answer lost
    "token_slow": (dict(kind="delay", delay=0.7), SLOWREAD),        # past the read timeout
}


def actions(connector=None):
    return S.manifest_actions(connector or Connector())


ACTIONS = actions()


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


def expected(fault: str, method: str, sc: S.Scenario, conn_type: str):
    """(outcome, error types, applied delta if it fails). outcome: "ok", "error" or "either".

    On success a state change must have been applied exactly once (a naturally idempotent call:
    once or twice). On failure it was applied once when the request reached the server before the
    fault (drop_after, read timeout, malformed answer), else never."""
    read = method in ("GET", "HEAD")
    safe = read or sc.retry_safe is not None
    ok = "ok" if read or sc.retry_safe == "token" else "either"   # a natural repeat may also fail classified
    reached = 1 if sc.changes_state else 0
    if fault in ("429", "429_retry_after", "503"):
        return "ok", None, 0
    if fault == "429_retry_after_past_deadline":
        return "error", {"rate_limited"}, 0
    if fault == "invalid_token":
        return ("ok", None, 0) if conn_type == "service_principal" else ("error", {"authentication"}, 0)
    if fault in ("500", "502_html"):
        return (ok if safe else "error"), {"server_error"}, 0
    if fault == "drop_before":
        return (ok if safe else "error"), {"network"}, 0
    if fault == "drop_after":
        return (ok if safe else "error"), {"network"}, reached
    if fault == "read_timeout":
        if sc.own_read_timeout:
            return "either", {"timeout"}, reached
        return (ok if safe else "error"), {"timeout"}, reached
    if fault == "malformed_json":   # the answer is lost: a read may be retried, a change must not be
        return "either", {"server_error"}, reached
    raise AssertionError(fault)


def _settle(emulator, sc, want, before, wait=3.0):
    """The applied counters once the server finished (a delayed request completes after the client gave up)."""
    end = time.monotonic() + wait
    got = S.applied(emulator, sc.applied) - before
    while got < want and time.monotonic() < end:
        time.sleep(0.05)
        got = S.applied(emulator, sc.applied) - before
    return got


def run_case(emulator, conn, key, fault_name, fault, connector, *, path=None, method=None):
    sc = S.SCENARIOS[key]
    if path is None:
        method, path = S.main_request(emulator, MATRIX, conn, key)
    inputs = S.prepared(emulator, MATRIX, conn, key)
    before_applied = S.applied(emulator, sc.applied)
    before_main = emulator.count(method, path)
    emulator.faults.add(path, times=1, method=method, **fault)
    started = time.monotonic()
    try:
        out, err = connector.run(key, conn, inputs), None
    except ConnectorError as exc:
        out, err = None, exc
    elapsed = time.monotonic() - started
    emulator.faults.clear()
    if fault.get("kind") == "delay" and sc.changes_state:
        # The delayed request is applied after the client gave up: let it land in this case, not the next.
        time.sleep(max(0.0, fault["delay"] + 0.15 - (time.monotonic() - started)))
    return sc, inputs, out, err, elapsed, before_applied, before_main


def check_case(emulator, conn, key, fault_name, result, method, path):
    sc, inputs, out, err, elapsed, before_applied, before_main = result
    outcome, types, want_applied = expected(fault_name, method, sc, conn["type"])
    S.count("fault cases run")
    label = f"{key}/{fault_name}/{conn['type']}"
    assert elapsed < bounded_by(DEADLINE), f"{label}: took {elapsed:.1f}s"
    if err is not None:
        assert outcome in ("error", "either"), f"{label}: expected success, got {err!r}"
        assert err.type in ERROR_TYPES and err.hint, label
        if types:
            assert err.type in types, f"{label}: {err!r}"
        S.count("faults ending in a classified error")
    else:
        assert outcome in ("ok", "either"), f"{label}: expected an error, got {out!r}"
        if sc.check:
            assert sc.check(out, inputs, conn), f"{label}: {out!r}"
        S.count("faults survived (succeeded after retries)")
    if not sc.safe_to_resend and method not in ("GET", "HEAD") and fault_name in ("500", "502_html", "drop_before",
                                                                                    "drop_after", "read_timeout",
                                                                                    "malformed_json"):
        assert emulator.count(method, path) - before_main == 1, f"{label}: an unsafe request was re-sent"
    if sc.changes_state:
        want = 1 if err is None else want_applied
        got = _settle(emulator, sc, want, before_applied)
        if got > 1 and sc.retry_safe != "natural":
            S.count("duplicates found")
        if sc.retry_safe == "natural" and err is None:
            assert 1 <= got <= 2, f"{label}: applied {got}"
            if got == 2:
                S.count("harmless repeats of a naturally idempotent call")
                S.note(f"harmless repeat: {label}")
        else:
            assert got == want, f"{label}: applied {got}, expected {want}"


# --------------------------------------------------------------------------- contract

def test_every_action_has_a_scenario(connector):
    missing = [k for k in S.manifest_actions(connector) if k not in S.SCENARIOS]
    assert not missing, f"add a scenario in tests/scenarios/<area>.py for: {', '.join(missing)}"


@pytest.mark.parametrize("key", ACTIONS)
def test_clean_run_applies_exactly_once(emulator, conn, connector, key):
    sc = S.SCENARIOS.get(key)
    if sc is None:
        pytest.skip(f"no scenario for {key} (see test_every_action_has_a_scenario)")
    inputs = sc.prepare(emulator, connector, conn)
    before = S.applied(emulator, sc.applied)
    out = connector.run(key, conn, inputs)
    if sc.check:
        assert sc.check(out, inputs, conn), out
    if sc.changes_state:
        assert sc.applied, f"{key}: a state-changing scenario must name its applied counters"
        assert S.applied(emulator, sc.applied) - before == 1
    if sc.failing:
        with pytest.raises(ConnectorError) as exc:
            connector.run(key, conn, sc.failing(emulator, connector, conn))
        assert exc.value.type in ERROR_TYPES and exc.value.hint


# --------------------------------------------------------------------------- the matrix

@pytest.mark.parametrize("key,fault_name", cases(ACTIONS, FAULTS, CORE))
def test_fault_matrix_pat(emulator, pat, key, fault_name):
    if key not in S.SCENARIOS:
        pytest.skip(f"no scenario for {key} (see test_every_action_has_a_scenario)")
    fault, connector = FAULTS[fault_name]
    method, path = S.main_request(emulator, MATRIX, pat, key)
    assert (method == "GET") == S.kind(key)[-1], f"{key}: its main request is {method}: declare main= in its scenario"
    result = run_case(emulator, pat, key, fault_name, fault, connector, method=method, path=path)
    check_case(emulator, pat, key, fault_name, result, method, path)
    if fault_name == "429_retry_after":
        assert result[4] >= 0.18, "Retry-After was not honoured"
    if fault_name == "502_html" and result[3] is not None:
        assert "<" not in result[3].message


@pytest.mark.parametrize("key,fault_name", cases(ACTIONS, SP_FAULTS, ("invalid_token",)))
def test_fault_matrix_service_principal(emulator, sp, key, fault_name):
    if key not in S.SCENARIOS:
        pytest.skip(f"no scenario for {key} (see test_every_action_has_a_scenario)")
    fault, connector = FAULTS[fault_name]
    method, path = S.main_request(emulator, MATRIX, sp, key)
    result = run_case(emulator, sp, key, fault_name, fault, connector, method=method, path=path)
    check_case(emulator, sp, key, fault_name, result, method, path)


@pytest.mark.parametrize("key,fault_name", cases([k for k in TOKEN_FAULT_ACTIONS if k in ACTIONS], TOKEN_FAULTS))
def test_token_endpoint_faults(emulator, key, fault_name):
    """The token endpoint fails while a new token must be fetched: 429/503/500 are retried, a wrong
    answer is an authentication error, a Retry-After past the deadline fails at once."""
    if key not in S.SCENARIOS:
        pytest.skip(f"no scenario for {key} (see test_every_action_has_a_scenario)")
    sc = S.SCENARIOS[key]
    fault, connector = TOKEN_FAULTS[fault_name]
    conn = fresh_sp(emulator)
    inputs = sc.prepare(emulator, MATRIX, emulator.connections()["personal_access_token"])   # no token yet
    before_applied = S.applied(emulator, sc.applied)
    before_fetch = emulator.token_fetches
    emulator.faults.add("/oidc/v1/token", times=1, method="POST", **fault)
    started = time.monotonic()
    try:
        out, err = connector.run(key, conn, inputs), None
    except ConnectorError as exc:
        out, err = None, exc
    elapsed = time.monotonic() - started
    S.count("fault cases run")
    assert elapsed < bounded_by(DEADLINE)
    one = 1 if sc.changes_state else 0
    if fault_name in ("token_429", "token_503", "token_500", "token_drop_after", "token_slow"):
        assert err is None, f"{key}/{fault_name}: {err!r}"
        if sc.check:
            assert sc.check(out, inputs, conn)
        # the token request is safe to repeat: a lost answer costs one more token, never a failure
        want = 2 if fault_name in ("token_drop_after", "token_slow") else 1
        end = time.monotonic() + 3                # the slow request issues its token after the client gave up
        while emulator.token_fetches - before_fetch < want and time.monotonic() < end:
            time.sleep(0.05)
        assert emulator.token_fetches - before_fetch == want
        assert S.applied(emulator, sc.applied) - before_applied == one
        S.count("faults survived (succeeded after retries)")
    else:
        assert err is not None, f"{key}/{fault_name}: expected an error, got {out!r}"
        want = {"token_wrong_json": {"authentication"}, "token_429_past_deadline": {"rate_limited"}}[fault_name]
        assert err.type in want and err.hint, repr(err)
        assert S.applied(emulator, sc.applied) - before_applied == 0
        assert conn["client_secret"] not in str(err.to_dict())
        S.count("faults ending in a classified error")


WAITING = [k for k in ACTIONS if k in S.SCENARIOS and S.SCENARIOS[k].wait is not None]


@pytest.mark.skipif(not WAITING, reason="no action in the manifest waits yet")
@pytest.mark.parametrize("key", WAITING or ["none"])
def test_token_expires_during_a_long_wait(emulator, connector, key):
    """Every OAuth token becomes invalid in the middle of a wait: the next poll fetches a new token
    once and the wait carries on to success."""
    sc = S.SCENARIOS[key]
    conn = fresh_sp(emulator)
    inputs = sc.wait(emulator, connector, conn)
    connector.run("get_current_user", conn)          # the token is cached before the wait starts
    before = emulator.token_fetches
    before_applied = S.applied(emulator, sc.applied)
    timer = threading.Timer(0.6, emulator.expire_tokens)
    timer.start()
    try:
        out = connector.run(key, conn, inputs)
    finally:
        timer.cancel()
    S.count("fault cases run")
    S.count("faults survived (succeeded after retries)")
    assert emulator.token_fetches - before == 1
    if sc.check:
        assert sc.check(out, inputs, conn)
    if sc.changes_state:
        assert S.applied(emulator, sc.applied) - before_applied == 1


def test_raw_post_is_never_re_sent_without_retry_settings(emulator, pat):
    """Raw Request with its defaults: a POST that may have been applied is not repeated."""
    body = '{"cluster_name": "raw-once", "spark_version": "13.3.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 0}'
    for kind in ("500", "drop_after", "502_html"):
        before = emulator.count("POST", "/api/2.1/clusters/create")
        before_applied = emulator.state.applied["clusters/create"]
        emulator.faults.add("/api/2.1/clusters/create", kind, method="POST")
        with pytest.raises(ConnectorError) as exc:
            MATRIX.run("raw_request", pat, {"url": "/2.1/clusters/create", "method": "POST", "data": body})
        emulator.faults.clear()
        assert emulator.count("POST", "/api/2.1/clusters/create") - before == 1, kind
        assert emulator.state.applied["clusters/create"] - before_applied == (1 if kind == "drop_after" else 0)
        assert exc.value.type in ("server_error", "network") and exc.value.hint


# Regression (found by this suite, fixed): connector/session.py ActionSession.wait (with
# connector/waiting.py wait_for and runner.Connector._call, which creates the ActionSession with
# timeout=None): the requests a poll makes are bounded only by the connector's retry_timeout (300 s by
# default), not by the wait's own deadline, so a wait with timeout_seconds=1 whose polls keep getting
# 503 (or hang) runs for minutes and ends 'unavailable'; each poll's retries and read timeout should
# end at the wait's deadline and the action fail with 'timeout' within timeout_seconds plus a poll


def test_a_wait_fails_within_its_timeout_when_polls_keep_failing(emulator, pat):
    """Counts, not a stopwatch: the retry budget is 60 s and a poll may make 1000 attempts, so a
    poll bounded only by those would end 'unavailable' after a minute. Bounded by the wait's own
    deadline (1 s + its 2 s grace), the wait ends 'timeout' having polled, and nothing is sent after
    it returned. The only clock is a margin of half the retry budget the old defect ran to."""
    budget = 60
    quick = Connector(retry_timeout=budget, policy=RetryPolicy(base=0.05, cap=0.2, max_attempts=1000))
    cid = S.seed_cluster(emulator, "PENDING", transitions=False)
    emulator.faults.add(r"/api/2\.1/clusters/get", "503", times=None, method="GET")
    before = emulator.count("GET", r"/api/2\.1/clusters/get")
    started = time.monotonic()
    with pytest.raises(ConnectorError) as exc:
        quick.run("wait_for_cluster_state", pat, {"cluster_id": cid, "timeout_seconds": 1, "poll_interval_seconds": 0.1})
    elapsed = time.monotonic() - started
    polls = emulator.count("GET", r"/api/2\.1/clusters/get") - before
    assert exc.value.type == "timeout", f"ended {exc.value.type}: {exc.value.message}"
    assert polls >= 2
    time.sleep(0.3)
    assert emulator.count("GET", r"/api/2\.1/clusters/get") - before == polls, "requests went on after the wait ended"
    assert elapsed < budget / 2, f"a 1 s wait took {elapsed:.1f}s"


def test_a_retry_after_longer_than_the_deadline_is_not_slept(emulator, pat):
    """The SDK's fault: sleeping a long Retry-After past its own budget. Here: fail at once, and say why."""
    cid = S.seed_cluster(emulator, "RUNNING")
    emulator.faults.add(r"/api/2\.1/clusters/get", "429", times=None, method="GET", retry_after=3600)
    before = emulator.count("GET", r"/api/2\.1/clusters/get")
    started = time.monotonic()
    with pytest.raises(ConnectorError) as exc:
        QUICK.run("get_cluster", pat, {"cluster_id": cid})
    assert emulator.count("GET", r"/api/2\.1/clusters/get") - before == 1, "re-sent although the wait was not possible"
    assert time.monotonic() - started < 3600 / 10, "the Retry-After was slept"
    assert exc.value.type == "rate_limited" and "3600s" in exc.value.hint


PICKERS = [p["key"] for p in Connector().manifest.get("pickers", [])]


PICKER_FAULTS = ["429", "503", "500", "drop_before", "drop_after", "read_timeout", "invalid_token"]


@pytest.mark.parametrize("picker,fault_name", S.sampled(PICKERS, PICKER_FAULTS, ("503", "invalid_token"),
                                                       kind_of=lambda key: "picker"))
def test_pickers_survive_faults(emulator, pat, sp, picker, fault_name):
    """Pickers only read (GET): every transient fault is retried and the dropdown still fills."""
    fault, connector = FAULTS[fault_name]
    conn = sp if fault_name == "invalid_token" else pat
    inputs = S.picker_inputs(emulator, MATRIX, conn, picker)
    since = len(emulator.requests)
    MATRIX.pick(picker, conn, inputs)
    first = S.api_requests(emulator.requests[since:])[0]
    emulator.faults.add(first["path"], times=1, method=first["method"], **fault)
    started = time.monotonic()
    options = connector.pick(picker, conn, inputs)
    assert time.monotonic() - started < bounded_by(DEADLINE)
    assert isinstance(options, list) and all(set(o) == {"label", "value"} for o in options)
    S.count("fault cases run")
    S.count("faults survived (succeeded after retries)")


@pytest.mark.parametrize("kind", ["drop_after", "500", "502_html"])
def test_one_execute_statement_call_creates_one_statement(emulator, conn, kind):
    """The SDK's fault, measured on a loopback stub: one execute-statement call created three
    statements after a dropped connection. Here: one POST, one statement, a classified error."""
    wid = S.seed_warehouse(emulator, "RUNNING")
    before_posts = emulator.count("POST", "/api/2.0/sql/statements")
    before = emulator.state.applied["statements/execute"]
    emulator.faults.add("/api/2.0/sql/statements", kind, method="POST")
    with pytest.raises(ConnectorError) as exc:
        MATRIX.run("execute_sql_statement", conn, {"warehouse_id": wid, "statement": "SELECT 1"})
    assert emulator.count("POST", "/api/2.0/sql/statements") - before_posts == 1
    assert emulator.state.applied["statements/execute"] - before == (1 if kind == "drop_after" else 0)
    assert exc.value.type in ("network", "server_error") and exc.value.hint


@pytest.mark.skipif(not WAITING, reason="no action in the manifest waits yet")
@pytest.mark.parametrize("key", WAITING or ["none"])
def test_a_wait_survives_transient_poll_faults(emulator, pat, key):
    """While an action waits, its status polls (GETs) meet transient faults: each is retried and the
    wait carries on to success, with the change applied once."""
    sc = S.SCENARIOS[key]
    inputs = sc.wait(emulator, MATRIX, pat)
    before = S.applied(emulator, sc.applied)
    for kind in ("503", "drop_before", "500", "429"):
        emulator.faults.add(r"/api/.*", kind, times=1, method="GET")
    started = time.monotonic()
    out = MATRIX.run(key, pat, inputs)
    S.count("fault cases run")
    S.count("faults survived (succeeded after retries)")
    assert time.monotonic() - started < bounded_by(inputs["timeout_seconds"])
    if sc.check:
        assert sc.check(out, inputs, pat)
    if sc.changes_state:
        assert S.applied(emulator, sc.applied) - before == 1
