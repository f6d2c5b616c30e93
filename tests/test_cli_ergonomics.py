"""The command line as a newcomer scripts it (issue 13): discovery (list, describe, ACTION --help),
did-you-mean, options in any order, values from files and stdin, run --debug, one exit code per
error family, and input aliases (old names still accepted, from every front door).

Every command runs as a subprocess over real HTTP: against the emulator, or against a trap server
(tests/traps.py) that answers what a workspace answers in the rarer families (403, 409, 429, ...).
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from databricks_connector import cli as cli_module
from databricks_connector.cli import EXIT_CODES, EXIT_FAMILIES, exit_code
from databricks_connector.errors import HINTS, InputError
from databricks_connector.inputs import aliases_of, data_inputs, resolve
from tests import scenarios as S
from tests.traps import Answer, Trap, databricks_error, json_answer

ME = "/api/2\\.0/preview/scim/v2/Me"
CLUSTER_GET = "/api/2\\.1/clusters/get"


def cli(*args, env=None, stdin=None, timeout=120, module="databricks_connector"):
    p = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, **(env or {})}, input=stdin)
    return p.returncode, p.stdout, p.stderr


def error_of(out: str) -> dict:
    doc = json.loads(out)                          # exactly one JSON document
    assert set(doc) == {"error"}, doc
    return doc["error"]


@pytest.fixture
def conn_file(tmp_path, pat):
    path = tmp_path / "conn.json"
    path.write_text(json.dumps(pat))
    return str(path)


def trap_conn(tmp_path, trap, pat) -> str:
    """A PAT connection file pointed at a trap (plain http on loopback is accepted)."""
    path = tmp_path / "trap-conn.json"
    path.write_text(json.dumps({"type": "personal_access_token", "host": trap.url, "token": pat["token"]}))
    return str(path)


# --------------------------------------------------------------------------- discovery

def test_list_shows_every_action_picker_and_trigger_and_filters_by_kind_and_area(connector):
    code, out, _ = cli("list", "--json")
    assert code == 0
    rows = json.loads(out)
    m = connector.manifest
    assert [(r["kind"], r["key"]) for r in rows] == (
        [("action", a["key"]) for a in m["actions"]] + [("picker", p["key"]) for p in m["pickers"]]
        + [("trigger", t["key"]) for t in m.get("triggers", [])])
    assert all(r["group"] and r["area"] and r["label"] for r in rows if r["kind"] == "action")

    code, out, _ = cli("list", "actions", "--area", "jobs", "--json")
    assert code == 0
    jobs = json.loads(out)
    assert jobs and {r["area"] for r in jobs} == {"jobs"} and {r["kind"] for r in jobs} == {"action"}
    assert "run_job_now" in {r["key"] for r in jobs}

    code, out, _ = cli("list", "pickers")                  # text for people: a section per kind
    assert code == 0 and out.startswith("PICKERS (") and "select_cluster" in out and "ACTIONS" not in out

    code, out, _ = cli("list", "--area", "job")
    assert code == 1
    err = error_of(out)
    assert err["type"] == "invalid_input" and "did you mean jobs" in err["message"] and "clusters" in err["hint"]


def test_describe_gives_every_input_the_output_schema_and_example(connector):
    code, out, _ = cli("describe", "Run Job Now", "--json")        # by label too
    assert code == 0
    doc = json.loads(out)
    assert doc["key"] == "run_job_now" and doc["kind"] == "action" and doc["area"] == "jobs"
    rows = {r["key"]: r for r in doc["inputs"]}
    item = connector.action("run_job_now")
    assert list(rows) == [i["key"] for i in data_inputs(item)]     # every input, in order, no connection
    assert rows["wait"] == {"key": "wait", "label": "Wait for Completion", "type": "boolean", "required": False,
                            "default": False, "comments": rows["wait"]["comments"], "aliases": ["wait_for_completion"]}
    assert rows["on_timeout"]["choices"] == ["cancel", "fail"] and rows["on_timeout"]["aliases"] == ["cancel_on_timeout"]
    assert rows["job_id"]["picker"] == "select_job"
    assert doc["output_schema"]["anyOf"] and "$defs" in doc["output_schema"] and doc["example_output"]["run_id"] == 455644833
    code, out, _ = cli("describe", "get_cluster", "--json")
    doc = json.loads(out)
    assert [r for r in doc["inputs"] if r["required"]] == [r for r in doc["inputs"] if r["key"] == "cluster_id"]
    assert doc["usage"].startswith("databricks-connector run get_cluster cluster_id=VALUE")
    code, out, _ = cli("describe", "select_cluster", "--json")
    assert code == 0 and json.loads(out)["kind"] == "picker"


def test_run_action_help_describes_it_without_a_connection_or_a_request(emulator, tmp_path):
    before = len(emulator.requests)
    env = {"DATABRICKS_HOST": "", "DATABRICKS_TOKEN": "", "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    code, out, _ = cli("run", "get_cluster", "--help", env=env)
    assert code == 0
    assert out.startswith("Get Cluster  (action get_cluster;")
    assert "KEY" in out and "REQUIRED" in out and "\n  cluster_id " in out and "Example:" in out
    code, described, _ = cli("describe", "get_cluster", env=env)
    assert described == out
    code, out, _ = cli("pick", "select_cluster", "-h", env=env)
    assert code == 0 and out.startswith("Select Cluster  (picker select_cluster;")
    code, out, _ = cli("run", "--help", env=env)                    # no action: the command's own help
    assert code == 0 and "--inputs-json" in out and "key=@FILE" in out
    assert len(emulator.requests) == before


def test_did_you_mean_for_actions_inputs_options_and_labels(emulator, conn_file):
    before = len(emulator.requests)
    code, out, _ = cli("run", "get_clustr", "cluster_id=x", "--connection", conn_file)
    err = error_of(out)
    assert code == 1 and "did you mean get_cluster" in err["message"] and "list_clusters" in err["hint"]
    assert err["details"]["did_you_mean"][0] == "get_cluster"

    code, out, _ = cli("run", "get_cluster", "clusterid=0123-456789-abcdefgh", "--connection", conn_file)
    err = error_of(out)
    assert code == 1 and err["type"] == "invalid_input"
    problem = next(p for p in err["details"]["inputs"] if p["key"] == "clusterid")
    assert "(did you mean cluster_id?)" in problem["reason"] and "its inputs: cluster_id, debug" in problem["reason"]

    code, out, _ = cli("run", "get_cluster", "cluster_id=x", "--conection", conn_file)
    err = error_of(out)
    assert code == 1 and "did you mean --connection?" in err["message"]
    code, out, _ = cli("describe", "Get Clustr")
    assert code == 1 and "did you mean get_cluster" in error_of(out)["message"]
    assert not S.api_requests(emulator.requests[before:])


# --------------------------------------------------------------------------- calling

def test_options_and_inputs_in_any_order(emulator, conn_file):
    cid = S.seed_cluster(emulator)
    for args in (["run", "get_cluster", "--connection", conn_file, f"cluster_id={cid}"],
                 ["run", "--connection", conn_file, "get_cluster", f"cluster_id={cid}"],
                 ["run", "--quiet", "get_cluster", "--connection", conn_file, f"cluster_id={cid}"]):
        code, out, err = cli(*args)
        assert code == 0, (args, out, err[-500:])
        assert json.loads(out)["cluster_id"] == cid


def test_values_from_files_and_standard_input(emulator, conn_file, tmp_path):
    cid = S.seed_cluster(emulator)
    (tmp_path / "cid.txt").write_text(cid + "\n")                 # one trailing newline is dropped
    code, out, err = cli("run", "get_cluster", f"cluster_id=@{tmp_path / 'cid.txt'}", "--connection", conn_file)
    assert code == 0, out + err[-500:]
    assert json.loads(out)["cluster_id"] == cid

    code, out, _ = cli("run", "get_cluster", "--inputs-json", "@-", "--connection", conn_file,
                       stdin=json.dumps({"cluster_id": cid}))
    assert code == 0 and json.loads(out)["cluster_id"] == cid
    (tmp_path / "inputs.json").write_text(json.dumps({"cluster_id": cid}))
    code, out, _ = cli("run", "get_cluster", "--inputs-json", f"@{tmp_path / 'inputs.json'}", "--connection", conn_file)
    assert code == 0 and json.loads(out)["cluster_id"] == cid
    code, out, _ = cli("run", "get_cluster", "cluster_id=@-", "--connection", conn_file, stdin=cid)
    assert code == 0 and json.loads(out)["cluster_id"] == cid

    # @@ is a literal @: the job name below is "@nobody", not a file
    code, out, _ = cli("run", "run_job_now", "job_name=@@nobody", "--connection", conn_file)
    err = error_of(out)
    assert code == 4 and err["details"]["job_name"] == "@nobody"

    before = len(emulator.requests)
    code, out, _ = cli("run", "get_cluster", f"cluster_id=@{tmp_path / 'missing.txt'}", "--connection", conn_file)
    err = error_of(out)
    assert code == 1 and "Cannot read" in err["message"] and "missing.txt" in err["message"]
    code, out, _ = cli("run", "get_cluster", "--inputs-json", "@-", "cluster_id=@-", "--connection", conn_file, stdin="{}")
    assert code == 1 and "Standard input is read once" in error_of(out)["message"]
    assert not S.api_requests(emulator.requests[before:])


def test_run_debug_logs_requests_and_answers_with_every_secret_redacted(emulator, pat, conn_file):
    cid = S.seed_cluster(emulator)
    code, out, err = cli("run", "get_cluster", f"cluster_id={cid}", "--debug", "--connection", conn_file)
    assert code == 0, err[-1000:]
    assert "[databricks] GET" in err and "/api/2.1/clusters/get" in err and "Authorization" in err and "****" in err
    assert cid in err                                              # the answer is logged too
    assert pat["token"] not in out + err
    code, out, err = cli("pick", "select_cluster", "--debug", "--connection", conn_file)
    assert code == 0 and "[databricks] GET" in err and pat["token"] not in out + err
    code, out, err = cli("run", "get_cluster", f"cluster_id={cid}", "--connection", conn_file)
    assert code == 0 and "[databricks]" not in err                  # no --debug: no log


def test_python_dash_m_cli_module_works():
    code, out, _ = cli("describe", "get_current_user", "--json", module="databricks_connector.cli")
    assert code == 0 and json.loads(out)["key"] == "get_current_user"


# --------------------------------------------------------------------------- exit codes

def test_the_exit_code_table_covers_every_error_type_once():
    codes = [code for code, *_ in EXIT_FAMILIES]
    assert len(codes) == len(set(codes)) and 0 not in codes and 130 in codes
    listed = [t for _, _, types, _ in EXIT_FAMILIES for t in types]
    assert len(listed) == len(set(listed))
    assert set(HINTS) | {"internal", "interrupted"} == set(listed)   # every type the runtime can raise
    assert exit_code("a type from the future") == 10
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "cli.md"), encoding="utf-8").read()
    for code, family, types, _ in EXIT_FAMILIES:                  # docs/cli.md states the same table
        assert f"| {code} | {family} | " + ", ".join(f"`{t}`" for t in types) + " |" in doc, (code, family)


def test_exit_1_input_errors_and_usage_errors(emulator, conn_file):
    before = len(emulator.requests)
    for args in (["run", "get_cluster", "--connection", conn_file],                  # a required input missing
                 ["run", "list_clusters", "max_items=zero", "--connection", conn_file],
                 ["run", "get_cluster", "--bogus"],                                 # argparse
                 ["run"], ["poll"],                                                # no name
                 ["frobnicate"]):
        code, out, _ = cli(*args)
        assert code == EXIT_CODES["invalid_input"] == 1, args
        assert error_of(out)["type"] == "invalid_input"
    assert not S.api_requests(emulator.requests[before:])


def test_exit_2_connection_errors(emulator, pat, tmp_path):
    env = {"DATABRICKS_HOST": "", "DATABRICKS_TOKEN": "", "DATABRICKS_CLIENT_ID": "", "DATABRICKS_CLIENT_SECRET": "",
           "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    code, out, _ = cli("run", "get_current_user", env=env)
    assert code == 2 and error_of(out)["type"] == "configuration"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**pat, "token": "dapi-not-the-token"}))
    code, out, _ = cli("run", "get_current_user", "--connection", str(bad))
    assert code == 2 and error_of(out)["type"] == "authentication"
    assert "dapi-not-the-token" not in out


def test_exit_4_not_found(emulator, conn_file):
    code, out, _ = cli("run", "get_cluster", "cluster_id=0000-000000-missing0", "--connection", conn_file)
    assert code == 4 and error_of(out)["type"] == "not_found"


@pytest.mark.parametrize("answer, kind, code", [
    (databricks_error(403, "PERMISSION_DENIED", "User is not an admin"), "permission_denied", 3),
    (databricks_error(409, "RESOURCE_ALREADY_EXISTS", "already exists"), "conflict", 5),
    (databricks_error(400, "INVALID_STATE", "Cluster is terminating"), "invalid_state", 5),
    (databricks_error(429, "REQUEST_LIMIT_EXCEEDED", "slow down", Retry_After="3600"), "rate_limited", 6),
    (json_answer([]), "server_error", 7),                                  # a wrong-shaped answer
], ids=["permission", "conflict", "invalid-state", "rate-limited", "server"])
def test_exit_codes_of_workspace_answers(pat, tmp_path, answer, kind, code):
    with Trap() as trap:
        trap.on(ME, answer, times=None)
        code_, out, err = cli("run", "get_current_user", "--connection", trap_conn(tmp_path, trap, pat))
    assert (code_, error_of(out)["type"]) == (code, kind), out + err[-500:]
    assert code == EXIT_CODES[kind]


def test_exit_8_timeout_and_9_operation_failed(pat, tmp_path):
    cid = "0123-456789-abcdefgh"
    with Trap() as trap:
        trap.on(CLUSTER_GET, json_answer({"cluster_id": cid, "state": "PENDING"}), times=None)
        code, out, err = cli("run", "wait_for_cluster_state", f"cluster_id={cid}", "timeout_seconds=1",
                             "poll_interval_seconds=0.1", "--quiet", "--connection", trap_conn(tmp_path, trap, pat))
    err_doc = error_of(out)
    assert (code, err_doc["type"]) == (8, "timeout"), out + err[-500:]
    assert "wait_for_cluster_state" in err_doc["hint"] or "Wait for Cluster State" in err_doc["hint"]
    with Trap() as trap:
        trap.on(CLUSTER_GET, json_answer({"cluster_id": cid, "state": "ERROR", "state_message": "no capacity"}), times=None)
        code, out, err = cli("run", "wait_for_cluster_state", f"cluster_id={cid}", "timeout_seconds=30",
                             "--quiet", "--connection", trap_conn(tmp_path, trap, pat))
    assert (code, error_of(out)["type"]) == (9, "operation_failed"), out + err[-500:]


def test_exit_10_for_a_bug_is_one_json_error_without_a_traceback(monkeypatch, capsys):
    """A connector bug cannot be provoked over HTTP on purpose, so here a command raises one."""
    def broken(args):
        raise KeyError("token=dapi-secret-in-a-bug")

    monkeypatch.setattr(cli_module, "cmd_list", broken)
    assert cli_module.main(["list"]) == 10
    out = capsys.readouterr().out
    err = error_of(out)
    assert err["type"] == "internal" and "KeyError" in err["message"] and "dapi-secret" not in out


def test_exit_130_interrupted_mid_wait(pat, tmp_path):
    cid = "0123-456789-abcdefgh"
    with Trap() as trap:
        trap.on(CLUSTER_GET, json_answer({"cluster_id": cid, "state": "PENDING"}), times=None)
        proc = subprocess.Popen([sys.executable, "-m", "databricks_connector", "run", "wait_for_cluster_state",
                                 f"cluster_id={cid}", "timeout_seconds=600", "--quiet",
                                 "--connection", trap_conn(tmp_path, trap, pat)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not trap.seen and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert trap.seen, "the wait never polled"
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, out + err[-500:]
    assert error_of(out)["type"] == "interrupted"


# --------------------------------------------------------------------------- aliases

def _aliases(connector):
    for section in ("actions", "pickers", "triggers"):
        for item in connector.manifest.get(section, []):
            for inp in data_inputs(item):
                for alias in aliases_of(inp):
                    yield item, inp, alias


def _alias_cases(connector):
    return [(item["key"], inp["key"], alias["key"]) for item, inp, alias in _aliases(connector)]


def test_the_renames_of_issue_13_are_in_place(connector):
    cases = set(_alias_cases(connector))
    for key in ("create_cluster", "start_terminated_cluster", "restart_cluster", "terminate_cluster"):
        assert (key, "wait", "wait_for_state") in cases
    assert {("create_execution_context", "wait", "wait_for_state"), ("run_command", "wait", "wait_for_result"),
            ("start_sql_warehouse", "wait", "wait_for_state"), ("stop_sql_warehouse", "wait", "wait_for_state"),
            ("execute_sql_statement", "wait", "wait_for_result"), ("run_job_now", "wait", "wait_for_completion"),
            ("run_job_now", "on_timeout", "cancel_on_timeout"), ("run_job_now", "parameters", "job_parameters"),
            ("repair_run", "parameters", "job_parameters"), ("repair_run", "on_timeout", "cancel_on_timeout"),
            ("raw_request", "timeout_ms", "timeout")} <= cases
    raw = {i["key"]: i for i in connector.action("raw_request")["inputs"]}
    assert raw["timeout_ms"]["label"] == "Timeout (ms)"


def test_every_alias_resolves_to_its_input(connector):
    """Each alias of the manifest, alone in a one-input table, resolves to the input's own key with
    the value translated; given with the new name and another value, it is an input error."""
    seen = 0
    for item, inp, alias in _aliases(connector):
        table = {"key": f"alias-test:{item['key']}:{alias['key']}", "label": item["label"], "inputs": [inp]}
        if alias["values"]:
            for old, new in alias["values"].items():
                assert resolve(table, {alias["key"]: old})[inp["key"]] == new
                if old in ("true", "false"):
                    assert resolve(table, {alias["key"]: old == "true"})[inp["key"]] == new
            with pytest.raises(InputError) as exc:
                resolve(table, {alias["key"]: "neither"})
            assert exc.value.problems[0]["key"] == alias["key"] and "the old name of" in exc.value.problems[0]["reason"]
        else:
            value = {"boolean": "true", "integer": "30000", "key_value": "env=prod", "string": "x"}[inp["type"]]
            new = resolve(table, {alias["key"]: value})
            assert new == resolve(table, {inp["key"]: value}) and alias["key"] not in new
            other = {"boolean": "false", "integer": "5", "key_value": "env=dev", "string": "y"}[inp["type"]]
            with pytest.raises(InputError) as exc:
                resolve(table, {alias["key"]: value, inp["key"]: other})
            assert "given twice" in exc.value.problems[0]["reason"]
            assert resolve(table, {alias["key"]: value, inp["key"]: value}) == new        # the same value twice is fine
        seen += 1
    assert seen >= 15


def test_old_names_work_from_the_cli_over_http(emulator, conn_file):
    """Run Job Now with its three old names: the parameters reach Databricks as job_parameters,
    the run is waited for, and the run is left running on timeout when cancel_on_timeout=false."""
    S.fast_jobs(emulator)
    cid = S.seed_cluster(emulator)
    job = S.script_task(emulator, "t", "print('hi')")
    code, out, err = cli("run", "create_job", "name=alias-job", "--inputs-json",
                         json.dumps({"tasks": [{**job, "existing_cluster_id": cid}],
                                     "parameters": [{"name": "env", "default": "dev"}]}), "--connection", conn_file)
    assert code == 0, out + err[-1000:]
    job_id = json.loads(out)["job_id"]
    before = len(emulator.requests)
    code, out, err = cli("run", "run_job_now", f"job_id={job_id}", "job_parameters=env=prod", "wait_for_completion=true",
                         "cancel_on_timeout=true", "poll_interval_seconds=0.1", "--quiet", "--connection", conn_file)
    assert code == 0, out + err[-1000:]
    doc = json.loads(out)
    assert doc["state"]["result_state"] == "SUCCESS" and "result" in doc          # waited
    sent = next(r for r in emulator.requests[before:] if r["path"].endswith("/jobs/run-now"))
    body = sent.get("json") if sent.get("json") is not None else json.loads(sent.get("body") or "{}")
    assert body["job_parameters"] == {"env": "prod"}
    code, out, _ = cli("run", "run_job_now", f"job_id={job_id}", "job_parameters=env=prod", "parameters=env=dev",
                       "--connection", conn_file)
    assert code == 1 and "given twice" in json.dumps(error_of(out))


def test_old_names_work_over_the_http_server(emulator, pat):
    pytest.importorskip("starlette")
    from tests.server_harness import ServerProcess, ca_args

    wid = S.seed_warehouse(emulator, "RUNNING")
    with ServerProcess("--no-auth", *ca_args(emulator), api_key=None) as server:
        r = server.post("/actions/execute_sql_statement", {"warehouse_id": wid, "statement": "SELECT 7 AS n",
                                                            "wait_for_result": True}, conn=pat)
        assert r.status_code == 200, r.text
        assert r.json()["status"]["state"] == "SUCCEEDED"
        r = server.post("/actions/execute_sql_statement", {"warehouse_id": wid, "statement": "SELECT 7 AS n",
                                                            "wait_for_result": True, "wait": False}, conn=pat)
        assert r.status_code == 400 and "given twice" in r.text
        _mcp_accepts_old_names(server, pat, wid)


def _mcp_accepts_old_names(server, pat, wid):
    import asyncio

    httpx2 = pytest.importorskip("httpx2")
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def main():
        async with httpx2.AsyncClient(headers=server.headers(pat), timeout=120) as http:
            async with Client(streamable_http_client(server.url + "/mcp", http_client=http)) as client:
                return await client.call_tool("execute_sql_statement", {"warehouse_id": wid, "statement": "SELECT 7 AS n",
                                                                        "wait_for_result": True})
    result = asyncio.run(main())
    assert not result.is_error, result.content[0].text
    assert json.loads(result.content[0].text)["status"]["state"] == "SUCCEEDED"


# --------------------------------------------------------------------------- docs/cli.md

def _doc_examples() -> list[str]:
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "cli.md")
    text = open(path, encoding="utf-8").read()
    block = text.split("## Examples", 1)[1].split("```console", 1)[1].split("```", 1)[0]
    return [line[2:] for line in block.splitlines() if line.startswith("$ ")]


def test_the_examples_of_docs_cli_run(emulator, pat, tmp_path):
    examples = _doc_examples()
    assert len(examples) >= 8
    (tmp_path / "conn.json").write_text(json.dumps(pat))
    env = {**os.environ, "CLUSTER_ID": S.seed_cluster(emulator),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    if os.environ.get("PYTHONPATH"):        # the examples run in another folder: the same code, by absolute paths
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p)
    for line in examples:
        p = subprocess.run(["bash", "-c", "set -o pipefail; " + line], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, (line, p.stdout[-1000:], p.stderr[-1000:])
        if "--json" in line or "run " in line or "pick " in line or "check " in line:
            if "--help" not in line:
                json.loads(p.stdout)                         # one JSON document


# --------------------------------------------------------------------------- the demo

def _demo_commands(out: str) -> list[str]:
    """Each step's command: from '$ ' to the line where its JSON output starts."""
    import re

    return [m.group(1) for m in re.finditer(r"^\$ (databricks-connector .*?)\n(?=[\[{\"])", out, re.S | re.M)]


def test_demo_full_prints_copyable_commands_that_run(emulator, tmp_path):
    import shlex

    code, out, err = cli("demo", "--fast", "--full", timeout=300)
    assert code == 0, out[-2000:] + err[-2000:]
    assert "more characters" not in out                                   # --full cuts nothing
    commands = _demo_commands(out)
    assert len(commands) == out.count("\n## ") >= 10
    conns = emulator.connections()
    (tmp_path / "conns").mkdir()
    for kind, doc in conns.items():
        (tmp_path / "conns" / f"{kind}.json").write_text(json.dumps(doc))
    replayed = 0
    for line in commands:
        words = shlex.split(line)                                         # valid shell words
        assert words[0] == "databricks-connector" and words[1] in ("run", "pick"), line
        assert words[-2] == "--connection" and words[-1].startswith("conns/"), line
        assert all("=" in w for w in words[3:-2]), line                   # inputs as key=value
        if any(w.startswith(("cluster_id=", "job_id=", "warehouse_id=", "url=", "tasks=", "run_id=", "experiment_id=",
                             "full_name=", "name=", "space_id=", "index_name=", "conversation_id=", "version="))
               for w in words) \
                or words[2].startswith("create_"):
            continue                                                      # ids of the demo's own workspace
        p = subprocess.run([sys.executable, "-m", "databricks_connector", *words[1:]], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (line, p.stdout[-500:], p.stderr[-500:])
        replayed += 1
    assert replayed >= 4
    import re

    assert not re.search(r"dapi[0-9a-f]{16,}", out)         # connection files, never the demo workspace's token


# --------------------------------------------------------------------------- README and LICENSE

ROOT = os.path.join(os.path.dirname(__file__), "..")


def test_readme_links_resolve_and_the_license_matches_the_declared_one():
    import re
    import tomllib

    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)
    shipped = project["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert "docs/cli.md" in links and "LICENSE" in links
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        assert os.path.exists(os.path.join(ROOT, link)), link           # no dead link in the repository
        assert any(link == inc or link.startswith(inc.rstrip("/") + "/") for inc in shipped), link   # nor in the sdist
    assert project["project"]["license"] == {"text": "Apache-2.0"}
    text = open(os.path.join(ROOT, "LICENSE"), encoding="utf-8").read()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


# --------------------------------------------------------------------------- pickers

def pick(conn_file, picker, *pairs):
    code, out, err = cli("pick", picker, *pairs, "--connection", conn_file)
    assert code == 0, out + err[-1000:]
    return json.loads(out)


def test_pickers_search_and_limit_and_read_no_more_pages_than_needed(emulator, conn_file):
    import uuid

    tag = uuid.uuid4().hex[:8]
    ids = [S.seed_cluster(emulator, cluster_name=f"pick-{tag}-{name}") for name in ("alpha", "beta", "gamma")]
    found = pick(conn_file, "select_cluster", f"search=PICK-{tag} Beta")       # every word, any case
    assert [o["value"] for o in found] == [ids[1]]
    assert pick(conn_file, "select_cluster", f"search={ids[2]}") == [o for o in pick(conn_file, "select_cluster")
                                                                      if o["value"] == ids[2]]     # values match too
    before = len(emulator.requests)
    one = pick(conn_file, "select_cluster", "limit=1")
    assert len(one) == 1
    lists = [r for r in emulator.requests[before:] if r["path"].endswith("/clusters/list")]
    assert len(lists) == 1 and lists[0]["query"].get("page_size") == ["1"]   # one small page, not the whole list
    assert pick(conn_file, "select_cluster", f"search=pick-{tag}", "limit=2") == \
        pick(conn_file, "select_cluster", f"search=pick-{tag}")[:2]
    wid = S.seed_warehouse(emulator, "RUNNING", name=f"wh-{tag}")
    assert [o["value"] for o in pick(conn_file, "select_sql_warehouse", f"search=wh-{tag}")] == [wid]
    nodes = pick(conn_file, "select_node_type", "search=i3")
    assert nodes and all("i3" in o["label"] for o in nodes)
    code, out, _ = cli("pick", "select_cluster", "limit=0", "--connection", conn_file)
    assert code == 1 and error_of(out)["details"]["inputs"][0]["key"] == "limit"


def test_spark_versions_put_lts_first_then_the_newest(emulator, conn_file, pat, tmp_path):
    options = pick(conn_file, "select_spark_version")
    assert options[0]["value"] == "16.4.x-scala2.12"                           # the emulator's newest LTS
    assert pick(conn_file, "select_spark_version", "limit=1") == options[:1]
    versions = [{"key": k, "name": n} for k, n in (
        ("12.2.x-scala2.12", "12.2 LTS (includes Apache Spark 3.3.2, Scala 2.12)"),
        ("16.2.x-scala2.12", "16.2 (includes Apache Spark 3.5.2, Scala 2.12)"),
        ("9.1.x-scala2.12", "9.1 LTS (includes Apache Spark 3.1.2, Scala 2.12)"),
        ("17.0.x-scala2.13", "17.0 Beta (includes Apache Spark 4.0.0, Scala 2.13)"),
        ("15.4.x-cpu-ml-scala2.12", "15.4 LTS ML (includes Apache Spark 3.5.0, Scala 2.12)"),
        ("15.4.x-scala2.12", "15.4 LTS (includes Apache Spark 3.5.0, Scala 2.12)"),
        ("16.1.x-scala2.12", "16.1 (includes Apache Spark 3.5.0, Scala 2.12)"))]
    with Trap() as trap:                  # a workspace's mix: LTS and not, variants, in no order
        trap.on("/api/2\\.1/clusters/spark-versions", json_answer({"versions": versions}), times=None)
        got = pick(trap_conn(tmp_path, trap, pat), "select_spark_version")
    assert [o["value"] for o in got] == ["15.4.x-scala2.12", "15.4.x-cpu-ml-scala2.12", "12.2.x-scala2.12",
                                         "9.1.x-scala2.12", "17.0.x-scala2.13", "16.2.x-scala2.12", "16.1.x-scala2.12"]


def test_job_picker_values_are_integer_job_ids_that_run_job_now_takes(emulator, conn_file):
    import uuid

    name = f"pick-job-{uuid.uuid4().hex[:8]}"
    code, out, err = cli("run", "create_job", f"name={name}", "--connection", conn_file)
    assert code == 0, out + err[-500:]
    job_id = json.loads(out)["job_id"]
    options = pick(conn_file, "select_job", f"search={name}")
    assert options == [{"label": name, "value": job_id}] and isinstance(options[0]["value"], int)
    code, out, _ = cli("run", "get_job", "--inputs-json", json.dumps({"job_id": options[0]["value"]}), "--connection", conn_file)
    assert code == 0 and json.loads(out)["job_id"] == job_id


def test_did_you_mean_is_bounded_for_hostile_inputs(connector):
    """A megabyte-long key gets no comparison and only the first unknown keys get suggestions, so
    a hostile inputs document costs no more than before."""
    from databricks_connector.inputs import SUGGEST_KEYS

    with pytest.raises(InputError) as exc:
        connector.validate("get_cluster", {"cluster_ix" + "d" * 1_000_000: 1,
                                           **{f"cluster_i{i}": 1 for i in range(SUGGEST_KEYS + 5)}})
    reasons = [p["reason"] for p in exc.value.problems if p["key"] != "cluster_id"]
    assert "did you mean" not in reasons[0]
    assert sum("did you mean cluster_id" in r for r in reasons) == SUGGEST_KEYS - 1
    assert all(r.startswith("is not an input of Get Cluster") for r in reasons)
