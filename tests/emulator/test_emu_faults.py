import json
import time

import pytest
import requests

ME = "/api/2.0/preview/scim/v2/Me"
CREATE = "/api/2.1/clusters/create"
SPEC = {"spark_version": "13.3.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 1}


def test_429_with_retry_after_then_normal(emu, api):
    emu.faults.add(ME, "429", times=2, retry_after=3)
    for _ in range(2):
        r = api.get(ME)
        assert r.status_code == 429
        assert r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert r.headers["Retry-After"] == "3"
    assert api.get(ME).status_code == 200
    assert emu.count("GET", ME) == 3


def test_503_and_500(emu, api):
    emu.faults.add(ME, "503")
    r = api.get(ME)
    assert r.status_code == 503 and r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert "Retry-After" not in r.headers
    emu.faults.add(ME, "503", retry_after=1)
    assert api.get(ME).headers["Retry-After"] == "1"
    emu.faults.add(ME, "500")
    r = api.get(ME)
    assert r.status_code == 500 and r.json()["error_code"] == "INTERNAL_ERROR"
    assert api.get(ME).status_code == 200


def test_502_html(emu, api):
    emu.faults.add(ME, "502_html")
    r = api.get(ME)
    assert r.status_code == 502
    assert r.headers["Content-Type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in r.text


def test_drop_before_does_not_apply(emu, api):
    emu.faults.add(CREATE, "drop_before")
    with pytest.raises(requests.ConnectionError):
        api.post(CREATE, SPEC)
    assert emu.state.applied["clusters/create"] == 0
    assert emu.count("POST", CREATE) == 1
    assert api.post(CREATE, SPEC).status_code == 200
    assert emu.state.applied["clusters/create"] == 1


def test_drop_after_applies_and_idempotency_saves_the_retry(emu, api):
    emu.faults.add(CREATE, "drop_after")
    body = dict(SPEC, idempotency_token="tok-1")
    with pytest.raises(requests.ConnectionError):
        api.post(CREATE, body)
    assert emu.state.applied["clusters/create"] == 1
    r = api.post(CREATE, body)
    assert r.status_code == 200
    assert emu.state.applied["clusters/create"] == 1
    assert list(emu.state.clusters) == [r.json()["cluster_id"]]


def test_delay(emu, api):
    emu.faults.add(ME, "delay", delay=0.3)
    t0 = time.monotonic()
    assert api.get(ME).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    with pytest.raises(requests.Timeout):
        emu.faults.add(ME, "delay", delay=0.5)
        api.s.get(emu.url + ME, timeout=0.1)


def test_malformed_json(emu, api):
    emu.faults.add(ME, "malformed_json")
    r = api.get(ME)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(r.text)


def test_invalid_token_fault(emu, api):
    emu.faults.add(ME, "invalid_token")
    r = api.get(ME)
    assert r.status_code == 403 and r.json() == {"error_code": 403, "message": "Invalid access token."}
    assert api.get(ME).status_code == 200


def test_regex_path_method_filter_and_clear(emu, api):
    emu.faults.add(r"/api/2\.[01]/clusters/.*", "500", times=None, method="POST")
    assert api.get("/api/2.1/clusters/spark-versions").status_code == 200
    assert api.post(CREATE, SPEC).status_code == 500
    assert api.post("/api/2.0/clusters/create", SPEC).status_code == 500
    emu.faults.clear()
    assert api.post(CREATE, SPEC).status_code == 200
    assert emu.count("POST", r"/api/2\.[01]/clusters/create") == 3


def test_faults_on_token_endpoint(emu):
    emu.faults.add("/oidc/v1/token", "503", retry_after=2)
    data = {"grant_type": "client_credentials", "scope": "all-apis"}
    r = requests.post(emu.token_url, auth=(emu.client_id, emu.client_secret), data=data)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert emu.token_fetches == 0
    r = requests.post(emu.token_url, auth=(emu.client_id, emu.client_secret), data=data)
    assert r.status_code == 200 and emu.token_fetches == 1


def test_unknown_kind_rejected(emu):
    with pytest.raises(ValueError):
        emu.faults.add(ME, "418")


def test_request_log_and_reset(emu, api):
    api.post(CREATE, SPEC)
    rec = [r for r in emu.requests if r["path"] == CREATE][0]
    assert rec["method"] == "POST" and rec["json"]["spark_version"] == "13.3.x-scala2.12"
    assert json.loads(rec["raw"]) == SPEC
    assert rec["headers"]["Authorization"].startswith("Bearer ")
    api.get("/api/2.1/clusters/list", **{"filter_by.cluster_states": ["RUNNING", "PENDING"]})
    rec = emu.requests[-1]
    assert rec["query"]["filter_by.cluster_states"] == ["RUNNING", "PENDING"]
    emu.faults.add(ME, "500")
    emu.reset()
    assert emu.requests == [] and emu.state.applied["clusters/create"] == 0
    assert api.get(ME).status_code == 200   # fault cleared, credentials kept
