"""``databricks-connector demo``: start a workspace emulator in this process and run a short tour
of real actions against it over HTTP, printing each action's JSON."""
from __future__ import annotations

import base64
import json
import sys

from .errors import ConnectorError


GREET_PATH = "/Workspace/Shared/demo_greet.py"
COUNT_PATH = "/Workspace/Shared/demo_count.sql"


def _import(path: str, text: str) -> dict:
    """Raw Request inputs that put a file in the workspace (POST /api/2.0/workspace/import)."""
    body = {"path": path, "format": "AUTO", "overwrite": True, "content": base64.b64encode(text.encode()).decode()}
    return {"url": "/2.0/workspace/import", "method": "POST", "data": json.dumps(body)}


def _tour(emu):
    """(title, action or picker, connection kind, inputs or a function of earlier outputs)."""
    return [
        ("Who am I? (personal access token)", "get_current_user", "personal_access_token", {}),
        ("Who am I? (service principal, OAuth 2.0 client credentials)", "get_current_user", "service_principal", {}),
        ("List node types", "list_node_types", "service_principal", {}),
        ("Create a single-node cluster and wait until it runs", "create_cluster", "service_principal", {
            "cluster_name": "demo-cluster", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
            "num_workers": 0, "wait": True, "timeout_seconds": 120, "poll_interval_seconds": 0.5}),
        ("Select Cluster picker", "pick:select_cluster", "service_principal", {}),
        ("Create an execution context on it", "create_execution_context", "service_principal",
         lambda out: {"cluster_id": out["create_cluster"]["cluster_id"], "language": "python"}),
        ("Run a Python command in that context and wait for the result", "run_command", "service_principal",
         lambda out: {"cluster_id": out["create_cluster"]["cluster_id"], "context_id": out["create_execution_context"]["id"],
                      "command": "import sys\nprint('hello from', sys.implementation.name)\n6 * 7",
                      "wait": True, "timeout_seconds": 60, "poll_interval_seconds": 0.3}),
        ("Execute an SQL statement", "execute_sql_statement", "personal_access_token",
         lambda out: {"warehouse_id": out["_warehouse"],
                      "statement": "SELECT :city AS city, 42 AS answer, current_date() AS today",
                      "parameters": [{"name": "city", "value": "Amsterdam"}]}),
        ("Put the job's Python script in the workspace (Workspace API, with Raw Request)", "raw_request",
         "service_principal", _import(GREET_PATH, "import sys\nprint('hello', *sys.argv[1:])\n")),
        ("Put the job's SQL file in the workspace", "raw_request", "service_principal",
         _import(COUNT_PATH, "SELECT count(*) AS trips FROM samples.nyctaxi.trips\n")),
        ("Create a two-task job (Python, then SQL) with a job parameter", "create_job", "service_principal",
         lambda out: {"name": "demo-job", "parameters": [{"name": "city", "default": "Amsterdam"}], "tasks": [
             {"task_key": "greet", "existing_cluster_id": out["create_cluster"]["cluster_id"],
              "spark_python_task": {"python_file": GREET_PATH, "parameters": ["{{job.parameters.city}}"]}},
             *([{"task_key": "count", "depends_on": [{"task_key": "greet"}],
                 "sql_task": {"warehouse_id": out["_warehouse"], "file": {"path": COUNT_PATH}}}]
               if out.get("_warehouse") else [])]}),
        ("Run the job now and wait for completion (every task's output)", "run_job_now", "service_principal",
         lambda out: {"job_id": out["create_job"]["job_id"], "parameters": {"city": "Utrecht"},
                      "wait": True, "timeout_seconds": 120, "poll_interval_seconds": 0.5}),
        ("List clusters", "list_clusters", "personal_access_token", {}),
        ("Terminate the cluster and wait", "terminate_cluster", "service_principal",
         lambda out: {"cluster_id": out["create_cluster"]["cluster_id"], "wait": True,
                      "timeout_seconds": 60, "poll_interval_seconds": 0.5}),
    ] + _ml_steps()


CONNECTIONS_DIR = "conns"
CUT = 3000


def command(name: str, kind: str, values: dict) -> str:
    """The step as a command line a user can copy: inputs as ``key=value`` (shell-quoted; JSON for
    structured values), the connection as the file ``emulator --write-connections conns`` writes."""
    import shlex

    if name.startswith("pick:"):
        words = ["databricks-connector", "pick", name[5:]]
    else:
        words = ["databricks-connector", "run", name]
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            text = json.dumps(value, separators=(",", ":"))
        else:
            text = str(value)
        if text.startswith("@"):
            text = "@" + text                          # a literal @ (key=@FILE reads a file)
        words.append(shlex.quote(f"{key}={text}"))
    words += ["--connection", f"{CONNECTIONS_DIR}/{kind}.json"]
    return " ".join(words)


def run_demo(fast: bool = False, out=None, full: bool = False) -> int:
    from .emulator import Emulator
    from .runner import Connector

    out = out or sys.stdout
    connector = Connector()
    known = {a["key"] for a in connector.manifest["actions"]} | {f"pick:{p['key']}" for p in connector.manifest.get("pickers", [])}
    config = {"cluster_start_seconds": 1.0 if fast else 3.0}
    with Emulator(port=0, **config) as emu:
        conns = emu.connections()
        sys.stderr.write(f"Emulated workspace at {emu.url}\n")
        out.write("Each step below is printed as the command that runs it. To run them yourself, start an emulator\n"
                  f"that writes its connection files:  databricks-connector emulator --write-connections {CONNECTIONS_DIR}\n"
                  "(ids such as a cluster's differ from run to run: take them from the previous step's output).\n")
        outputs: dict = {}
        if "list_sql_warehouses" in known:
            listed = connector.run("list_sql_warehouses", conns["personal_access_token"], {})
            running = [w for w in listed.get("warehouses", []) if w.get("state") == "RUNNING"] or listed.get("warehouses", [])
            outputs["_warehouse"] = running[0]["id"] if running else None
        failures = 0
        for title, name, kind, inputs in _tour(emu):
            if name not in known:
                continue
            values = {}
            try:
                values = inputs(outputs) if callable(inputs) else inputs
                if name.startswith("pick:"):
                    result = connector.pick(name[5:], conns[kind], values)
                else:
                    result = connector.run(name, conns[kind], values)
            except (ConnectorError, KeyError, StopIteration) as exc:
                failures += 1
                result = {"error": exc.to_dict() if isinstance(exc, ConnectorError) else repr(exc)}
            outputs[name] = result
            out.write(f"\n## {title}\n$ {command(name, kind, values)}\n")
            text = json.dumps(result, indent=2, default=str)
            if len(text) > CUT and not full:
                text = text[:CUT] + f"\n... ({len(text) - CUT} more characters; `demo --full` prints everything)"
            out.write(text + "\n")
            out.flush()
    return 1 if failures else 0


# --------------------------------------------------------------------------- the ML step (owner: ml)

DEMO_MODEL = "main.default.demo_churn"


def _ml_steps():
    """Log an MLflow run, register its model as a Unity Catalog version (as MLflow's client does:
    create, then finalize), promote it with an alias, serve it, query it, and ask Genie."""
    def register(out):
        run = out["create_mlflow_run"]["info"]
        return {"url": "/2.0/mlflow/unity-catalog/model-versions/create", "method": "POST", "data": json.dumps(
            {"name": DEMO_MODEL, "source": run["artifact_uri"] + "/model", "run_id": run["run_id"]})}

    def finalize(out):
        version = out["raw_request"]["model_version"]["version"]
        return {"url": "/2.0/mlflow/unity-catalog/model-versions/finalize", "method": "POST",
                "data": json.dumps({"name": DEMO_MODEL, "version": version})}

    return [
        ("ML: create an MLflow experiment", "create_experiment", "service_principal", {"name": "/Shared/demo-churn"}),
        ("ML: start a run in it", "create_mlflow_run", "service_principal",
         lambda out: {"experiment_id": out["create_experiment"]["experiment_id"], "run_name": "demo-training"}),
        ("ML: log its metrics and parameters (one batch)", "log_mlflow_run_data", "service_principal",
         lambda out: {"run_id": out["create_mlflow_run"]["info"]["run_id"], "metrics": {"rmse": 0.42, "r2": 0.91},
                      "params": {"max_depth": "6"}}),
        ("ML: end the run", "update_mlflow_run", "service_principal",
         lambda out: {"run_id": out["create_mlflow_run"]["info"]["run_id"], "status": "FINISHED"}),
        ("ML: create a registered model in Unity Catalog", "create_registered_model", "service_principal",
         {"catalog_name": "main", "schema_name": "default", "name": "demo_churn"}),
        ("ML: register the run's model as a version (MLflow client path, with Raw Request)", "raw_request",
         "service_principal", register),
        ("ML: finalize the version", "raw_request", "service_principal", finalize),
        ("ML: promote it: set the champion alias", "set_model_alias", "service_principal",
         lambda out: {"full_name": DEMO_MODEL, "alias": "champion",
                      "version": int(out["raw_request"]["model_version"]["version"])}),
        ("ML: serve the champion and wait until the endpoint is ready", "create_serving_endpoint", "service_principal",
         lambda out: {"name": "demo-churn", "entity_name": DEMO_MODEL,
                      "entity_version": str(out["set_model_alias"]["version_num"]), "wait_for_ready": True,
                      "timeout_seconds": 120, "poll_interval_seconds": 0.5}),
        ("ML: query the endpoint with dataframe records", "query_serving_endpoint", "personal_access_token",
         {"name": "demo-churn", "input": [{"tickets": 3, "tenure_years": 2}, {"tickets": 0, "tenure_years": 7}]}),
        ("ML: Select Genie Space picker", "pick:select_genie_space", "personal_access_token", {}),
        ("ML: ask Genie a question (its SQL runs on the warehouse)", "ask_genie", "personal_access_token",
         lambda out: {"space_id": out["pick:select_genie_space"][0]["value"], "question": "How many trips are there?",
                      "poll_interval_seconds": 0.3}),
    ]
