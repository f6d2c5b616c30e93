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
