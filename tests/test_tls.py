"""TLS as with a real workspace: the emulator serves HTTPS with its own certificate authority, the
connection documents carry it as the CA bundle and are enough on their own, and a wrong CA, an
expired certificate or a certificate for another name is a classified TLS error before anything,
least of all a secret, is sent. Trap servers here present such certificates and record whether any
HTTP request reached them."""
import datetime as dt
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from databricks_connector import ConnectorError
from databricks_connector.emulator import Emulator, tls
from databricks_connector.runner import Connector

from tests.conftest import ALL_CONNECTION_TYPES



@pytest.fixture
def no_env_ca(monkeypatch):
    """Nothing but the connection document tells the connector whom to trust."""
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def https_emulator(emulator):
    if emulator.scheme != "https":
        pytest.skip("the suite runs over plain http (--emulator-http)")
    return emulator


class Trap:
    """A loopback HTTPS server with a chosen certificate; records every HTTP request it gets."""

    def __init__(self, context):
        self.seen = []
        trap = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                trap.seen.append({"path": self.path, "headers": dict(self.headers),
                                  "body": self.rfile.read(length) if length else b""})
                data = json.dumps({"userName": "trap", "access_token": "trap-token", "token_type": "Bearer",
                                   "expires_in": 3600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.connections = 0                                 # TCP connections accepted (handshakes tried)
        accept = self.server.get_request

        def counting():
            pair = accept()
            self.connections += 1
            return pair

        self.server.get_request = counting
        tls.serve(self.server, context)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _expired():
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    return tls.authority().server_context(not_before=past - dt.timedelta(days=30), not_after=past)


BAD = {
    "another authority": lambda: tls.Authority("Some Other CA").server_context(),
    "an expired certificate": _expired,
    "a certificate for another name": lambda: tls.authority().server_context(["dbc-1234.cloud.databricks.com"]),
}
WHY = {"another authority": "self-signed certificate in certificate chain", "an expired certificate": "expired",
       "a certificate for another name": "mismatch"}


@pytest.fixture(params=list(BAD))
def trap(request):
    server = Trap(BAD[request.param]())
    server.case = request.param
    yield server
    server.close()


def connections_to(trap, ca_bundle):
    """One connection of each type whose every request (API and token) goes to the trap."""
    url = trap.url
    return {
        "personal_access_token": {"type": "personal_access_token", "host": url, "token": "dapi-trap-secret-0001"},
        "service_principal": {"type": "service_principal", "token_url": f"{url}/oidc/v1/token",
                              "client_id": "cid-trap", "client_secret": "dose-trap-secret-0002"},
        "oauth_user": {"type": "oauth_user", "host": url, "access_token": "eyJ-trap-access-0003",
                       "refresh_token": "doau-trap-refresh-0004", "expires_at": "2000-01-01T00:00:00Z"},
        "azure_service_principal": {"type": "azure_service_principal", "host": url, "authority_host": url,
                                    "tenant_id": "tenant-trap", "client_id": "cid-trap",
                                    "client_secret": "Trap8Q~entra-secret-0005"},
        "workload_identity_federation": {"type": "workload_identity_federation", "host": url,
                                         "client_id": "cid-trap", "oidc_token_env": "TRAP_OIDC_TOKEN"},
    } if ca_bundle is None else {k: {**v, "ca_bundle": ca_bundle} for k, v in connections_to(trap, None).items()}


@pytest.mark.parametrize("kind", ALL_CONNECTION_TYPES)
def test_a_bad_certificate_is_a_tls_error_before_any_secret_is_sent(trap, kind, no_env_ca, monkeypatch):
    monkeypatch.setenv("TRAP_OIDC_TOKEN", "eyJ.trap-oidc-token-0006.sig")
    conn = connections_to(trap, tls.authority().path)[kind]          # our CA: only the certificate is wrong
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=3).run("get_current_user", conn)
    err = exc.value
    assert err.type == "network" and "TLS verification failed" in err.message, (trap.case, err)
    assert WHY[trap.case] in err.message and "CA bundle" in err.hint
    assert trap.seen == [], f"{trap.case}: an HTTP request got through"
    assert trap.connections == 1, "a refused certificate is not tried again"
    text = json.dumps(err.to_dict()) + str(err) + repr(err)
    for secret in ("dapi-trap", "dose-trap", "eyJ-trap", "doau-trap", "Trap8Q~", "trap-oidc"):
        assert secret not in text


def test_the_right_ca_bundle_is_what_makes_the_trap_trusted(no_env_ca):
    """The control for the case above: the same trap with a good certificate is reached."""
    server = Trap(tls.authority().server_context())
    try:
        conn = connections_to(server, tls.authority().path)["personal_access_token"]
        assert Connector(retry_timeout=3).run("get_current_user", conn)["userName"] == "trap"
        assert server.seen[0]["headers"]["Authorization"] == "Bearer dapi-trap-secret-0001"
    finally:
        server.close()


@pytest.mark.parametrize("kind", ALL_CONNECTION_TYPES)
def test_connection_documents_alone_are_enough(https_emulator, kind, no_env_ca):
    conn = https_emulator.connections()[kind]
    assert conn["ca_bundle"] == https_emulator.ca_bundle
    assert Connector().run("get_current_user", conn)["active"] is True


@pytest.mark.parametrize("kind", ALL_CONNECTION_TYPES)
def test_without_the_ca_bundle_the_emulator_is_not_trusted(https_emulator, kind, no_env_ca):
    conn = {k: v for k, v in https_emulator.connections()[kind].items() if k != "ca_bundle"}
    before = len(https_emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=3).run("get_current_user", conn)
    assert exc.value.type == "network" and "TLS" in exc.value.message
    assert len(https_emulator.requests) == before           # refused in the handshake: no request arrived


def test_a_connections_ca_bundle_wins_over_requests_ca_bundle(https_emulator, monkeypatch, tmp_path):
    """REQUESTS_CA_BUNDLE naming another authority does not replace the CA bundle a connection names
    (plain requests would let it)."""
    other = tls.Authority("Unrelated CA", directory=str(tmp_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", other.path)
    conn = https_emulator.connections()["personal_access_token"]
    assert Connector().run("get_current_user", conn)["active"] is True
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_emulator.url + "/api/2.0/preview/scim/v2/Me", timeout=10,
                     headers={"Authorization": f"Bearer {conn['token']}"})


def test_a_wrong_ca_bundle_in_the_connection_is_refused(https_emulator, tmp_path, no_env_ca):
    other = tls.Authority("Unrelated CA", directory=str(tmp_path))
    conn = {**https_emulator.connections()["service_principal"], "ca_bundle": other.path}
    before = len(https_emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=3).run("get_current_user", conn)
    assert exc.value.type == "network" and "TLS" in exc.value.message
    assert len(https_emulator.requests) == before           # the token request never reached the token endpoint


def test_presigned_links_are_https_too(https_emulator, connector, no_env_ca):
    from databricks_connector.emulator.statements import storage as storage_of

    from tests import scenarios as S

    wid = S.seed_warehouse(https_emulator, "RUNNING")
    storage = storage_of(https_emulator.state)
    assert storage.scheme == "https"
    before = len(storage.requests)
    out = connector.run("execute_sql_statement", https_emulator.connections()["personal_access_token"],
                        {"warehouse_id": wid, "statement": "SELECT 2 AS two", "disposition": "EXTERNAL_LINKS"})
    assert out["rows"] == [{"two": 2}] and len(storage.requests) > before


def test_a_client_that_stalls_in_the_handshake_does_not_hold_up_the_emulator(https_emulator, connector):
    """Handshakes run in each connection's own thread: a client that connects and sends nothing
    does not stop everyone else."""
    stalled = socket.create_connection(("127.0.0.1", https_emulator.port))
    try:
        started = time.monotonic()
        assert connector.run("get_current_user", https_emulator.connections()["personal_access_token"])["active"]
        assert time.monotonic() - started < tls.HANDSHAKE_TIMEOUT / 2
    finally:
        stalled.close()


def test_plain_http_stays_available():
    with Emulator(tls=False) as emu:
        assert emu.url.startswith("http://") and emu.ca_bundle is None
        conns = emu.connections()
        assert all("ca_bundle" not in c for c in conns.values())
        connector = Connector()
        for kind in ALL_CONNECTION_TYPES:
            assert connector.run("get_current_user", conns[kind])["active"] is True, kind


def test_the_authority_certificates_are_well_formed():
    """What strict verifiers (OpenSSL's X509_STRICT, as Python 3.13 enables) require of a chain."""
    from cryptography import x509

    ca = x509.load_pem_x509_certificate(tls.authority().pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).critical
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert_path, _ = tls.authority().issue()
    leaf = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    assert leaf.issuer == ca.subject
    assert leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
