"""No secret anywhere: every action run with Debug Request on, in success and in failure, through
the Python API (stderr, log records at DEBUG, the error object and its text) and through the CLI
(stdout and stderr), with every connection type. Secrets are the PAT, the client secrets (Databricks
and Microsoft Entra ID), the access and refresh tokens of a user login (the ones given and the ones
refreshed), the OIDC tokens of workload identity federation, every Authorization and
X-Databricks-Azure-SP-Management-Token header value the emulator saw, and every token or secret
sent in a token request's form body."""
import json
import logging
import os
import subprocess
import sys
import traceback

import pytest

from databricks_connector import ConnectorError
from databricks_connector.runner import Connector
from databricks_connector.session import RetryPolicy

from tests import scenarios as S
from tests.helpers import fresh, fresh_sp

import urllib.parse

import databricks_connector as dc

ONE_SHOT = Connector(policy=RetryPolicy(max_attempts=1), retry_timeout=10)   # an injected 500 fails at once
ACTIONS = S.manifest_actions(Connector())


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


SECRET_FIELDS = ("token", "client_secret", "access_token", "refresh_token")
SECRET_HEADERS = ("Authorization", "X-Databricks-Azure-SP-Management-Token")
SECRET_FORM = ("client_secret", "refresh_token", "subject_token", "code", "code_verifier", "access_token")


def secrets_seen(emulator, conn, since=0) -> set:
    """Every credential that travelled: the connection's own (and its refreshed tokens), its OIDC
    token, every secret header value sent and every secret in a token request's body."""
    found = {conn.get(k) for k in SECRET_FIELDS}
    found |= {dc.current_connection(conn).get(k) for k in SECRET_FIELDS}
    if conn.get("oidc_token_filepath"):
        with open(conn["oidc_token_filepath"], encoding="utf-8") as fh:
            found.add(fh.read().strip())
    for r in emulator.requests[since:]:
        for name in SECRET_HEADERS:
            value = r["headers"].get(name) or ""
            if value:
                found.add(value)
                found.add(value.split(" ", 1)[-1])
        if "x-www-form-urlencoded" in (r["headers"].get("Content-Type") or ""):
            form = dict(urllib.parse.parse_qsl(r["raw"].decode("utf-8", "replace")))
            found |= {form.get(k) for k in SECRET_FORM}
    return {s for s in found if s and len(s) >= 8}


# Connection types besides the PAT, each with a fresh session (so its token requests are logged)
TOKEN_TYPES = ["service_principal", "oauth_user", "azure_service_principal", "workload_identity_federation"]


OTHER_TYPES = ["oauth_user", "azure_service_principal", "workload_identity_federation"]
# Every workspace API path, serving endpoints' invocations (outside /api/) included; not the token endpoints.
WORKSPACE_API = r"/(api|serving-endpoints)/.*"


def fresh_user_due(emulator):
    """A user login whose access token is due, so the run refreshes it (and the refresh is logged)."""
    return {**fresh(emulator, "oauth_user"), "expires_at": "2000-01-01T00:00:00Z"}


def assert_clean(texts: dict, secrets: set, label: str):
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{label}: a secret ({secret[:6]}...) leaked into {where}"


def error_texts(err: ConnectorError) -> dict:
    return {"to_dict": json.dumps(err.to_dict(), default=str), "str": str(err), "repr": repr(err),
            "traceback": "".join(traceback.format_exception(err))}


@pytest.mark.parametrize("key", ACTIONS)
def test_python_api_never_shows_a_secret(emulator, key, capsys, caplog):
    if key not in S.SCENARIOS:
        pytest.skip(f"no scenario for {key} (see test_faults.py::test_every_action_has_a_scenario)")
    sc = S.SCENARIOS[key]
    caplog.set_level(logging.DEBUG, logger="databricks_connector")
    since = len(emulator.requests)
    pat, sp = emulator.connections()["personal_access_token"], fresh_sp(emulator)
    # the PAT and the service principal for every action; the other types for two actions of each
    # kind, and one of them in turn for the rest (tests/scenarios: sampled)
    kinds = [t for k, t in S.sampled(ACTIONS, OTHER_TYPES) if k == key]
    others = [fresh_user_due(emulator) if t == "oauth_user" else fresh(emulator, t) for t in kinds]
    errors = []
    for conn in (pat, sp, *others):
        inputs = {**S.prepared(emulator, ONE_SHOT, conn, key), "debug": True}
        ONE_SHOT.run(key, conn, inputs)                                      # success, logged
        method, path = S.main_request(emulator, ONE_SHOT, conn, key)
        emulator.faults.add(path, "500", times=None, method=method)          # failure: an injected 500
        inputs = {**S.prepared(emulator, ONE_SHOT, conn, key), "debug": True}
        with pytest.raises(ConnectorError) as exc:
            ONE_SHOT.run(key, conn, inputs)
        emulator.faults.clear()
        errors.append(exc.value)
        if sc.failing:                                                       # failure: a not-found id
            with pytest.raises(ConnectorError) as exc:
                ONE_SHOT.run(key, conn, {**sc.failing(emulator, ONE_SHOT, conn), "debug": True})
            errors.append(exc.value)
        emulator.faults.add(WORKSPACE_API, "invalid_token", times=None)          # failure: a rejected token
        with pytest.raises(ConnectorError) as exc:
            ONE_SHOT.run(key, conn, {**S.prepared(emulator, ONE_SHOT, conn, key), "debug": True})
        emulator.faults.clear()
        errors.append(exc.value)
    out, err = capsys.readouterr()
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "[databricks]" in err and "-> 500" in err, "Debug Request wrote nothing to stderr"
    assert logs, "nothing was logged at DEBUG"
    secrets = set().union(*(secrets_seen(emulator, c, since) for c in (pat, sp, *others)))
    assert any(s.startswith("Bearer ") for s in secrets) and any(s.startswith("Basic ") for s in secrets)
    texts = {"stdout": out, "stderr": err, "log records": logs}
    for i, e in enumerate(errors):
        texts.update({f"error {i} {k}": v for k, v in error_texts(e).items()})
    assert_clean(texts, secrets, key)
    S.count("secret scan runs", (2 + len(others)) * (3 + (1 if sc.failing else 0)))


def cli(*args):
    p = subprocess.run([sys.executable, "-m", "databricks_connector", *args], capture_output=True, text=True,
                       timeout=90, env={**os.environ})
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("key", S.sampled_keys(ACTIONS))
def test_cli_never_shows_a_secret(emulator, key, tmp_path):
    """Success and failure through the CLI with Debug Request on, for two actions of each kind (the
    CLI prints what the runtime returns; every action is scanned through the Python API test); the
    connection type rotates between actions."""
    if key not in S.SCENARIOS:
        pytest.skip(f"no scenario for {key} (see test_faults.py::test_every_action_has_a_scenario)")
    sc = S.SCENARIOS[key]
    kind = (["personal_access_token"] + TOKEN_TYPES)[ACTIONS.index(key) % 5]
    conn = fresh_user_due(emulator) if kind == "oauth_user" else fresh(emulator, kind)
    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(conn))
    since = len(emulator.requests)
    # A user login is refreshed (and its refresh token rotated) by the CLI, which writes the file back;
    # this process prepares with the PAT so that it never uses (and retires) the same grant.
    prep = emulator.connections()["personal_access_token"] if kind == "oauth_user" else conn
    inputs = {**S.prepared(emulator, Connector(), prep, key), "debug": True}
    code, out, err = cli("run", key, "--inputs-json", json.dumps(inputs), "--connection", str(conn_file))
    assert code == 0, (out[-500:], err[-1000:])
    assert "[databricks]" in err
    runs = [(out, err)]
    if sc.failing:
        failing = {**sc.failing(emulator, Connector(), prep), "debug": True}
    else:
        failing = inputs
        emulator.faults.add(WORKSPACE_API, "invalid_token", times=None)
    code, out, err = cli("run", key, "--inputs-json", json.dumps(failing), "--connection", str(conn_file))
    emulator.faults.clear()
    from databricks_connector.cli import exit_code

    assert "error" in json.loads(out), out[-500:]
    assert code == exit_code(json.loads(out)["error"]["type"]) != 0, (code, out[-500:])
    runs.append((out, err))
    secrets = secrets_seen(emulator, conn, since) | secrets_seen(emulator, json.loads(conn_file.read_text()), since)
    for i, (o, e) in enumerate(runs):
        assert "Traceback" not in e
        assert_clean({f"run {i} stdout": o, f"run {i} stderr": e}, secrets, key)
    S.count("secret scan runs", 2)


@pytest.mark.parametrize("picker", [p["key"] for p in Connector().manifest.get("pickers", [])])
def test_pickers_never_show_a_secret(emulator, picker, capsys, caplog):
    caplog.set_level(logging.DEBUG, logger="databricks_connector")
    since = len(emulator.requests)
    pat, sp = emulator.connections()["personal_access_token"], fresh_sp(emulator)
    user = fresh_user_due(emulator)
    errors = []
    for conn in (pat, sp, user):
        inputs = {"debug": True, **S.picker_inputs(emulator, ONE_SHOT, conn, picker)}
        ONE_SHOT.pick(picker, conn, inputs)
        emulator.faults.add(WORKSPACE_API, "500", times=None)
        with pytest.raises(ConnectorError) as exc:
            ONE_SHOT.pick(picker, conn, inputs)
        emulator.faults.clear()
        errors.append(exc.value)
    out, err = capsys.readouterr()
    assert "[databricks]" in err
    texts = {"stdout": out, "stderr": err, "log records": "\n".join(r.getMessage() for r in caplog.records)}
    for i, e in enumerate(errors):
        texts.update({f"error {i} {k}": v for k, v in error_texts(e).items()})
    assert_clean(texts, secrets_seen(emulator, pat, since) | secrets_seen(emulator, sp, since)
                 | secrets_seen(emulator, user, since), picker)
    S.count("secret scan runs", 6)


# Regression (found by this suite, fixed): connector/errors.py ConnectorError: str(err) is
# Exception.args[0], the message as first built; the session (ActionSession.error) and the runner
# redact by re-assigning err.message afterwards, so to_dict() and repr() are clean but str(err) -- and
# so tracebacks, logging.exception and any f'{err}' -- still show a secret the server echoed (here a
# token in a 404's 'No API found' message); __str__ should return the (redacted) message


@pytest.mark.parametrize("which", ["pat", "sp", "oauth_user", "azure_service_principal", "workload_identity_federation"])
def test_a_secret_echoed_by_the_server_is_redacted_everywhere(emulator, which):
    conn = emulator.connections()["personal_access_token"] if which == "pat" else fresh_sp(emulator) \
        if which == "sp" else fresh(emulator, which)
    connector = Connector(retry_timeout=3)
    connector.run("get_current_user", conn)
    secret = conn.get("token") or connector.session(conn).connection.auth.token()
    with pytest.raises(ConnectorError) as exc:
        connector.run("raw_request", conn, {"url": f"/2.0/{secret}", "method": "GET"})
    assert exc.value.type == "not_found"
    assert_clean(error_texts(exc.value), {secret}, "echoed secret")
