"""The server's derivations on their own: the documents from a spec that carries everything the
manifest is adding (output schemas with shared definitions, annotations, triggers, form hints),
the operation tokens, and the allowed-hosts patterns."""
from __future__ import annotations

import copy

import pytest

pytest.importorskip("openapi_spec_validator")

from databricks_connector.errors import ConnectorError  # noqa: E402
from databricks_connector.server.mcp_tools import tool_schemas  # noqa: E402
from databricks_connector.server.openapi import openapi31, swagger20, to_swagger_schema  # noqa: E402
from databricks_connector.server.operations import Signer, TokenRefused  # noqa: E402
from databricks_connector.server.surface import Surface  # noqa: E402

CLUSTER = {"type": "object", "properties": {"cluster_id": {"type": "string"}, "state": {"type": "string"},
                                            "spark_conf": {"anyOf": [{"type": "object"}, {"type": "null"}]}}}


@pytest.fixture(scope="module")
def rich_spec(connector):
    """Today's spec plus what the manifest contract adds, the way the contract describes it."""
    spec = copy.deepcopy(connector.spec())
    spec["spec_version"] = "1.0.0"
    for action in spec["actions"]:
        action["annotations"] = {"read_only": action["key"].startswith(("get_", "list_")), "destructive": "delete" in action["key"],
                                 "idempotent": True, "long_running": False, "open_world": True}
        action["version"] = "1.0.0"
    get = next(a for a in spec["actions"] if a["key"] == "get_cluster")
    get["output_schema"] = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#/$defs/cluster",
                            "$defs": {"cluster": CLUSTER}}
    lst = next(a for a in spec["actions"] if a["key"] == "list_clusters")
    lst["output_schema"] = {"type": "object", "properties": {"clusters": {"type": "array", "items": {"$ref": "#/$defs/cluster"}},
                                                             "count": {"type": ["integer", "null"]}},
                            "$defs": {"cluster": CLUSTER}}
    events = next(a for a in spec["actions"] if a["key"] == "get_cluster_events")
    events["output_schema"] = {"type": "array", "items": {"$ref": "#/$defs/event"},
                               "$defs": {"event": {"type": "object", "properties": {"type": {"const": "RUNNING"}}}}}
    sql = next(a for a in spec["actions"] if a["key"] == "execute_sql_statement")
    props = sql["input_schema"]["properties"]
    props["statement"]["x-widget"] = "code:sql"
    props["byte_limit"]["x-advanced"] = True
    props["schema"]["x-picker"] = "select_sql_warehouse"
    props["schema"]["x-picker-inputs"] = {"catalog": "catalog"}
    props["row_limit"]["x-show-if"] = {"wait_for_result": True}
    spec["triggers"] = [{
        "key": "new_run_finished", "label": "When a Run Finishes", "description": "A job run reached a final state.",
        "area": "jobs", "version": "1.0.0", "inputs": [],
        "input_schema": {"type": "object", "properties": {"job_id": {"type": "integer", "title": "Job ID"}},
                         "additionalProperties": False},
        "event_schema": {"type": "object", "properties": {"run_id": {"type": "integer"}, "result_state": {"type": "string"}}},
        "example_event": {"run_id": 1, "result_state": "SUCCESS"}, "dedupe_key": "run_id"}]
    return spec


def _resolve(doc, ref):
    node = doc
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for v in node.values():
            yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_documents_of_a_rich_spec_validate_and_resolve(rich_spec):
    from openapi_spec_validator import validate

    surface = Surface(rich_spec)
    for doc in (openapi31(surface, "http://127.0.0.1:8080"), swagger20(surface, "http://127.0.0.1:8080")):
        validate(doc)
        refs = list(_refs(doc))
        assert refs
        for ref in refs:
            assert not ref.startswith("#/$defs/"), ref          # shared definitions were hoisted
            assert isinstance(_resolve(doc, ref), dict), ref


def test_shared_definitions_become_one_component(rich_spec):
    doc = openapi31(Surface(rich_spec), "http://x")
    assert doc["components"]["schemas"]["cluster"] == CLUSTER
    ok = doc["paths"]["/actions/get_cluster"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"] == "#/components/schemas/cluster"
    items = doc["paths"]["/actions/list_clusters"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert items["properties"]["clusters"]["items"]["$ref"] == "#/components/schemas/cluster"
    assert doc["info"]["x-spec-version"] == "1.0.0"
    op = doc["paths"]["/actions/get_cluster"]["post"]
    assert op["x-annotations"]["read_only"] is True and op["x-version"] == "1.0.0"
    trigger = doc["paths"]["/triggers/new_run_finished/poll"]["post"]
    assert trigger["operationId"] == "poll_new_run_finished"


def test_swagger_narrows_json_schema_and_binds_pickers_and_triggers(rich_spec):
    doc = swagger20(Surface(rich_spec), "https://connector.example.com/base")
    assert doc["host"] == "connector.example.com" and doc["basePath"] == "/base" and doc["schemes"] == ["https"]
    cluster = doc["definitions"]["cluster"]
    assert cluster["properties"]["spark_conf"] == {"type": "object", "x-nullable": True}
    body = doc["paths"]["/actions/execute_sql_statement"]["post"]["parameters"][0]["schema"]
    assert body["properties"]["byte_limit"]["x-ms-visibility"] == "advanced"
    assert body["properties"]["warehouse_id"]["x-ms-visibility"] == "important"
    dv = body["properties"]["schema"]["x-ms-dynamic-values"]
    assert dv["operationId"] == "PickSelectSqlWarehouse" and dv["parameters"] == {"catalog": {"parameter": "catalog"}}
    dl = body["properties"]["schema"]["x-ms-dynamic-list"]
    assert dl["operationId"] == "PickSelectSqlWarehouse" and dl["parameters"] == {"catalog": {"parameterReference": "body/catalog"}}
    picker = doc["paths"]["/pickers/select_sql_warehouse"]["get"]
    assert picker["operationId"] == "PickSelectSqlWarehouse" and picker["x-ms-visibility"] == "internal"
    trig = doc["paths"]["/triggers/new_run_finished/poll"]["get"]
    assert trig["x-ms-trigger"] == "batch" and trig["responses"]["200"]["schema"]["type"] == "array"
    assert {p["name"] for p in trig["parameters"]} == {"job_id", "state"}
    delete = doc["paths"]["/actions/delete_job"]["post"]
    assert delete["x-ms-visibility"] == "advanced"                 # destructive actions are not offered first
    assert to_swagger_schema({"type": ["string", "null"], "examples": ["a"], "const": "a"}) == {
        "type": "string", "x-nullable": True, "enum": ["a"], "example": "a"}


def test_mcp_tools_wrap_outputs_that_are_not_objects(rich_spec):
    surface = Surface(rich_spec)
    inp, out, wrapped = tool_schemas(surface.actions["get_cluster_events"])
    assert wrapped and out["type"] == "object" and out["required"] == ["result"]
    assert out["properties"]["result"]["items"] == {"$ref": "#/$defs/event"} and "event" in out["$defs"]
    from jsonschema import Draft202012Validator

    Draft202012Validator(out).validate({"result": [{"type": "RUNNING"}]})
    _, out2, wrapped2 = tool_schemas(surface.actions["list_clusters"])
    assert not wrapped2 and out2["type"] == "object"
    assert "$schema" not in inp


def test_read_only_surface_follows_the_annotations(rich_spec):
    surface = Surface(rich_spec, read_only=True)
    assert surface.actions and all(a["annotations"]["read_only"] for a in surface.actions.values())
    assert "create_cluster" not in surface.actions


# ----------------------------------------------------------------------------- operation tokens

RESUME = {"action": "start_terminated_cluster", "inputs": {"cluster_id": "0123-456789-abcdefgh"},
          "started": {"cluster_id": "0123-456789-abcdefgh"}, "deadline": 1.9e9}


def test_tokens_round_trip_and_refuse_everything_else():
    now = [1_000_000.0]
    signer = Signer(b"s" * 32, ttl=600, clock=lambda: now[0])
    token = signer.issue(RESUME, "caller-a")
    assert signer.open(token, "caller-a") == RESUME
    for bad in (token + "x", token.replace("op1.", "op2."), "op1..", "", "x" * 7000):
        with pytest.raises(ConnectorError) as e:
            signer.open(bad, "caller-a")
        assert e.value.type == "not_found"
    with pytest.raises(ConnectorError):
        signer.open(token, "caller-b")                              # another caller's token
    with pytest.raises(ConnectorError):
        Signer(b"t" * 32).open(token, "caller-a")                   # another server's secret
    now[0] += 601
    with pytest.raises(ConnectorError) as e:
        signer.open(token, "caller-a")
    assert "expired" in e.value.message


def test_a_token_never_carries_a_secret_and_stays_small():
    signer = Signer(b"s" * 32)
    with pytest.raises(TokenRefused):
        signer.issue({**RESUME, "inputs": {"headers": {"Authorization": "Bearer dapi-secret-1234"}}}, "c",
                     secrets=["dapi-secret-1234"])
    with pytest.raises(TokenRefused):
        import os

        signer.issue({**RESUME, "inputs": {"statement": os.urandom(8000).hex()}}, "c")
    token = signer.issue(RESUME, "dapi-the-callers-token-in-its-identity")
    import base64
    import zlib

    body = token.split(".")[1]
    text = zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))).decode()
    assert "dapi-the-callers-token" not in text and "0123-456789-abcdefgh" in text
    assert repr(signer) == "Signer(ttl=86400.0, secret=****)"


# ----------------------------------------------------------------------------- hosts

def test_allowed_host_patterns():
    from databricks_connector.server.credentials import AllowedHosts

    allowed = AllowedHosts(["*.cloud.databricks.com", "exact.example.com", "loopback"])
    assert allowed.allows("dbc-1.cloud.databricks.com") and allowed.allows("exact.example.com")
    assert allowed.allows("127.0.0.5") and allowed.allows("localhost") and allowed.allows("[::1]")
    for host in ("cloud.databricks.com", "evilcloud.databricks.com.example", "sub.exact.example.com", "10.0.0.1",
                 "xcloud.databricks.com"):
        assert not allowed.allows(host), host
    with pytest.raises(ConnectorError):
        AllowedHosts(["bad host"])


def test_header_errors_name_headers_never_values():
    from databricks_connector.server.credentials import AllowedHosts, Credentials

    creds = Credentials(AllowedHosts(), ca_bundle=None)
    secret = "dapi-never-shown-0123456789"
    for headers in ({"x-databricks-token": secret}, {"x-databricks-host": "evil.example.com", "x-databricks-token": secret},
                    {"x-databricks-client-secret": secret}):
        with pytest.raises(ConnectorError) as e:
            creds.from_headers(headers)
        assert secret not in e.value.message and secret not in (e.value.hint or "")
    doc = Credentials(AllowedHosts(), ca_bundle=__file__).from_headers(
        {"x-databricks-host": "dbc-1.cloud.databricks.com", "x-databricks-token": secret})
    assert doc == {"type": "personal_access_token", "host": "https://dbc-1.cloud.databricks.com", "token": secret,
                   "ca_bundle": __file__}
