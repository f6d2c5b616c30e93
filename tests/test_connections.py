"""The connection types end to end over HTTPS against the emulator: user login (refresh, rotation
handed back, revocation), Microsoft Entra ID, workload identity federation; every action's smoke
run with each; token expiry in the middle of a long wait; 32 threads sharing one refresh; the
standard Databricks configuration; and no secret in any log."""
import json
import logging
import os
import threading
import time
import urllib.parse

import pytest

import databricks_connector as dc
from databricks_connector import ConnectorError
from databricks_connector.connections import build, fingerprint
from databricks_connector.connections.environment import from_environment
from databricks_connector.connections.oauth import refresh_margin
from databricks_connector.runner import Connector

from tests import scenarios as S
from tests.conftest import ALL_CONNECTION_TYPES
from tests.helpers import fresh, fresh_entra, fresh_federation, fresh_user

ME = "/api/2.0/preview/scim/v2/Me"
TOKEN = "/oidc/v1/token"
NEW_TYPES = ["oauth_user", "azure_service_principal", "workload_identity_federation"]
ACTIONS = S.manifest_actions(Connector())


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


def grants(emulator, kind=None) -> int:
    g = emulator.token_grants
    return g.get(kind, 0) if kind else sum(g.values())


TOKEN_KIND = {"service_principal": "client_credentials", "oauth_user": "refresh_token",
              "azure_service_principal": "entra", "workload_identity_federation": "token_exchange"}


def expired_user(emulator):
    """A user login whose access token has already expired (the next call must refresh)."""
    return {**fresh_user(emulator), "expires_at": "2000-01-01T00:00:00Z"}


# --------------------------------------------------------------------------- every action, every type

# The sign-in is the shared session's, whatever the action: two actions of each kind run with every
# new type, every other action with one of them in turn (tests/scenarios: sampled).
@pytest.mark.parametrize("key,kind", [pytest.param(k, t, id=f"{t}-{k}") for k, t in S.sampled(ACTIONS, NEW_TYPES)])
def test_every_action_runs_with_a_new_connection_type(emulator, connector, key, kind):
    if key not in S.SCENARIOS:
        pytest.skip(f"no scenario for {key} (see test_faults.py::test_every_action_has_a_scenario)")
    sc = S.SCENARIOS[key]
    conn = emulator.connections()[kind]
    inputs = S.prepared(emulator, connector, conn, key)
    out = connector.run(key, conn, inputs)
    if sc.check:
        assert sc.check(out, inputs, conn), (key, kind, str(out)[:300])
    S.count("connection smoke runs")


@pytest.mark.parametrize("kind", ALL_CONNECTION_TYPES)
def test_check_succeeds_with_each_connection_type(emulator, kind, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "conn.json"
    path.write_text(json.dumps(emulator.connections()[kind]))
    p = subprocess.run([sys.executable, "-m", "databricks_connector", "check", "--connection", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (p.stdout[-500:], p.stderr[-1000:])
    doc = json.loads(p.stdout)
    assert doc["ok"] is True and doc["connection_type"] == kind and doc["host"] == emulator.url


# --------------------------------------------------------------------------- user login

def test_a_user_login_is_refreshed_before_it_expires(emulator):
    emulator.config.user_token_lifetime = 2              # renewed one second before expiry
    conn = fresh_user(emulator)                           # its access token lives 2 s
    connector = Connector()
    before = grants(emulator, "refresh_token")
    connector.run("get_current_user", conn)
    assert grants(emulator, "refresh_token") == before   # the access token of the sign-in is used first
    time.sleep(1.2)
    assert connector.run("get_current_user", conn)["userName"] == S.PAT_USER
    assert grants(emulator, "refresh_token") == before + 1


def test_an_expired_access_token_is_refreshed_once_after_a_rejection(emulator):
    conn = fresh_user(emulator)
    connector = Connector()
    connector.run("get_current_user", conn)
    before = grants(emulator, "refresh_token")
    emulator.expire_tokens()                              # the API now answers 403 for the cached token
    assert connector.run("get_current_user", conn)["userName"] == S.PAT_USER
    assert grants(emulator, "refresh_token") == before + 1


def test_a_rotated_refresh_token_is_handed_back_and_keeps_the_session(emulator):
    conn = expired_user(emulator)
    connector = Connector()
    updates = []
    remove = dc.on_connection_update(lambda previous, updated: updates.append((previous, updated)))
    try:
        connector.run("get_current_user", conn)
    finally:
        remove()
    latest = dc.current_connection(conn)
    assert latest["refresh_token"] != conn["refresh_token"] and latest["access_token"] != conn["access_token"]
    assert {k: v for k, v in latest.items() if k not in ("access_token", "refresh_token", "expires_at")} == \
        {k: v for k, v in conn.items() if k not in ("access_token", "refresh_token", "expires_at")}
    assert latest["expires_at"] > "2001"                  # a date in the same form as given (ISO 8601)
    assert len(updates) == 1 and updates[0][0]["refresh_token"] == conn["refresh_token"]
    assert updates[0][1] == latest
    # The stored document of the platform is now `latest`: the same session, the cached access token
    assert fingerprint(latest) == fingerprint(conn)
    assert connector.session(latest) is connector.session(conn)
    before = len(emulator.requests)
    connector.run("get_current_user", latest)
    assert [r["path"] for r in emulator.requests[before:]] == [ME]        # no token request


def test_a_new_session_of_a_rotated_sign_in_starts_from_the_newest_tokens(emulator):
    """A session evicted after a rotation (or a second Connector) built from the old document does
    not try the retired refresh token: the process remembers the grant's newest tokens."""
    import gc

    conn = expired_user(emulator)
    first = Connector(retry_timeout=11)
    first.run("get_current_user", conn)        # rotates; that session is then dropped
    assert first.sessions.stats()["sessions"] == 1
    first.close()
    del first
    gc.collect()
    before = grants(emulator, "refresh_token")
    again = Connector(retry_timeout=12)
    assert again.run("get_current_user", conn)["userName"] == S.PAT_USER  # the old document, the new tokens
    assert grants(emulator, "refresh_token") == before                    # the rotated access token was still good


def test_the_old_refresh_token_no_longer_works_after_rotation(emulator):
    """What the hand-back is for: a process that kept the old document cannot sign in with it."""
    import requests

    conn = expired_user(emulator)
    Connector().run("get_current_user", conn)
    old = requests.post(emulator.token_url, data={"grant_type": "refresh_token", "refresh_token": conn["refresh_token"],
                                                  "client_id": "databricks-cli"}, timeout=10)
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"
    new = dc.current_connection(conn)["refresh_token"]
    ok = requests.post(emulator.token_url, data={"grant_type": "refresh_token", "refresh_token": new,
                                                 "client_id": "databricks-cli"}, timeout=10)
    assert ok.status_code == 200, ok.text


def test_two_connectors_share_one_sign_in(emulator):
    """Two Connector configurations (two shared sessions) of the same user login share its tokens:
    a rotation by one does not retire the refresh token the other holds."""
    emulator.config.user_token_lifetime = 1
    conn = fresh_user(emulator)
    quick, patient = Connector(retry_timeout=20), Connector(retry_timeout=60)
    assert quick.session(conn) is not patient.session(conn)
    for _ in range(3):
        time.sleep(1.1)                                    # the access token expired: refresh (and rotate)
        assert quick.run("get_current_user", conn)["userName"] == S.PAT_USER
        assert patient.run("get_current_user", conn)["userName"] == S.PAT_USER
    assert quick.session(conn).connection.auth is patient.session(conn).connection.auth


def test_different_users_never_share_a_session(emulator):
    a, b = fresh_user(emulator, "ada@example.com"), fresh_user(emulator, "bob@example.com")
    assert fingerprint(a) != fingerprint(b)
    connector = Connector()
    assert connector.run("get_current_user", a)["userName"] == "ada@example.com"
    assert connector.run("get_current_user", b)["userName"] == "bob@example.com"
    # A session belongs to a grant (its refresh token): a document with b's refresh token is b's,
    # whatever access token it carries, and never reaches a's session
    forged = {**b, "access_token": a["access_token"]}
    assert fingerprint(forged) == fingerprint(b) != fingerprint(a)
    assert connector.run("get_current_user", forged)["userName"] == "bob@example.com"


def test_a_revoked_refresh_token_is_one_clear_error(emulator):
    conn = {**fresh_user(emulator, "revoked@example.com"), "expires_at": "2000-01-01T00:00:00Z"}
    emulator.revoke_user_tokens("revoked@example.com")
    connector = Connector()
    before = emulator.count("POST", TOKEN)
    errors = []
    for _ in range(5):
        with pytest.raises(ConnectorError) as exc:
            connector.run("get_current_user", conn)
        errors.append(exc.value)
    assert emulator.count("POST", TOKEN) - before == 1     # one refusal; later calls fail at once
    err = errors[0]
    assert err.type == "authentication" and "sign" in err.message.lower() and "Sign in to Databricks again" in err.hint
    assert {e.message for e in errors} == {err.message}
    for secret in (conn["refresh_token"], conn["access_token"]):
        assert secret not in json.dumps(err.to_dict()) and secret not in repr(err)


def test_revoking_a_sign_in_stops_a_running_connection(emulator):
    conn = fresh_user(emulator, "carol@example.com")
    connector = Connector(retry_timeout=5)
    assert connector.run("get_current_user", conn)["userName"] == "carol@example.com"
    emulator.revoke_user_tokens("carol@example.com")      # the access token is revoked too
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_current_user", conn)
    assert exc.value.type == "authentication" and "Sign in to Databricks again" in exc.value.hint


def test_an_access_token_without_refresh_token_says_sign_in_again(emulator):
    conn = {k: v for k, v in fresh_user(emulator).items() if k != "refresh_token"}
    connector = Connector(retry_timeout=5)
    assert connector.run("get_current_user", conn)["userName"] == S.PAT_USER
    emulator.expire_tokens()
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_current_user", conn)
    assert exc.value.type == "authentication" and "offline_access" in exc.value.hint


def test_a_confidential_app_refreshes_with_its_secret(emulator):
    client_id, secret = emulator.add_oauth_app(["https://platform.example/callback"], confidential=True)
    conn = {**emulator.user_login(client_id=client_id), "client_secret": secret, "expires_at": 0}
    connector = Connector()
    since = len(emulator.requests)
    assert connector.run("get_current_user", conn)["userName"] == S.PAT_USER
    token_calls = [r for r in emulator.requests[since:] if r["path"] == TOKEN]
    assert len(token_calls) == 1 and token_calls[0]["headers"]["Authorization"].startswith("Basic ")
    assert isinstance(dc.current_connection(conn)["expires_at"], int)      # epoch seconds in, epoch seconds out
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=5).run("get_current_user", {**expired_user(emulator), "client_id": client_id,
                                                          "client_secret": "dose-wrong"})
    assert exc.value.type == "authentication" and "dose-wrong" not in json.dumps(exc.value.to_dict())


def test_the_cli_writes_the_rotated_tokens_back_atomically(emulator, tmp_path):
    import stat
    import subprocess
    import sys

    path = tmp_path / "conn.json"
    path.write_text(json.dumps(expired_user(emulator)))
    path.chmod(0o644)
    first = json.loads(path.read_text())
    for _ in range(2):                                     # the second run needs the first's new refresh token
        p = subprocess.run([sys.executable, "-m", "databricks_connector", "run", "get_current_user",
                            "--connection", str(path)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (p.stdout[-500:], p.stderr[-1000:])
        assert json.loads(p.stdout)["userName"] == S.PAT_USER
        doc = json.loads(path.read_text())
        assert doc["refresh_token"] not in p.stdout + p.stderr
        path.write_text(json.dumps({**doc, "expires_at": "2000-01-01T00:00:00Z"}))   # expire it again
    assert doc["refresh_token"] != first["refresh_token"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600                   # the CLI's rewrite: owner only
    assert [f.name for f in tmp_path.iterdir()] == ["conn.json"]           # no temporary file left behind


def test_thirty_two_threads_share_one_refresh(emulator):
    conn = expired_user(emulator)
    connector = Connector()
    before = grants(emulator, "refresh_token")
    barrier = threading.Barrier(32)
    errors, users = [], []

    def work():
        try:
            barrier.wait(timeout=30)
            users.append(connector.run("get_current_user", conn)["userName"])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and users == [S.PAT_USER] * 32
    assert grants(emulator, "refresh_token") - before == 1


@pytest.mark.parametrize("kind", ["service_principal", "azure_service_principal", "workload_identity_federation"])
def test_thirty_two_threads_share_one_token(emulator, kind):
    conn = fresh(emulator, kind)
    connector = Connector()
    before = grants(emulator, TOKEN_KIND[kind])
    barrier = threading.Barrier(32)
    errors = []

    def work():
        try:
            barrier.wait(timeout=30)
            connector.run("get_current_user", conn)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert grants(emulator, TOKEN_KIND[kind]) - before == 1


# --------------------------------------------------------------------------- expiry during a long wait

LIFETIME = {"service_principal": "token_lifetime", "oauth_user": "user_token_lifetime",
            "azure_service_principal": "entra_token_lifetime", "workload_identity_federation": "federation_token_lifetime"}


def rejected_api_requests(emulator, since: int) -> list:
    """API requests that carried a token that had expired (or was unknown) when they arrived."""
    from databricks_connector.emulator import entra

    bad = []
    for r in emulator.requests[since:]:
        if not r["path"].startswith("/api/"):
            continue
        token = (r["headers"].get("Authorization") or "").removeprefix("Bearer ")
        entry = emulator.state.oauth_tokens.get(token) or entra.store(emulator.state).tokens.get(token)
        if entry is None or entry["expires"] <= r["time"]:
            bad.append(r["path"])
    return bad


@pytest.mark.parametrize("kind", ["service_principal", "oauth_user", "azure_service_principal",
                                  "workload_identity_federation"])
def test_tokens_expire_many_times_during_a_long_wait(emulator, kind):
    """Scaled down from a 1-hour wait with 60-second tokens: a 9-second cluster start with tokens of
    3 seconds. Every poll carries a valid token (each is renewed before it expires, not after a
    rejection) and there is one renewal per token, not one per call."""
    lifetime, wait = 3.0, 9.0
    setattr(emulator.config, LIFETIME[kind], lifetime)
    emulator.config.oidc_token_lifetime = lifetime
    conn = fresh(emulator, kind)
    connector = Connector()
    connector.run("get_current_user", conn)                # a token of 3 s is cached
    emulator.config.cluster_start_seconds = wait
    cid = S.seed_cluster(emulator, "PENDING")
    before, since = grants(emulator, TOKEN_KIND[kind]), len(emulator.requests)
    started = time.monotonic()
    out = connector.run("wait_for_cluster_state", conn, {"cluster_id": cid, "timeout_seconds": 60,
                                                         "poll_interval_seconds": 0.3})
    elapsed = time.monotonic() - started
    assert out["state"] == "RUNNING"
    renewals = grants(emulator, TOKEN_KIND[kind]) - before
    most = int(elapsed / (lifetime - refresh_margin(lifetime))) + 1
    assert 1 <= renewals <= most, (renewals, most, elapsed)
    assert rejected_api_requests(emulator, since) == []
    S.count("token renewals during waits", renewals)


# --------------------------------------------------------------------------- Microsoft Entra ID

def test_an_entra_service_principal_that_is_not_a_workspace_user(emulator):
    conn = fresh_entra(emulator, workspace_user=False)
    connector = Connector(retry_timeout=5)
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_current_user", conn)
    assert exc.value.type == "permission_denied" and exc.value.status == 403
    with_resource = {**conn, "workspace_resource_id": emulator.azure_workspace_resource_id}
    since = len(emulator.requests)
    before = grants(emulator, "entra")
    assert connector.run("get_current_user", with_resource)["userName"] == conn["client_id"]
    api = [r for r in emulator.requests[since:] if r["path"].startswith("/api/")][0]["headers"]
    assert api["X-Databricks-Azure-Workspace-Resource-Id"] == emulator.azure_workspace_resource_id
    assert api["X-Databricks-Azure-SP-Management-Token"]
    assert grants(emulator, "entra") - before == 2           # one for Azure Databricks, one for management
    token_bodies = [r["raw"].decode() for r in emulator.requests[since:] if r["path"].endswith("/oauth2/token")]
    assert any("2ff814a6-3304-4ab8-85cb-cd0e6f879c1d" in b for b in token_bodies)
    assert any("management.core.windows.net" in b for b in token_bodies)


def test_entra_errors_are_classified_without_the_secret(emulator):
    conn = {**fresh_entra(emulator), "client_secret": "Wrong8Q~secret-value-123"}
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=5).run("get_current_user", conn)
    err = exc.value
    assert err.type == "authentication" and err.status == 401 and "AADSTS7000215" in err.message
    assert "Tenant ID, Client ID and Client Secret" in err.hint
    assert "Wrong8Q~secret-value-123" not in json.dumps(err.to_dict()) + repr(err)
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=5).run("get_current_user", {**fresh_entra(emulator), "tenant_id": "no-such-tenant"})
    assert exc.value.type == "authentication" and "AADSTS90002" in exc.value.message


def test_entra_connection_fields_are_checked_before_any_request(emulator):
    base = fresh_entra(emulator)
    for change, words in (({"tenant_id": ""}, "Tenant ID"), ({"client_secret": "", "client_id": ""}, "Client ID and Client Secret"),
                          ({"authority_host": "http://login.example.com"}, "must use https"),
                          ({"workspace_resource_id": "/subscriptions/x"}, "Workspace Resource ID")):
        before = len(emulator.requests)
        with pytest.raises(ConnectorError) as exc:
            build({**base, **change})
        assert exc.value.type == "configuration" and words in exc.value.message, (change, exc.value.message)
        assert len(emulator.requests) == before


# --------------------------------------------------------------------------- workload identity federation

def test_the_oidc_token_is_read_again_at_every_exchange(emulator, tmp_path):
    emulator.config.federation_token_lifetime = 1.5
    path = tmp_path / "token"
    conn = fresh_federation(emulator, token_file=str(path))
    path.write_text(emulator.mint_oidc_token(lifetime=60))
    connector = Connector()
    subjects = []
    for _ in range(3):
        since = len(emulator.requests)
        connector.run("get_current_user", conn)
        sent = [r for r in emulator.requests[since:] if r["path"] == TOKEN]
        subjects += [dict(urllib.parse.parse_qsl(r["raw"].decode()))["subject_token"] for r in sent]
        path.write_text(emulator.mint_oidc_token(lifetime=60))        # the CI system rotates the token
        time.sleep(1.0)
    assert len(subjects) >= 2 and len(set(subjects)) == len(subjects)


def test_the_emulators_projected_token_file_keeps_working(emulator):
    """Like a Kubernetes projected token: the file is rewritten before its token expires, and each
    exchange reads it again, so the connection outlives every OIDC token it used."""
    from databricks_connector.emulator import federation

    emulator.config.oidc_token_lifetime = 2.0
    emulator.config.federation_token_lifetime = 2.0
    conn = emulator.connections()["workload_identity_federation"]
    written = federation.token_file(emulator.state).writes
    connector = Connector()
    for _ in range(3):
        assert connector.run("get_current_user", conn)["userName"] == conn["client_id"]
        time.sleep(2.1)                                    # both the OIDC and the Databricks token expire
    assert federation.token_file(emulator.state).writes - written >= 2


def test_an_oidc_token_from_an_environment_variable(emulator, monkeypatch):
    client_id, _ = emulator.add_service_principal("federated-env")
    emulator.add_federation_policy(client_id)
    monkeypatch.setenv("MY_CI_OIDC_TOKEN", emulator.mint_oidc_token(lifetime=600))
    conn = {"type": "workload_identity_federation", "host": emulator.url, "client_id": client_id,
            "oidc_token_env": "MY_CI_OIDC_TOKEN", "ca_bundle": emulator.ca_bundle}
    assert Connector().run("get_current_user", conn)["userName"] == client_id
    monkeypatch.delenv("MY_CI_OIDC_TOKEN")
    with pytest.raises(ConnectorError) as exc:
        build(conn)
    assert exc.value.type == "configuration" and "MY_CI_OIDC_TOKEN" in exc.value.message


def test_untrusted_or_expired_oidc_tokens_are_refused_with_a_reason(emulator, tmp_path):
    path = tmp_path / "token"
    conn = fresh_federation(emulator, token_file=str(path))
    cases = [(emulator.mint_oidc_token(trusted=False), "Signature verification failed"),
             (emulator.mint_oidc_token(subject="repo:someone/else:ref:refs/heads/main"), "No federation policy"),
             (emulator.mint_oidc_token(audience="another-audience"), "No federation policy"),
             (emulator.mint_oidc_token(issuer_url="https://evil.example"), "No federation policy")]
    for token, words in cases:
        path.write_text(token)
        with pytest.raises(ConnectorError) as exc:
            Connector(retry_timeout=5).run("get_current_user", conn)
        assert exc.value.type == "authentication" and words in exc.value.message, exc.value.message
        assert "federation policy" in exc.value.hint and token not in json.dumps(exc.value.to_dict())
    path.write_text(emulator.mint_oidc_token(lifetime=-10))
    before = emulator.count("POST", TOKEN)
    with pytest.raises(ConnectorError) as exc:
        Connector(retry_timeout=5).run("get_current_user", conn)
    assert exc.value.type == "authentication" and "expired" in exc.value.message
    assert emulator.count("POST", TOKEN) == before          # an expired token is not even sent


def test_a_trusted_issuer_can_be_configured(emulator, tmp_path):
    emulator.config.federation_issuer = "https://token.actions.githubusercontent.com"
    path = tmp_path / "token"
    conn = fresh_federation(emulator, token_file=str(path))
    path.write_text(emulator.mint_oidc_token())             # minted as the configured issuer
    assert Connector().run("get_current_user", conn)["userName"] == conn["client_id"]


# --------------------------------------------------------------------------- the standard configuration

def test_standard_configuration_covers_the_new_types(tmp_path):
    env = {"DATABRICKS_HOST": "adb-1.2.azuredatabricks.net", "ARM_TENANT_ID": "t-1", "ARM_CLIENT_ID": "c-1",
           "ARM_CLIENT_SECRET": "s-1", "ARM_ENVIRONMENT": "usgovernment",
           "DATABRICKS_AZURE_RESOURCE_ID": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Databricks/workspaces/w",
           "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    assert from_environment(env) == {"type": "azure_service_principal", "host": "adb-1.2.azuredatabricks.net",
                                     "tenant_id": "t-1", "client_id": "c-1", "client_secret": "s-1",
                                     "authority_host": "login.microsoftonline.us",
                                     "workspace_resource_id": env["DATABRICKS_AZURE_RESOURCE_ID"]}
    env = {"DATABRICKS_HOST": "dbc-1.cloud.databricks.com", "DATABRICKS_OIDC_TOKEN": "x.y.z",
           "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    assert from_environment(env) == {"type": "workload_identity_federation", "host": "dbc-1.cloud.databricks.com",
                                     "oidc_token_env": "DATABRICKS_OIDC_TOKEN"}
    env = {"DATABRICKS_HOST": "dbc-1.cloud.databricks.com", "DATABRICKS_CLIENT_ID": "sp-1",
           "DATABRICKS_OIDC_TOKEN_FILEPATH": "/var/run/token", "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    with pytest.raises(ConnectorError) as exc:                # two methods: the SDK asks for an auth type too
        from_environment(env)
    assert "file-oidc" in exc.value.message and "DATABRICKS_AUTH_TYPE" in exc.value.hint
    env["DATABRICKS_AUTH_TYPE"] = "file-oidc"
    assert from_environment(env) == {"type": "workload_identity_federation", "host": "dbc-1.cloud.databricks.com",
                                     "client_id": "sp-1", "oidc_token_filepath": "/var/run/token"}
    env = {"DATABRICKS_HOST": "dbc-1.cloud.databricks.com", "DATABRICKS_AUTH_TYPE": "env-oidc",
           "DATABRICKS_OIDC_TOKEN_ENV": "ACTIONS_TOKEN", "DATABRICKS_CLIENT_ID": "sp-1",
           "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    assert from_environment(env)["oidc_token_env"] == "ACTIONS_TOKEN"
    env = {"DATABRICKS_HOST": "dbc-1.cloud.databricks.com", "DATABRICKS_AUTH_TYPE": "external-browser",
           "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    with pytest.raises(ConnectorError) as exc:
        from_environment(env)
    assert "databricks-connector login" in exc.value.hint
    cfg = tmp_path / "cfg"
    cfg.write_text("[azure]\nhost = adb-1.2.azuredatabricks.net\nazure_tenant_id = t-2\nazure_client_id = c-2\n"
                   "azure_client_secret = s-2\n\n[wif]\nhost = dbc-2.cloud.databricks.com\nauth_type = file-oidc\n"
                   "client_id = sp-2\noidc_token_filepath = /tokens/db\n")
    for profile, kind in (("azure", "azure_service_principal"), ("wif", "workload_identity_federation")):
        doc = from_environment({"DATABRICKS_CONFIG_FILE": str(cfg), "DATABRICKS_CONFIG_PROFILE": profile})
        assert doc["type"] == kind, doc
    assert from_environment({"DATABRICKS_CONFIG_FILE": str(cfg), "DATABRICKS_CONFIG_PROFILE": "azure"})["tenant_id"] == "t-2"


def test_the_cli_signs_in_with_federation_from_the_environment(emulator):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "ARM_"))}
    env.update({"DATABRICKS_HOST": emulator.url, "DATABRICKS_AUTH_TYPE": "env-oidc",
                "DATABRICKS_CLIENT_ID": emulator.federation_client_id,
                "DATABRICKS_OIDC_TOKEN": emulator.mint_oidc_token(lifetime=600), "DATABRICKS_CONFIG_FILE": os.devnull})
    p = subprocess.run([sys.executable, "-m", "databricks_connector", "run", "get_current_user"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-500:] + p.stderr[-500:]
    assert json.loads(p.stdout)["userName"] == emulator.federation_client_id
    assert env["DATABRICKS_OIDC_TOKEN"] not in p.stdout + p.stderr


# --------------------------------------------------------------------------- no secret in any log

def test_no_secret_in_any_log_even_with_debug_logging_for_everything(emulator, caplog, capsys):
    """DEBUG for every logger of the process (as `logging.basicConfig(level=DEBUG)` would): requests-
    oauthlib logs token requests and answers, and the connector masks them. (The emulator's own
    oauthlib server logs, in this process only because the emulator is, are left out.)"""
    caplog.set_level(logging.DEBUG)
    since = len(emulator.requests)
    conns = [expired_user(emulator), fresh_entra(emulator), fresh_federation(emulator), fresh(emulator, "service_principal")]
    conns.append({**fresh_entra(emulator, workspace_user=False), "workspace_resource_id": emulator.azure_workspace_resource_id})
    connector = Connector()
    for conn in conns:
        connector.run("get_current_user", conn, {"debug": True})
        connector.run("list_clusters", conn, {"debug": True, "max_items": 1})
    secrets = set()
    for conn in conns:
        secrets |= {conn.get(k) for k in ("access_token", "refresh_token", "client_secret")}
        secrets |= set(connector.session(conn).connection.secret_values())
        secrets.add(dc.current_connection(conn).get("refresh_token"))
        if conn.get("oidc_token_filepath"):
            secrets.add(open(conn["oidc_token_filepath"]).read().strip())
    for r in emulator.requests[since:]:
        for name in ("Authorization", "X-Databricks-Azure-SP-Management-Token"):
            value = r["headers"].get(name) or ""
            secrets |= {value, value.split(" ", 1)[-1]}
    secrets = {s for s in secrets if s and len(s) >= 8}
    out, err = capsys.readouterr()
    logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("oauthlib.oauth2.rfc6749"))
    assert any(r.name.startswith("requests_oauthlib") for r in caplog.records), "requests-oauthlib logged nothing"
    for secret in secrets:
        for where, text in (("log", logs), ("stdout", out), ("stderr", err)):
            assert secret not in text, f"a secret ({secret[:6]}...) leaked into the {where}"


def test_without_the_mask_requests_oauthlib_would_log_the_client_secret(emulator, caplog):
    """Why connections/oauth.py filters requests-oauthlib's logger: its own DEBUG lines carry the
    token request's Basic credentials and the tokens it obtained."""
    from databricks_connector.connections import oauth

    caplog.set_level(logging.DEBUG, logger="requests_oauthlib")
    lib = logging.getLogger("requests_oauthlib.oauth2_session")
    conn = fresh(emulator, "service_principal")
    oauth._filter_library_logs()                            # (installed with the first token request)
    masks = [f for f in lib.filters if isinstance(f, oauth._MaskSecrets)]
    for f in masks:
        lib.removeFilter(f)
    try:
        Connector().run("get_current_user", conn)
    finally:
        for f in masks:
            lib.addFilter(f)
    raw = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("requests_oauthlib"))
    import base64

    basic = base64.b64encode(f"{conn['client_id']}:{conn['client_secret']}".encode()).decode()
    assert basic in raw                                    # the unmasked library shows the client credentials


# --------------------------------------------------------------------------- one egress

TOKEN_PATHS = {"service_principal": TOKEN, "oauth_user": TOKEN, "workload_identity_federation": TOKEN,
               "azure_service_principal": r"/[^/]+/oauth2/token"}


@pytest.mark.parametrize("kind", ["service_principal", "oauth_user", "azure_service_principal",
                                  "workload_identity_federation"])
def test_token_requests_leave_through_the_shared_session(emulator, kind, capsys):
    """requests-oauthlib builds the token request; the shared session sends it: its User-Agent, its
    retries (a 503 from the token endpoint is retried), its redacted debug log."""
    conn = expired_user(emulator) if kind == "oauth_user" else fresh(emulator, kind)
    emulator.faults.add(TOKEN_PATHS[kind], "503", times=1, method="POST")
    since = len(emulator.requests)
    assert Connector().run("get_current_user", conn, {"debug": True})["active"] is True
    import re

    sent = [r for r in emulator.requests[since:] if re.fullmatch(TOKEN_PATHS[kind], r["path"])]
    assert len(sent) == 2                                           # the 503, then the retry
    assert all(r["headers"]["User-Agent"].startswith("databricks-connector/") for r in sent)
    err = capsys.readouterr().err
    assert re.search(r"\[databricks\] POST \S+oauth2/token|\[databricks\] POST \S+/oidc/v1/token", err)
    assert "-> 503" in err and "retrying" in err
