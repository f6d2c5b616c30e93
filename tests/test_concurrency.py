"""32 threads, both connection types, one emulator: no error, no crossed answers, one token per
service principal, and pooled connections reused.

TCP connections are counted on the emulator's listening socket: the test wraps the server's
``get_request`` (one call per accepted connection) and records each client port.
"""
import threading
import uuid

import pytest

from databricks_connector.runner import Connector

from tests import scenarios as S
from tests.helpers import fresh_sp

THREADS = 32
ROUNDS = 6


@pytest.fixture
def accepted(emulator):
    """Client ports of the TCP connections the emulator accepts while the test runs."""
    srv = emulator._httpd
    ports, lock = [], threading.Lock()
    original = srv.get_request

    def counting():
        sock, addr = original()
        with lock:
            ports.append(addr[1])
        return sock, addr

    srv.get_request = counting
    yield ports
    del srv.get_request


def test_32_threads_mixed_reads_on_both_connections(emulator, accepted):
    connector = Connector(read_timeout=30.0)               # its own shared sessions: a cold pool to measure
    pat = {"type": "personal_access_token", "host": emulator.url, "token": emulator.add_pat(f"conc-{uuid.uuid4().hex[:6]}@example.com")}
    pat_user = emulator.state.pats[pat["token"]]
    sp = fresh_sp(emulator)
    users = {"personal_access_token": pat_user, "service_principal": sp["client_id"]}
    clusters = [S.seed_cluster(emulator, "RUNNING", cluster_name=f"conc-{i}") for i in range(THREADS)]
    warehouses = [S.seed_warehouse(emulator, "RUNNING") for _ in range(4)]
    fetches = emulator.token_fetches
    requests_before = len(emulator.requests)
    ports_before = len(accepted)
    barrier = threading.Barrier(THREADS)
    errors, crossed, done = [], [], []

    def work(i):
        try:
            barrier.wait(timeout=30)
            for r in range(ROUNDS):
                conn = pat if (i + r) % 2 == 0 else sp
                me = connector.run("get_current_user", conn)
                if me.get("userName") != users[conn["type"]]:
                    crossed.append(("get_current_user", i, me.get("userName")))
                c = connector.run("get_cluster", conn, {"cluster_id": clusters[i]})
                if c.get("cluster_id") != clusters[i] or c.get("cluster_name") != f"conc-{i}":
                    crossed.append(("get_cluster", i, c.get("cluster_id")))
                wid = warehouses[(i + r) % len(warehouses)]
                w = connector.run("get_sql_warehouse", conn, {"warehouse_id": wid})
                if w.get("id") != wid:
                    crossed.append(("get_sql_warehouse", i, w.get("id")))
                raw = connector.run("raw_request", conn, {"url": "/2.1/clusters/get", "method": "GET",
                                                          "query_params": {"cluster_id": clusters[i]}})
                if raw.get("cluster_id") != clusters[i]:
                    crossed.append(("raw_request", i, raw.get("cluster_id")))
                listed = connector.run("list_clusters", conn, {"states": ["RUNNING"], "max_items": 3})
                if listed["count"] != len(listed["clusters"]):
                    crossed.append(("list_clusters", i, listed["count"]))
                done.append(1)
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert not crossed, crossed[:5]
    assert len(done) == THREADS * ROUNDS
    assert emulator.token_fetches - fetches == 1, "one token per service principal, shared by every thread"

    sent = len(S.api_requests(emulator.requests[requests_before:]))
    opened = len(accepted) - ports_before
    S.count("concurrency requests", sent)
    S.count("concurrency TCP connections", opened)
    assert sent >= THREADS * ROUNDS * 5
    # Two pools (one per connection's shared session) of at most 32 connections each, reused.
    assert opened <= 2 * THREADS + 2, f"{opened} connections for {sent} requests"
    assert opened * 4 < sent, f"{opened} connections for {sent} requests: the pool is not reused"


def test_sessions_and_tokens_are_per_service_principal(emulator):
    """Two service principals used from 16 threads each: one token fetch each, no answer crossed."""
    connector = Connector(read_timeout=31.0)
    a, b = fresh_sp(emulator), fresh_sp(emulator)
    fetches = emulator.token_fetches
    errors, crossed = [], []

    def work(conn):
        try:
            for _ in range(4):
                if connector.run("get_current_user", conn)["userName"] != conn["client_id"]:
                    crossed.append(conn["client_id"])
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(a if i % 2 else b,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not crossed
    assert emulator.token_fetches - fetches == 2


def test_32_threads_after_the_token_is_revoked_fetch_one_new_token(emulator):
    """Every thread's request is rejected at once (the token expired server-side): one new token is
    fetched for all of them, and every request is answered."""
    connector = Connector(read_timeout=32.0)
    sp = fresh_sp(emulator)
    connector.run("get_current_user", sp)
    emulator.expire_tokens()
    fetches = emulator.token_fetches
    barrier = threading.Barrier(THREADS)
    errors, names = [], []

    def work():
        try:
            barrier.wait(timeout=30)
            names.append(connector.run("get_current_user", sp)["userName"])
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert names == [sp["client_id"]] * THREADS
    assert emulator.token_fetches - fetches == 1


def test_32_threads_through_a_burst_of_429_and_503(emulator):
    """A burst of throttling while 32 threads read: every thread retries on its own and gets its own answer."""
    connector = Connector(read_timeout=33.0)
    pat = emulator.connections()["personal_access_token"]
    sp = fresh_sp(emulator)
    clusters = [S.seed_cluster(emulator, "RUNNING", cluster_name=f"burst-{i}") for i in range(THREADS)]
    emulator.faults.add(r"/api/2\.1/clusters/get", "429", times=THREADS // 2, method="GET", retry_after=0.2)
    emulator.faults.add(r"/api/2\.1/clusters/get", "503", times=THREADS // 2, method="GET")
    barrier = threading.Barrier(THREADS)
    errors, crossed = [], []
    before = emulator.count("GET", r"/api/2\.1/clusters/get")

    def work(i):
        try:
            barrier.wait(timeout=30)
            conn = pat if i % 2 else sp
            out = connector.run("get_cluster", conn, {"cluster_id": clusters[i], "debug": i % 4 == 0})
            if out["cluster_id"] != clusters[i]:
                crossed.append(i)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert not crossed
    assert emulator.count("GET", r"/api/2\.1/clusters/get") - before == 2 * THREADS   # each fault fired once
