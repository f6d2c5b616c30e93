"""The input vocabulary: defaults, coercion from form strings, one error naming every bad input."""
import pytest

from databricks_connector import InputError
from databricks_connector.inputs import compile_schema, resolve

ACTION = {
    "key": "t", "label": "T",
    "inputs": [
        {"key": "connection", "label": "Connection", "type": "connection", "required": True},
        {"key": "name", "label": "Name", "type": "string", "required": True},
        {"key": "count", "label": "Count", "type": "integer", "min": 1},
        {"key": "ratio", "label": "Ratio", "type": "number"},
        {"key": "flag", "label": "Flag", "type": "boolean", "default": False},
        {"key": "conf", "label": "Conf", "type": "object"},
        {"key": "items", "label": "Items", "type": "array"},
        {"key": "tags", "label": "Tags", "type": "key_value"},
        {"key": "lang", "label": "Language", "type": "string", "default": "python", "choices": ["python", "sql"]},
        {"key": "code", "label": "Code", "type": "text"},
        {"key": "a", "label": "A", "type": "integer"},
        {"key": "either", "label": "Either", "type": "json", "schema": {"type": ["array", "object"]}},
        {"key": "b", "label": "B", "type": "integer"},
    ],
    "rules": [{"exclusive": ["a", "b"]}],
}


def test_defaults_and_coercion_from_form_strings():
    out = resolve(ACTION, {"name": "x", "count": "42", "ratio": "0.5", "flag": "true", "conf": '{"k": 1}',
                           "items": "[1, 2]", "tags": '[{"key": "team", "value": "data"}]'})
    assert out == {"name": "x", "count": 42, "ratio": 0.5, "flag": True, "conf": {"k": 1}, "items": [1, 2],
                   "tags": {"team": "data"}, "lang": "python"}


def test_json_values_pass_through():
    out = resolve(ACTION, {"name": "x", "count": 3, "flag": False, "conf": {"a": "b"}, "tags": {"a": "b"}})
    assert out["count"] == 3 and out["flag"] is False and out["conf"] == {"a": "b"} and out["tags"] == {"a": "b"}


@pytest.mark.parametrize("text,expected", [("a=1\nb=2", {"a": "1", "b": "2"}), ('["a=1"]', {"a": "1"}),
                                           ('{"a": "1"}', {"a": "1"})])
def test_key_value_lists(text, expected):
    assert resolve(ACTION, {"name": "x", "tags": text})["tags"] == expected


def test_empty_form_fields_mean_not_given():
    out = resolve(ACTION, {"name": "x", "count": "", "flag": "", "conf": "  "})
    assert "count" not in out and out["flag"] is False and "conf" not in out


def test_every_bad_input_is_named_at_once():
    with pytest.raises(InputError) as exc:
        resolve(ACTION, {"count": "many", "flag": "perhaps", "conf": "{not json", "lang": "cobol", "ratio": "0",
                         "bogus": 1})
    err = exc.value
    keys = {p["key"] for p in err.problems}
    assert keys == {"name", "count", "flag", "conf", "lang", "bogus"}
    msg = err.message
    for label in ("Name", "Count", "Flag", "Conf", "Language"):
        assert label in msg
    assert err.type == "invalid_input"
    assert "must be one of python, sql" in msg
    assert "is required" in msg
    assert "not valid JSON" in msg


def test_schema_fragments_with_a_list_of_types():
    assert resolve(ACTION, {"name": "x", "either": "[1]"})["either"] == [1]
    assert resolve(ACTION, {"name": "x", "either": '{"a": 1}'})["either"] == {"a": 1}
    with pytest.raises(InputError) as exc:
        resolve(ACTION, {"name": "x", "either": "3"})
    assert exc.value.problems[0]["key"] == "either"


def test_minimum_and_types_after_coercion():
    with pytest.raises(InputError) as exc:
        resolve(ACTION, {"name": "x", "count": "0", "conf": "[1]", "items": '{"a": 1}'})
    keys = {p["key"] for p in exc.value.problems}
    assert keys == {"count", "conf", "items"}


def test_exclusive_rule():
    with pytest.raises(InputError) as exc:
        resolve(ACTION, {"name": "x", "a": "1", "b": "2"})
    assert "cannot be combined" in exc.value.message


def test_compiled_schema_shape():
    schema = compile_schema(ACTION)
    assert schema["required"] == ["name"]
    assert schema["properties"]["lang"]["enum"] == ["python", "sql"]
    assert schema["properties"]["count"]["minimum"] == 1
    assert schema["additionalProperties"] is False


def test_validators_are_compiled_once():
    from databricks_connector import inputs

    resolve(ACTION, {"name": "x"})
    v = inputs._VALIDATORS["t"]
    resolve(ACTION, {"name": "y"})
    assert inputs._VALIDATORS["t"] is v


def test_integer_accepts_whole_floats_and_refuses_fractions():
    assert resolve(ACTION, {"name": "x", "count": "5.0"})["count"] == 5
    with pytest.raises(InputError):
        resolve(ACTION, {"name": "x", "count": "5.5"})


# -- the fast path agrees with jsonschema ------------------------------------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from databricks_connector.inputs import _fast_valid, _plan, compile_check, compile_schema, validator  # noqa: E402
from databricks_connector.runner import Connector  # noqa: E402

_MANIFEST = Connector().manifest
_ACTIONS = _MANIFEST["actions"] + _MANIFEST.get("pickers", []) + [ACTION]
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=80),
                     st.sampled_from(["python", "GET", "json", "RUNNING", "0123-456789-abcdefgh", "1.0", "", "a" * 70]))
_VALUES = st.one_of(_SCALARS,
                    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
                    st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), st.integers()), max_size=3))


def _like(prop: dict, depth: int = 0):
    """Values shaped by a property's schema (often valid, sometimes just off), mixed with noise."""
    options = [_VALUES]
    if "enum" in prop:
        options.append(st.sampled_from(prop["enum"]))
    if "examples" in prop:
        options.append(st.sampled_from(prop["examples"]))
    if "default" in prop:
        options.append(st.just(prop["default"]))
    types = prop.get("type")
    types = types if isinstance(types, list) else [types] if types else []
    for t in types:
        if t in ("integer", "number"):
            lo, hi = prop.get("minimum", -10**6), prop.get("maximum", 10**6)
            options.append(st.integers(min_value=int(lo) - 1, max_value=int(hi) + 1))
            if t == "number":
                options.append(st.floats(min_value=lo - 1, max_value=hi + 1, allow_nan=False))
        elif t == "string":
            options.append(st.text(max_size=prop.get("maxLength", 40) + 1))
            if "pattern" in prop:
                options.append(st.from_regex(prop["pattern"], fullmatch=True))
        elif t == "array" and depth < 2:
            options.append(st.lists(_like(prop.get("items") if isinstance(prop.get("items"), dict) else {}, depth + 1),
                                    max_size=3))
        elif t == "object" and depth < 2:
            extra = prop.get("additionalProperties")
            options.append(st.dictionaries(st.text(max_size=6),
                                           _like(extra if isinstance(extra, dict) else {}, depth + 1), max_size=3))
    for sub in prop.get("anyOf", []) + prop.get("oneOf", []):
        if isinstance(sub, dict) and depth < 2:
            options.append(_like(sub, depth + 1))
    return st.one_of(options)


def test_every_action_is_decided_by_the_fast_check():
    """No action imports jsonschema for valid inputs (cold start): every compiled schema is covered."""
    assert [a["key"] for a in _ACTIONS if _plan(a) is False] == []


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], deadline=None)
@given(data=st.data())
def test_the_fast_check_agrees_with_jsonschema_on_every_action(data):
    action = data.draw(st.sampled_from(_ACTIONS))
    props = compile_schema(action)["properties"]
    keys = sorted(props)
    values = {}
    for key in data.draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys))) if keys else []:
        v = data.draw(_like(props[key]))
        if v is not None:
            values[key] = v
    required = compile_schema(action).get("required", [])
    if data.draw(st.booleans()):                     # often fill the required inputs, so valid cases are common
        for key in required:
            if key not in values:
                v = data.draw(_like(props[key]))
                if v is not None:
                    values[key] = v
    expected = validator(action).is_valid(values)
    assert _fast_valid(action, values) is expected, (action["key"], values)


# Random schemas over the whole vocabulary (and a few keywords the fast check leaves to jsonschema).
_NAMES = st.sampled_from(["a", "b", "c"])
_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from([0.0, 1.0, 2.5, -1.5]),
                               st.sampled_from(["", "a", "ab", "abc", "x-1"])),
                     lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_NAMES, inner, max_size=3)),
                     max_leaves=6)


def _schemas():
    leaf = st.one_of(
        st.booleans(),
        st.fixed_dictionaries({"type": st.one_of(st.sampled_from(["string", "integer", "number", "boolean", "object",
                                                                  "array", "null"]),
                                                 st.lists(st.sampled_from(["string", "integer", "null", "array"]),
                                                          min_size=1, max_size=2, unique=True))}),
        st.fixed_dictionaries({"enum": st.lists(_JSON, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"const": _JSON}),
        st.builds(lambda k, n: {k: n}, st.sampled_from(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]),
                  st.one_of(st.integers(-2, 2), st.sampled_from([0.5, -1.5]))),
        st.builds(lambda k, n: {k: n}, st.sampled_from(["minLength", "maxLength", "minItems", "maxItems",
                                                        "minProperties", "maxProperties"]), st.integers(0, 3)),
        st.fixed_dictionaries({"pattern": st.sampled_from(["^a", "b$", "^x-[0-9]$", "."])}),
        st.fixed_dictionaries({"required": st.lists(_NAMES, max_size=2, unique=True)}),
        st.fixed_dictionaries({"dependentRequired": st.dictionaries(_NAMES, st.lists(_NAMES, max_size=2), max_size=2)}),
        st.fixed_dictionaries({"title": st.text(max_size=3), "x-widget": st.just("json"), "x-show-if": _JSON}),
        st.sampled_from([{"format": "date"}, {"multipleOf": 2}, {"uniqueItems": True}, {"uniqueItems": False},
                         {"patternProperties": {"^a": {"type": "string"}}}, {"$ref": "#/$defs/x", "$defs": {"x": {}}},
                         {"prefixItems": [{"type": "string"}]}, {"unknownKeyword": 1}]),
    )

    def extend(inner):
        return st.one_of(
            st.builds(lambda s: {"items": s}, inner),
            st.builds(lambda p, a: {"properties": p, "additionalProperties": a},
                      st.dictionaries(_NAMES, inner, max_size=2), st.one_of(st.booleans(), inner)),
            st.builds(lambda p: {"properties": p}, st.dictionaries(_NAMES, inner, max_size=2)),
            st.builds(lambda k, subs: {k: subs}, st.sampled_from(["allOf", "anyOf", "oneOf"]),
                      st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda s: {"not": s}, inner),
            st.builds(lambda i, t, e: {k: v for k, v in (("if", i), ("then", t), ("else", e)) if v is not None},
                      inner, st.one_of(st.none(), inner), st.one_of(st.none(), inner)),
            st.builds(lambda d: {"dependentSchemas": d}, st.dictionaries(_NAMES, inner, max_size=2)),
            st.builds(lambda s: {"propertyNames": s}, inner),
            st.builds(lambda a, b: {**a, **b} if isinstance(a, dict) and isinstance(b, dict) else a, inner, inner),
        )
    return st.recursive(leaf, extend, max_leaves=8)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(schema=_schemas(), instances=st.lists(_JSON, min_size=1, max_size=5))
def test_the_compiled_check_equals_jsonschema_on_random_schemas(schema, instances):
    from jsonschema import Draft202012Validator

    check = compile_check(schema)
    if check is None:
        return                                       # left to jsonschema: correct by construction
    v = Draft202012Validator(schema)
    for instance in instances:
        assert check(instance) is v.is_valid(instance), (schema, instance)


def test_keywords_outside_the_fast_check_fall_back_to_jsonschema():
    for schema in ({"format": "email"}, {"multipleOf": 3}, {"$ref": "#/$defs/x"}, {"uniqueItems": True},
                   {"patternProperties": {"^x": {}}}, {"unevaluatedProperties": False}, {"somethingNew": 1},
                   {"items": {"contains": {"type": "string"}}}, {"anyOf": [{"type": "string"}, {"prefixItems": []}]}):
        assert compile_check(schema) is None, schema
    for schema in ({"x-picker": "jobs", "x-widget": "code:sql", "title": "T"}, {"oneOf": [{"type": "string"}]},
                   {"if": {"type": "string"}, "then": {"minLength": 2}}, {"dependentRequired": {"a": ["b"]}}):
        assert compile_check(schema) is not None, schema
    odd = {"key": "odd", "label": "Odd", "inputs": [{"key": "when", "label": "When", "type": "string",
                                                     "schema": {"format": "date-time"}}]}
    assert _plan(odd) is False and not _fast_valid(odd, {"when": "now"})
    assert resolve(odd, {"when": "now"}) == {"when": "now"}          # jsonschema decided (format is annotation-only)


# Key-value text: one pair per line; several on one line only when unambiguous (connector/inputs.py).
@pytest.mark.parametrize("text,expected", [
    ("JAVA_OPTS=-Da=1,-Db=2", {"JAVA_OPTS": "-Da=1,-Db=2"}),
    ("spark.jars=a.jar,b.jar", {"spark.jars": "a.jar,b.jar"}),
    ("spark.driver.extraJavaOptions=-Dx=1,y=2", {"spark.driver.extraJavaOptions": "-Dx=1,y=2"}),
    ("team=data,env=prod", {"team": "data", "env": "prod"}),
    ("team=data, env=prod", {"team": "data", "env": "prod"}),
    ("a=1\r\nb=x,y\n\n  c = with spaces  ", {"a": "1", "b": "x,y", "c": "with spaces"}),
    ("url=https://h/p?x=1&y=2", {"url": "https://h/p?x=1&y=2"}),
    ("empty=", {"empty": ""}),
])
def test_key_value_text_keeps_commas_in_values(text, expected):
    assert resolve(ACTION, {"name": "x", "tags": text})["tags"] == expected


@pytest.mark.parametrize("text,line", [("Authorization: Bearer dapi-secret-value-123", 1),
                                       ("a=1\nBearer dapi-secret-value-123", 2), ("=dapi-secret-value-123", 1)])
def test_key_value_errors_name_the_line_never_its_value(text, line):
    with pytest.raises(InputError) as exc:
        resolve(ACTION, {"name": "x", "tags": text})
    assert f"line {line}" in exc.value.message and "dapi-secret" not in exc.value.message
    assert "dapi-secret" not in str(exc.value.to_dict())


def test_structured_inputs_have_a_depth_limit_and_no_nan():
    from databricks_connector.inputs import MAX_DEPTH

    ok = {"a": 1}
    for _ in range(MAX_DEPTH - 1):
        ok = {"a": ok}
    assert resolve(ACTION, {"name": "x", "conf": ok})["conf"] == ok
    with pytest.raises(InputError) as exc:
        resolve(ACTION, {"name": "x", "conf": {"a": ok}, "items": "[" * 5000 + "]" * 5000,
                         "either": {"x": [1.0, float("inf")]}})
    reasons = {p["key"]: p["reason"] for p in exc.value.problems}
    assert "nested deeper" in reasons["conf"] and "nested deeper" in reasons["items"] and "NaN" in reasons["either"]
