"""Raw Request: any API path, every input of the reference table, credentials kept on-host."""
import base64
import json

import pytest

from databricks_connector import ConnectorError


def test_relative_url_gets_the_api_prefix(emulator, conn, connector):
    out = connector.run("raw_request", conn, {"url": "/2.0/preview/scim/v2/Me", "method": "GET"})
    assert out["active"] is True
    req = emulator.requests[-1]
    assert req["path"] == "/api/2.0/preview/scim/v2/Me" and req["headers"]["Authorization"].startswith("Bearer ")


def test_full_url_on_the_workspace_host_and_query_and_headers(emulator, pat, connector):
    cid = emulator.state.add_cluster(cluster_name="raw", spark_version="13.3.x-scala2.12", node_type_id="i3.xlarge",
                                     num_workers=0)
    out = connector.run("raw_request", pat, {"url": f"{emulator.url}/api/2.1/clusters/get", "method": "GET",
                                             "query_params": '[{"key": "cluster_id", "value": "%s"}]' % cid,
                                             "headers": "X-Trace=abc"})
    assert out["cluster_id"] == cid
    req = emulator.requests[-1]
    assert req["query"] == {"cluster_id": [cid]} and req["headers"]["X-Trace"] == "abc"


def test_post_with_json_data(emulator, pat, connector):
    body = {"cluster_name": "raw-post", "spark_version": "13.3.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 0}
    out = connector.run("raw_request", pat, {"url": "2.1/clusters/create", "method": "POST", "data": json.dumps(body)})
    assert out["cluster_id"]
    assert emulator.requests[-1]["json"] == body


def test_text_and_binary_response_types(emulator, pat, connector):
    text = connector.run("raw_request", pat, {"url": "/2.0/preview/scim/v2/Me", "method": "GET", "response_type": "text"})
    assert text["status"] == 200 and json.loads(text["text"])["active"] is True
    binary = connector.run("raw_request", pat, {"url": "/2.0/preview/scim/v2/Me", "method": "GET", "response_type": "binary"})
    assert binary["content_type"].startswith("application/json")
    assert json.loads(base64.b64decode(binary["base64"]))["active"] is True and binary["size"] > 0


def test_multipart_form_and_files(emulator, pat, connector):
    with pytest.raises(ConnectorError):  # the emulator has no upload endpoint; the wire body is what we check
        connector.run("raw_request", pat, {"url": "/2.0/dbfs/put", "method": "POST", "form_data": "path=/tmp/a.txt",
                                           "file_data": "contents=hello world",
                                           "file_data_file_names": "contents=a.txt"})
    req = emulator.requests[-1]
    assert req["headers"]["Content-Type"].startswith("multipart/form-data")
    assert b'filename="a.txt"' in req["raw"] and b"hello world" in req["raw"] and b'name="path"' in req["raw"]


@pytest.mark.parametrize("url", ["https://evil.example.com/api/2.0/clusters/list",
                                 "http://127.0.0.1:1/api/2.0/clusters/list",
                                 "https://user@accounts.cloud.databricks.com/api/2.0/x",
                                 "/2.0/../../oidc/v1/token",
                                 "http://accounts.cloud.databricks.com/api/2.0/x"])
def test_off_host_urls_are_refused_before_any_request(emulator, pat, connector, url):
    before = len(emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        connector.run("raw_request", pat, {"url": url, "method": "GET"})
    assert exc.value.type == "invalid_input" and "URL" in exc.value.message
    assert len(emulator.requests) == before


def test_errors_are_classified(emulator, pat, connector):
    with pytest.raises(ConnectorError) as exc:
        connector.run("raw_request", pat, {"url": "/2.1/clusters/get?cluster_id=nope", "method": "GET"})
    assert exc.value.type == "not_found" and exc.value.error_code == "INVALID_PARAMETER_VALUE"


def test_user_retry_settings(emulator, pat, connector):
    emulator.faults.add("/api/2.0/preview/scim/v2/Me", "500", times=2)
    out = connector.run("raw_request", pat, {"url": "/2.0/preview/scim/v2/Me", "method": "GET", "max_retry_count": "2",
                                             "retry_delay_ms": "10"})
    assert out["active"] is True
    emulator.faults.add("/api/2.1/clusters/get", "500", times=1)
    with pytest.raises(ConnectorError):   # no retries by default for a 500 on a POST
        connector.run("raw_request", pat, {"url": "/2.1/clusters/get", "method": "POST", "data": "{}"})


def test_retry_on_all_errors_retries_a_4xx(emulator, pat, connector):
    emulator.faults.add("/api/2.0/preview/scim/v2/Me", "invalid_token", times=1)
    out = connector.run("raw_request", pat, {"url": "/2.0/preview/scim/v2/Me", "method": "GET", "max_retry_count": 1,
                                             "retry_on_all_errors": True, "use_exponential_backoff": True})
    assert out["active"] is True


def test_bad_inputs_all_named(connector, pat):
    with pytest.raises(ConnectorError) as exc:
        connector.run("raw_request", pat, {"method": "FETCH", "response_type": "xml", "max_retry_count": "-1"})
    msg = exc.value.message
    for label in ("URL", "Method", "Response Type", "Max Retry Count"):
        assert label in msg
