"""Where credentials may travel: hosts that are refused, Raw Request kept on the workspace,
redirects that never carry Authorization, presigned links without credentials, TLS always
verified. Complements tests/test_hosts.py and tests/test_raw_request.py."""
import json
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from databricks_connector import ConnectorError
from databricks_connector.connections import build
from databricks_connector.connections.hosts import normalize_host, parse_token_url
from databricks_connector.errors import InputError
from databricks_connector.runner import Connector
from databricks_connector.session import SharedSession

from tests.helpers import fresh_sp


# --------------------------------------------------------------------------- a tiny loopback server

class Recorder:
    """A loopback HTTP(S) server that records every request and answers with a redirect or JSON."""

    def __init__(self, redirect_to=None, status=302, tls=None):
        self.seen = []
        self.redirect_to = redirect_to
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                      "body": body})
                if recorder.redirect_to:
                    self.send_response(status)
                    self.send_header("Location", recorder.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = json.dumps({"userName": "somebody-else", "active": True, "landed": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere():
    """'Another host': reached by the name localhost, so its host name differs from 127.0.0.1."""
    r = Recorder()
    yield r
    r.close()


@pytest.fixture
def redirector(elsewhere):
    r = Recorder(redirect_to=f"http://localhost:{elsewhere.port}")
    yield r
    r.close()


def authorization_seen(recorder):
    return [r for r in recorder.seen if any(k.lower() in ("authorization", "proxy-authorization") for k in r["headers"])]


# --------------------------------------------------------------------------- hosts

@pytest.mark.parametrize("given,why", [
    ("https://dbc-1.cloud.databricks.com%40evil.com", "not a valid host"),
    ("https://dbc-1.cloud.databricks.com\\@evil.com", "user name or password"),
    ("https://dbc-1.cloud.databricks.com#@evil.com", "without a path"),
    ("https://dbc-1.cloud.databricks.com?@evil.com", "without a path"),
    ("https://:pw@dbc-1.cloud.databricks.com", "user name or password"),
    ("https://dbc-1．cloud．databricks．com", "non-ASCII"),             # fullwidth full stops
    ("https://dbc-1.cloud.data\u200bbricks.com", "non-ASCII"),           # zero-width space
    ("https://ⅾbc-1.cloud.databricks.com", "non-ASCII"),                # U+217E small roman numeral d
    ("https://dbc-1.cloud.databricks.c\u043em", "non-ASCII"),            # Cyrillic o
    ("https://\u202edbc-1.cloud.databricks.com", "non-ASCII"),           # right-to-left override
    ("https://dbc-1.cloud.databricks.com\t", None),                      # stripped: allowed
    ("ws://dbc-1.cloud.databricks.com", "must use https"),
    ("file:///etc/passwd", None),
    ("javascript:alert(1)", None),
    ("http://localhost.evil.com", "must use https"),
    ("http://127.0.0.1.nip.io", "must use https"),
    ("http://0x7f000001", "must use https"),
    ("dbc-1.cloud.databricks.com:99999", "invalid port"),
    ("dbc-1.cloud.databricks.com:abc", "invalid port"),
    ("https://dbc-1.cloud.databricks.com/../evil", "without a path"),
    ("https://dbc_1.cloud.databricks.com", "not a valid host"),
    ("https://-dbc.cloud.databricks.com", "not a valid host"),
])
def test_more_unsafe_hosts_are_refused(given, why):
    if why is None and given.endswith("\t"):
        assert normalize_host(given) == "https://dbc-1.cloud.databricks.com"
        return
    with pytest.raises(ConnectorError) as exc:
        normalize_host(given)
    assert exc.value.type == "configuration"
    if why:
        assert why in exc.value.message, exc.value.message


# Regression (found by this suite, fixed): connections/hosts.py split_url: an IDN look-alike typed in
# its punycode form (a label starting with 'xn--', e.g. dbc-1.cloud.xn--datbricks-...com) passes the
# ASCII label check; its Unicode form is refused, the punycode form should be too (no Databricks host
# uses an IDN label)


@pytest.mark.parametrize("given", ["dbc-1.cloud.xn--databrcks-7ib.com", "xn--dbc-1-9ua.cloud.databricks.com"])
def test_punycode_look_alikes_are_refused(given):
    with pytest.raises(ConnectorError):
        normalize_host(given)


def test_token_url_refusals():
    for bad in ("https://user@dbc-1.cloud.databricks.com/oidc/v1/token",
                "https://dbc-1.cloud.databrіcks.com/oidc/v1/token",
                "https://dbc-1.cloud.databricks.com/oidc/v1/token?redirect=https://evil.com",
                "https://dbc-1.cloud.databricks.com/oidc/v1/token#x",
                "https://dbc-1.cloud.databricks.com/oidc/../v1/token",
                "http://evil.com/oidc/v1/token"):
        with pytest.raises(ConnectorError) as exc:
            parse_token_url(bad)
        assert exc.value.type == "configuration"


def test_a_host_that_only_starts_like_databricks_is_a_host_of_its_own():
    """Allowed as typed (it is a valid host name), but it is its own host: nothing lets a token go
    from the real workspace to it (see the Raw Request refusals below)."""
    assert normalize_host("https://dbc.cloud.databricks.com.evil.com") == "https://dbc.cloud.databricks.com.evil.com"


# --------------------------------------------------------------------------- Raw Request stays on the host

def off_host_urls(emulator, other_port):
    host, port = "127.0.0.1", emulator.port
    scheme = emulator.scheme
    other_scheme = "http" if scheme == "https" else "https"
    return [
        "https://dbc.cloud.databricks.com.evil.com/api/2.0/clusters/list",
        "https://accounts.cloud.databricks.com.evil.com/api/2.0/accounts",
        "https://evil.com/accounts.cloud.databricks.com/api/2.0/x",
        f"{scheme}://localhost:{port}/api/2.0/preview/scim/v2/Me",       # the same server by another name
        f"{scheme}://[::1]:{port}/api/2.0/preview/scim/v2/Me",
        f"{other_scheme}://{host}:{port}/api/2.0/preview/scim/v2/Me",    # another scheme
        f"{scheme}://{host}:{other_port}/api/2.0/preview/scim/v2/Me",    # another port
        f"http://{host}:{port}@localhost:{other_port}/api/2.0/x",
        f"http://localhost:{other_port}#@{host}:{port}/api/2.0/x",
        f"http://evil.com%2F@{host}:{port}/api/2.0/x",
        f"HTTP://LOCALHOST:{other_port}/api/2.0/x",
        " \thttps://evil.com/api/2.0/x",
        "https://evil.com\\@accounts.cloud.databricks.com/api/2.0/x",
        "http://accounts.cloud.databricks.com/api/2.0/x",                # an accounts host, but plain http
        "https://accounts.cloud.databricks.com:8443@evil.com/api/2.0/x",
        "/2.0/../../../oidc/v1/token",
        "/2.0/./preview/scim/v2/Me",
        "\\\\evil.com\\api\\2.0\\x",
        "/2.0/clusters/list#@evil.com",
    ]


def test_raw_request_refuses_every_off_host_url(emulator, pat, connector, elsewhere):
    for url in off_host_urls(emulator, elsewhere.port):
        before = len(emulator.requests)
        with pytest.raises(ConnectorError) as exc:
            connector.run("raw_request", pat, {"url": url, "method": "GET"})
        assert isinstance(exc.value, InputError) and "url" in {p["key"] for p in exc.value.problems}, (url, exc.value)
        assert len(emulator.requests) == before, url
    assert elsewhere.seen == []


@pytest.mark.parametrize("url", ["//evil.com/api/2.0/preview/scim/v2/Me", "https:evil.com/api/2.0/x",
                                 "2.0/preview/scim/v2/Me?x=https://evil.com/"])
def test_raw_request_scheme_relative_looking_urls_stay_on_the_workspace(emulator, pat, connector, url):
    before = len(emulator.requests)
    try:
        connector.run("raw_request", pat, {"url": url, "method": "GET"})
    except ConnectorError as err:
        assert err.type in ("not_found", "bad_request", "invalid_input"), err
    new = emulator.requests[before:]
    assert all(r["path"].startswith("/api/") for r in new)      # if anything was sent, it went to the workspace


# --------------------------------------------------------------------------- redirects and presigned links

def test_raw_request_does_not_follow_a_redirect(pat, redirector, elsewhere, connector):
    conn = {**pat, "host": redirector.url}
    with pytest.raises(ConnectorError) as exc:
        connector.run("raw_request", conn, {"url": "/2.0/preview/scim/v2/Me", "method": "GET"})
    assert exc.value.type == "configuration" and "redirect" in exc.value.message
    assert redirector.seen and redirector.seen[0]["headers"].get("Authorization", "").startswith("Bearer ")
    assert elsewhere.seen == []


# Regression (found by this suite, fixed): connector/session.py ActionSession.response/request: a 3xx
# answer to an API call (redirects are not followed) counts as success, so the action returns {} (or
# the redirect's body) as its output; it should be a classified error naming the Location, as Raw
# Request already does


@pytest.mark.parametrize("key,inputs", [("get_current_user", {}), ("get_cluster", {"cluster_id": "0123-456789-abcdefgh"})])
def test_an_api_answer_that_redirects_is_an_error(pat, redirector, elsewhere, connector, key, inputs):
    conn = {**pat, "host": redirector.url}
    with pytest.raises(ConnectorError) as exc:
        connector.run(key, conn, inputs)
    assert exc.value.type == "configuration" and exc.value.status in (301, 302, 303, 307, 308)
    assert "redirected" in exc.value.message and ":" + elsewhere.url.rsplit(":", 1)[1] in exc.value.message


@pytest.mark.parametrize("key,inputs", [("get_current_user", {}), ("get_cluster", {"cluster_id": "0123-456789-abcdefgh"})])
def test_an_api_redirect_never_reaches_the_other_host(pat, redirector, elsewhere, connector, key, inputs):
    conn = {**pat, "host": redirector.url}
    try:
        connector.run(key, conn, inputs)
    except ConnectorError:
        pass
    assert redirector.seen and elsewhere.seen == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("which", ["pat", "sp"])
def test_a_followed_redirect_to_another_host_drops_authorization(emulator, pat, elsewhere, status, which):
    """Even when a handler asks to follow redirects, Authorization never reaches another host."""
    redirect = Recorder(redirect_to=f"http://localhost:{elsewhere.port}", status=status)
    try:
        if which == "pat":
            conn = {**pat, "host": redirect.url}
        else:   # a service principal whose token comes from the emulator, calling the redirecting host
            sp = fresh_sp(emulator)
            token = Connector().session(sp).connection.auth.token()
            conn = {"type": "personal_access_token", "host": redirect.url, "token": token}
        session = Connector().session(conn).action(debug=True)
        method = "POST" if status in (307, 308) else "GET"
        out = session.request(method, "/api/2.0/preview/scim/v2/Me", json={"x": 1} if method == "POST" else None,
                              allow_redirects=True, idempotent=True)
        assert out.get("landed") is True
        assert redirect.seen[0]["headers"].get("Authorization", "").startswith("Bearer ")
        assert elsewhere.seen and not authorization_seen(elsewhere), elsewhere.seen
    finally:
        redirect.close()


def test_presigned_links_carry_no_credentials(pat, sp, elsewhere, redirector, connector):
    for conn in (pat, sp):
        session = connector.session(conn).action()
        connector.run("get_current_user", conn)                  # the service principal has a token now
        response = session.storage_get(f"http://localhost:{elsewhere.port}/bucket/chunk-0?X-Amz-Signature=abc",
                                       headers={"x-amz-server-side-encryption": "AES256"})
        assert response.status_code == 200
        response = session.storage_get(f"{redirector.url}/bucket/chunk-1", allow_redirects=True)
    assert elsewhere.seen and not authorization_seen(elsewhere)
    assert not authorization_seen(redirector)


# Regression (found by this suite, fixed): connector/session.py SharedSession.exchange: requests made
# with auth=False (the OAuth token request, and any redirect) go through a requests.Session with
# trust_env=True and auth=None, so requests applies ~/.netrc (or $NETRC) credentials for the host: the
# service principal's Basic client credentials are replaced by the netrc login/password, which are
# sent to the token endpoint and the token fetch fails (401 invalid_client). The SDK ignores .netrc
# for the token call; pass an explicit no-op auth for auth=False requests (keeping trust_env for
# proxies)


def test_a_netrc_entry_does_not_replace_the_client_credentials(emulator, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    sp = fresh_sp(emulator)
    before = len(emulator.requests)
    try:
        assert Connector().run("get_current_user", sp)["userName"] == sp["client_id"]
    finally:
        sent = [r["headers"].get("Authorization", "") for r in emulator.requests[before:] if r["path"] == "/oidc/v1/token"]
        assert sent and all("bmV0cmMtdXNlcjpuZXRyYy1wYXNzd29yZA" not in s for s in sent)


# --------------------------------------------------------------------------- TLS

def test_tls_verification_is_on_by_default_everywhere(pat, sp):
    pat, sp = ({k: v for k, v in c.items() if k != "ca_bundle"} for c in (pat, sp))   # no CA bundle given
    for conn in (build({**pat, "host": "dbc-1.cloud.databricks.com"}),
                 build({**sp, "token_url": "https://dbc-1.cloud.databricks.com/oidc/v1/token"})):
        shared = SharedSession(conn)
        assert shared._http.verify is True
        assert shared.plain_http().verify is True
        assert shared._http.adapters["https://"].max_retries.total in (0, False)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


# Regression (found by this suite, fixed): connector/session.py _not_sent: walking the cause chain of
# a certificate error it follows SSLCertVerificationError.reason, which is a str
# ('CERTIFICATE_VERIFY_FAILED'), then reads str.__cause__ and raises AttributeError, so a self-signed
# or wrong certificate becomes an 'internal' error ('a bug in the connector') instead of the 'network'
# error 'TLS verification failed' with the CA-bundle hint


@pytest.fixture
def tls_server(self_signed, monkeypatch):
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)
    server = Recorder(tls=self_signed)
    yield server
    server.close()


def test_a_self_signed_certificate_is_a_classified_tls_error(tls_server):
    conn = {"type": "personal_access_token", "host": f"https://127.0.0.1:{tls_server.port}", "token": "dapi-tls-test-1"}
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=3).run("get_current_user", conn)
    assert exc.value.type == "network" and "TLS" in exc.value.message and "CA bundle" in exc.value.hint


def test_a_self_signed_certificate_is_refused_and_trusted_only_through_a_ca_bundle(tls_server, self_signed):
    conn = {"type": "personal_access_token", "host": f"https://127.0.0.1:{tls_server.port}", "token": "dapi-tls-test-1"}
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=3).run("get_current_user", conn)
    assert "dapi-tls-test-1" not in str(exc.value.to_dict())
    assert tls_server.seen == []                                   # nothing, not even headers, was sent
    out = Connector(retry_timeout=3).run("get_current_user", {**conn, "ca_bundle": self_signed[0]})
    assert out["landed"] is True and tls_server.seen[0]["headers"]["Authorization"] == "Bearer dapi-tls-test-1"


def test_external_links_of_a_statement_are_fetched_without_credentials(emulator, conn, connector):
    """End to end: EXTERNAL_LINKS results come from the emulator's stand-in for cloud storage, which
    records every request (and refuses one that carries Authorization)."""
    from databricks_connector.emulator.statements import storage as storage_of

    from tests import scenarios as S

    wid = S.seed_warehouse(emulator, "RUNNING")
    storage = storage_of(emulator.state)
    before = len(storage.requests)
    out = connector.run("execute_sql_statement", conn, {"warehouse_id": wid, "statement": "SELECT 1 AS one, 'a' AS two",
                                                         "disposition": "EXTERNAL_LINKS", "debug": True})
    assert out["rows"] == [{"one": 1, "two": "a"}]
    fetched = storage.requests[before:]
    assert fetched, "no link was fetched"
    assert all("authorization" not in {k.lower() for k in r["headers"]} for r in fetched)
    assert storage.auth_attempts == 0


def test_a_token_endpoint_that_redirects_gets_no_second_chance(redirector, elsewhere):
    """The client credentials (Basic) go to the token URL named in the connection and nowhere else."""
    conn = {"type": "service_principal", "token_url": f"{redirector.url}/oidc/v1/token", "client_id": "cid-redirect",
            "client_secret": "dose-redirect-secret"}
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=3).run("get_current_user", conn)
    assert exc.value.type in ("authentication", "bad_request", "configuration")
    assert "dose-redirect-secret" not in json.dumps(exc.value.to_dict())
    assert redirector.seen and redirector.seen[0]["path"] == "/oidc/v1/token"
    assert elsewhere.seen == []
