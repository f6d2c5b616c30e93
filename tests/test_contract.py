"""Output contract: every action and picker returns what its declared output schema says.

Each action runs against the emulator through its scenario (tests/scenarios/), with both
connection types, and again with its scenario's waiting inputs where it has them (the other shape
of its output); the real output is validated against the self-contained ``output_schema`` of the
spec. Example outputs validate too, and the schemas refuse wrong shapes (a missing id, a wrong
type, an unknown field in one of the connector's own envelopes) while accepting fields Databricks
may add to its objects. The spec's shape is the contract the HTTP server and MCP are built on.
"""
import copy
import json

import pytest
from jsonschema import Draft202012Validator

from databricks_connector.runner import SPEC_VERSION, Connector

from tests import scenarios as S

SPEC = Connector().spec()
ACTIONS = {a["key"]: a for a in SPEC["actions"]}
PICKERS = {p["key"]: p for p in SPEC["pickers"]}
TRIGGERS = {t["key"]: t for t in SPEC["triggers"]}


def _errors(schema, value) -> list[str]:
    v = Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in v.iter_errors(value)]


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


# --------------------------------------------------------------------------- real outputs

# The shape of an answer does not depend on the sign-in: every action with the PAT, two of each kind
# with the service principal too (tests/scenarios: sampled).
@pytest.mark.parametrize("key,conn_type", [
    pytest.param(k, t, id=f"{t}-{k}") for k, t in
    S.sampled(sorted(ACTIONS), ["personal_access_token", "service_principal"], core=("personal_access_token",),
              rotate=False)])
def test_real_output_matches_the_declared_schema(emulator, connector, conn_type, key):
    conn = emulator.connections()[conn_type]
    sc = S.SCENARIOS[key]
    inputs = S.prepared(emulator, connector, conn, key)
    out = connector.run(key, conn, inputs)
    json.dumps(out, allow_nan=False)                              # one JSON document
    assert _errors(ACTIONS[key]["output_schema"], out) == [], (key, inputs)
    if sc.wait is not None:                                       # the waited shape of the output
        inputs = sc.wait(emulator, connector, conn)
        out = connector.run(key, conn, inputs)
        assert _errors(ACTIONS[key]["output_schema"], out) == [], (key, "waiting", inputs)


# The other shapes an action returns that its registry scenario does not reach: inputs on top of the
# scenario's (each is a variant of the declared output, e.g. with and without waiting).
VARIANTS = {
    "create_cluster": {"wait_for_state": True, "timeout_seconds": 30, "poll_interval_seconds": 0.1},
    "create_execution_context": {"wait_for_state": True, "timeout_seconds": 30, "poll_interval_seconds": 0.1},
    "execute_sql_statement": {"wait_for_result": False},
    "submit_run": {"wait_for_completion": True, "timeout_seconds": 30, "poll_interval_seconds": 0.1},
    "repair_run": {"wait_for_completion": True, "timeout_seconds": 30, "poll_interval_seconds": 0.1},
    "raw_request": {"response_type": "text"},
}


@pytest.mark.parametrize("key", sorted(VARIANTS))
def test_other_output_shapes_match_the_declared_schema(emulator, connector, pat, key):
    inputs = {**S.SCENARIOS[key].prepare(emulator, connector, pat), **VARIANTS[key]}
    out = connector.run(key, pat, inputs)
    assert _errors(ACTIONS[key]["output_schema"], out) == [], (key, inputs)


def test_every_shape_of_the_statement_outputs(emulator, connector, pat, tmp_path):
    wid = S.seed_warehouse(emulator, "RUNNING")
    base = {"warehouse_id": wid, "statement": "SELECT 1 AS n, 'x' AS s", "timeout_seconds": 30, "poll_interval_seconds": 0.1}
    schema = ACTIONS["execute_sql_statement"]["output_schema"]
    for extra in ({"result_shape": "arrays"}, {"output_path": str(tmp_path / "r.jsonl")},
                  {"output_path": str(tmp_path / "r.csv"), "output_format": "csv"}, {"format": "CSV"}):
        out = connector.run("execute_sql_statement", pat, {**base, **extra})
        assert _errors(schema, out) == [], extra
    pending = connector.run("execute_sql_statement", pat, {**base, "wait_for_result": False})
    assert _errors(ACTIONS["get_statement"]["output_schema"],
                   connector.run("get_statement", pat, {"statement_id": pending["statement_id"]})) == []


def test_raw_request_binary_output(emulator, connector, pat):
    out = connector.run("raw_request", pat, {"url": "/2.0/preview/scim/v2/Me", "method": "GET", "response_type": "binary"})
    assert _errors(ACTIONS["raw_request"]["output_schema"], out) == []


@pytest.mark.parametrize("key", sorted(PICKERS))
def test_picker_output_matches_its_schema(emulator, connector, conn, key):
    S.seed_cluster(emulator, "RUNNING")
    S.seed_warehouse(emulator, "RUNNING")
    S.SCENARIOS["get_run"].prepare(emulator, connector, conn)           # a job with a run
    out = connector.pick(key, conn, S.picker_inputs(emulator, connector, conn, key))
    assert out, f"{key}: no options to check"
    assert _errors(PICKERS[key]["output_schema"], out) == []


# --------------------------------------------------------------------------- examples and strictness

@pytest.mark.parametrize("section, key", [("actions", k) for k in sorted(ACTIONS)] + [("pickers", k) for k in sorted(PICKERS)])
def test_example_output_matches_the_schema(section, key):
    item = (ACTIONS if section == "actions" else PICKERS)[key]
    assert _errors(item["output_schema"], item["example_output"]) == []


@pytest.mark.parametrize("key", sorted(TRIGGERS))
def test_example_event_matches_the_event_schema(key):
    assert _errors(TRIGGERS[key]["event_schema"], TRIGGERS[key]["example_event"]) == []


def test_schemas_refuse_wrong_shapes_and_keep_fields_databricks_adds():
    cluster = ACTIONS["get_cluster"]["output_schema"]
    good = {"cluster_id": "0123-456789-abcdefgh", "state": "RUNNING", "num_workers": 2}
    assert _errors(cluster, {**good, "a_field_databricks_adds_later": {"x": 1}}) == []
    assert _errors(cluster, {**good, "state": "A_STATE_ADDED_LATER"}) == []     # enums Databricks may extend
    assert _errors(cluster, {"state": "RUNNING"})                              # no id
    assert _errors(cluster, {**good, "num_workers": "2"})                      # a wrong type
    assert _errors(cluster, {**good, "termination_reason": "USER_REQUEST"})    # a nested wrong shape
    listing = ACTIONS["list_clusters"]["output_schema"]
    assert _errors(listing, {"clusters": [good], "count": 1, "truncated": False}) == []
    assert _errors(listing, {"clusters": [good], "count": 1, "truncated": False, "next_page_token": "x"})  # closed
    assert _errors(listing, {"clusters": [{"state": "RUNNING"}], "count": 1, "truncated": False})
    run_now = ACTIONS["run_job_now"]["output_schema"]
    started = copy.deepcopy(ACTIONS["run_job_now"]["example_output"])
    started.pop("result"), started.pop("run")
    assert _errors(run_now, started) == []                                     # not waiting
    assert _errors(run_now, {**started, "result": ACTIONS["get_run_output"]["example_output"]})   # half a waited shape
    rows = ACTIONS["execute_sql_statement"]["output_schema"]
    assert _errors(rows, {"statement_id": "s", "status": {"state": "PENDING"}}) == []
    assert _errors(rows, {"statement_id": "s", "status": "PENDING"})
    assert _errors(rows, {"statement_id": "s", "status": {"state": "SUCCEEDED"}, "rows": "1,2"})


def test_output_schemas_are_self_contained_2020_12():
    for section in ("actions", "pickers"):
        for item in SPEC[section]:
            schema = item["output_schema"]
            Draft202012Validator.check_schema(schema)
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            text = json.dumps(schema)
            for name in set(t.split('"')[0] for t in text.split('"#/$defs/')[1:]):
                assert name in schema.get("$defs", {}), (item["key"], name)
    for trig in SPEC["triggers"]:
        Draft202012Validator.check_schema(trig["event_schema"])


# --------------------------------------------------------------------------- the spec a platform reads

def test_spec_has_the_contract_shape():
    assert SPEC["spec_version"] == SPEC_VERSION and SPEC_VERSION.count(".") == 2
    assert {"spec_version", "connector", "connections", "actions", "pickers", "triggers", "definitions"} <= set(SPEC)
    assert "resolved" in SPEC["conventions"]["input_schema"]
    for action in SPEC["actions"]:
        assert {"key", "label", "description", "group", "area", "version", "annotations", "inputs", "input_schema",
                "output_schema", "example_output"} <= set(action), action["key"]
        assert set(action["annotations"]) == {"read_only", "destructive", "idempotent", "long_running", "open_world"}
        assert all(isinstance(v, bool) for v in action["annotations"].values())
        assert "handler" not in action and "output" not in action
    for picker in SPEC["pickers"]:
        assert {"key", "label", "description", "area", "version", "inputs", "input_schema", "output_schema"} <= set(picker)
        assert picker["output_schema"]["type"] == "array"
        assert picker["annotations"]["read_only"] is True
    assert {"job_run_finished", "job_run_started", "cluster_state_changed", "new_sql_rows"} <= set(TRIGGERS)
    for trig in SPEC["triggers"]:
        assert {"key", "label", "description", "area", "version", "inputs", "input_schema", "event_schema",
                "example_event", "dedupe_key"} <= set(trig), trig["key"]
        assert trig["dedupe_key"] in trig["event_schema"].get("properties", {}) or "$ref" in trig["event_schema"]
    for conn in SPEC["connections"]:
        assert {"key", "label", "description", "fields", "schema", "test"} <= set(conn)
        assert conn["test"] in ACTIONS
    assert set(SPEC["definitions"]) >= {"cluster", "cluster_event", "job", "job_settings", "run", "run_task", "run_output",
                                         "statement_status", "statement_result", "warehouse", "user",
                                         "execution_context", "command_status"}


def test_connection_schemas_accept_their_own_type(emulator):
    for kind, doc in emulator.connections().items():
        conn = next(c for c in SPEC["connections"] if c["key"] == kind)
        doc = {k: v for k, v in doc.items() if k in conn["schema"]["properties"]}
        assert _errors(conn["schema"], doc) == [], kind
        assert _errors(conn["schema"], {**doc, "type": "some_other_type"}), kind


def test_check_uses_the_connections_test_action(emulator, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "conn.json"
    path.write_text(json.dumps(emulator.connections()["service_principal"]))
    before = len(emulator.requests)
    p = subprocess.run([sys.executable, "-m", "databricks_connector", "check", "--connection", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["ok"] is True
    paths = [r["path"] for r in S.api_requests(emulator.requests[before:])]
    assert paths == ["/api/2.0/preview/scim/v2/Me"]                      # get_current_user, the declared test


# --------------------------------------------------------------------------- form hints in the compiled schemas

def test_form_hints_are_in_the_input_schemas():
    execute = ACTIONS["execute_sql_statement"]["input_schema"]["properties"]
    assert execute["statement"]["x-widget"] == "code:sql"
    assert {"const": "return", "title": "Return the statement ID and state"} in execute["on_timeout"]["oneOf"]
    assert execute["on_timeout"]["enum"] == ["cancel", "return"]            # kept for platforms that read only enum
    assert execute["timeout_seconds"]["x-show-if"] == {"wait": True}
    assert execute["disposition"]["x-advanced"] is True
    assert ACTIONS["run_command"]["input_schema"]["properties"]["command"]["x-widget"] == "code:python"
    assert ACTIONS["create_job"]["input_schema"]["properties"]["tasks"]["x-widget"] == "json"
    assert ACTIONS["create_job"]["input_schema"]["properties"]["description"]["x-widget"] == "textarea"
    create = ACTIONS["create_cluster"]["input_schema"]["properties"]
    assert create["timeout_seconds"]["x-show-if"] == {"wait": True}
    assert create["spark_version"]["x-picker"] == "select_spark_version"
    only = ACTIONS["run_job_now"]["input_schema"]["properties"]["only"]
    assert only["x-picker"] == "select_job_task" and only["x-picker-inputs"] == {"job_id": "job_id"}
    assert PICKERS["select_job_task"]["input_schema"]["required"] == ["job_id"]
    rerun = ACTIONS["repair_run"]["input_schema"]["properties"]["rerun_tasks"]
    assert rerun["x-picker"] == "select_run_task" and rerun["x-picker-inputs"] == {"run_id": "run_id"}
    assert ACTIONS["get_run"]["input_schema"]["properties"]["run_id"]["x-picker"] == "select_run"
    language = ACTIONS["create_execution_context"]["input_schema"]["properties"]["language"]
    assert {"const": "python", "title": "Python"} in language["oneOf"]
    for action in SPEC["actions"]:
        props = action["input_schema"]["properties"]
        for key, prop in props.items():
            for other in prop.get("x-show-if", {}):
                assert other in props, (action["key"], key, other)
        assert props["debug"]["x-advanced"] is True


def test_cross_field_rules_are_in_the_input_schemas():
    create = ACTIONS["create_cluster"]["input_schema"]
    text = json.dumps(create)
    assert '"oneOf"' in text and '"dependentRequired"' in text and create["x-greater-than"] == {
        "autoscale_max_workers": "autoscale_min_workers"}
    v = Draft202012Validator(create)
    assert not v.is_valid({"num_workers": 1})                                       # no Spark Version
    assert v.is_valid({"num_workers": 1, "spark_version": "13.3.x-scala2.12"})
    assert v.is_valid({"additional_settings": {"spark_version": "13.3.x-scala2.12", "num_workers": 0}})
    assert not v.is_valid({"spark_version": "13.3.x-scala2.12"})                     # no size
    assert not v.is_valid({"spark_version": "s", "num_workers": 1, "autoscale_min_workers": 1, "autoscale_max_workers": 2})
    assert not v.is_valid({"spark_version": "s", "autoscale_min_workers": 1})         # both bounds
    assert not v.is_valid({"spark_version": "s", "num_workers": 1, "autotermination_minutes": 5})
    execute = Draft202012Validator(ACTIONS["execute_sql_statement"]["input_schema"])
    base = {"warehouse_id": "w", "statement": "SELECT 1"}
    assert not execute.is_valid({**base, "format": "CSV", "disposition": "INLINE"})     # if/then
    assert execute.is_valid({**base, "format": "CSV"})
    assert not execute.is_valid({**base, "output_path": "/tmp/x", "wait": False})
    assert ACTIONS["execute_sql_statement"]["input_schema"]["x-runtime-checks"]


def test_validate_resolves_form_strings_to_what_the_input_schema_describes():
    import databricks_connector as dc

    form = {"spark_version": "13.3.x-scala2.12", "num_workers": "2", "wait_for_state": "true",   # its old name (an alias)
            "spark_conf": "spark.speculation=true\nspark.ui.enabled=false", "autotermination_minutes": "30"}
    resolved = dc.validate("create_cluster", form)
    assert resolved["num_workers"] == 2 and resolved["wait"] is True and "wait_for_state" not in resolved and resolved["timeout_seconds"] == 1200
    assert resolved["spark_conf"] == {"spark.speculation": "true", "spark.ui.enabled": "false"}
    assert _errors(ACTIONS["create_cluster"]["input_schema"], resolved) == []
    assert _errors(ACTIONS["create_cluster"]["input_schema"], form)           # the form strings themselves are not
    trig = dc.validate("job_run_finished", {"job_id": "42", "result_states": '["FAILED"]', "max_pages": "3"})
    assert trig["job_id"] == 42 and trig["result_states"] == ["FAILED"] and trig["overlap_seconds"] == 120
    assert _errors(TRIGGERS["job_run_finished"]["input_schema"], trig) == []
    with pytest.raises(Exception) as err:
        dc.validate("create_cluster", {"num_workers": "2", "autoscale_min_workers": "1"})
    keys = {p["key"] for p in err.value.problems}
    assert {"num_workers", "autoscale_max_workers", "spark_version"} <= keys


def test_cli_spec_is_the_same_document():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "databricks_connector", "spec"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == json.loads(json.dumps(SPEC))
