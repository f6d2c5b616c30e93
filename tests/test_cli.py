"""The CLI as a platform drives it: one JSON document on stdout, errors with a non-zero exit,
logs on stderr, no secret anywhere."""
import json
import os
import subprocess
import sys
import time

import pytest


def cli(*args, env=None, timeout=120):
    full_env = {**os.environ, **(env or {})}
    p = subprocess.run([sys.executable, "-m", "databricks_connector", *args], capture_output=True, text=True,
                       timeout=timeout, env=full_env)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def conn_file(tmp_path, conn):
    path = tmp_path / "conn.json"
    path.write_text(json.dumps(conn))
    return str(path)


def test_spec_lists_the_five_connections_with_setup_steps():
    code, out, _ = cli("spec")
    assert code == 0
    spec = json.loads(out)
    fields = {c["label"]: [f["label"] for f in c["fields"]] for c in spec["connections"]}
    assert fields == {"Databricks Personal Access Token": ["Host", "Personal Access Token", "CA Bundle"],
                      "Databricks Workspace Service Principal": ["Token URL", "Scopes", "Service Principal Client ID",
                                                                 "Service Principal Client Secret", "CA Bundle"],
                      "Databricks OAuth (User Login)": ["Host", "Client ID", "Client Secret", "Scopes", "Access Token",
                                                        "Refresh Token", "Expires At", "Account ID", "CA Bundle"],
                      "Microsoft Entra ID Service Principal": ["Host", "Tenant ID", "Client ID", "Client Secret",
                                                               "Workspace Resource ID", "Authority Host", "CA Bundle"],
                      "Databricks Workload Identity Federation": ["Host", "Client ID", "OIDC Token Variable",
                                                                  "OIDC Token File", "Scopes", "Account ID", "CA Bundle"]}
    for conn in spec["connections"]:                       # setup steps in the reference's style
        assert "\n1. " in conn["description"] and "See https://" in conn["description"], conn["key"]
    user = next(c for c in spec["connections"] if c["key"] == "oauth_user")["oauth2"]
    assert user["authorize_url"] == "https://{host}/oidc/v1/authorize" and user["token_url"] == "https://{host}/oidc/v1/token"
    assert user["scopes"] == "all-apis offline_access" and user["pkce"] == "S256"
    assert all("input_schema" in a for a in spec["actions"])


def test_run_the_first_actions_with_either_connection(emulator, conn, conn_file):
    cid = emulator.state.add_cluster(cluster_name="cli", spark_version="13.3.x-scala2.12", node_type_id="i3.xlarge",
                                     num_workers=0, state="RUNNING")
    code, out, err = cli("run", "get_current_user", "--connection", conn_file)
    assert code == 0, err
    assert json.loads(out)["active"] is True
    code, out, err = cli("run", "get_cluster", f"cluster_id={cid}", "--connection", conn_file)
    assert code == 0 and json.loads(out)["cluster_id"] == cid
    code, out, err = cli("run", "List Clusters", "--inputs-json", '{"max_items": 1000}', "--connection", conn_file)
    assert code == 0 and cid in {c["cluster_id"] for c in json.loads(out)["clusters"]}


def test_check_says_who_i_am(emulator, conn, conn_file):
    code, out, _ = cli("check", "--connection", conn_file)
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True and doc["host"] == emulator.url and doc["connection_type"] == conn["type"]


def test_errors_are_one_json_document_with_a_non_zero_exit(emulator, conn_file):
    code, out, _ = cli("run", "get_cluster", "cluster_id=0000-000000-missing0", "--connection", conn_file)
    assert code == 4                                       # the not-found family (docs/cli.md)
    err = json.loads(out)["error"]
    assert set(err) >= {"type", "message", "hint", "status", "error_code"}
    assert err["type"] == "not_found" and err["status"] == 400


def test_bad_inputs_are_reported_at_once_from_the_cli(emulator, conn_file):
    before = len(emulator.requests)
    code, out, _ = cli("run", "raw_request", "method=FETCH", "response_type=xml", "--connection", conn_file)
    assert code == 1
    err = json.loads(out)["error"]
    assert err["type"] == "invalid_input"
    assert {p["key"] for p in err["details"]["inputs"]} == {"url", "method", "response_type"}
    assert len(emulator.requests) == before


def test_unknown_action_and_missing_connection(tmp_path):
    code, out, _ = cli("run", "no_such_action", env={"DATABRICKS_CONFIG_FILE": str(tmp_path / "none")})
    assert code == 1 and "Unknown action" in json.loads(out)["error"]["message"]
    env = {k: "" for k in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET")}
    env["DATABRICKS_CONFIG_FILE"] = str(tmp_path / "none")
    code, out, _ = cli("run", "get_current_user", env=env)
    assert code == 2 and json.loads(out)["error"]["type"] == "configuration"


def test_connection_from_environment_and_profile(emulator, tmp_path):
    env = {"DATABRICKS_HOST": emulator.url, "DATABRICKS_TOKEN": emulator.pat,
           "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    code, out, _ = cli("run", "get_current_user", env=env)
    assert code == 0 and json.loads(out)["userName"] == "emulator-user@example.com"
    cfg = tmp_path / "cfg"
    cfg.write_text(f"[sp]\nhost = {emulator.url}\nclient_id = {emulator.client_id}\nclient_secret = {emulator.client_secret}\n")
    env = {"DATABRICKS_CONFIG_FILE": str(cfg), "DATABRICKS_CONFIG_PROFILE": "sp", "DATABRICKS_HOST": "",
           "DATABRICKS_TOKEN": ""}
    code, out, _ = cli("run", "get_current_user", env=env)
    assert code == 0 and json.loads(out)["userName"] == emulator.client_id


def test_debug_request_never_prints_a_secret(emulator, conn, conn_file):
    code, out, err = cli("run", "get_current_user", "debug=true", "--connection", conn_file)
    assert code == 0
    assert "[databricks] GET" in err and "Authorization" in err and "****" in err
    code2, out2, err2 = cli("run", "get_cluster", "cluster_id=missing-1", "debug=true", "--connection", conn_file)
    assert code2 == 4
    secrets = [conn.get("token"), conn.get("client_secret")]
    tokens = [e["headers"].get("Authorization", "").removeprefix("Bearer ") for e in emulator.requests[-6:]]
    for secret in filter(None, secrets + tokens):
        for text in (out, err, out2, err2):
            assert secret not in text


def test_docs_check(tmp_path):
    code, out, _ = cli("docs", "--check", "--dir", str(tmp_path))
    assert code == 1 and "out of date" in json.loads(out)["error"]["message"]
    code, _, _ = cli("docs", "--dir", str(tmp_path))
    assert code == 0
    code, out, _ = cli("docs", "--check", "--dir", str(tmp_path))
    assert code == 0


def test_emulator_command_serves_and_prints_credentials():
    p = subprocess.Popen([sys.executable, "-m", "databricks_connector", "emulator", "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = p.stdout.readline()
            lines.append(line)
            if line.startswith("}"):
                break
        info = json.loads("".join(lines))
        conns = info["connections"]
        assert set(conns) == {"personal_access_token", "service_principal", "oauth_user", "azure_service_principal",
                              "workload_identity_federation"}
        import databricks_connector as dc

        assert dc.run("get_current_user", conns["service_principal"])["userName"] == conns["service_principal"]["client_id"]
        for kind in conns:                                  # each document works from another process, over HTTPS
            assert dc.run("get_current_user", conns[kind])["active"] is True, kind
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_demo_runs_a_tour_of_real_actions():
    code, out, err = cli("demo", "--fast", timeout=300)
    assert code == 0, out[-2000:] + err[-2000:]
    assert "## Who am I? (personal access token)" in out
    assert '"userName": "emulator-user@example.com"' in out
    assert "$ databricks-connector run get_current_user --connection conns/personal_access_token.json\n" in out
    assert "more characters; `demo --full` prints everything)" in out        # long outputs are cut, saying how not to


def test_login_signs_in_through_the_browser_step_and_writes_a_connection_file(emulator, tmp_path):
    """`databricks-connector login` against the emulator: the test plays the browser (auto-consent),
    following the printed URL to the loopback redirect; the file written then works."""
    import requests
    import stat

    emulator.config.oauth_auto_consent = True
    out_file = tmp_path / "signed-in.json"
    args = [sys.executable, "-m", "databricks_connector", "login", "--host", emulator.url, "--port", "0",
            "--no-browser", "--output", str(out_file)]
    if emulator.ca_bundle:
        args += ["--ca-bundle", emulator.ca_bundle]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        p.stderr.readline()
        url = p.stderr.readline().strip()
        assert "/oidc/v1/authorize?" in url and "code_challenge_method=S256" in url and "scope=all-apis+offline_access" in url
        consent = requests.get(url, allow_redirects=False, timeout=10)
        assert consent.status_code == 302 and consent.headers["Location"].startswith("http://localhost:")
        assert requests.get(consent.headers["Location"], timeout=10).status_code == 200
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out + err
    summary = json.loads(out)
    assert summary["ok"] is True and summary["refresh_token"] is True and summary["connection_type"] == "oauth_user"
    doc = json.loads(out_file.read_text())
    assert doc["type"] == "oauth_user" and doc["client_id"] == "databricks-cli" and doc["refresh_token"]
    assert doc["access_token"] not in out + err and doc["refresh_token"] not in out + err
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    code, out, _ = cli("check", "--connection", str(out_file))
    assert code == 0 and json.loads(out)["user"] == "emulator-user@example.com"


def test_login_reports_a_denied_sign_in(emulator, tmp_path):
    import requests
    import urllib.parse

    out_file = tmp_path / "never.json"
    args = [sys.executable, "-m", "databricks_connector", "login", "--host", emulator.url, "--port", "0",
            "--no-browser", "--output", str(out_file)] + (["--ca-bundle", emulator.ca_bundle] if emulator.ca_bundle else [])
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        p.stderr.readline()
        url = p.stderr.readline().strip()
        query = urllib.parse.urlsplit(url).query
        denied = requests.post(emulator.url + "/oidc/v1/authorize", data={"_query": query, "decision": "deny"},
                               allow_redirects=False, timeout=10)
        requests.get(denied.headers["Location"], timeout=10)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 2                               # the connection family (docs/cli.md)
    error = json.loads(out)["error"]
    assert error["type"] == "authentication" and "access_denied" in error["message"]
    assert not out_file.exists()
