"""Hostile servers and proxies (tests/traps.py) in front of or beside the emulator, over real HTTP:
503s that follow an applied request, answers of the wrong shape, trickling bytes, token endpoints
that hang or fail mid-wait, unreachable hosts, requests that can never be sent, hostile
Retry-After values, pages that never end, servers that echo secrets, hostile inputs.

No assertion here is a bare wall-clock bound: each one counts requests or attempts, orders events,
or leaves a margin computed from the policy it tests (a fraction of a deadline the old behaviour
ran into)."""
import base64
import email.utils
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import traceback
import uuid
from urllib.parse import quote, quote_plus

import pytest

from databricks_connector import ConnectorError, InputError
from databricks_connector.runner import Connector
from databricks_connector.session import RetryPolicy

from tests import scenarios as S
from tests.helpers import fresh_sp
from tests.traps import Answer, Trap, bounded, closed_port, databricks_error, envoy_503, json_answer

FAST = RetryPolicy(base=0.05, cap=0.2)


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


@pytest.fixture
def proxy(emulator, pat):
    """A tampering proxy in front of the emulator."""
    with Trap(upstream=emulator.url, ca_bundle=pat.get("ca_bundle")) as trap:
        yield trap


def via(trap, conn):
    """The same PAT connection, pointed at a trap (plain http on loopback)."""
    return {"type": "personal_access_token", "host": trap.url, "token": conn["token"]}


def texts(err: ConnectorError) -> str:
    return "\n".join([json.dumps(err.to_dict(), default=str), str(err), repr(err),
                      "".join(traceback.format_exception(err))])


# =========================================================================== §1 a 503 is not proof

def _job_count(connector, pat, name):
    return connector.run("list_jobs", pat, {"name": name})["count"]


def _table_rows(connector, pat, wid, table):
    out = connector.run("execute_sql_statement", pat, {"warehouse_id": wid, "statement": f"SELECT count(*) AS n FROM {table}"})
    return int(out["rows"][0]["n"])


def test_create_job_answered_503_by_a_proxy_after_applying_is_applied_once(emulator, pat, proxy):
    connector = Connector(retry_timeout=20, policy=FAST)
    name = f"envoy-{uuid.uuid4().hex[:8]}"
    proxy.on(r"/api/2\.2/jobs/create", lambda seen, up: envoy_503(), method="POST", forward=True)
    with pytest.raises(ConnectorError) as exc:
        connector.run("create_job", via(proxy, pat), {"name": name, "tasks": S.jobs.TASKS})
    err = exc.value
    assert proxy.count("POST", r"/api/2\.2/jobs/create") == 1, "the POST was re-sent after a 503 that proves nothing"
    assert _job_count(connector, pat, name) == 1
    assert err.type == "unavailable" and err.status == 503
    assert "upstream connect error" in err.message and "may have been applied" in err.message
    assert err.details["may_have_been_applied"] is True and "/api/2.2/jobs/create" in err.details["request"]
    assert "Create Job" in err.hint and "before running it again" in err.hint


def test_an_insert_answered_503_by_a_proxy_after_applying_runs_once(emulator, pat, proxy):
    connector = Connector(retry_timeout=20, policy=FAST)
    wid = S.seed_warehouse(emulator, "RUNNING")
    table = f"envoy_{uuid.uuid4().hex[:8]}"
    connector.run("execute_sql_statement", pat, {"warehouse_id": wid, "statement": f"CREATE TABLE {table} (x INT)"})
    proxy.on(r"/api/2\.0/sql/statements/?", lambda seen, up: envoy_503(), method="POST", forward=True)
    with pytest.raises(ConnectorError) as exc:
        connector.run("execute_sql_statement", via(proxy, pat), {"warehouse_id": wid,
                                                                 "statement": f"INSERT INTO {table} VALUES (1)"})
    assert proxy.count("POST", r"/api/2\.0/sql/statements/?") == 1
    assert _table_rows(connector, pat, wid, table) == 1
    assert exc.value.type == "unavailable" and exc.value.details["may_have_been_applied"] is True


def test_run_command_answered_503_by_a_proxy_after_applying_runs_once(emulator, pat, proxy, tmp_path):
    connector = Connector(retry_timeout=20, policy=FAST)
    emulator.config.context_start_seconds = 0.02
    cid = S.seed_cluster(emulator, "RUNNING")
    ctx = connector.run("create_execution_context", pat, {"cluster_id": cid, "language": "python", "wait_for_state": True,
                                                           "poll_interval_seconds": 0.1, "timeout_seconds": 30})["context_id"]
    marker = tmp_path / "ran.txt"
    try:
        proxy.on(r"/api/1\.2/commands/execute", lambda seen, up: envoy_503(), method="POST", forward=True)
        with pytest.raises(ConnectorError) as exc:
            connector.run("run_command", via(proxy, pat), {"cluster_id": cid, "context_id": ctx, "language": "python",
                                                          "command": f"open({str(marker)!r}, 'a').write('x')",
                                                          "wait_for_result": False})
        assert proxy.count("POST", r"/api/1\.2/commands/execute") == 1
        assert exc.value.type == "unavailable" and exc.value.details["may_have_been_applied"] is True
        end = time.monotonic() + 30                      # the command runs in the context's own process
        while not marker.exists() and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.3)
        assert marker.read_text() == "x"
    finally:
        connector.run("destroy_execution_context", pat, {"cluster_id": cid, "context_id": ctx})


def test_databricks_own_503_refusal_is_re_sent_for_an_unsafe_request(emulator, pat, proxy):
    """The proof that nothing happened: Databricks' JSON TEMPORARILY_UNAVAILABLE (and 429
    REQUEST_LIMIT_EXCEEDED), answered without forwarding. Re-sent, applied once."""
    connector = Connector(retry_timeout=20, policy=FAST)
    name = f"refused-{uuid.uuid4().hex[:8]}"
    proxy.on(r"/api/2\.2/jobs/create", databricks_error(503, "TEMPORARILY_UNAVAILABLE", "try again"), method="POST")
    proxy.on(r"/api/2\.2/jobs/create", databricks_error(429, "REQUEST_LIMIT_EXCEEDED", "slow down"), method="POST")
    out = connector.run("create_job", via(proxy, pat), {"name": name, "tasks": S.jobs.TASKS})
    assert isinstance(out["job_id"], int)
    assert proxy.count("POST", r"/api/2\.2/jobs/create") == 3
    assert _job_count(connector, pat, name) == 1


@pytest.mark.parametrize("answer", ["envoy", "json_without_code", "html_429"])
def test_a_503_or_429_that_proves_nothing_is_still_retried_for_a_read(emulator, pat, proxy, answer):
    connector = Connector(retry_timeout=20, policy=FAST)
    bad = {"envoy": envoy_503(), "json_without_code": Answer(503, {"message": "overloaded"}),
           "html_429": Answer(429, "<html><title>Too Many</title></html>", {"Content-Type": "text/html"})}[answer]
    proxy.on(r"/api/2\.0/preview/scim/v2/Me", bad, method="GET")
    assert connector.run("get_current_user", via(proxy, pat))["active"] is True
    assert proxy.count("GET", r"/api/2\.0/preview/scim/v2/Me") == 2


# =========================================================================== §2 answers of the wrong shape

WRONG_SHAPES = {"null": None, "list": [{"cluster_id": "x"}], "string": "ok", "number": 42}
# action -> (method, path of the answer to replace, the id it reads, inputs)
ID_READERS = {
    "create_cluster": ("POST", r"/api/2\.1/clusters/create", "cluster_id"),
    "create_execution_context": ("POST", r"/api/1\.2/contexts/create", "id"),
    "run_command": ("POST", r"/api/1\.2/commands/execute", "id"),
    "execute_sql_statement": ("POST", r"/api/2\.0/sql/statements/?", "statement_id"),
    "run_job_now": ("POST", r"/api/2\.2/jobs/run-now", "run_id"),
    "submit_run": ("POST", r"/api/2\.2/jobs/runs/submit", "run_id"),
    "create_job": ("POST", r"/api/2\.2/jobs/create", "job_id"),
}
READS = {
    "get_current_user": ("GET", r"/api/2\.0/preview/scim/v2/Me"),
    "get_cluster": ("GET", r"/api/2\.1/clusters/get"),
    "get_sql_warehouse": ("GET", r"/api/2\.0/sql/warehouses/[^/]+"),
    "get_job": ("GET", r"/api/2\.2/jobs/get"),
}


def _wrong_shape_case(emulator, pat, proxy, key, method, path, body):
    connector = Connector(retry_timeout=10, policy=FAST)
    inputs = S.SCENARIOS[key].prepare(emulator, connector, pat)
    proxy.on(path, lambda seen, up: json_answer(body), method=method, forward=True)
    with pytest.raises(ConnectorError) as exc:
        out = connector.run(key, via(proxy, pat), inputs)
        pytest.fail(f"{key}: a wrong-shaped answer was printed as success: {out!r}")
    err = exc.value
    assert err.type == "server_error" and err.status == 200, repr(err)
    assert proxy.count(method, path) == 1
    return err


@pytest.mark.parametrize("shape", [*WRONG_SHAPES, "object_without_id"])
@pytest.mark.parametrize("key", sorted(ID_READERS))
def test_an_answer_without_the_id_the_action_needs_is_a_server_error(emulator, pat, proxy, key, shape):
    method, path, id_key = ID_READERS[key]
    body = {"unexpected": True} if shape == "object_without_id" else WRONG_SHAPES[shape]
    err = _wrong_shape_case(emulator, pat, proxy, key, method, path, body)
    assert (id_key in err.message) if shape == "object_without_id" else ("where Databricks sends a JSON object" in err.message)
    assert err.details["may_have_been_applied"] is True


@pytest.mark.parametrize("shape", sorted(WRONG_SHAPES))
@pytest.mark.parametrize("key", sorted(READS))
def test_a_read_answered_with_the_wrong_shape_is_a_server_error(emulator, pat, proxy, key, shape):
    method, path = READS[key]
    err = _wrong_shape_case(emulator, pat, proxy, key, method, path, WRONG_SHAPES[shape])
    assert "where Databricks sends a JSON object" in err.message and not err.details


@pytest.mark.parametrize("page", [{"clusters": "all of them"}, {"clusters": [1, 2]}, {"clusters": [{"state": "RUNNING"}]}])
def test_a_list_page_of_the_wrong_shape_is_a_server_error(pat, page):
    with Trap() as trap:
        trap.on(r"/api/2\.1/clusters/list", json_answer(page), times=None)
        with pytest.raises(ConnectorError) as exc:
            if "state" in str(page):             # the Cluster picker reads cluster_id of every item
                Connector(retry_timeout=5).pick("select_cluster", via(trap, pat))
            else:
                Connector(retry_timeout=5).run("list_clusters", via(trap, pat))
    assert exc.value.type == "server_error" and "Page 1" in exc.value.message


def cli(*args, timeout=120, env=None):
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "databricks_connector", *args], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, **(env or {})})
    return p.returncode, p.stdout, p.stderr, time.monotonic() - started


@pytest.mark.parametrize("body", [None, [], "me", 7])
def test_check_never_prints_a_traceback_for_a_wrong_shaped_answer(pat, tmp_path, body):
    with Trap() as trap:
        trap.on(r"/api/2\.0/preview/scim/v2/Me", json_answer(body), times=None)
        conn_file = tmp_path / "conn.json"
        conn_file.write_text(json.dumps(via(trap, pat)))
        code, out, err, _ = cli("check", "--connection", str(conn_file))
    assert code != 0 and "Traceback" not in err, err[-2000:]
    doc = json.loads(out)
    assert doc["error"]["type"] == "server_error"


# =========================================================================== §4 deadlines

ME = {"userName": "trickle@example.com", "active": True, "id": "1"}


def test_a_trickling_answer_is_cut_at_the_read_timeout_over_the_whole_answer(pat):
    """One byte every 0.25 s (each recv well inside the 1 s read timeout): the whole answer would
    take about a minute. It is cut at 1 s per attempt and the step ends by its 4 s deadline."""
    body = json.dumps(ME).encode()
    with Trap() as trap:
        trap.on(r"/api/2\.0/preview/scim/v2/Me", Answer(200, body, {"Content-Type": "application/json"}, trickle=0.25),
                times=None)
        connector = Connector(read_timeout=1, retry_timeout=4, policy=FAST)
        finished, out, err = bounded(lambda: connector.run("get_current_user", via(trap, pat)), 40, trap.close)
        trickle_seconds = (len(body) + 100) * 0.25
    assert finished, "the trickling answer was read to its end"
    assert isinstance(err, ConnectorError) and err.type == "timeout", (out, err)
    assert "did not arrive in full" in err.message
    assert trickle_seconds > 40


def test_trickling_headers_are_cut_too_and_an_unsafe_post_is_not_re_sent(pat):
    with Trap() as trap:
        trap.on(r"/api/2\.2/jobs/create", Answer(200, {"job_id": 1}, trickle=0.3), times=None)
        connector = Connector(read_timeout=1, retry_timeout=20, policy=FAST)
        finished, out, err = bounded(lambda: connector.run("create_job", via(trap, pat), {"name": "slow"}), 40, trap.close)
        assert finished and isinstance(err, ConnectorError) and err.type == "timeout", (out, err)
        assert trap.count("POST") == 1
    assert err.details["may_have_been_applied"] is True and "not re-sent" in err.message


def test_a_wait_whose_polls_trickle_ends_by_the_wait_deadline(pat):
    """Wait for Cluster State with a 1 s timeout; every poll's answer trickles. The wait's deadline
    (timeout + its 2 s grace) cuts the poll, not the 60 s read timeout or the 300 s retry budget."""
    cluster = {"cluster_id": "0101-010101-trickle0", "state": "PENDING"}
    with Trap() as trap:
        trap.on(r"/api/2\.1/clusters/get", Answer(200, cluster, trickle=0.5), times=None)   # about 65 s an answer
        connector = Connector(policy=FAST)
        finished, out, err = bounded(lambda: connector.run("wait_for_cluster_state", via(trap, pat), {
            "cluster_id": cluster["cluster_id"], "timeout_seconds": 1, "poll_interval_seconds": 0.1}), 30, trap.close)
    assert finished, "the wait ran past its deadline"
    assert isinstance(err, ConnectorError) and err.type == "timeout", (out, err)


def _sp_via(trap):
    return {"type": "service_principal", "token_url": f"{trap.url}/oidc/v1/token", "client_id": "trap-client",
            "client_secret": "trap-secret-0123456789"}


TOKEN = {"access_token": "trap-access-token-abcdef0123", "token_type": "Bearer", "expires_in": 3600}


def test_a_token_fetch_obeys_the_step_deadline(pat):
    """The token endpoint holds its answer. A Raw Request with a 1 s timeout ends with a classified
    timeout while the endpoint still holds it (the old token call had its own 120 s budget)."""
    release = threading.Event()
    with Trap() as trap:
        trap.on(r"/oidc/v1/token", Answer(200, TOKEN, hold=release), times=None)
        connector = Connector(policy=FAST)
        finished, out, err = bounded(lambda: connector.run("raw_request", _sp_via(trap), {
            "url": "/2.0/preview/scim/v2/Me", "method": "GET", "timeout": 1000}), 30)
        held = not release.is_set()
        release.set()
    assert finished and held, "the token fetch outlived the step's deadline"
    assert isinstance(err, ConnectorError) and err.type == "timeout", (out, err)


def test_threads_waiting_for_the_token_lock_give_up_at_their_own_deadline(pat):
    """Thread A (20 s timeout) is fetching the token; the endpoint holds it. Four threads with a 1 s
    timeout wait for A's fetch and each gives up at its own deadline, while A is still fetching.
    Then the endpoint answers and A succeeds with the one token."""
    release = threading.Event()
    with Trap() as trap:
        trap.on(r"/oidc/v1/token", Answer(200, TOKEN, hold=release), times=None)
        trap.on(r"/api/2\.0/preview/scim/v2/Me", json_answer(ME), times=None)
        connector = Connector(policy=FAST)
        conn = _sp_via(trap)
        results = {}

        def call(name, ms):
            try:
                results[name] = connector.run("raw_request", conn, {"url": "/2.0/preview/scim/v2/Me", "method": "GET",
                                                                    "timeout": ms})
            except ConnectorError as exc:
                results[name] = exc

        a = threading.Thread(target=call, args=("a", 20000))
        a.start()
        end = time.monotonic() + 10
        while trap.count("POST", r"/oidc/v1/token") == 0 and time.monotonic() < end:
            time.sleep(0.01)
        waiters = [threading.Thread(target=call, args=(f"b{i}", 1000)) for i in range(4)]
        for t in waiters:
            t.start()
        for t in waiters:
            t.join(15)
        gave_up_while_held = not release.is_set() and all(not t.is_alive() for t in waiters)
        release.set()
        a.join(30)
    assert gave_up_while_held, "threads waiting for the token lock did not give up at their deadline"
    for i in range(4):
        err = results[f"b{i}"]
        assert isinstance(err, ConnectorError) and err.type == "timeout", err
    assert results["a"]["userName"] == ME["userName"]
    assert trap.count("POST", r"/oidc/v1/token") == 1


def test_a_token_endpoint_that_fails_mid_wait_ends_the_wait_by_its_deadline(emulator, proxy):
    """Through the proxy, 0.3 s into a 1 s wait the workspace starts rejecting the token (403
    Invalid access token) and the token endpoint answers 503 from then on. The wait ends by its own
    deadline (timeout + 2 s grace), not after the token call's budget (here the 60 s retry budget).
    (The proxy plays the expiry, so the shared emulator's tokens stay valid for other tests.)"""
    expired = threading.Event()
    proxy.on(r"/oidc/v1/token", lambda seen, up: databricks_error(503, "TEMPORARILY_UNAVAILABLE", "down")
             if expired.is_set() else up, method="POST", times=None, forward=True)
    proxy.on(r"/api/2\.1/clusters/get", lambda seen, up: Answer(403, {"error_code": 403, "message": "Invalid access token."})
             if expired.is_set() else up, method="GET", times=None, forward=True)
    connector = Connector(retry_timeout=60, policy=FAST)
    sp = {**fresh_sp(emulator), "token_url": f"{proxy.url}/oidc/v1/token"}
    cid = S.seed_cluster(emulator, "PENDING", transitions=False)
    connector.run("get_current_user", sp)
    timer = threading.Timer(0.3, expired.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(ConnectorError) as exc:
            connector.run("wait_for_cluster_state", sp, {"cluster_id": cid, "timeout_seconds": 1,
                                                          "poll_interval_seconds": 0.1})
    finally:
        timer.cancel()
    assert expired.is_set() and proxy.count("POST", r"/oidc/v1/token") >= 2
    assert exc.value.type in ("timeout", "unavailable")
    assert time.monotonic() - started < 60 / 2, "the token call ran on its own budget"


def _attempt_lines(text):
    return len(re.findall(r"\[databricks\] GET \S+ failed after", text))


@pytest.mark.parametrize("host", ["refused", "dns"])
def test_an_unreachable_host_fails_after_two_quick_retries(host, capsys):
    url = f"http://127.0.0.1:{closed_port()}" if host == "refused" else "https://dbc-unresolvable-host.invalid"
    connector = Connector(retry_timeout=120)
    started = time.monotonic()
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_current_user", {"type": "pat", "host": url, "token": "dapi-unreachable-0"}, {"debug": True})
    elapsed = time.monotonic() - started
    assert exc.value.type == "network" and "Nothing was sent" in exc.value.hint
    assert _attempt_lines(capsys.readouterr().err) == 3
    assert elapsed < 120 / 4, "retried on the 120 s retry budget"


def test_check_against_an_unreachable_host_ends_within_15_seconds(tmp_path):
    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps({"type": "pat", "host": f"http://127.0.0.1:{closed_port()}", "token": "dapi-x-000"}))
    code, out, err, elapsed = cli("check", "--connection", str(conn_file), timeout=330)
    assert code != 0 and json.loads(out)["error"]["type"] == "network" and "Traceback" not in err
    assert elapsed < 15, f"check took {elapsed:.0f}s"


def test_a_header_with_a_line_break_fails_at_once_and_is_not_retried(emulator, pat):
    connector = Connector(retry_timeout=20)
    session = connector.session(pat).action()
    before = len(emulator.requests)
    injected = {"X-Trace": "abc\r\n" + "X-Inj" + "ected: 1"}
    started = time.monotonic()
    with pytest.raises(ConnectorError) as exc:
        session.get("/api/2.0/preview/scim/v2/Me", headers=injected)
    assert exc.value.type == "invalid_input" and "X-Trace" in exc.value.message and "X-Injected" not in texts(exc.value)
    assert len(emulator.requests) == before
    assert time.monotonic() - started < 20 / 2, "retried on the retry budget"


def test_nan_in_a_json_body_fails_at_once_and_is_not_retried(emulator, pat):
    connector = Connector(retry_timeout=20)
    session = connector.session(pat).action()
    before = len(emulator.requests)
    started = time.monotonic()
    with pytest.raises(ConnectorError) as exc:
        session.post("/api/2.2/jobs/create", {"name": "nan", "max_concurrent_runs": float("nan")}, idempotent=True)
    assert exc.value.type == "invalid_input" and "NaN" in exc.value.message
    assert len(emulator.requests) == before
    assert time.monotonic() - started < 20 / 2


@pytest.mark.parametrize("link", ["file:///etc/passwd", "http://[::1", "gopher://127.0.0.1/x", "//no-scheme/x"])
def test_a_link_that_cannot_be_fetched_fails_at_once(pat, link):
    connector = Connector(retry_timeout=20)
    session = connector.session(pat).action()
    started = time.monotonic()
    with pytest.raises(ConnectorError) as exc:
        session.storage_get(link)
    assert exc.value.type in ("server_error", "invalid_input") and "passwd" not in exc.value.message
    assert time.monotonic() - started < 20 / 2


@pytest.mark.parametrize("value", ["0", "-5", "NaN", "inf", "soon", ""])
def test_a_retry_after_that_is_not_a_wait_gets_the_policy_backoff(pat, capsys, value):
    """Retry-After 0, negative, NaN, infinite or garbage: the policy's own delay (0.3 s here, no
    jitter), read from the planned delay the debug log prints for each attempt."""
    with Trap() as trap:
        trap.on(r"/api/2\.0/preview/scim/v2/Me", databricks_error(429, "REQUEST_LIMIT_EXCEEDED", "slow", Retry_After=value),
                times=2)
        trap.on(r"/api/2\.0/preview/scim/v2/Me", json_answer(ME), times=None)
        policy = RetryPolicy(exponential=False, delay=0.3)
        Connector(policy=policy, retry_timeout=30).run("get_current_user", via(trap, pat), {"debug": True})
        sent = trap.requests("GET")
    delays = [float(d) for d in re.findall(r"retrying in ([0-9.]+)s", capsys.readouterr().err)]
    assert delays == [0.3, 0.3], delays
    assert len(sent) == 3 and all(b.time - a.time >= 0.3 * 0.9 for a, b in zip(sent, sent[1:]))


def test_a_retry_after_http_date_is_honoured_as_a_date(pat, capsys):
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    with Trap() as trap:
        trap.on(r"/api/2\.0/preview/scim/v2/Me", databricks_error(503, "TEMPORARILY_UNAVAILABLE", "later", Retry_After=when))
        trap.on(r"/api/2\.0/preview/scim/v2/Me", json_answer(ME), times=None)
        Connector(policy=RetryPolicy(exponential=False, delay=0.1), retry_timeout=30).run(
            "get_current_user", via(trap, pat), {"debug": True})
        a, b = trap.requests("GET")
    (delay,) = [float(d) for d in re.findall(r"retrying in ([0-9.]+)s", capsys.readouterr().err)]
    assert 2 < delay <= 5.2, delay                       # the date is whole seconds: 4-5 s ahead when sent
    assert b.time - a.time >= 2


def test_every_request_has_a_cap_on_attempts(pat):
    with Trap() as trap:
        trap.on(r"/api/2\.0/preview/scim/v2/Me", databricks_error(503, "TEMPORARILY_UNAVAILABLE", "down"), times=None)
        connector = Connector(retry_timeout=60, policy=RetryPolicy(base=0.01, cap=0.02))
        finished, out, err = bounded(lambda: connector.run("get_current_user", via(trap, pat)), 30, trap.close)
        assert finished and isinstance(err, ConnectorError) and err.type == "unavailable", (out, err)
        assert trap.count("GET") == RetryPolicy().max_attempts == 10


def _endless_pages(trap, per_page=1):
    def page(seen, up):
        return json_answer({"clusters": [{"cluster_id": uuid.uuid4().hex, "state": "RUNNING"} for _ in range(per_page)],
                            "next_page_token": uuid.uuid4().hex})
    trap.on(r"/api/2\.1/clusters/list", page, times=None)


def test_a_server_that_never_stops_paging_ends_the_step_by_its_deadline(pat):
    with Trap() as trap:
        _endless_pages(trap)
        connector = Connector(retry_timeout=2, policy=FAST)
        finished, out, err = bounded(lambda: connector.run("list_clusters", via(trap, pat)), 60, trap.close)
        assert finished, "pagination ran past the deadline"
        assert isinstance(err, ConnectorError) and err.type == "timeout" and "did not end" in err.message, (out, err)
        sent = trap.count("GET")
        assert sent >= 2 and sent - 1 <= err.details["pages"] <= sent      # the last page may have been in flight


def test_max_items_ends_an_endless_list(pat):
    with Trap() as trap:
        _endless_pages(trap)
        out = Connector(retry_timeout=30).run("list_clusters", via(trap, pat), {"max_items": 5})
        assert out["count"] == 5 and out["truncated"] is True and trap.count("GET") == 5


# =========================================================================== #20 resource errors

EMFILE_CHILD = r"""
import json, os, sys, time
from databricks_connector import ConnectorError
from databricks_connector.runner import Connector
conn = json.loads(sys.argv[1])
connector = Connector(retry_timeout=60)
connector.run("get_current_user", conn)                      # imports and the manifest loaded
other = dict(conn, token=sys.argv[2])                         # a new session: it needs a new socket
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
started = time.monotonic()
try:
    connector.run("get_current_user", other)
    out = {"ok": True}
except ConnectorError as err:
    out = {"error": err.to_dict()}
for fd in held:
    os.close(fd)
out["elapsed"] = time.monotonic() - started
print(json.dumps(out))
"""


def test_too_many_open_files_is_an_immediate_error_naming_the_limit(emulator, pat):
    if sys.platform != "linux":
        pytest.skip("RLIMIT_NOFILE behaviour is checked on Linux")
    p = subprocess.run([sys.executable, "-c", EMFILE_CHILD, json.dumps(pat), emulator.add_pat()], capture_output=True,
                       text=True, timeout=180, env=os.environ)
    doc = json.loads(p.stdout.strip().splitlines()[-1])
    err = doc["error"]
    assert err["type"] == "configuration" and "too many open files" in err["message"]
    assert "256" in err["message"] and "ulimit" in err["hint"]
    assert doc["elapsed"] < 60 / 4, "retried as 'could not connect'"


# =========================================================================== §5 no secret is ever printed

def test_every_string_of_an_error_document_is_redacted(emulator, pat):
    secret = pat["token"]
    doc = {"error_code": f"CODE_{secret}", "message": f"bad token {secret}",
           "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": f"echo {secret}",
                        "metadata": {"nested": [f"deep {secret}"]}}]}
    with Trap() as trap:
        trap.on(r"/api/2\.0/preview/scim/v2/Me", Answer(400, doc))
        with pytest.raises(ConnectorError) as exc:
            Connector(retry_timeout=5).run("get_current_user", via(trap, pat))
    assert exc.value.type == "bad_request"
    assert secret not in texts(exc.value)
    assert exc.value.details and "****" in json.dumps(exc.value.details)


def test_a_secret_cut_by_truncation_is_redacted_before_cutting(emulator, pat):
    secret = pat["token"]
    message = "x" * (1000 - 32) + secret + " and more" * 50
    with Trap() as trap:
        trap.on(r"/api/2\.0/preview/scim/v2/Me", Answer(500, {"error_code": "INTERNAL_ERROR", "message": message}), times=None)
        with pytest.raises(ConnectorError) as exc:
            Connector(retry_timeout=5, policy=RetryPolicy(max_attempts=1)).run("get_current_user", via(trap, pat))
    for n in range(8, len(secret) + 1):
        assert secret[:n] not in texts(exc.value), f"a {n}-character prefix of the secret survived"


SPECIAL_SECRET = "s3cr/et+with=sp&cial%chars 42"


def test_client_credentials_echoed_in_any_encoding_are_redacted(capsys):
    """A token endpoint that echoes what it received: the Basic header (with and without 'Basic'),
    the secret percent-encoded (either case, '+' for a space) and raw."""
    client_id = "client-echo-1"
    basic = base64.b64encode(f"{client_id}:{SPECIAL_SECRET}".encode()).decode()
    echoes = [f"Basic {basic}", basic, basic.rstrip("="), quote(SPECIAL_SECRET, safe=""), quote_plus(SPECIAL_SECRET),
              quote(SPECIAL_SECRET, safe="").lower(), SPECIAL_SECRET]
    with Trap() as trap:
        trap.on(r"/oidc/v1/token", Answer(401, {"error": "invalid_client", "error_description": " | ".join(echoes)}),
                times=None)
        conn = {"type": "service_principal", "token_url": f"{trap.url}/oidc/v1/token", "client_id": client_id,
                "client_secret": SPECIAL_SECRET}
        with pytest.raises(ConnectorError) as exc:
            Connector(retry_timeout=5).run("get_current_user", conn, {"debug": True})
    shown = texts(exc.value) + capsys.readouterr().err
    assert exc.value.type == "authentication"
    for form in echoes:
        assert form not in shown, f"{form!r} was shown"


@pytest.mark.parametrize("body", [
    b'{"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", "refresh_token": "rt-fresh-0123456789", '
    b'"id_token": "id-fresh-0123456789", "token_type": "mac", "expires_in": 3600}',
    b'{"access_token": "at-fresh-0123456789", "refresh_token": "rt-fresh-0123456789", "id_token": "id-fresh-0123456789", ',
    b"access_token=at-fresh-0123456789&refresh_token=rt-fresh-0123456789&id_token=id-fresh-0123456789",
])
def test_freshly_issued_tokens_never_reach_the_debug_log_or_errors(caplog, capsys, body):
    caplog.set_level(logging.DEBUG, logger="databricks_connector")
    fresh = re.findall(rb"(?:at|rt|id)-fresh-\d+|eyJ[A-Za-z0-9_.-]+", body)
    with Trap() as trap:
        trap.on(r"/oidc/v1/token", Answer(200, body, {"Content-Type": "application/json"}), times=None)
        with pytest.raises(ConnectorError) as exc:
            Connector(retry_timeout=5).run("get_current_user", _sp_via(trap), {"debug": True})
    shown = texts(exc.value) + capsys.readouterr().err + "\n".join(r.getMessage() for r in caplog.records)
    assert "response body" in shown
    for token in fresh:
        assert token.decode() not in shown


def test_a_token_answer_that_fails_does_not_show_the_tokens_in_the_error():
    with Trap() as trap:
        trap.on(r"/oidc/v1/token", Answer(500, {"message": "failed after issuing access_token=at-fresh-0123456789, "
                                                           "refresh_token: rt-fresh-0123456789"}), times=None)
        with pytest.raises(ConnectorError) as exc:
            Connector(retry_timeout=5, policy=RetryPolicy(max_attempts=1)).run("get_current_user", _sp_via(trap))
    assert "at-fresh" not in texts(exc.value) and "rt-fresh" not in texts(exc.value)


def test_presigned_link_credentials_never_reach_the_debug_log(pat, capsys, caplog):
    caplog.set_level(logging.DEBUG, logger="databricks_connector")
    creds = {"X-Amz-Signature": "amzsig0123456789abcdef", "X-Amz-Security-Token": "amzsessiontoken0123456789",
             "X-Amz-Credential": "AKIAEXAMPLE0123%2F20240101%2Fus-west-2%2Fs3%2Faws4_request",
             "sig": "azuresig0123456789%2B%3D", "X-Goog-Signature": "googsig0123456789abcdef"}
    headers = {"x-amz-server-side-encryption-customer-key": "c3NlY2tleTAxMjM0NTY3ODk=",
               "x-amz-server-side-encryption-customer-key-MD5": "bWQ1a2V5MDEyMzQ1Njc4OQ==",
               "x-ms-encryption-key": "YXp1cmVrZXkwMTIzNDU2Nzg5", "x-goog-encryption-key": "Z29vZ2tleTAxMjM0NTY3ODk="}
    with Trap() as storage:
        storage.on(r"/bucket/.*", Answer(200, b"chunk", {"Content-Type": "application/octet-stream"}), times=None)
        session = Connector().session(pat).action(debug=True)
        query = "&".join(f"{k}={v}" for k, v in creds.items())
        assert session.storage_get(f"{storage.url}/bucket/chunk-0?X-Amz-Algorithm=AWS4-HMAC-SHA256&{query}",
                                   headers=headers).status_code == 200
        assert storage.requests()[0].query["X-Amz-Signature"] == [creds["X-Amz-Signature"]]
    shown = capsys.readouterr().err + "\n".join(r.getMessage() for r in caplog.records)
    assert "/bucket/chunk-0" in shown and "AWS4-HMAC-SHA256" in shown
    for value in [*creds.values(), *headers.values()]:
        assert value not in shown, value


def test_an_input_error_never_echoes_a_header_value(emulator, pat):
    typed = "Authorization: Bearer dapi-typed-into-headers-0123456789"
    before = len(emulator.requests)
    for headers in (typed, f"X-Ok=1\n{typed}", {"Bad Name: Bearer dapi-typed-into-headers-0123456789": "v"},
                    {"X-Token": "Bearer dapi-typed-into-headers-0123456789\r\nX: y"}):
        with pytest.raises(InputError) as exc:
            Connector().run("raw_request", pat, {"url": "/2.0/preview/scim/v2/Me", "method": "GET", "headers": headers})
        assert "headers" in {p["key"] for p in exc.value.problems}
        assert "dapi-typed" not in texts(exc.value), exc.value.message
    assert len(emulator.requests) == before


@pytest.mark.parametrize("token", ["dapi0123456789abcdef\n0123456789", "dapi0123456789abcdef\r\nX-Evil: 1",
                                   "dapi01234\t56789abcdef"])
def test_a_pat_with_a_line_break_is_a_connection_error_showing_none_of_it(emulator, token):
    before = len(emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        Connector().run("get_current_user", {"type": "personal_access_token", "host": emulator.url, "token": token})
    assert exc.value.type == "configuration" and "line break" in exc.value.message
    shown = texts(exc.value)
    for part in re.split(r"\s+", token):
        if len(part) >= 6:
            assert part[:6] not in shown
    assert len(emulator.requests) == before


# =========================================================================== §6 hostile input and confinement

def _deep(n):
    doc = []
    for _ in range(n):
        doc = [doc]
    return doc


@pytest.mark.parametrize("given", ["text", "value"])
def test_deeply_nested_json_input_is_an_input_error(emulator, pat, given):
    depth = 100_000
    value = "[" * depth + "]" * depth if given == "text" else {"tasks": _deep(depth)}
    before = len(emulator.requests)
    key = "settings" if given == "text" else "settings"
    with pytest.raises(InputError) as exc:
        Connector().run("create_job", pat, {"name": "deep", key: value})
    assert exc.value.problems[0]["key"] == "settings" and "nested deeper" in exc.value.problems[0]["reason"]
    assert len(emulator.requests) == before


def test_deeply_nested_json_on_the_command_line_is_one_json_error(pat, tmp_path):
    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(pat))
    deep = tmp_path / "deep.json"
    deep.write_text('{"settings": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, out, err, _ = cli("run", "create_job", "--inputs-json", f"@{deep}", "--connection", str(conn_file))
    assert code != 0 and "Traceback" not in err
    assert json.loads(out)["error"]["type"] == "invalid_input"


def test_nan_nested_in_an_object_input_is_an_input_error(emulator, pat):
    with pytest.raises(InputError) as exc:
        Connector().run("create_job", pat, {"name": "nan", "settings": {"max_concurrent_runs": float("nan")}})
    assert "NaN" in exc.value.problems[0]["reason"]


def test_proxy_variables_are_not_used_for_a_plain_http_workspace(pat, monkeypatch):
    """HTTP_PROXY/ALL_PROXY point at a recording proxy; the loopback workspace is reached directly,
    so the bearer token never travels in cleartext to the proxy."""
    with Trap() as workspace, Trap(default=Answer(502, b"proxy")) as proxy_trap:
        workspace.on(r"/api/2\.0/preview/scim/v2/Me", json_answer(ME), times=None)
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(var, proxy_trap.url)
        out = Connector(retry_timeout=5).run("get_current_user", via(workspace, pat))
        assert out["userName"] == ME["userName"]
        assert proxy_trap.seen == [] and workspace.count("GET") == 1


@pytest.mark.parametrize("url", ["/2.0/%2e%2e/%2e%2e/oidc/v1/token", "/2.0/%2E%2E/x", "/2.0/%252e%252e/%252e%252e/oidc",
                                 "/2.0/a%2f..%2fb", "/2.0/%2e/preview/scim/v2/Me", "/2.0/x%00y", "/2.0/a%5c..%5cb"])
def test_raw_request_checks_the_decoded_path(emulator, pat, url):
    before = len(emulator.requests)
    with pytest.raises(InputError) as exc:
        Connector().run("raw_request", pat, {"url": url, "method": "GET"})
    assert "url" in {p["key"] for p in exc.value.problems}
    assert len(emulator.requests) == before


@pytest.mark.parametrize("name", ["Host", "host", "Content-Length", "Transfer-Encoding"])
def test_raw_request_refuses_a_host_header(emulator, pat, name):
    before = len(emulator.requests)
    with pytest.raises(InputError) as exc:
        Connector().run("raw_request", pat, {"url": "/2.0/preview/scim/v2/Me", "method": "GET",
                                             "headers": {name: "evil.example.com"}})
    assert "headers" in {p["key"] for p in exc.value.problems}
    assert len(emulator.requests) == before


@pytest.mark.parametrize("text,expected", [
    ("JAVA_OPTS=-Da=1,-Db=2", {"JAVA_OPTS": "-Da=1,-Db=2"}),
    ("spark.jars=a.jar,b.jar", {"spark.jars": "a.jar,b.jar"}),
    ("team=data,env=prod", {"team": "data", "env": "prod"}),
    ("A=1\nJAVA_OPTS=-Da=1,-Db=2\n\nB = two words ", {"A": "1", "JAVA_OPTS": "-Da=1,-Db=2", "B": "two words"}),
])
def test_key_value_text_keeps_commas_in_values_end_to_end(emulator, pat, text, expected):
    """Create Cluster's Spark Environment Variables typed as form text: the body the workspace
    receives carries the values as typed."""
    connector = Connector()
    cid = connector.run("create_cluster", pat, {"cluster_name": "kv", "spark_version": S.SPARK, "node_type_id": S.NODE,
                                                "num_workers": 0, "spark_env_vars": text})["cluster_id"]
    sent = [r for r in emulator.requests if r["path"] == "/api/2.1/clusters/create" and r["method"] == "POST"][-1]
    assert sent["json"]["spark_env_vars"] == expected
    assert connector.run("get_cluster", pat, {"cluster_id": cid})["spark_env_vars"] == expected


def test_a_token_with_a_line_break_from_the_token_endpoint_fails_at_once_showing_none_of_it():
    """The token endpoint issues an access token with CR/LF in it (a header injection if it were
    sent): a configuration error at once, nothing sent to the API, no part of the token shown."""
    bad = "tok-injected-0123456789\r\nX-Evil: 1"
    with Trap() as trap:
        trap.on(r"/oidc/v1/token", json_answer({"access_token": bad, "token_type": "Bearer", "expires_in": 3600}), times=None)
        trap.on(r"/api/.*", json_answer(ME), times=None)
        with pytest.raises(ConnectorError) as exc:
            Connector(retry_timeout=20).run("get_current_user", _sp_via(trap))
        assert trap.count(path=r"/api/.*") == 0
    assert exc.value.type == "configuration" and "line break" in exc.value.message
    assert "tok-injected" not in texts(exc.value) and "X-Evil" not in texts(exc.value)
