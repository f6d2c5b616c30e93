"""MCP at /mcp, driven by the official SDK's client over Streamable HTTP against a live server and
the emulator: the tools are the manifest's actions (schemas and annotations from the spec), read-only
ones run, errors come back as tool errors with the hint, and the API key guards the endpoint."""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("mcp")
httpx2 = pytest.importorskip("httpx2")

from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from tests.scenarios import SCENARIOS, prepared, user_name  # noqa: E402
from tests.server_harness import ServerProcess, ca_args  # noqa: E402

# Used while the manifest does not annotate its actions yet: actions that only read.
KNOWN_READS = ("get_current_user", "get_cluster", "list_clusters", "list_node_types", "list_spark_versions",
               "get_cluster_events", "get_sql_warehouse", "list_sql_warehouses", "get_job", "list_jobs", "get_run",
               "list_runs", "get_statement", "get_command_status", "get_run_output", "export_run")


@pytest.fixture(scope="module")
def server(emulator):
    with ServerProcess(*ca_args(emulator)) as s:
        yield s


def mcp_call(server, conn, fn, headers=None):
    async def main():
        h = server.headers(conn) if headers is None else headers
        async with httpx2.AsyncClient(headers=h, timeout=120) as http:
            async with Client(streamable_http_client(server.url + "/mcp", http_client=http)) as client:
                return await fn(client)
    return asyncio.run(main())


def read_only_actions(spec) -> list[str]:
    if any("annotations" in a for a in spec["actions"]):
        return [a["key"] for a in spec["actions"] if a.get("annotations", {}).get("read_only")]
    return [k for k in KNOWN_READS if any(a["key"] == k for a in spec["actions"])]


def test_tools_are_the_actions_with_their_schemas_and_annotations(server, pat, connector):
    from databricks_connector.server.mcp_tools import tool_schemas
    from databricks_connector.server.surface import public_item

    spec = connector.spec()
    tools = mcp_call(server, pat, lambda c: c.list_tools()).tools
    by_name = {t.name: t for t in tools}
    assert [a["key"] for a in spec["actions"]] == [t.name for t in tools if t.name != "get_operation"]
    for action in spec["actions"]:
        tool = by_name[action["key"]]
        assert tool.title == action["label"] and tool.description == action["description"]
        inp, out, _wrapped = tool_schemas(public_item(action))
        assert tool.input_schema == inp
        assert tool.input_schema["properties"].keys() == {
            k for k in action["input_schema"]["properties"] if k != "output_path"}
        if action.get("output_schema"):
            assert tool.output_schema == out and tool.output_schema["type"] == "object"
        ann = action.get("annotations")
        if ann is not None:                          # the manifest's annotations, as MCP's hints
            assert tool.annotations.read_only_hint == bool(ann.get("read_only"))
            assert tool.annotations.destructive_hint == bool(ann.get("destructive"))
            assert tool.annotations.idempotent_hint == bool(ann.get("idempotent"))
            assert tool.annotations.open_world_hint == bool(ann.get("open_world"))


def test_read_only_tools_run_against_the_emulator(server, emulator, connector, conn):
    spec = connector.spec()
    keys = read_only_actions(spec)
    assert "get_current_user" in keys
    cases = {}
    for key in keys:
        if key in SCENARIOS:
            cases[key] = prepared(emulator, connector, conn, key)

    async def calls(client):
        results = {}
        for key, inputs in cases.items():
            results[key] = await client.call_tool(key, inputs)
        return results

    results = mcp_call(server, conn, calls)
    for key, result in results.items():
        assert not result.is_error, (key, result.content[0].text[:300])
        assert result.structured_content is not None
    assert results["get_current_user"].structured_content["userName"] == user_name(conn)


def test_a_failing_tool_returns_the_error_document(server, pat):
    import json

    async def calls(client):
        return (await client.call_tool("get_cluster", {"cluster_id": "0000-000000-missing0"}),
                await client.call_tool("get_cluster", {"cluster_id": "not a valid id!", "nope": 1}),
                await client.call_tool("execute_sql_statement", {"warehouse_id": "abc", "statement": "SELECT 1",
                                                                 "output_path": "/tmp/x.jsonl"}))

    missing, bad, local = mcp_call(server, pat, calls)
    assert missing.is_error
    err = json.loads(missing.content[0].text)["error"]
    assert err["type"] == "not_found" and err["hint"]
    assert bad.is_error and json.loads(bad.content[0].text)["error"]["type"] == "invalid_input"
    assert local.is_error and "output_path" in local.content[0].text


def test_the_connection_comes_from_the_headers(server):
    import json

    result = mcp_call(server, None, lambda c: c.call_tool("get_current_user", {}))
    assert result.is_error
    assert json.loads(result.content[0].text)["error"]["type"] == "configuration"


def test_mcp_needs_the_api_key(server, pat):
    import requests

    from tests.server_harness import connection_headers

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    h = {**connection_headers(pat), "Accept": "application/json, text/event-stream"}
    refused = requests.post(server.url + "/mcp", json=init, headers=h, timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication"
    accepted = requests.post(server.url + "/mcp", json=init, headers={**h, **server.headers()}, timeout=30)
    assert accepted.status_code == 200 and accepted.json()["result"]["serverInfo"]["name"] == "databricks"


def test_read_only_server_exposes_only_read_only_actions(emulator, connector, pat):
    spec = connector.spec()
    annotated = [a["key"] for a in spec["actions"] if a.get("annotations", {}).get("read_only")]
    with ServerProcess("--read-only", *ca_args(emulator)) as s:
        names = [t.name for t in mcp_call(s, pat, lambda c: c.list_tools()).tools if t.name != "get_operation"]
        assert names == annotated
        assert [a["key"] for a in s.get("/spec").json()["actions"]] == annotated
        writes = [a["key"] for a in spec["actions"] if a["key"] not in annotated]
        assert writes, "some action changes state"
        r = s.post(f"/actions/{writes[0]}", {}, conn=pat)
        assert r.status_code == 404
        assert f"/actions/{writes[0]}" not in s.get("/openapi.json").json()["paths"]
