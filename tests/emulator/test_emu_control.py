import json
import subprocess
import sys

import requests

ME = "/api/2.0/preview/scim/v2/Me"


def test_info_and_connections(emu):
    info = requests.get(emu.url + "/__emulator/info").json()
    assert info["url"] == emu.url and info["pat"] == emu.pat
    assert info["client_id"] == emu.client_id and info["token_url"] == emu.token_url
    assert info["config"]["cluster_start_seconds"] == 0.2
    c = emu.connections()
    tls = {"ca_bundle": emu.ca_bundle} if emu.ca_bundle else {}       # HTTPS: the documents carry the CA
    assert c["personal_access_token"] == {"type": "personal_access_token", "host": emu.url, "token": emu.pat, **tls}
    assert c["service_principal"]["token_url"] == emu.token_url
    assert c["service_principal"]["scopes"] == "all-apis"
    assert info["connections"] == c


def test_http_faults_config_requests_reset(emu, api):
    r = requests.post(emu.url + "/__emulator/faults", json={"path": ME, "kind": "429", "retry_after": 1})
    assert r.status_code == 200
    assert api.get(ME).status_code == 429
    assert api.get(ME).status_code == 200
    requests.post(emu.url + "/__emulator/faults", json={"path": ME, "kind": "500", "times": 5})
    assert requests.delete(emu.url + "/__emulator/faults").status_code == 200
    assert api.get(ME).status_code == 200

    log = requests.get(emu.url + "/__emulator/requests").json()
    assert [r["path"] for r in log["requests"]] == [ME, ME, ME]   # control calls not recorded
    r = requests.post(emu.url + "/__emulator/config", json={"list_page_size": 3, "not_found_style": "404"})
    assert r.json()["list_page_size"] == 3 and emu.config.not_found_style == "404"
    assert requests.post(emu.url + "/__emulator/config", json={"nope": 1}).status_code == 400
    assert requests.post(emu.url + "/__emulator/faults", json={"path": ME, "kind": "zzz"}).status_code == 400
    assert requests.post(emu.url + "/__emulator/reset").status_code == 200
    assert requests.get(emu.url + "/__emulator/requests").json()["requests"] == []


def test_separate_process():
    proc = subprocess.Popen([sys.executable, "-m", "databricks_connector.emulator", "--set",
                             "cluster_start_seconds=0.5"], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["config"]["cluster_start_seconds"] == 0.5
        r = requests.get(info["url"] + ME, headers={"Authorization": "Bearer " + info["pat"]}, timeout=5,
                         verify=info["ca_bundle"] or True)          # that process's own certificate authority
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_one_config_from_python_http_and_the_command_line(tmp_path):
    import pathlib
    import re

    import pytest

    from databricks_connector.emulator import Config, Emulator
    from databricks_connector.emulator.state import ConfigError

    # Python: every bad name and value at once, nothing applied
    with pytest.raises(ConfigError) as err:
        Emulator(nope=1, cloud="MARS", jobs_task_seconds="slow", list_page_size=0)
    assert len(err.value.problems) == 4 and "unknown config field 'nope'" in str(err.value)
    emu = Emulator(jobs_task_seconds=0.25, cloud="GCP", token="dapi-fixed-token", client_secret="fixed-secret")
    with emu:
        assert emu.config.jobs_task_seconds == 0.25 and emu.pat == "dapi-fixed-token"
        assert emu.client_secret == "fixed-secret"
        # HTTP: the same names, the same checks, all or nothing
        r = requests.post(emu.url + "/__emulator/config", json={"jobs_task_seconds": 2, "cloud": "VENUS", "zzz": 1})
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "cloud: must be one of AWS, AZURE, GCP" in r.json()["message"] and "'zzz'" in r.json()["message"]
        assert emu.config.jobs_task_seconds == 0.25                     # nothing applied
        assert requests.post(emu.url + "/__emulator/config", json={"jobs_task_seconds": 2}).json()[
            "jobs_task_seconds"] == 2.0
        knobs = requests.get(emu.url + "/__emulator/config", params={"describe": "true"}).json()["knobs"]
        assert {k["name"] for k in knobs} == set(Config().as_dict()) and all(k["doc"] for k in knobs)
    # the command line: --set, --token, --client-secret, --write-connections
    out = tmp_path / "conns"
    proc = subprocess.Popen([sys.executable, "-m", "databricks_connector.emulator", "--set", "cloud=AZURE",
                             "--set", "jobs_cancel_seconds=0.5", "--token", "dapi-cli", "--client-secret", "s3cret",
                             "--write-connections", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["config"]["cloud"] == "AZURE" and info["config"]["jobs_cancel_seconds"] == 0.5
        pat = json.loads((out / "personal_access_token.json").read_text())
        sp = json.loads((out / "service_principal.json").read_text())
        assert pat["token"] == "dapi-cli" and sp["client_secret"] == "s3cret"
        assert (out / "personal_access_token.json").stat().st_mode & 0o077 == 0      # credentials: owner only
        import databricks_connector as dc
        assert dc.run("get_current_user", sp)["userName"] == sp["client_id"]
        assert dc.run("list_node_types", pat)["node_types"][0]["node_type_id"].startswith("Standard_")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "databricks_connector", "emulator", "--port", "0", "--set",
                          "nope=1", "--set", "cloud"], capture_output=True, text=True, timeout=60)
    doc = json.loads(bad.stdout)
    assert bad.returncode != 0 and doc["error"]["type"] == "invalid_input"
    assert "'nope'" in doc["error"]["message"] and "--set 'cloud': expected key=value" in doc["error"]["message"]
    # every knob is documented (docs/emulator.md, or the SQL guide it links)
    docs = "".join(p.read_text() for p in pathlib.Path(__file__).resolve().parents[2].glob("docs/emulator*.md"))
    missing = [k for k in Config().as_dict() if not re.search(rf"`{k}`", docs)]
    assert not missing, f"knobs missing from docs/emulator.md: {missing}"
