"""The server's boundaries: its API key, where a request-supplied host may point, browsers from
other origins, what it refuses to start with, and that no secret reaches its logs."""
from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

pytest.importorskip("starlette")
pytest.importorskip("mcp")

from tests.server_harness import API_KEY, ServerProcess, ca_args, connection_headers  # noqa: E402

GUARDED = [("POST", "/actions/get_current_user"), ("POST", "/pickers/select_cluster"), ("GET", "/connections"),
           ("POST", "/connections/test"), ("GET", "/operations/op1.abc.def"), ("POST", "/mcp")]


@pytest.fixture(scope="module")
def server(emulator):
    with ServerProcess(*ca_args(emulator)) as s:
        yield s


class Trap:
    """A loopback HTTP server that counts what reaches it (a host the server must not contact)."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                hits.append((self.command, self.path, dict(self.headers)))
                body = b'{"error_code": "UNAUTHENTICATED", "message": "trap"}'
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def trap():
    t = Trap()
    yield t
    t.close()


# ----------------------------------------------------------------------------- the API key

@pytest.mark.parametrize("method,path", GUARDED)
def test_every_route_that_runs_something_needs_the_key(server, pat, method, path):
    conn = connection_headers(pat)
    for key in (None, "wrong-key-0123456789", API_KEY[:-1], API_KEY + "x"):
        h = dict(conn, **({"X-API-Key": key} if key else {}))
        h.setdefault("Content-Type", "application/json")
        h["Accept"] = "application/json, text/event-stream"
        r = requests.request(method, server.url + path, headers=h, data=b"{}" if method == "POST" else None, timeout=30)
        assert r.status_code == 401, (path, key, r.status_code, r.text[:200])
        assert r.json()["error"]["type"] == "authentication"


def test_the_right_key_in_either_header(server, pat):
    for h in ({"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
        r = requests.post(server.url + "/actions/get_current_user", json={}, headers={**connection_headers(pat), **h},
                          timeout=30)
        assert r.status_code == 200, r.text


def test_documents_and_the_page_need_no_key(server):
    for path in ("/healthz", "/openapi.json", "/swagger.json", "/spec", "/", "/static/playground.js"):
        assert requests.get(server.url + path, timeout=30).status_code == 200, path


def _serve_refuses(*args, env=None) -> dict:
    environ = dict(os.environ, **(env or {}))
    out = subprocess.run([sys.executable, "-m", "databricks_connector", "serve", "--port", "0", *args],
                         capture_output=True, text=True, timeout=60, env=environ)
    assert out.returncode != 0
    return json.loads(out.stdout)["error"]


def test_serve_refuses_to_start_without_a_key_or_with_no_auth_off_loopback():
    err = _serve_refuses()
    assert err["type"] == "configuration" and "--api-key-env" in err["message"]
    err = _serve_refuses("--no-auth", "--host", "0.0.0.0")
    assert "loopback" in err["message"]
    err = _serve_refuses("--api-key-env", "DBC_SHORT_KEY", env={"DBC_SHORT_KEY": "short"})
    assert "DBC_SHORT_KEY" in err["message"] and "short" not in err["message"].replace("DBC_SHORT_KEY", "")
    err = _serve_refuses("--api-key-env", "DBC_UNSET_KEY_XYZ", "--sync-budget", "0", "--allowed-hosts", "bad host!")
    assert "DBC_UNSET_KEY_XYZ" in err["message"] and "--sync-budget" in err["message"] and "bad host!" in err["message"]


def test_no_auth_on_loopback(emulator, pat):
    with ServerProcess("--no-auth", *ca_args(emulator), api_key=None) as s:
        r = requests.post(s.url + "/actions/get_current_user", json={}, headers=connection_headers(pat), timeout=30)
        assert r.status_code == 200, r.text


# ----------------------------------------------------------------------------- allowed hosts

def test_a_disallowed_host_is_refused_before_any_request(emulator, trap):
    with ServerProcess("--allowed-hosts", "127.0.0.1,*.cloud.databricks.com", *ca_args(emulator)) as s:
        secret = "dapi-caller-token-for-the-trap-0001"
        refused = s.post("/actions/get_current_user", headers={"X-Databricks-Host": f"http://localhost:{trap.port}",
                                                              "X-Databricks-Token": secret})
        assert refused.status_code == 403, refused.text
        err = refused.json()["error"]
        assert err["type"] == "permission_denied" and "localhost" in err["message"]
        sp = s.post("/actions/get_current_user", headers={
            "X-Databricks-Token-Url": f"http://localhost:{trap.port}/oidc/v1/token", "X-Databricks-Client-Id": "id",
            "X-Databricks-Client-Secret": "secret-value-of-the-caller"})
        assert sp.status_code == 403
        assert trap.hits == []                      # nothing left the server
        # the control: the same trap under an allowed name is reached (so the check above is what stopped it)
        allowed = s.post("/actions/get_current_user", headers={"X-Databricks-Host": f"http://127.0.0.1:{trap.port}",
                                                              "X-Databricks-Token": secret})
        assert allowed.status_code == 401 and len(trap.hits) >= 1


def test_default_allowed_hosts_are_databricks_and_loopback(server):
    for host in ("evil.example.com", "cloud.databricks.com.evil.example", "databricks.com", "10.0.0.1"):
        r = server.post("/actions/get_current_user", headers={"X-Databricks-Host": host, "X-Databricks-Token": "dapi-x"})
        assert r.status_code == 403, (host, r.text)
    from databricks_connector.server.credentials import AllowedHosts

    allowed = AllowedHosts()
    for host in ("dbc-1234.cloud.databricks.com", "adb-1.2.azuredatabricks.net", "1.2.gcp.databricks.com",
                 "accounts.cloud.databricks.com", "127.0.0.1", "localhost", "::1"):
        assert allowed.allows(host), host


def test_named_connections_are_the_operators_and_not_filtered(emulator, tmp_path):
    (tmp_path / "emu.json").write_text(json.dumps(emulator.connections()["personal_access_token"]))
    with ServerProcess("--allowed-hosts", "*.cloud.databricks.com", "--connections", str(tmp_path), *ca_args(emulator)) as s:
        assert s.post("/actions/get_current_user", headers={"X-Databricks-Connection": "emu"}).status_code == 200
        r = s.post("/actions/get_current_user", conn=emulator.connections()["personal_access_token"])
        assert r.status_code == 403
        bad = s.post("/actions/get_current_user", headers={"X-Databricks-Connection": "../emu"})
        assert bad.status_code == 401


# ----------------------------------------------------------------------------- browsers

def test_cross_origin_and_rebound_hosts_are_refused(server, pat):
    h = {**server.headers(pat), "Content-Type": "application/json"}
    other = requests.post(server.url + "/actions/get_current_user", data=b"{}", headers={**h, "Origin": "https://evil.example"},
                          timeout=30)
    assert other.status_code == 403
    rebound = requests.post(server.url + "/actions/get_current_user", data=b"{}",
                            headers={**h, "Host": "evil.example.com"}, timeout=30)
    assert rebound.status_code == 403
    same = requests.post(server.url + "/actions/get_current_user", data=b"{}", headers={**h, "Origin": server.url},
                         timeout=30)
    assert same.status_code == 200
    page = requests.get(server.url + "/", timeout=30)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


# ----------------------------------------------------------------------------- logs

def test_no_secret_in_the_server_logs(emulator, pat):
    from tests.helpers import fresh_sp

    sp = fresh_sp(emulator)
    wrong_key = "wrong-api-key-which-is-secret-42"
    with ServerProcess(*ca_args(emulator)) as s:
        for conn in (pat, sp):
            assert s.post("/actions/get_current_user", {"debug": True}, conn=conn).status_code == 200
            s.post("/actions/get_cluster", {"cluster_id": "0000-000000-missing0", "debug": True}, conn=conn)
            s.post("/connections/test", conn=conn)
        s.post("/actions/get_current_user", conn=dict(pat, token="dapi-rejected-secret-token-77"))
        requests.post(s.url + "/actions/get_current_user", json={}, timeout=30,
                      headers={**connection_headers(pat), "X-API-Key": wrong_key})
        requests.post(s.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30,
                      headers={**s.headers(pat), "Accept": "application/json, text/event-stream"})
        time.sleep(0.2)
        log = s.log()
    assert "POST /actions/get_current_user" in log            # the log is there, and says what happened
    for secret in (pat["token"], sp["client_secret"], API_KEY, wrong_key, "dapi-rejected-secret-token-77"):
        assert secret not in log
    assert not re.search(r"Bearer (?!\*)\S{6,}", log)         # no access token of the service principal either


def test_a_body_over_the_limit_is_refused(emulator, pat):
    with ServerProcess("--max-body", "4096", *ca_args(emulator)) as s:
        big = s.post("/actions/execute_sql_statement", {"warehouse_id": "abc", "statement": "SELECT '" + "x" * 8000 + "'"},
                     conn=pat)
        assert big.status_code == 413 and big.json()["error"]["type"] == "invalid_input"
        assert s.post("/actions/get_current_user", conn=pat).status_code == 200
