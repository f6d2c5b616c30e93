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

from databricks_connector.inputs import _fast_valid, _plan, validator  # noqa: E402
from databricks_connector.runner import Connector  # noqa: E402

_ACTIONS = Connector().manifest["actions"] + Connector().manifest.get("pickers", []) + [ACTION]
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=80),
                    st.sampled_from(["python", "GET", "json", "RUNNING", "0123-456789-abcdefgh", "1.0", "", "a" * 70]),
                    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
                    st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), st.integers()), max_size=3))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_fast_path_never_accepts_what_jsonschema_rejects(data):
    action = data.draw(st.sampled_from(_ACTIONS))
    keys = [i["key"] for i in action["inputs"] if i.get("type") != "connection"]
    values = data.draw(st.dictionaries(st.sampled_from(keys), _VALUES, max_size=len(keys))) if keys else {}
    values = {k: v for k, v in values.items() if v is not None}
    if _fast_valid(action, values):
        assert validator(action).is_valid(values), (action["key"], values)
    elif _plan(action) is not False:
        # when the fast path is in charge, it also accepts everything jsonschema accepts
        assert not validator(action).is_valid(values), (action["key"], values)


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
