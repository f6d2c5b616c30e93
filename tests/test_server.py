"""`databricks-connector serve` over real HTTP: the routes, credentials per request, error statuses,
the documents platforms import, all derived from the spec. The server runs as its own process
(the real CLI on a free loopback port) against the session's emulator."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("mcp")

from tests.scenarios import PAT_USER, seed_cluster, seed_warehouse, user_name  # noqa: E402
from tests.server_harness import API_KEY, ServerProcess, ca_args, connection_headers  # noqa: E402


@pytest.fixture(scope="module")
def named(tmp_path_factory, emulator):
    """A --connections folder with the emulator's PAT connection as `emu`, and a config file with a
    profile `emuprofile` (the standard ~/.databrickscfg form)."""
    folder = tmp_path_factory.mktemp("connections")
    pat = emulator.connections()["personal_access_token"]
    (folder / "emu.json").write_text(json.dumps(pat))
    cfg = folder.parent / "databrickscfg"
    cfg.write_text(f"[emuprofile]\nhost = {pat['host']}\ntoken = {pat['token']}\n"
                   + (f"ca_bundle = {pat['ca_bundle']}\n" if pat.get("ca_bundle") else ""))
    return folder, cfg


@pytest.fixture(scope="module")
def server(emulator, named):
    folder, cfg = named
    env = {k: "" for k in os.environ if k.startswith("DATABRICKS_") and k != "DATABRICKS_CONNECTOR_TOKEN_SECRET"}
    env["DATABRICKS_CONFIG_FILE"] = str(cfg)
    with ServerProcess("--connections", str(folder), *ca_args(emulator), env=env) as s:
        yield s


@pytest.fixture(scope="module")
def spec(connector):
    return connector.spec()


# ----------------------------------------------------------------------------- running actions

def test_serve_prints_its_url_and_is_ready(server):
    assert server.url.startswith("http://127.0.0.1:")
    r = server.get("/healthz", headers={"X-API-Key": ""})
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_action_runs_with_the_connection_of_each_request(server, conn):
    r = server.post("/actions/get_current_user", {}, conn=conn)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["userName"] == user_name(conn)


def test_one_server_serves_many_credentials_without_mixing_them(server, emulator, pat):
    from tests.helpers import fresh_sp

    sps = [fresh_sp(emulator) for _ in range(3)]
    for _ in range(2):
        for sp in sps:
            assert server.post("/actions/get_current_user", conn=sp).json()["userName"] == sp["client_id"]
        assert server.post("/actions/get_current_user", conn=pat).json()["userName"] == PAT_USER


def test_tokens_are_cached_per_credential(server, emulator):
    from tests.helpers import fresh_sp

    sp = fresh_sp(emulator)
    before = emulator.token_fetches
    for _ in range(4):
        assert server.post("/actions/get_current_user", conn=sp).status_code == 200
    assert emulator.token_fetches - before == 1     # one token for four calls of this service principal


def test_named_connections_from_a_folder_and_a_profile(server):
    for name in ("emu", "emuprofile"):
        r = server.post("/actions/get_current_user", headers={"X-Databricks-Connection": name})
        assert r.status_code == 200, r.text
        assert r.json()["userName"] == PAT_USER
    listed = server.get("/connections").json()
    assert {"emu", "emuprofile"} <= set(listed["connections"])
    unknown = server.post("/actions/get_current_user", headers={"X-Databricks-Connection": "nope"})
    assert unknown.status_code == 401 and "nope" in unknown.json()["error"]["message"]


def test_listing_connections_reveals_no_secret(server, emulator):
    text = server.get("/connections").text
    for c in emulator.connections().values():
        for field in ("token", "client_secret"):
            if c.get(field):
                assert c[field] not in text


def test_inputs_as_form_strings_or_json_values(server, emulator, pat):
    wid = seed_warehouse(emulator, "RUNNING")
    for body in ({"warehouse_id": wid, "statement": "SELECT 41 + 1 AS answer", "wait_for_result": "true", "max_rows": "5"},
                 {"warehouse_id": wid, "statement": "SELECT 41 + 1 AS answer", "wait_for_result": True, "max_rows": 5}):
        r = server.post("/actions/execute_sql_statement", body, conn=pat)
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [{"answer": 42}]


def test_picker_by_post_and_by_get(server, emulator, pat):
    cid = seed_cluster(emulator, "RUNNING", cluster_name="picker-target")
    posted = server.post("/pickers/select_cluster", {}, conn=pat)
    assert posted.status_code == 200, posted.text
    assert any(o["value"] == cid for o in posted.json())
    got = server.get("/pickers/select_cluster", conn=pat)
    assert got.status_code == 200 and got.json() == posted.json()


def test_connection_test(server, conn):
    r = server.post("/connections/test", conn=conn)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["ok"] is True and doc["user"] == user_name(conn) and doc["connection_type"] == conn["type"]


def test_spec_is_the_connectors_spec(server, spec):
    served = server.get("/spec").json()
    assert [a["key"] for a in served["actions"]] == [a["key"] for a in spec["actions"]]
    assert [p["key"] for p in served["pickers"]] == [p["key"] for p in spec["pickers"]]
    assert [t["key"] for t in served["triggers"]] == [t["key"] for t in spec.get("triggers", [])]


# ----------------------------------------------------------------------------- errors and statuses

def test_error_documents_map_to_http_statuses(server, emulator, pat):
    unknown = server.post("/actions/get_cluster", {"cluster_id": "0000-000000-missing0"}, conn=pat)
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found"

    bad = server.post("/actions/create_cluster", {"num_workers": "many", "autotermination_minutes": "soon",
                                                 "no_such_input": 1}, conn=pat)
    assert bad.status_code == 400
    err = bad.json()["error"]
    assert err["type"] == "invalid_input"
    named = {p["key"] for p in err["details"]["inputs"]}
    assert {"num_workers", "autotermination_minutes", "no_such_input"} <= named     # every bad input at once

    assert server.post("/actions/no_such_action", {}, conn=pat).status_code == 404
    assert server.post("/actions/get_current_user", {}).status_code == 401          # no connection
    wrong = dict(pat, token="dapi-not-a-valid-token")
    rejected = server.post("/actions/get_current_user", conn=wrong)
    assert rejected.status_code == 401 and rejected.json()["error"]["type"] == "authentication"


def test_rate_limit_is_429_with_retry_after(server, emulator, pat):
    emulator.faults.add(r"/api/2\.0/preview/scim/v2/Me", "429", times=None, retry_after=3600)
    r = server.post("/actions/get_current_user", conn=pat)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["type"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1


def test_unavailable_is_503_with_retry_after(server, emulator, pat):
    emulator.faults.add(r"/api/2\.0/preview/scim/v2/Me", "503", times=None, retry_after=3600)
    r = server.post("/actions/get_current_user", conn=pat)
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1


def test_conflicting_or_partial_connection_headers(server, pat, sp):
    both = server.post("/actions/get_current_user", headers={**connection_headers(pat), **connection_headers(sp)})
    assert both.status_code == 401
    msg = both.json()["error"]["message"]
    assert "personal access token" in msg and "service principal" in msg
    partial = server.post("/actions/get_current_user", headers={"X-Databricks-Host": pat["host"]})
    assert partial.status_code == 401 and "X-Databricks-Token" in partial.json()["error"]["message"]
    sp_partial = server.post("/actions/get_current_user", headers={"X-Databricks-Token-Url": sp["token_url"]})
    msg = sp_partial.json()["error"]["message"]
    assert "X-Databricks-Client-Id" in msg and "X-Databricks-Client-Secret" in msg


def test_malformed_bodies(server, pat):
    h = server.headers(pat)
    import requests

    not_json = requests.post(server.url + "/actions/get_current_user", data=b"{nope", timeout=30,
                             headers={**h, "Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"]["type"] == "invalid_input"
    array = requests.post(server.url + "/actions/get_current_user", json=[1, 2], headers=h, timeout=30)
    assert array.status_code == 400
    text = requests.post(server.url + "/actions/get_current_user", data=b"debug=true", timeout=30,
                         headers={**h, "Content-Type": "text/plain"})
    assert text.status_code == 415
    wrong_method = requests.get(server.url + "/actions/get_current_user", headers=h, timeout=30)
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_inputs_that_name_server_files_are_refused(server, emulator, pat, spec):
    wid = seed_warehouse(emulator, "RUNNING")
    since = emulator.count("POST", r"/api/2\.0/sql/statements/?")
    target = "/tmp/dbc-server-must-not-write.jsonl"
    r = server.post("/actions/execute_sql_statement", {"warehouse_id": wid, "statement": "SELECT 1",
                                                       "output_path": target}, conn=pat)
    assert r.status_code == 400
    assert r.json()["error"]["details"]["inputs"][0]["key"] == "output_path"
    assert emulator.count("POST", r"/api/2\.0/sql/statements/?") == since          # nothing ran
    assert not os.path.exists(target)
    doc = server.get("/openapi.json").json()
    body = doc["paths"]["/actions/execute_sql_statement"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "output_path" not in body["properties"] and "statement" in body["properties"]


# ----------------------------------------------------------------------------- documents

def _resolve(doc: dict, ref: str):
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


def test_both_documents_validate(server):
    from openapi_spec_validator import validate

    for path in ("/openapi.json", "/swagger.json"):
        r = server.get(path, headers={"X-API-Key": ""})      # documents need no key: platforms import them
        assert r.status_code == 200
        doc = r.json()
        validate(doc)
        for ref in _refs(doc):
            assert _resolve(doc, ref) is not None, ref


def test_openapi_has_one_operation_per_action_picker_and_trigger(server, spec):
    from databricks_connector.server.surface import output_schema, public_item

    doc = server.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for action in spec["actions"]:
        op = doc["paths"][f"/actions/{action['key']}"]["post"]
        assert op["operationId"] == action["key"]
        assert op["summary"] == action["label"][:80].rstrip(" .")
        assert op["description"] == action.get("description", "")
        body = op["requestBody"]["content"]["application/json"]["schema"]
        expected = {k: v for k, v in public_item(action)["input_schema"].items() if k != "$schema"}
        assert body == expected                                            # the input schema, unchanged
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        declared = output_schema(action)
        if declared and "$defs" not in declared:
            assert ok == {k: v for k, v in declared.items()}
        for status in ("202", "400", "401", "403", "404", "429", "500", "502", "503", "504"):
            assert status in op["responses"]
        if action.get("annotations"):
            assert op["x-annotations"]["read_only"] == bool(action["annotations"].get("read_only"))
    for picker in spec["pickers"]:
        assert doc["paths"][f"/pickers/{picker['key']}"]["post"]["operationId"] == f"pick_{picker['key']}"
    for trigger in spec.get("triggers", []):
        assert doc["paths"][f"/triggers/{trigger['key']}/poll"]["post"]["operationId"] == f"poll_{trigger['key']}"
    schemes = doc["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} >= {"X-API-Key", "X-Databricks-Host", "X-Databricks-Token",
                                                      "X-Databricks-Token-Url", "X-Databricks-Client-Id",
                                                      "X-Databricks-Client-Secret", "X-Databricks-Connection"}


def test_swagger_carries_power_automate_extensions(server, spec):
    doc = server.get("/swagger.json").json()
    assert doc["swagger"] == "2.0"
    ops = {op["operationId"]: op for p in doc["paths"].values() for op in p.values()}
    assert doc["x-ms-capabilities"]["testConnection"]["operationId"] in ops
    dynamic = 0
    for action in spec["actions"]:
        op = doc["paths"][f"/actions/{action['key']}"]["post"]
        body = op["parameters"][0]["schema"]
        props = {k: v for k, v in action["input_schema"]["properties"].items() if k != "output_path"}
        for key, prop in props.items():
            target = body["properties"][key]
            assert target["x-ms-summary"] == prop["title"]
            if key in action["input_schema"].get("required", []):
                assert target["x-ms-visibility"] == "important"
            if prop.get("x-picker"):
                dv = target["x-ms-dynamic-values"]
                picker_op = ops[dv["operationId"]]
                assert picker_op["x-ms-visibility"] == "internal"
                assert dv["value-path"] == "value" and dv["value-title"] == "label"
                for pin, ref in dv["parameters"].items():
                    assert ref["parameter"] in props
                dynamic += 1
    assert dynamic > 0          # cluster and warehouse ids are bound to their pickers
    for trigger in spec.get("triggers", []):
        op = doc["paths"][f"/triggers/{trigger['key']}/poll"]["get"]
        assert op["x-ms-trigger"] == "batch"
    assert doc["host"] == server.url.split("://", 1)[1]


def test_the_cli_does_not_import_the_server_stack():
    code = ("import sys, databricks_connector.cli as c; c.build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn', 'mcp', 'anyio', 'pydantic'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_triggers_poll_with_the_callers_state(server, pat, spec):
    triggers = spec.get("triggers") or []
    if not triggers:
        pytest.skip("the manifest declares no triggers yet")
    free = [t for t in triggers if not t["input_schema"].get("required")]
    assert free, "a trigger that polls without inputs"
    for trigger in free:
        path = f"/triggers/{trigger['key']}/poll"
        first = server.post(path, {}, conn=pat)
        assert first.status_code == 200, first.text
        doc = first.json()
        assert isinstance(doc["events"], list) and isinstance(doc["state"], dict)
        again = server.post(path, {"state": doc["state"]}, conn=pat)
        assert again.status_code == 200 and isinstance(again.json()["events"], list)
        bad = server.post(path, {"state": "not an object", "extra": 1}, conn=pat)
        assert bad.status_code == 400 and {p["key"] for p in bad.json()["error"]["details"]["inputs"]} == {"state", "extra"}
        # Power Automate's polling form: 202 (nothing new) or 200 (the new events), the next state in Location
        polled = server.get(path, conn=pat)
        assert polled.status_code in (200, 202), polled.text
        assert "state=" in polled.headers["Location"] and int(polled.headers["Retry-After"]) >= 1
        follow = server.get(polled.headers["Location"].split(server.url, 1)[1], conn=pat)
        assert follow.status_code in (200, 202)


def test_a_default_connection_for_clients_that_send_one_header(emulator, named):
    folder, _cfg = named
    with ServerProcess("--connections", str(folder), "--default-connection", "emu", *ca_args(emulator)) as s:
        r = s.post("/actions/get_current_user")                   # only X-API-Key
        assert r.status_code == 200 and r.json()["userName"] == PAT_USER
        import requests

        bearer = requests.post(s.url + "/actions/get_current_user", json={}, timeout=30,
                               headers={"Authorization": f"Bearer {API_KEY}"})
        assert bearer.status_code == 200
        assert requests.post(s.url + "/actions/get_current_user", json={}, timeout=30).status_code == 401


def test_worker_processes_serve_on_one_port(emulator, pat):
    with ServerProcess("--workers", "2", *ca_args(emulator)) as s:
        answers = [s.post("/actions/get_current_user", conn=pat) for _ in range(8)]
        assert [r.status_code for r in answers] == [200] * 8
        assert {r.json()["userName"] for r in answers} == {PAT_USER}


def test_the_wheel_ships_the_server_and_declares_its_extra():
    from importlib import metadata

    try:
        dist = metadata.distribution("databricks-connector")
    except metadata.PackageNotFoundError:
        pytest.skip("databricks-connector is not installed (running from a development overlay)")
    names = {str(f) for f in dist.files or []}
    for needed in ("databricks_connector/server/app.py", "databricks_connector/server/static/playground.html",
                   "databricks_connector/server/static/playground.js", "databricks_connector/server/static/playground.css"):
        assert needed in names, needed
    assert "server" in (dist.metadata.get_all("Provides-Extra") or [])
    extra = {r.split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in dist.requires or []
             if "extra == \"server\"" in r.replace("'", '"')}
    assert extra == {"starlette", "uvicorn", "mcp"}


def test_concurrent_callers_each_get_their_own_answer(server, emulator, pat):
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers import fresh_sp

    callers = [pat] + [fresh_sp(emulator) for _ in range(5)]

    def call(i):
        conn = callers[i % len(callers)]
        r = server.post("/actions/get_current_user", conn=conn)
        return r.status_code, r.json().get("userName"), user_name(conn)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(96)))
    assert all(status == 200 for status, _, _ in results)
    assert all(got == want for _, got, want in results)
