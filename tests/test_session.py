"""The shared session over real HTTP: tokens, retries, errors, debug redaction, User-Agent."""
import threading
import time

import pytest

from databricks_connector import ConnectorError
from databricks_connector.runner import Connector

from tests.helpers import fresh_sp

ME = "/api/2.0/preview/scim/v2/Me"


def test_one_token_for_100_calls_across_8_threads(emulator, connector):
    conn = fresh_sp(emulator)
    before = emulator.token_fetches
    errors, users = [], []

    def work():
        try:
            for _ in range(100 // 8 + 1):
                users.append(connector.run("get_current_user", conn)["userName"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(users) >= 100 and set(users) == {conn["client_id"]}
    assert emulator.token_fetches - before == 1


def test_token_is_refreshed_before_it_expires(emulator, connector):
    emulator.config.token_lifetime = 2  # renewed one second before expiry
    conn = fresh_sp(emulator)
    before = emulator.token_fetches
    connector.run("get_current_user", conn)
    connector.run("get_current_user", conn)
    assert emulator.token_fetches - before == 1
    time.sleep(1.2)
    connector.run("get_current_user", conn)
    assert emulator.token_fetches - before == 2


def test_a_rejected_token_is_fetched_again_once(emulator, connector):
    conn = fresh_sp(emulator)
    connector.run("get_current_user", conn)
    before = emulator.token_fetches
    emulator.expire_tokens()  # the API now answers 403 Invalid access token for the cached token
    assert connector.run("get_current_user", conn)["userName"] == conn["client_id"]
    assert emulator.token_fetches - before == 1


def test_token_endpoint_429_and_503_are_retried(emulator, connector):
    conn = fresh_sp(emulator)
    emulator.faults.add("/oidc/v1/token", "429", retry_after=1)
    emulator.faults.add("/oidc/v1/token", "503")
    assert connector.run("get_current_user", conn)["userName"] == conn["client_id"]
    assert emulator.count("POST", "/oidc/v1/token") >= 3


def test_wrong_client_secret_is_an_authentication_error(emulator, connector):
    conn = {**fresh_sp(emulator), "client_secret": "dose-wrong"}
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_current_user", conn)
    assert exc.value.type == "authentication"
    assert "Client ID and Client Secret" in exc.value.hint
    assert "dose-wrong" not in str(exc.value) and "dose-wrong" not in repr(exc.value)


def test_account_level_token_url_works(emulator, connector):
    client_id, secret = emulator.add_service_principal()
    conn = {"type": "service_principal", "token_url": emulator.account_token_url, "client_id": client_id,
            "client_secret": secret}
    assert connector.run("get_current_user", conn)["userName"] == client_id


def test_bad_token_gives_a_connection_error_with_a_hint(emulator, connector):
    conn = {"type": "personal_access_token", "host": emulator.url, "token": "dapi-not-a-real-token"}
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_current_user", conn)
    err = exc.value
    assert err.type == "authentication" and err.status == 403 and err.error_code == 403
    assert "token" in err.hint.lower()
    assert "dapi-not-a-real-token" not in str(err.to_dict())


def test_429_with_retry_after_is_retried(emulator, conn, connector):
    emulator.faults.add(ME, "429", retry_after=1)
    start = time.monotonic()
    assert connector.run("get_current_user", conn)["active"] is True
    assert time.monotonic() - start >= 0.9
    assert emulator.count("GET", ME) >= 2


def test_503_is_retried(emulator, conn, connector):
    emulator.faults.add(ME, "503", times=2)
    before = emulator.count("GET", ME)
    connector.run("get_current_user", conn)
    assert emulator.count("GET", ME) - before == 3


def test_retry_after_past_the_deadline_fails_at_once(emulator, pat):
    quick = Connector(retry_timeout=3)
    quick.run("get_current_user", pat)
    emulator.faults.add(ME, "429", retry_after=60)
    before = emulator.count("GET", ME)
    start = time.monotonic()
    with pytest.raises(ConnectorError) as exc:
        quick.run("get_current_user", pat)
    assert emulator.count("GET", ME) - before == 1            # not re-sent: the wait would pass the deadline
    assert time.monotonic() - start < 60 / 4                   # and not slept either
    assert exc.value.type == "rate_limited" and exc.value.status == 429
    assert "60s" in exc.value.hint


def test_a_get_is_retried_after_a_dropped_connection(emulator, pat, connector):
    emulator.faults.add(ME, "drop_before")
    assert connector.run("get_current_user", pat)["active"] is True


def test_a_non_idempotent_post_is_never_sent_twice(emulator, pat, connector):
    session = connector.session(pat).action()
    body = {"cluster_name": "once", "spark_version": "13.3.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 0}
    for kind in ("500", "drop_after", "502_html"):
        before_requests = emulator.count("POST", "/api/2.1/clusters/create")
        before_applied = emulator.state.applied["clusters/create"]
        emulator.faults.add("/api/2.1/clusters/create", kind)
        with pytest.raises(ConnectorError) as exc:
            session.post("/api/2.1/clusters/create", body)
        assert emulator.count("POST", "/api/2.1/clusters/create") - before_requests == 1, kind
        applied = emulator.state.applied["clusters/create"] - before_applied
        assert applied == (1 if kind == "drop_after" else 0), kind
        if kind == "drop_after":
            assert exc.value.type == "network" and "not re-sent" in exc.value.message
        else:
            assert exc.value.type == "server_error"


def test_read_timeout_on_a_get_is_retried(emulator, pat):
    quick = Connector(read_timeout=0.5)
    emulator.faults.add(ME, "delay", delay=1.5)
    assert quick.run("get_current_user", pat)["active"] is True


def test_html_502_is_classified(emulator, pat):
    quick = Connector(retry_timeout=1.5)
    emulator.faults.add(ME, "502_html", times=None)
    with pytest.raises(ConnectorError) as exc:
        quick.run("get_current_user", pat)
    assert exc.value.type == "server_error" and exc.value.status == 502
    assert "<" not in exc.value.message


def test_user_agent_and_timeouts(emulator, pat, connector):
    connector.run("get_current_user", pat)
    ua = emulator.requests[-1]["headers"]["User-Agent"]
    assert ua.startswith("databricks-connector/0.1.0 ") and "auth/pat" in ua


def test_debug_log_redacts_every_secret(emulator, conn, connector, capsys):
    emulator.faults.add(ME, "503")
    connector.run("get_current_user", conn, {"debug": True})
    with pytest.raises(ConnectorError):
        connector.run("get_cluster", conn, {"cluster_id": "nope-123", "debug": "true"})
    out, err = capsys.readouterr()
    assert "GET" in err and ME in err and "****" in err and "-> 200" in err
    secrets = [conn.get("token"), conn.get("client_secret")]
    session = connector.session(conn)
    secrets += session.connection.secret_values()
    for secret in filter(None, secrets):
        assert secret not in out and secret not in err


def test_sessions_are_shared_per_connection(emulator, pat, sp, connector):
    assert connector.session(pat) is connector.session(dict(pat))
    assert connector.session(pat) is not connector.session(sp)
