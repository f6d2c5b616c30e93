"""Long-lived hosts: the session cache is bounded (least recently used out first, idle sessions
expired, evicted sessions closed), never closes a session under a running call, and can be closed
(``Connector.close()``, ``databricks_connector.close()``); the pool follows the load (64 threads
on one connection, no "connection pool is full"). Counted over real HTTP: sessions, their closed
flag, and TCP connections the emulator accepts or that are still open to it."""
import dataclasses
import logging
import threading
import time

import pytest

import databricks_connector
from databricks_connector.connections import build
from databricks_connector.runner import Connector


def pats(emulator, n, tag):
    return [{"type": "personal_access_token", "host": emulator.url, "token": emulator.add_pat(f"{tag}-{i}@example.com")}
            for i in range(n)]


def open_connections_to(port: int) -> int:
    """Established TCP connections whose remote end is ``port`` on this machine (client sockets)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[2].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pytest.skip("no /proc/net/tcp here")
    return n


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


def test_the_cache_is_bounded_and_closes_what_it_evicts(emulator):
    connector = Connector(max_sessions=4)
    conns = pats(emulator, 12, "lru")
    before = open_connections_to(emulator.port)
    shared = []
    for conn in conns:
        assert connector.run("get_current_user", conn)["active"] is True
        shared.append(connector.session(conn))
    assert len(connector.sessions) == 4
    assert [s.closed for s in shared] == [True] * 8 + [False] * 4
    assert open_connections_to(emulator.port) - before <= 4
    assert connector.sessions.stats()["evicted"] == 8


def test_the_least_recently_used_session_goes_first(emulator):
    connector = Connector(max_sessions=2)
    a, b, c = pats(emulator, 3, "order")
    connector.run("get_current_user", a)
    connector.run("get_current_user", b)
    sa, sb = connector.session(a), connector.session(b)
    connector.run("get_current_user", a)                 # a is now the most recently used
    connector.run("get_current_user", c)
    assert sb.closed and not sa.closed


def test_idle_sessions_expire(emulator):
    connector = Connector(session_idle_seconds=0.3)
    a, b = pats(emulator, 2, "idle")
    connector.run("get_current_user", a)
    sa = connector.session(a)
    time.sleep(0.5)
    connector.run("get_current_user", b)
    assert sa.closed and len(connector.sessions) == 1


def test_a_session_in_use_is_never_evicted(emulator):
    connector = Connector(max_sessions=1)
    a, *others = pats(emulator, 4, "busy")
    sa = connector.session(a, _busy=True)               # as a running call holds it
    for conn in others:
        connector.run("get_current_user", conn)
    assert not sa.closed
    connector.sessions.release(sa)
    connector.run("get_current_user", others[0])
    assert sa.closed and len(connector.sessions) == 1


def test_many_threads_over_more_connections_than_the_cache_holds(emulator):
    """16 threads over 8 connections with room for 2 sessions: sessions are evicted all the time,
    never one a running call uses; every call answers for its own connection."""
    connector = Connector(max_sessions=2)
    conns = pats(emulator, 8, "churn")
    users = {c["token"]: emulator.state.pats[c["token"]] for c in conns}
    errors, crossed = [], []

    def work(i):
        try:
            for r in range(6):
                conn = conns[(i + r) % len(conns)]
                me = connector.run("get_current_user", conn)
                if me["userName"] != users[conn["token"]]:
                    crossed.append(i)
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert not crossed
    assert len(connector.sessions) <= 2 + 16                # over the bound only while calls hold sessions
    assert connector.sessions.stats()["busy"] == 0


def test_close_releases_every_session_and_the_connector_stays_usable(emulator, pat):
    connector = Connector()
    connector.run("get_current_user", pat)
    shared = connector.session(pat)
    connector.close()
    assert shared.closed and len(connector.sessions) == 0
    assert connector.run("get_current_user", pat)["active"] is True
    assert connector.session(pat) is not shared


def test_module_level_close(emulator, pat):
    databricks_connector.run("get_current_user", pat)
    from databricks_connector.runner import default

    shared = default().session(pat)
    with Connector() as other:
        other.run("get_current_user", pat)
        other_shared = other.session(pat)
        databricks_connector.close()
        assert shared.closed and other_shared.closed
    assert databricks_connector.run("get_current_user", pat)["active"] is True


def test_sessions_are_keyed_by_the_connection_fingerprint(emulator, pat):
    """What a connection type with a rotating credential (user OAuth refresh tokens) relies on: two
    connections with the same fingerprint share one session; the document a session was first seen
    with finds it again without being rebuilt."""
    connector = Connector()
    first = build(pat)
    rotated = dataclasses.replace(build({**pat, "token": emulator.add_pat()}), fingerprint=first.fingerprint)
    assert connector.session(first) is connector.session(rotated)
    doc_session = connector.session(pat)
    assert connector.session(dict(pat)) is doc_session
    assert connector.session(first) is doc_session        # the document builds to the same fingerprint


def test_64_threads_on_one_connection_without_pool_starvation(emulator, accepted, caplog):
    """64 threads on one PAT connection: no "Connection pool is full" warning (urllib3 discards a
    connection on return when the pool is full and opens a new one next time), every call answers,
    and the pool keeps its connections (at most one per thread is opened)."""
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    connector = Connector(read_timeout=34.0)
    conn = {"type": "personal_access_token", "host": emulator.url, "token": emulator.add_pat("pool@example.com")}
    connector.run("get_current_user", conn)
    before = len(accepted)
    barrier = threading.Barrier(64)
    errors = []

    def work():
        try:
            barrier.wait(30)
            for _ in range(5):
                connector.run("get_current_user", conn)
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    full = [r for r in caplog.records if "pool is full" in r.getMessage()]
    assert not full, f"{len(full)} 'connection pool is full' warnings"
    assert len(accepted) - before <= 64
