"""The input schemas say what the runtime enforces: for every action, generated resolved inputs
are accepted by the published ``input_schema`` exactly when the runtime accepts them.

"Schema" is the spec's input_schema judged by JSON Schema 2020-12 plus the one documented extension
keyword (``x-greater-than``, evaluated here from its documented meaning, not by the connector's
code), on the resolved inputs (defaults applied). "Runtime" is ``Connector.run`` against a trap
server on loopback that answers every request with 404: the runtime accepted the inputs when a
request was sent (the action then fails with not_found), and refused them when it raised an
InputError - before any request, which is checked too. The only refusals a schema may not predict
are the ones the manifest declares as ``runtime_checks`` (JSON Schema cannot express them: a URL's
host against the connection's, duplicate parameter names, an optional package); they must name
the inputs they are declared on.

Values are drawn in their resolved form (what validate() returns: integers for integer inputs,
non-blank text, string maps for key-value inputs), and objects are filled with the nested keys the
schema's rules look at, so every cross-field rule is exercised from both sides.
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from databricks_connector import ConnectorError, InputError
from databricks_connector.runner import Connector

CONNECTOR = Connector(retry_timeout=2, read_timeout=5)
SPEC = {a["key"]: a for a in CONNECTOR.spec()["actions"]}
ITEMS = {a["key"]: a for a in CONNECTOR.manifest["actions"]}
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
# Inputs kept small so a run against the trap stays quick (retries, waits).
BOUNDED = {"max_retry_count": st.integers(0, 1), "retry_delay_ms": st.integers(0, 5), "timeout": st.integers(1, 2000),
           "timeout_seconds": st.integers(1, 3), "poll_interval_seconds": st.sampled_from([0.1, 0.5]),
           # request headers of Raw Request: plain names (a Content-Length or a non-Latin-1 name is another matter)
           "headers": st.dictionaries(st.from_regex(r"X-[A-Za-z]{1,8}", fullmatch=True), st.from_regex(r"[ -~]{0,8}", fullmatch=True),
                                      max_size=2)}


class _Trap(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"          # keep-alive, as a workspace answers
    count = 0
    lock = threading.Lock()

    def _answer(self):
        with _Trap.lock:
            _Trap.count += 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "trap: nothing here"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def trap():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trap)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"type": "personal_access_token", "host": f"http://127.0.0.1:{server.server_address[1]}",
           "token": "dapi0123456789abcdef0123456789abcdef"}
    server.shutdown()


# --------------------------------------------------------------------------- values in their resolved form

JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-3, 20), st.sampled_from([0.5, -1.5, 2.25]),
                              st.text(max_size=6), st.just("")),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                    max_leaves=6)
WORDS = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)


def _nested_keys(schema) -> dict:
    """{input: nested keys the schema looks at} - e.g. additional_settings: spark_version, num_workers."""
    found: dict = {}

    def walk(node):
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if isinstance(sub, dict):
                    found.setdefault(name, set()).update(sub.get("properties", {}).keys())
                    found[name].update(sub.get("required", []))
                    for part in ("anyOf", "oneOf", "allOf"):
                        for alt in sub.get(part, []):
                            found[name].update((alt.get("properties") or {}).keys())
                            found[name].update(alt.get("required", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(schema)
    return found


def _mostly(valid, invalid):
    """Mostly values the input accepts, sometimes one it refuses (so cross-field rules get their turn)."""
    return st.one_of(valid, valid, valid, valid, valid, valid, valid, valid, invalid)


def value_for(key, prop, item_input, nested):
    kind = item_input.get("type", "string")
    if key in BOUNDED:
        return BOUNDED[key]
    if "enum" in prop:
        return _mostly(st.sampled_from(prop["enum"]), st.just("NOT_A_CHOICE")) if kind in ("string", "text") \
            else st.sampled_from(prop["enum"])
    if kind in ("string", "password"):
        if "pattern" in prop:
            return _mostly(st.from_regex(prop["pattern"], fullmatch=True).filter(lambda s: s.strip()), WORDS)
        return WORDS
    if kind == "text":
        return _mostly(WORDS, st.just(" "))
    if kind == "integer":
        lo, hi = prop.get("minimum", -5), prop.get("maximum", 30)
        top = hi if hi < 10 ** 6 else lo + 40
        return _mostly(st.integers(lo, max(lo, min(top, lo + 40))), st.integers(lo - 3, lo - 1) | st.integers(top + 1, top + 3))
    if kind == "number":
        lo, hi = prop.get("minimum", 0), prop.get("maximum", 100)
        return _mostly(st.sampled_from([lo, (lo + hi) / 2, hi]), st.sampled_from([lo - 1, hi + 1]))
    if kind == "boolean":
        return st.booleans()
    if kind == "key_value":
        return st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=3)
    if kind == "array":
        items = prop.get("items") or {}
        if "enum" in items:
            element = _mostly(st.sampled_from(items["enum"]), st.just("NOT_A_CHOICE"))
        elif items.get("type") == "object":
            element = _mostly(st.fixed_dictionaries({k: WORDS for k in items.get("required", [])}, optional={"x": JSON}), JSON)
        else:
            element = _mostly(WORDS, JSON)
        return st.lists(element, max_size=3)
    if kind in ("object", "json"):
        keys = sorted(nested.get(key, ()))
        obj = st.fixed_dictionaries({}, optional={**{k: JSON for k in keys}, "other": JSON})
        if kind == "object":
            return obj
        return _mostly(st.one_of(obj, st.lists(st.one_of(obj, WORDS), max_size=3)), JSON)
    return JSON


REQUIRED_PRESENT = st.sampled_from([True] * 9 + [False])
OPTIONAL_PRESENT = st.sampled_from([False] * 3 + [True])
RULE_PRESENT = st.sampled_from([False, True])          # inputs the cross-field rules name: as often given as not


def _rule_inputs(schema) -> set:
    """The inputs the schema's cross-field rules name (anywhere in allOf, and x-greater-than)."""
    names = set(schema.get("x-greater-than", {})) | set(schema.get("x-greater-than", {}).values())
    stack = [schema.get("allOf", [])]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            names.update(node.get("required", []), node.get("dependentRequired", {}), node.get("properties", {}))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names & set(schema["properties"])


def resolved_inputs(key, data):
    schema = SPEC[key]["input_schema"]
    item_inputs = {i["key"]: i for i in ITEMS[key]["inputs"]}
    nested = _nested_keys(schema)
    required = set(schema.get("required", []))
    in_rules = _rule_inputs(schema)
    inputs = {}
    for name, prop in schema["properties"].items():
        if name == "output_path":
            continue                                     # never written: the trap fails the step first
        present = REQUIRED_PRESENT if name in required else RULE_PRESENT if name in in_rules else OPTIONAL_PRESENT
        if data.draw(present, label=f"{name} given"):
            inputs[name] = data.draw(value_for(name, prop, item_inputs[name], nested), label=name)
    return inputs


# --------------------------------------------------------------------------- the two verdicts

def schema_verdict(key, inputs) -> bool:
    schema = SPEC[key]["input_schema"]
    resolved = dict(inputs)
    for i in ITEMS[key]["inputs"]:
        if i.get("type") != "connection" and "default" in i:
            resolved.setdefault(i["key"], i["default"])
    if not Draft202012Validator(schema).is_valid(resolved):
        return False
    for a, b in schema.get("x-greater-than", {}).items():     # documented: when both are given, a > b
        x, y = resolved.get(a), resolved.get(b)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool) \
                and not isinstance(y, bool) and not x > y:
            return False
    return True


def runtime_verdict(key, conn, inputs):
    before = _Trap.count
    try:
        CONNECTOR.run(key, conn, inputs)
    except InputError as err:
        assert _Trap.count == before, f"{key}: refused {err.problems}, after sending a request"
        return False, err
    except ConnectorError as err:
        assert err.type != "internal", f"{key} {inputs!r}: {err!r}"
        assert _Trap.count > before, f"{key}: failed with {err.type} without a request"
        return True, None
    return True, None


@pytest.mark.parametrize("key", sorted(SPEC))
@SETTINGS
@given(data=st.data())
def test_schema_and_runtime_accept_and_refuse_the_same_inputs(trap, key, data):
    inputs = resolved_inputs(key, data)
    by_schema = schema_verdict(key, inputs)
    by_runtime, err = runtime_verdict(key, trap, inputs)
    if by_schema == by_runtime:
        return
    assert by_schema, f"{key}: the runtime accepts inputs its schema refuses: {inputs!r}"
    declared = {c["input"] for c in ITEMS[key].get("runtime_checks", [])}
    undeclared = [p for p in err.problems if p["key"] not in declared]
    assert not undeclared, f"{key}: the schema accepts, the runtime refuses {undeclared} for {inputs!r}"


def test_declared_runtime_checks_are_real(trap):
    """Each declared runtime check refuses something the schema accepts (it is not an escape hatch)."""
    cases = {
        "raw_request": {"url": "https://elsewhere.example.com/api/2.0/x", "method": "GET"},
        "execute_sql_statement": {"warehouse_id": "w1", "statement": "SELECT 1",
                                  "parameters": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]},
    }
    for key, inputs in cases.items():
        assert schema_verdict(key, inputs), key
        accepted, err = runtime_verdict(key, trap, inputs)
        assert not accepted and {p["key"] for p in err.problems} <= {c["input"] for c in ITEMS[key]["runtime_checks"]}


@pytest.mark.parametrize("key, inputs, named", [
    ("create_cluster", {"spark_version": "13.3.x-scala2.12"}, "num_workers"),
    ("create_cluster", {"num_workers": 1}, "spark_version"),
    ("create_cluster", {"spark_version": "s", "autoscale_min_workers": 2, "autoscale_max_workers": 2}, "autoscale_max_workers"),
    ("create_cluster", {"spark_version": "s", "autoscale_max_workers": 2}, "autoscale_min_workers"),
    ("create_cluster", {"spark_version": "s", "num_workers": 1, "autoscale_min_workers": 1, "autoscale_max_workers": 2},
     "num_workers"),
    ("resize_cluster", {"cluster_id": "c1"}, "num_workers"),
    ("submit_run", {"tasks": []}, "tasks"),
    ("create_job", {"settings": {"name": ""}}, "tasks"),
    ("update_job", {"job_id": 1, "new_settings": {}}, "new_settings"),
    ("cancel_all_runs", {"all_queued_runs": False}, "job_id"),
    ("execute_sql_statement", {"warehouse_id": "w", "statement": "SELECT 1", "format": "CSV", "disposition": "INLINE"},
     "disposition"),
])
def test_cross_field_refusals_name_the_input_and_send_nothing(trap, key, inputs, named):
    assert not schema_verdict(key, inputs)
    accepted, err = runtime_verdict(key, trap, inputs)
    assert not accepted and named in {p["key"] for p in err.problems}, err and err.problems
    labels = {i["key"]: i["label"] for i in ITEMS[key]["inputs"]}
    assert all(p["label"] == labels.get(p["key"], p["label"]) for p in err.problems)
    assert not any(re.search(r"is not valid under|is valid under each", p["reason"]) for p in err.problems), err.problems
