"""Fuzzing every action: inputs generated from its compiled JSON Schema, and hostile values.

Invariants: only ConnectorError ever escapes (and never the "internal" type, which means a bug
in a handler); an input that fails validation is named in InputError.problems; no request
reaches the workspace for inputs that failed validation; a path-traversal value never reaches a
request path; every error document is valid JSON. The CLI, driven with hostile arguments, never
prints a traceback and prints exactly one JSON document on stdout.
"""
import json
import math
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from databricks_connector import ConnectorError
from databricks_connector.errors import InputError
from databricks_connector.runner import Connector

from tests import scenarios as S

FUZZ = Connector(retry_timeout=2, read_timeout=5)     # a generated retry delay or timeout is bounded by this
SPEC = {a["key"]: a for a in FUZZ.spec()["actions"]}
ACTIONS = list(SPEC)
FUZZ_SETTINGS = settings(max_examples=10, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                HealthCheck.filter_too_much, HealthCheck.data_too_large])

HUGE = "x" * 1_000_000
HOSTILE = {
    "int": 12345, "bool": True, "list": [1, "two", None], "object": {"a": {"b": [1]}}, "float": 3.5,
    "huge": HUGE, "empty": "", "blank": "   ", "unicode": "ünïcødé ☃ 日本語 \U0001F600 \u202e",
    "control": "a\x00b\x1b[31mc\r\nd\x7f", "traversal": "../../etc/passwd", "traversal_encoded": "..%2F..%2Fetc",
    "json_array": "[1, 2, 3]", "json_string": '"text"', "json_null": "null", "json_number": "42",
    "big_int": 2 ** 53 + 1, "big_int_text": "9007199254740993", "huge_int": 10 ** 30,
    "nan_text": "NaN", "inf_text": "Infinity", "nan": float("nan"), "inf": float("inf"), "neg": -1,
}


@pytest.fixture(autouse=True)
def _restore_settings(emulator):
    restore = S.snapshot_settings(emulator)
    yield
    restore()


# --------------------------------------------------------------------------- a strategy from a JSON Schema

JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 63), st.text(max_size=20),
                        st.floats(allow_nan=False, allow_infinity=False))
JSON = st.recursive(JSON_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                    max_leaves=8)


def from_schema(prop: dict):
    """Values valid for one property of an action's input schema (the vocabulary's keywords)."""
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    if "anyOf" in prop:
        return st.one_of([from_schema(alt) for alt in prop["anyOf"]])
    t = prop.get("type")
    if t == "string":
        lo, hi = prop.get("minLength", 0), min(prop.get("maxLength", 60), 60)
        if "pattern" in prop:
            return st.from_regex(prop["pattern"], fullmatch=True).filter(lambda s: lo <= len(s) <= prop.get("maxLength", 10 ** 9))
        return st.text(min_size=lo, max_size=max(lo, hi))
    if t == "integer":
        return st.integers(min_value=prop.get("minimum", -2 ** 53), max_value=prop.get("maximum", 2 ** 53))
    if t == "number":
        return st.floats(min_value=prop.get("minimum"), max_value=prop.get("maximum"), allow_nan=False,
                         allow_infinity=False)
    if t == "boolean":
        return st.booleans()
    if t == "array":
        items = prop.get("items") or {}
        return st.lists(from_schema(items) if items else JSON_SCALAR, max_size=3)
    if t == "object":
        if prop.get("additionalProperties") == {"type": "string"}:
            return st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=3)
        return st.dictionaries(st.text(min_size=1, max_size=10), JSON, max_size=3)
    return JSON


SHORT = {"timeout_seconds": st.integers(1, 2), "timeout_ms": st.integers(1, 2000), "retry_delay_ms": st.integers(0, 50),
         "max_retry_count": st.integers(0, 2), "output_path": st.none()}


def schema_inputs(action: dict, data):
    """Inputs drawn from the compiled schema: every required input, a random subset of the others.
    Waits and retries are kept short, and nothing is written to files."""
    schema = action["input_schema"]
    props = schema["properties"]
    required = sorted(schema.get("required", []))
    optional = sorted(set(props) - set(required))
    chosen = data.draw(st.lists(st.sampled_from(optional), unique=True, max_size=4)) if optional else []
    inputs = {}
    for k in required + chosen:
        value = data.draw(SHORT.get(k, from_schema(props[k])))
        if value is not None:
            inputs[k] = value
    return inputs


def _bases(emulator, connector, conn, key):
    """Inputs valid by the schema that name objects that do not exist (nothing real is touched)."""
    sc = S.SCENARIOS.get(key)
    base = {
        "raw_request": {"url": "/2.0/preview/scim/v2/Me", "method": "GET"},
        "create_cluster": {"cluster_name": "fuzz", "spark_version": "0.0.x-fuzz", "num_workers": 0},
        "submit_run": {"tasks": [{"task_key": "t"}]},
        "create_job": {"name": "fuzz", "tasks": [{"task_key": "t"}]},
        "run_job_now": {"job_id": 999999},
        "cancel_all_runs": {"job_id": 999999},
        "update_job": {"job_id": 999999, "new_settings": {"max_concurrent_runs": 1}},
        "execute_sql_statement": {"warehouse_id": "0000000000000000", "statement": "SELECT 1"},
        "edit_cluster": {"cluster_id": "0000-000000-missing0", "spark_version": "0.0.x-fuzz", "num_workers": 1},
        "resize_cluster": {"cluster_id": "0000-000000-missing0", "num_workers": 1},
        "run_command": {"cluster_id": "0000-000000-missing0", "context_id": "1234567890123456789", "command": "1"},
    }.get(key)
    if base is None:
        base = sc.failing(emulator, connector, conn) if sc is not None and sc.failing else {}
    try:
        FUZZ.validate(key, base)
    except InputError as err:
        if sc is None:
            pytest.skip(f"no scenario for {key} (see test_faults.py::test_every_action_has_a_scenario)")
        raise AssertionError(f"{key}: the fuzz base inputs are not valid: {err.problems}") from None
    return dict(base)


def _run(key, conn, inputs):
    try:
        return FUZZ.run(key, conn, inputs), None
    except ConnectorError as err:
        return None, err
    except Exception as exc:  # the invariant: nothing else ever escapes
        pytest.fail(f"{key}: uncaught {type(exc).__name__}: {exc!r}"[:500])


def _named(err, key, prop) -> bool:
    """The input is named: by its key, or by its label in a rule's reason ("cannot be combined with X")."""
    return any(p["key"] == key or prop.get("title", "\0") in p["reason"] for p in err.problems)


def _cross_field(key, inputs) -> bool:
    """The schema accepts these inputs: a refusal comes from the handler's cross-field checks, which
    name the input that completes (or conflicts with) the combination."""
    try:
        FUZZ.validate(key, inputs)
        return True
    except InputError:
        return False


def _check_error(key, err, label):
    assert err.type != "internal", f"{label}: a handler bug surfaced as {err!r}"[:600]
    assert err.hint, label
    json.dumps(err.to_dict(), allow_nan=False)          # one valid JSON document for the CLI


# --------------------------------------------------------------------------- hostile values, one input at a time

# Regression (found by this suite, fixed): connector/inputs.py resolve/_coerce/_fast_valid: a float
# NaN given as a JSON value (Python API, or --inputs-json with NaN) passes a number input's
# minimum/maximum (every comparison with NaN is False); it should be refused like the string 'NaN'
# ('must be a finite number')


@pytest.mark.parametrize("key", ACTIONS)
def test_hostile_values_one_input_at_a_time(emulator, pat, key):
    """Every input of the action, every hostile value, one at a time on top of valid inputs."""
    base = _bases(emulator, FUZZ, pat, key)
    props = SPEC[key]["input_schema"]["properties"]
    for inp, prop in props.items():
        for name, value in HOSTILE.items():
            if inp == "output_path" and isinstance(value, str):
                continue                                     # never write files at hostile paths from a test
            if name == "nan" and prop.get("type") == "number":
                continue                                     # a known defect: test_nan_is_refused_for_number_inputs
            inputs = {**base, inp: value}
            label = f"{key}.{inp}={name}"
            before = len(emulator.requests)
            out, err = _run(key, pat, inputs)
            S.count("fuzz inputs tried")
            new = S.api_requests(emulator.requests[before:])
            if isinstance(err, InputError):
                S.count("fuzz inputs refused by validation")
                assert _named(err, inp, prop) or name in ("empty", "blank") or _cross_field(key, inputs), \
                    f"{label}: not named in {err.problems}"
                assert not new, f"{label}: refused, yet {len(new)} request(s) reached the workspace"
            if err is not None:
                _check_error(key, err, label)
            for r in new:
                segments = r["path"].split("/")
                assert ".." not in segments and "etc" not in segments, f"{label}: traversal reached {r['path']}"


def test_nan_is_refused_for_number_inputs(emulator, pat):
    """A NaN poll interval passed validation and made the wait poll with a NaN interval."""
    wid = S.seed_warehouse(emulator, "RUNNING")
    with pytest.raises(InputError) as exc:
        FUZZ.run("stop_sql_warehouse", pat, {"warehouse_id": wid, "wait_for_state": True,
                                            "poll_interval_seconds": float("nan"), "timeout_seconds": 2})
    assert "poll_interval_seconds" in {p["key"] for p in exc.value.problems}



# Regression (found by this suite, fixed): connector/errors.py from_response: the message of a JSON
# error body is used whole, so an API error that echoes a 1 MB input becomes a 1 MB error message on
# stdout and in logs; text and HTML bodies are cut to 300-500 characters, JSON messages should be
# bounded the same way


def test_error_messages_are_bounded(emulator, pat):
    with pytest.raises(ConnectorError) as exc:
        FUZZ.run("create_cluster", pat, {"cluster_name": "fuzz", "spark_version": HUGE, "num_workers": 0})
    assert exc.value.type == "bad_request"
    assert len(exc.value.message) < 5000, f"a {len(exc.value.message)}-character message"


# --------------------------------------------------------------------------- generated from the schema

@pytest.mark.parametrize("key", ACTIONS)
@FUZZ_SETTINGS
@given(data=st.data())
def test_schema_generated_inputs(emulator, pat, key, data):
    """Inputs valid by the compiled schema: the action answers or fails with a classified error."""
    props = SPEC[key]["input_schema"]["properties"]
    inputs = schema_inputs(SPEC[key], data)
    before = len(emulator.requests)
    out, err = _run(key, pat, inputs)
    S.count("fuzz inputs tried")
    if isinstance(err, InputError):
        S.count("fuzz inputs refused by validation")
        keys = {p["key"] for p in err.problems}
        assert keys <= set(props) | {"(inputs)"}, err.problems
    if err is not None:
        _check_error(key, err, f"{key}{inputs!r}"[:300])
    for r in S.api_requests(emulator.requests[before:]):
        assert ".." not in r["path"].split("/")


@pytest.mark.parametrize("key", ACTIONS)
@FUZZ_SETTINGS
@given(data=st.data())
def test_several_hostile_inputs_are_all_named(emulator, pat, key, data):
    """Several hostile values at once: every one that is invalid on its own is named in one error."""
    props = SPEC[key]["input_schema"]["properties"]
    base = _bases(emulator, FUZZ, pat, key)
    chosen = data.draw(st.lists(st.sampled_from(sorted(props)), min_size=1, max_size=3, unique=True))
    names = [data.draw(st.sampled_from(sorted(n for n in HOSTILE if n not in ("huge", "nan")))) for _ in chosen]
    invalid_alone = set()
    for k, n in zip(chosen, names):
        if n in ("empty", "blank"):
            continue                     # "not given": whether that is wrong depends on the other inputs
        try:
            FUZZ.validate(key, {**base, k: HOSTILE[n]})
        except InputError as err:
            if k in {p["key"] for p in err.problems}:
                invalid_alone.add(k)
    inputs = {**base, **{k: HOSTILE[n] for k, n in zip(chosen, names)}}
    before = len(emulator.requests)
    out, err = _run(key, pat, inputs)
    S.count("fuzz inputs tried")
    if invalid_alone:
        assert isinstance(err, InputError), f"{key} {inputs!r}: {err!r}"[:500]
        missing = [k for k in invalid_alone if not _named(err, k, props[k])]
        assert not missing, f"{key}: {missing} not named in {err.problems}"
        assert not S.api_requests(emulator.requests[before:])
    if err is not None:
        _check_error(key, err, key)


# --------------------------------------------------------------------------- the CLI with hostile arguments

def cli(*args, stdin=None):
    p = subprocess.run([sys.executable, "-m", "databricks_connector", *args], capture_output=True, text=True,
                       timeout=60, env={**os.environ}, input=stdin)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def conn_file(tmp_path, pat):
    path = tmp_path / "conn.json"
    path.write_text(json.dumps(pat))
    return str(path)


def _one_json_document(out: str):
    assert "Traceback" not in out
    doc = json.loads(out)                                  # exactly one document: json.loads refuses trailing data
    return doc


@pytest.mark.parametrize("args", [
    ["run", "get_cluster", "cluster_id=../../etc/passwd"],
    ["run", "get_cluster", "cluster_id=" + "y" * 100_000],
    ["run", "get_cluster", "cluster_id=\x1b[31mred\u202e"],
    ["run", "get_cluster", "no-equals-sign"],
    ["run", "get_cluster", "--inputs-json", "[1, 2, 3]"],
    ["run", "get_cluster", "--inputs-json", "{\"cluster_id\": "],
    ["run", "get_cluster", "--inputs-json", "@/nonexistent/inputs.json"],
    ["run", "list_clusters", "max_items=-9007199254740993000000"],
    ["run", "list_clusters", "max_items=NaN"],
    ["run", "raw_request", "url=https://evil.example.com/api/2.0/x", "method=GET"],
    ["run", "raw_request", "url=/2.0/../../oidc/v1/token", "method=GET"],
    ["run", "no_such_action"],
], ids=lambda a: " ".join(a)[:40])
def test_cli_hostile_arguments_print_one_json_error(emulator, conn_file, args):
    before = len(emulator.requests)
    code, out, err = cli(*args, "--connection", conn_file)
    S.count("fuzz inputs tried")
    assert code == 1, (code, out, err[-500:])
    doc = _one_json_document(out)
    assert set(doc) == {"error"} and doc["error"]["type"] in ("invalid_input", "configuration", "not_found")
    assert "Traceback" not in err
    if doc["error"]["type"] == "invalid_input":
        assert not S.api_requests(emulator.requests[before:])


# Regression (found by this suite, fixed): connector/cli.py main/build_parser: an argument error
# (unknown option, missing action name, unknown command) makes argparse print usage to stderr and exit
# 2 with nothing on stdout; a run should still print one JSON document {"error": {"type":
# "invalid_input", ...}} and exit non-zero


@pytest.mark.parametrize("args", [["run", "get_cluster", "--bogus-flag"], ["run"]], ids=["unknown-option", "no-action"])
def test_cli_argument_errors_print_one_json_error(conn_file, args):
    code, out, err = cli(*args)
    assert code != 0 and "Traceback" not in err
    doc = _one_json_document(out)
    assert doc["error"]["type"] == "invalid_input"


def test_cli_nan_in_inputs_json_is_refused(emulator, conn_file):
    wid = S.seed_warehouse(emulator, "RUNNING")
    code, out, err = cli("run", "stop_sql_warehouse", "--inputs-json",
                         json.dumps({"warehouse_id": wid, "poll_interval_seconds": math.nan}), "--connection", conn_file)
    doc = _one_json_document(out)
    assert code == 1 and doc["error"]["type"] == "invalid_input"



# --------------------------------------------------------------------------- hostile inputs documents and connections

# Regression (found by this suite, fixed): connector/inputs.py resolve (called by
# runner.Connector._call and Connector.validate): inputs that are not a JSON object (a list, a string,
# a number) reach dict(raw) and raise TypeError/ValueError out of the Python API; they should be one
# InputError ('Inputs must be a JSON object')


@pytest.mark.parametrize("inputs", [[1, 2], "cluster_id=0123-456789-abcdefgh", 42], ids=["list", "string", "number"])
def test_inputs_that_are_not_an_object_are_an_input_error(emulator, pat, inputs):
    with pytest.raises(InputError):
        FUZZ.run("get_cluster", pat, inputs)


# Regression (found by this suite, fixed): connections/service_principal.py build (scopes that are
# neither text nor a list: list(123) raises TypeError) and connections/__init__.py connection_type (a
# type that is not a string: ALIASES.get raises TypeError 'unhashable type'): a malformed connection
# field escapes as a Python exception; it should be a 'configuration' ConnectorError naming the field


@pytest.mark.parametrize("change", [{"scopes": 123}, {"type": ["service_principal"]}], ids=["scopes-number", "type-list"])
def test_malformed_connection_fields_are_configuration_errors(emulator, sp, change):
    with pytest.raises(ConnectorError) as exc:
        FUZZ.run("get_current_user", {**sp, **change})
    assert exc.value.type == "configuration"


@pytest.mark.parametrize("change", [
    {"token": 5}, {"host": None}, {"host": ["a"]}, {"ca_bundle": 5}, {"ca_bundle": "/nonexistent.pem"},
    {"host": "http://169.254.169.254"}, {"type": "nope"},
], ids=lambda c: json.dumps(c, default=str)[:30])
def test_malformed_pat_fields_are_configuration_errors(emulator, pat, change):
    before = len(emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        FUZZ.run("get_current_user", {**pat, **change})
    assert exc.value.type == "configuration" and exc.value.hint
    assert len(emulator.requests) == before
    assert pat["token"] not in str(exc.value.to_dict())
