"""Execution contexts and commands (API 1.2) over real HTTP against the emulator: camelCase wire
names, real Python with state across commands, SQL on the shared engine, failures, cancel, waits,
and the CLI end to end."""
import json
import os
import subprocess
import sys
import time

import pytest

from databricks_connector import ConnectorError

API = "/api/1.2"
FAST_WAIT = {"poll_interval_seconds": 0.1, "timeout_seconds": 30}


def _last(emulator, method, path):
    return [r for r in emulator.requests if r["method"] == method and r["path"] == path][-1]


@pytest.fixture
def cluster(emulator):
    return emulator.state.add_cluster(cluster_name="cmd", spark_version="13.3.x-scala2.12", node_type_id="i3.xlarge",
                                      num_workers=0, state="RUNNING")


@pytest.fixture
def context(emulator, pat, connector, cluster):
    out = connector.run("create_execution_context", pat, {"cluster_id": cluster, "wait_for_state": True, **FAST_WAIT})
    return out["id"]


def _run(connector, conn, cluster, context, command, **kw):
    return connector.run("run_command", conn, {"cluster_id": cluster, "context_id": context, "command": command,
                                               "wait_for_result": True, **FAST_WAIT, **kw})


def _status_until(connector, conn, ids, statuses, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        st = connector.run("get_command_status", conn, ids)
        if st["status"] in statuses or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


# --------------------------------------------------------------------------- contexts

def test_create_execution_context(emulator, conn, connector, cluster):
    out = connector.run("create_execution_context", conn, {"cluster_id": cluster})
    assert out["id"] and out["context_id"] == out["id"] and out["cluster_id"] == cluster
    req = _last(emulator, "POST", f"{API}/contexts/create")
    assert req["json"] == {"clusterId": cluster, "language": "python"}
    out = connector.run("create_execution_context", conn, {"cluster_id": cluster, "language": "sql",
                                                           "wait_for_state": True, **FAST_WAIT})
    assert out["status"] == "Running"
    req = _last(emulator, "GET", f"{API}/contexts/status")
    assert req["query"] == {"clusterId": [cluster], "contextId": [out["id"]]}


def test_context_needs_a_running_cluster(emulator, conn, connector):
    stopped = emulator.state.add_cluster(cluster_name="off", state="TERMINATED")
    with pytest.raises(ConnectorError) as exc:
        connector.run("create_execution_context", conn, {"cluster_id": stopped})
    err = exc.value
    assert err.type == "invalid_state" and err.status == 400 and "not running" in err.message
    with pytest.raises(ConnectorError) as exc:
        connector.run("create_execution_context", conn, {"cluster_id": "0000-000000-missing0"})
    assert exc.value.type == "not_found"


def test_context_input_errors_send_nothing(emulator, pat, connector, cluster):
    before = len(emulator.requests)
    for inputs in ({"cluster_id": cluster, "language": "cobol"}, {}):
        with pytest.raises(ConnectorError) as exc:
            connector.run("create_execution_context", pat, inputs)
        assert exc.value.type == "invalid_input"
    with pytest.raises(ConnectorError) as exc:
        connector.run("run_command", pat, {"cluster_id": cluster, "context_id": "1"})
    assert exc.value.type == "invalid_input" and "Command" in exc.value.message
    assert len(emulator.requests) == before


def test_destroy_execution_context(emulator, conn, connector, cluster):
    ctx = connector.run("create_execution_context", conn, {"cluster_id": cluster})["id"]
    out = connector.run("destroy_execution_context", conn, {"cluster_id": cluster, "context_id": ctx})
    assert out["id"] == ctx and out["destroyed"] is True
    assert _last(emulator, "POST", f"{API}/contexts/destroy")["json"] == {"clusterId": cluster, "contextId": ctx}
    with pytest.raises(ConnectorError) as exc:
        connector.run("run_command", conn, {"cluster_id": cluster, "context_id": ctx, "command": "1"})
    assert exc.value.type == "not_found"


def test_contexts_die_when_the_cluster_restarts(emulator, pat, connector, cluster, context):
    connector.run("restart_cluster", pat, {"cluster_id": cluster, "wait_for_state": True, **FAST_WAIT})
    with pytest.raises(ConnectorError) as exc:
        connector.run("run_command", pat, {"cluster_id": cluster, "context_id": context, "command": "1"})
    assert exc.value.type == "invalid_state"
    with pytest.raises(ConnectorError) as exc:   # waiting for the dead context fails at once
        _run(connector, pat, cluster, context, "1")
    assert exc.value.type == "operation_failed" and "Error" in exc.value.message


# --------------------------------------------------------------------------- commands

def test_run_command_and_get_its_status(emulator, conn, connector, cluster, context):
    out = connector.run("run_command", conn, {"cluster_id": cluster, "context_id": context, "command": "6 * 7"})
    assert out["id"] and out["command_id"] == out["id"]
    req = _last(emulator, "POST", f"{API}/commands/execute")
    assert req["json"] == {"clusterId": cluster, "contextId": context, "language": "python", "command": "6 * 7"}
    ids = {"cluster_id": cluster, "context_id": context, "command_id": out["id"]}
    st = _status_until(connector, conn, ids, {"Finished"})
    assert st == {"id": out["id"], "status": "Finished", "results": {"resultType": "text", "data": "42"}}
    req = _last(emulator, "GET", f"{API}/commands/status")
    assert req["query"] == {"clusterId": [cluster], "contextId": [context], "commandId": [out["id"]]}


def test_python_state_is_kept_across_commands_and_isolated(emulator, conn, connector, cluster, context):
    _run(connector, conn, cluster, context, "import os\ntotal = 40")
    out = _run(connector, conn, cluster, context, "total += 2\nprint(total)")
    assert out["status"] == "Finished" and out["results"]["data"].strip() == "42"
    pid = _run(connector, conn, cluster, context, "os.getpid()")["results"]["data"]
    assert int(pid) != os.getpid()
    env = _run(connector, conn, cluster, context, "sorted(os.environ)")["results"]["data"]
    assert "PYTHONPATH" not in env
    other = connector.run("create_execution_context", conn, {"cluster_id": cluster, "wait_for_state": True, **FAST_WAIT})
    with pytest.raises(ConnectorError) as exc:
        _run(connector, conn, cluster, other["id"], "total")
    assert "NameError" in exc.value.message


def test_a_python_exception_is_operation_failed_with_summary_and_cause(emulator, conn, connector, cluster, context):
    code = "def boom():\n    raise ValueError('\\x1b[31mbad value\\x1b[0m')\nboom()"
    with pytest.raises(ConnectorError) as exc:
        _run(connector, conn, cluster, context, code)
    err = exc.value
    assert err.type == "operation_failed"
    assert "ValueError" in err.message and "bad value" in err.message and "boom" in err.message
    assert "\x1b" not in err.message                    # ANSI codes stripped from the message ...
    assert "\x1b[31m" in err.details["cause"]           # ... kept raw in the details
    assert "ValueError" in err.details["summary"] and err.details["results"]["resultType"] == "error"
    # Get Command Status surfaces the same failure
    ids = {"cluster_id": cluster, "context_id": context, "command_id": err.details["command_id"]}
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_command_status", conn, ids)
    assert exc.value.type == "operation_failed" and "bad value" in exc.value.message


def test_sql_commands_run_on_the_shared_engine(emulator, pat, connector, cluster):
    ctx = connector.run("create_execution_context", pat, {"cluster_id": cluster, "language": "sql",
                                                          "wait_for_state": True, **FAST_WAIT})["id"]
    out = _run(connector, pat, cluster, ctx, "SELECT 1 AS one, 'a' AS letter", language="sql")
    res = out["results"]
    assert res["resultType"] == "table" and res["data"] == [[1, "a"]]
    assert [c["name"] for c in res["schema"]] == ["one", "letter"]
    assert _last(emulator, "POST", f"{API}/commands/execute")["json"]["language"] == "sql"
    with pytest.raises(ConnectorError) as exc:
        _run(connector, pat, cluster, ctx, "SELEC nope", language="sql")
    assert exc.value.type == "operation_failed"


def test_scala_and_r_are_refused_by_the_emulator(emulator, pat, connector, cluster, context):
    with pytest.raises(ConnectorError) as exc:
        _run(connector, pat, cluster, context, 'println("hi")', language="scala")
    assert exc.value.type == "operation_failed" and "only runs python and sql" in exc.value.message


def test_wait_for_result_first_waits_for_the_context(emulator, pat, connector, cluster):
    ctx = connector.run("create_execution_context", pat, {"cluster_id": cluster})["id"]   # still Pending
    out = _run(connector, pat, cluster, ctx, "'ready'")
    assert out["results"]["data"] == "'ready'"


def test_cancel_command(emulator, conn, connector, cluster, context):
    out = connector.run("run_command", conn, {"cluster_id": cluster, "context_id": context,
                                              "command": "import time\nfor _ in range(600): time.sleep(0.1)"})
    ids = {"cluster_id": cluster, "context_id": context, "command_id": out["id"]}
    assert _status_until(connector, conn, ids, {"Running"})["status"] == "Running"
    res = connector.run("cancel_command", conn, ids)
    assert res["id"] == out["id"] and res["cancel_requested"] is True
    req = _last(emulator, "POST", f"{API}/commands/cancel")
    assert req["json"] == {"clusterId": cluster, "contextId": context, "commandId": out["id"]}
    assert _status_until(connector, conn, ids, {"Cancelled"})["status"] == "Cancelled"
    # the context survives a cancel and keeps its state
    assert _run(connector, conn, cluster, context, "'alive'")["results"]["data"] == "'alive'"


def test_wait_for_result_times_out_and_cancels(emulator, pat, connector, cluster, context, capsys):
    with pytest.raises(ConnectorError) as exc:
        _run(connector, pat, cluster, context, "import time\ntime.sleep(60)", timeout_seconds=1)
    err = exc.value
    assert err.type == "timeout" and "Running" in err.message and "cancelled" in err.message
    assert capsys.readouterr().out == ""
    ids = {"cluster_id": cluster, "context_id": context,
           "command_id": _last(emulator, "POST", f"{API}/commands/cancel")["json"]["commandId"]}
    assert _status_until(connector, pat, ids, {"Cancelled"})["status"] == "Cancelled"


def test_a_command_cancelled_while_waiting_fails_the_wait(emulator, pat, connector, cluster, context):
    import threading

    def cancel_when_running():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            cmds = list(emulator.state.area("commands")[context].commands.values())
            if cmds and cmds[-1].started:
                connector.run("cancel_command", pat, {"cluster_id": cluster, "context_id": context,
                                                      "command_id": cmds[-1].id})
                return
            time.sleep(0.05)

    t = threading.Thread(target=cancel_when_running)
    t.start()
    try:
        with pytest.raises(ConnectorError) as exc:
            _run(connector, pat, cluster, context, "import time\ntime.sleep(60)")
    finally:
        t.join()
    assert exc.value.type == "operation_failed" and "cancelled" in exc.value.message
    assert exc.value.details["status"] in ("Cancelling", "Cancelled")


@pytest.mark.parametrize("action, extra", [
    ("get_command_status", {"command_id": "abc"}), ("cancel_command", {"command_id": "abc"}),
    ("run_command", {"command": "1"}), ("destroy_execution_context", {}),
])
def test_unknown_ids_are_not_found(emulator, pat, connector, cluster, context, action, extra):
    with pytest.raises(ConnectorError) as exc:
        connector.run(action, pat, {"cluster_id": cluster, "context_id": "999", **extra})
    assert exc.value.type == "not_found"
    if "command_id" in extra:
        with pytest.raises(ConnectorError) as exc:
            connector.run(action, pat, {"cluster_id": cluster, "context_id": context, **extra})
        assert exc.value.type == "not_found"


# --------------------------------------------------------------------------- CLI end to end

def test_cli_create_run_terminate(emulator, pat, tmp_path):
    emulator.config.update({"cloud": "AZURE"})       # the payload is an Azure one (restored by the conftest)
    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(pat))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def cli(action, inputs):
        p = subprocess.run([sys.executable, "-m", "databricks_connector", "run", action, "--inputs-json",
                            json.dumps(inputs), "--connection", str(conn_file)],
                           capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        return json.loads(p.stdout), p.stderr

    wait = {"poll_interval_seconds": 0.1, "timeout_seconds": 60}
    cluster, err = cli("create_cluster", {
        "num_workers": 0, "cluster_name": "cli-cluster", "spark_version": "10.4.x-scala2.12",
        "spark_conf": {"spark.master": "local[*, 4]", "spark.databricks.cluster.profile": "singleNode"},
        "azure_attributes": {"first_on_demand": 1, "availability": "ON_DEMAND_AZURE", "spot_bid_max_price": -1},
        "node_type_id": "Standard_DS3_v2", "custom_tags": {"ResourceClass": "SingleNode"},
        "spark_env_vars": {"PYSPARK_PYTHON": "/databricks/python3/bin/python3"}, "autotermination_minutes": 10,
        "enable_elastic_disk": True, "runtime_engine": "STANDARD", "wait_for_state": True, **wait})
    assert cluster["state"] == "RUNNING" and "PENDING" in err
    cid = cluster["cluster_id"]
    # no Execution Context ID: Run Command makes one, and (asked to keep it) returns it for later steps
    result, _ = cli("run_command", {"cluster_id": cid, "command": "print(sum(range(10)))",
                                    "wait_for_result": True, "keep_context": True, **wait})
    assert result["status"] == "Finished" and result["results"]["data"].strip() == "45"
    again, _ = cli("run_command", {"cluster_id": cid, "context_id": result["context_id"],
                                   "command": "print(sum(range(5)))", "wait_for_result": True, **wait})
    assert again["results"]["data"].strip() == "10" and again["context_id"] == result["context_id"]
    done, _ = cli("terminate_cluster", {"cluster_id": cid, "wait_for_state": True, **wait})
    assert done["state"] == "TERMINATED" and done["cluster_id"] == cid


def test_contexts_survive_a_resize_and_die_when_the_cluster_terminates(emulator, pat, connector, cluster, context):
    _run(connector, pat, cluster, context, "kept = 'yes'")
    connector.run("resize_cluster", pat, {"cluster_id": cluster, "num_workers": 2})
    connector.run("wait_for_cluster_state", pat, {"cluster_id": cluster, **FAST_WAIT})
    assert _run(connector, pat, cluster, context, "kept")["results"]["data"] == "'yes'"
    before = emulator.state.applied["commands/execute"]
    connector.run("terminate_cluster", pat, {"cluster_id": cluster})
    with pytest.raises(ConnectorError) as exc:
        connector.run("run_command", pat, {"cluster_id": cluster, "context_id": context, "command": "kept"})
    assert exc.value.type == "invalid_state"
    assert emulator.state.applied["commands/execute"] == before


def test_run_command_without_a_context_creates_one(emulator, pat, connector, cluster):
    before = emulator.state.applied["contexts/create"]
    out = connector.run("run_command", pat, {"cluster_id": cluster, "command": "x = 20\nx * 2 + 2",
                                             "wait_for_result": True, "keep_context": True, **FAST_WAIT})
    assert out["results"]["data"] == "42" and out["context_id"]
    assert emulator.state.applied["contexts/create"] - before == 1
    create = [r for r in emulator.requests if r["path"] == "/api/1.2/contexts/create"][-1]
    assert create["json"] == {"clusterId": cluster, "language": "python"}
    # asked to keep it, the context it made keeps its state for the next step
    assert "context_destroyed" not in out
    assert _run(connector, pat, cluster, out["context_id"], "x")["results"]["data"] == "20"

