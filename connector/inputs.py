"""The input vocabulary: compile an action's input table to JSON Schema, then resolve inputs.

Resolving is: drop empty form values, apply defaults, coerce strings from forms to their
types (``"true"`` -> True, ``"42"`` -> 42, JSON text -> object or array, key-value lists ->
object), then validate with jsonschema. Every bad input is reported at once, by label.

Key-value text (``key_value`` inputs typed into a form field) is one ``key=value`` pair per
line: the first ``=`` ends the key, everything after it is the value, commas and ``=`` included
(``JAVA_OPTS=-Da=1,-Db=2`` is one pair; so is ``spark.jars=a.jar,b.jar``). A single line holds
several pairs only when that is unambiguous: every comma-separated part is ``name=value`` with a
plain name (letters, digits, ``_ . -``, not starting with ``-``) and no ``=`` or comma in any value
(``team=data,env=prod`` is two pairs). For anything else put one pair per line, or give JSON
(``{"k": "v"}``, ``[{"key": "k", "value": "v"}]``, ``["k=v"]``). An error about key-value text
names the line, never its value: a header or a configuration value may hold a credential.

Structured values (objects and arrays, given as JSON text or as values) may nest at most
``MAX_DEPTH`` levels and may not hold NaN or Infinity: both are input errors, before any request.
"""
from __future__ import annotations

import json
import math
import re

from .errors import InputError

MAX_DEPTH = 64
KEY_VALUE_RULE = ("One key=value pair per line (commas and = after the first = are part of the value); "
                  "one line may hold several pairs only as name=value,name=value with no = or comma in the values.")

DIALECT = "https://json-schema.org/draft/2020-12/schema"
TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}

# vocabulary type -> JSON Schema fragment
BASE = {
    "string": {"type": "string"},
    "text": {"type": "string"},
    "password": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "object": {"type": "object"},
    "array": {"type": "array"},
    "json": {},
    "key_value": {"type": "object", "additionalProperties": {"type": "string"}},
}


def is_secret(inp: dict) -> bool:
    return bool(inp.get("secret")) or inp.get("type") == "password"


def data_inputs(action: dict) -> list[dict]:
    """The inputs a caller supplies (the connection travels separately)."""
    return [i for i in action["inputs"] if i.get("type") != "connection"]


def _widget(inp: dict) -> str | None:
    """How a form edits the value: declared, else textarea for text and a JSON editor for
    structured values (key-value lists and lists of plain values have editors of their own)."""
    if inp.get("widget"):
        return inp["widget"]
    kind = inp.get("type", "string")
    if kind == "text":
        return "textarea"
    if kind in ("json", "object"):
        return "json"
    if kind == "array":
        items = (inp.get("schema") or {}).get("items") or {}
        if items.get("type") not in ("string", "integer", "number", "boolean") and "enum" not in items:
            return "json"
    return None


def property_schema(inp: dict) -> dict:
    prop = dict(BASE[inp.get("type", "string")])
    prop["title"] = inp["label"]
    if inp.get("comments"):
        prop["description"] = inp["comments"]
    if "default" in inp:
        prop["default"] = inp["default"]
    if "example" in inp:
        prop["examples"] = [inp["example"]]
    if "choices" in inp:
        values = [c["value"] if isinstance(c, dict) else c for c in inp["choices"]]
        prop["enum"] = values
        # The same values with their labels, as form builders read them (enum stays for those that do not).
        prop["oneOf"] = [{"const": c["value"], "title": c["label"]} if isinstance(c, dict) else {"const": c, "title": str(c)}
                         for c in inp["choices"]]
    for ours, theirs in (("min", "minimum"), ("max", "maximum"), ("min_length", "minLength"),
                         ("max_length", "maxLength"), ("pattern", "pattern")):
        if ours in inp:
            prop[theirs] = inp[ours]
    if inp.get("schema"):
        prop.update(inp["schema"])
    if is_secret(inp):
        prop["writeOnly"] = True
        prop["x-secret"] = True
    if inp.get("picker"):
        prop["x-picker"] = inp["picker"]
    if inp.get("picker_inputs"):
        prop["x-picker-inputs"] = dict(inp["picker_inputs"])
    widget = _widget(inp)
    if widget:
        prop["x-widget"] = widget
    if inp.get("advanced"):
        prop["x-advanced"] = True
    if inp.get("show_if"):
        prop["x-show-if"] = dict(inp["show_if"])
    return prop


def _condition(key: str, cond, inp: dict | None, *, then: bool = False) -> dict:
    """One input's condition of an if/then rule as JSON Schema over the resolved inputs."""
    if cond == "present":
        return {"required": [key]}
    if cond == "absent":
        return {"not": {"required": [key]}}
    values = cond if isinstance(cond, list) else [cond]
    out = {"properties": {key: {"const": values[0]} if len(values) == 1 else {"enum": values}}}
    # Resolved inputs always carry defaults; a default that already satisfies `then` need not be sent.
    if not (then and inp is not None and "default" in inp and inp["default"] in values):
        out["required"] = [key]
    return out


def _conditions(conds: dict, by_key: dict, *, then: bool = False) -> dict:
    parts = [_condition(k, v, by_key.get(k), then=then) for k, v in conds.items()]
    return parts[0] if len(parts) == 1 else {"allOf": parts}


def _labels(keys, by_key) -> str:
    names = [by_key[k]["label"] if k in by_key else k for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _rule_schemas(rule: dict, by_key: dict) -> list[dict]:
    """A manifest rule as the allOf entries of the input schema; each carries the input a failure
    is reported on (x-input) and why (x-message)."""
    out = []
    if "exclusive" in rule:          # at most one of these inputs
        keys = rule["exclusive"]
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                out.append({"not": {"required": [a, b]}, "x-input": rule.get("input", a),
                            "x-message": rule.get("message", f"cannot be combined with {_labels([b], by_key)}")})
    if "one_of_required" in rule:    # at least one of these inputs
        keys = rule["one_of_required"]
        out.append({"anyOf": [{"required": [k]} for k in keys], "x-input": rule.get("input", keys[0]),
                    "x-message": rule.get("message", f"or {_labels(keys[1:], by_key)} is required")})
    if "together" in rule:           # all or none
        keys = rule["together"]
        out.append({"dependentRequired": {k: [o for o in keys if o != k] for k in keys}})
    if "if" in rule:
        keys = list(rule["then"])
        out.append({"if": _conditions(rule["if"], by_key), "then": _conditions(rule["then"], by_key, then=True),
                    "x-input": rule.get("input", keys[0]),
                    "x-message": rule.get("message", f"must be {rule['then'][keys[0]]} when "
                                                     f"{_labels(list(rule['if']), by_key)} is given")})
    if "schema" in rule:
        entry = {**rule["schema"], "x-input": rule["input"], "x-message": rule["message"]}
        if "message_many" in rule:
            entry["x-message-many"] = rule["message_many"]
        out.append(entry)
    return out


def compile_schema(action: dict) -> dict:
    """The JSON Schema (2020-12) of one action's *resolved* inputs (defaults applied, form strings
    coerced), with the form hints platforms read (x-picker, x-picker-inputs, x-widget, x-advanced,
    x-show-if, labelled enums) and the cross-field rules the runtime enforces."""
    props, required = {}, []
    inputs = data_inputs(action)
    by_key = {i["key"]: i for i in inputs}
    for inp in inputs:
        props[inp["key"]] = property_schema(inp)
        if inp.get("required") and "default" not in inp:
            required.append(inp["key"])
    schema = {"$schema": DIALECT, "title": action["label"], "type": "object",
              "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    for rule in action.get("rules", []):
        entries = _rule_schemas(rule, by_key)
        if entries:
            schema.setdefault("allOf", []).extend(entries)
        if "greater" in rule:            # no JSON Schema keyword compares two fields: an extension the runtime enforces
            schema.setdefault("x-greater-than", {}).update(rule["greater"])
    if action.get("runtime_checks"):
        schema["x-runtime-checks"] = [dict(c) for c in action["runtime_checks"]]
    return schema


_VALIDATORS: dict[str, object] = {}
_PLANS: dict[str, object] = {}


# --------------------------------------------------------------------------- the fast check
#
# Importing jsonschema costs about 50 ms, a third of a cold run, and validating with it a few
# hundred microseconds per call. Valid inputs (the common case) are decided by a predicate
# compiled once per action from the same JSON Schema. It implements the keywords below exactly as
# jsonschema's Draft 2020-12 validator does (tests/test_inputs.py proves both agree on every
# action and on random schemas); a schema with any other keyword (``$ref``, ``format``,
# ``multipleOf``, ``patternProperties``, ``uniqueItems``, ``unevaluated*``, ...) is left to
# jsonschema, so correctness never depends on this coverage. Invalid inputs always go to
# jsonschema, which writes the error messages.

_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "writeOnly", "readOnly", "deprecated",
                          "$comment", "$schema", "$defs", "contentMediaType", "contentEncoding", "contentSchema"})
_TYPES = {"string": lambda v: isinstance(v, str),
          "boolean": lambda v: isinstance(v, bool),
          "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
          "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "object": lambda v: isinstance(v, dict),
          "array": lambda v: isinstance(v, list),
          "null": lambda v: v is None}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _equal(one, two) -> bool:
    """jsonschema's equality: booleans are not numbers, 1 == 1.0, containers compared deeply."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, (list, tuple)) and isinstance(two, (list, tuple)):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return len(one) == len(two) and all(k in two and _equal(v, two[k]) for k, v in one.items())
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return one == two


class _Unsupported(Exception):
    pass


def _always(v):
    return True


def _never(v):
    return False


def _compile(schema):
    """A predicate equal to ``Draft202012Validator(schema).is_valid``; raises _Unsupported."""
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        raise _Unsupported
    checks = []
    for key, val in schema.items():
        if key in _ANNOTATIONS or (key.startswith("x-") and key not in _KEYWORDS) or key in ("then", "else"):
            continue                                 # then/else belong to "if"
        build = _KEYWORDS.get(key)
        if build is None:
            raise _Unsupported(key)
        check = build(val, schema)
        if check is not None:
            checks.append(check)
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    checks = tuple(checks)

    def every(v):
        for c in checks:
            if not c(v):
                return False
        return True
    return every


def _kw_type(val, schema):
    names = val if isinstance(val, list) else [val]
    if not names or not all(isinstance(n, str) and n in _TYPES for n in names):
        raise _Unsupported("type")
    tests = tuple(_TYPES[n] for n in names)
    if len(tests) == 1:
        return tests[0]
    return lambda v: any(t(v) for t in tests)


def _kw_enum(val, schema):
    if not isinstance(val, list):
        raise _Unsupported("enum")
    if val and all(isinstance(e, str) for e in val):
        choices = frozenset(val)
        return lambda v: isinstance(v, str) and v in choices
    return lambda v: any(_equal(e, v) for e in val)


def _kw_const(val, schema):
    return lambda v: _equal(v, val)


def _number_bound(op):
    def build(val, schema):
        if not _is_number(val):
            raise _Unsupported
        return lambda v: not _is_number(v) or op(v, val)
    return build


def _length_bound(kind, op):
    def build(val, schema):
        if not isinstance(val, int) or isinstance(val, bool):
            raise _Unsupported
        return lambda v: not isinstance(v, kind) or op(len(v), val)
    return build


def _kw_pattern(val, schema):
    if not isinstance(val, str):
        raise _Unsupported("pattern")
    try:
        search = re.compile(val).search
    except re.error:
        raise _Unsupported("pattern") from None
    return lambda v: not isinstance(v, str) or search(v) is not None


def _kw_items(val, schema):
    if "prefixItems" in schema:
        raise _Unsupported("prefixItems")
    sub = _compile(val)
    return lambda v: not isinstance(v, list) or all(sub(x) for x in v)


def _kw_unique_items(val, schema):
    if val is False:
        return None
    raise _Unsupported("uniqueItems")


def _kw_properties(val, schema):
    if not isinstance(val, dict):
        raise _Unsupported("properties")
    subs = tuple((k, _compile(sub)) for k, sub in val.items())

    def check(v):
        if not isinstance(v, dict):
            return True
        for k, sub in subs:
            if k in v and not sub(v[k]):
                return False
        return True
    return check


def _kw_additional(val, schema):
    if "patternProperties" in schema:
        raise _Unsupported("patternProperties")
    known = frozenset(schema.get("properties") or ())
    if val is False:
        return lambda v: not isinstance(v, dict) or all(k in known for k in v)
    sub = _compile(val)
    if sub is _always:
        return None
    return lambda v: not isinstance(v, dict) or all(sub(x) for k, x in v.items() if k not in known)


def _kw_required(val, schema):
    if not isinstance(val, list):
        raise _Unsupported("required")
    keys = tuple(val)
    return lambda v: not isinstance(v, dict) or all(k in v for k in keys)


def _kw_dependent_required(val, schema):
    if not isinstance(val, dict) or not all(isinstance(d, list) for d in val.values()):
        raise _Unsupported("dependentRequired")
    rules = tuple((k, tuple(d)) for k, d in val.items())
    return lambda v: not isinstance(v, dict) or all(k not in v or all(d in v for d in ds) for k, ds in rules)


def _kw_dependent_schemas(val, schema):
    if not isinstance(val, dict):
        raise _Unsupported("dependentSchemas")
    rules = tuple((k, _compile(sub)) for k, sub in val.items())
    return lambda v: not isinstance(v, dict) or all(k not in v or sub(v) for k, sub in rules)


def _kw_property_names(val, schema):
    sub = _compile(val)
    return lambda v: not isinstance(v, dict) or all(sub(k) for k in v)


def _subs(val, name):
    if not isinstance(val, list) or not val:
        raise _Unsupported(name)
    return tuple(_compile(s) for s in val)


def _kw_all_of(val, schema):
    subs = _subs(val, "allOf")
    return lambda v: all(s(v) for s in subs)


def _kw_any_of(val, schema):
    subs = _subs(val, "anyOf")
    return lambda v: any(s(v) for s in subs)


def _kw_one_of(val, schema):
    subs = _subs(val, "oneOf")
    return lambda v: sum(1 for s in subs if s(v)) == 1


def _kw_not(val, schema):
    sub = _compile(val)
    return lambda v: not sub(v)


def _kw_if(val, schema):
    cond = _compile(val)
    then = _compile(schema["then"]) if "then" in schema else _always
    other = _compile(schema["else"]) if "else" in schema else _always
    return lambda v: then(v) if cond(v) else other(v)


def _kw_greater(val, schema):
    """``x-greater-than`` ({a: b}): when both inputs are numbers, a must be greater than b - the one
    extension keyword of the input schemas, enforced as ``validator_class()`` enforces it."""
    if not isinstance(val, dict):
        raise _Unsupported("x-greater-than")
    pairs = tuple(val.items())

    def greater(v):
        if not isinstance(v, dict):
            return True
        for a, b in pairs:
            x, y = v.get(a), v.get(b)
            if _is_number(x) and _is_number(y) and not x > y:
                return False
        return True
    return greater


_KEYWORDS = {
    "x-greater-than": _kw_greater,
    "type": _kw_type, "enum": _kw_enum, "const": _kw_const,
    "minimum": _number_bound(lambda v, b: v >= b), "maximum": _number_bound(lambda v, b: v <= b),
    "exclusiveMinimum": _number_bound(lambda v, b: v > b), "exclusiveMaximum": _number_bound(lambda v, b: v < b),
    "minLength": _length_bound(str, lambda n, b: n >= b), "maxLength": _length_bound(str, lambda n, b: n <= b),
    "pattern": _kw_pattern,
    "items": _kw_items, "minItems": _length_bound(list, lambda n, b: n >= b),
    "maxItems": _length_bound(list, lambda n, b: n <= b), "uniqueItems": _kw_unique_items,
    "properties": _kw_properties, "additionalProperties": _kw_additional, "required": _kw_required,
    "dependentRequired": _kw_dependent_required, "dependentSchemas": _kw_dependent_schemas,
    "propertyNames": _kw_property_names,
    "minProperties": _length_bound(dict, lambda n, b: n >= b), "maxProperties": _length_bound(dict, lambda n, b: n <= b),
    "allOf": _kw_all_of, "anyOf": _kw_any_of, "oneOf": _kw_one_of, "not": _kw_not, "if": _kw_if,
}


def compile_check(schema):
    """The fast predicate of a JSON Schema, or None when jsonschema must decide."""
    try:
        return _compile(schema)
    except (_Unsupported, RecursionError):
        return None


def _plan(action: dict):
    """The action's compiled check (built once per process), or False when jsonschema decides."""
    plan = _PLANS.get(action["key"])
    if plan is None:
        plan = compile_check(compile_schema(action)) or False
        _PLANS[action["key"]] = plan
    return plan


def _fast_valid(action: dict, values: dict) -> bool:
    plan = _plan(action)
    return plan is not False and plan(values)


def validator(action: dict):
    """A compiled validator per action, built once per process."""
    v = _VALIDATORS.get(action["key"])
    if v is None:
        v = _VALIDATORS[action["key"]] = validator_class()(compile_schema(action))
    return v


_CLASS = None


def validator_class():
    """Draft 2020-12 with the one extension keyword the input schemas use: ``x-greater-than``
    ({a: b}: when both inputs are given, a must be greater than b; JSON Schema cannot compare two
    fields). A validator that ignores it accepts a superset of what the runtime accepts."""
    global _CLASS
    if _CLASS is None:
        from jsonschema import Draft202012Validator, validators
        from jsonschema.exceptions import ValidationError

        def greater(validator, spec, instance, schema):
            if not isinstance(instance, dict):
                return
            titles = schema.get("properties", {})
            for a, b in spec.items():
                x, y = instance.get(a), instance.get(b)
                if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)) and not x > y:
                    label = titles.get(b, {}).get("title", b)
                    yield ValidationError(f"must be greater than {label} ({y}); got {x}", path=[a])

        _CLASS = validators.extend(Draft202012Validator, {"x-greater-than": greater})
    return _CLASS


class _Bad(ValueError):
    pass


def _coerce(value, inp: dict):
    kind = inp.get("type", "string")
    if kind in ("string", "text", "password"):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return value
    if isinstance(value, str):
        text = value.strip()
        if kind == "boolean":
            low = text.lower()
            if low in TRUE:
                return True
            if low in FALSE:
                return False
            raise _Bad("must be true or false")
        if kind == "integer":
            try:
                return int(text)
            except ValueError:
                try:
                    f = float(text)
                except ValueError:
                    raise _Bad("must be a whole number") from None
                if f.is_integer() and abs(f) < 2 ** 63:
                    return int(f)
                raise _Bad("must be a whole number") from None
        if kind == "number":
            try:
                f = float(text)
            except ValueError:
                raise _Bad("must be a number") from None
            if f != f or f in (float("inf"), float("-inf")):
                raise _Bad("must be a finite number")
            return int(f) if f.is_integer() and "." not in text and "e" not in text.lower() else f
        if kind in ("object", "array", "json", "key_value"):
            if kind == "key_value" and not text.startswith(("{", "[")):
                return _key_value_lines(text)
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise _Bad(f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
            except RecursionError:
                raise _Bad(f"is nested deeper than {MAX_DEPTH} levels") from None
            _check_nested(value)
    if kind == "key_value":
        return _key_value(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise _Bad("must be a finite number")
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_SIMPLE_PAIR = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_.\-]*\s*=[^=]*")


def _key_value_lines(text: str) -> dict:
    """Key-value text (see the module doc): one pair per line, several only when unambiguous.
    Errors name the line, never its content."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) > 1 and all(_SIMPLE_PAIR.fullmatch(p) for p in parts):
            pairs = [p.split("=", 1) for p in parts]
        elif "=" in line:
            pairs = [line.split("=", 1)]
        else:
            raise _Bad(f"line {n} is not key=value (it has no '='); {KEY_VALUE_RULE}")
        for k, v in pairs:
            if not k.strip():
                raise _Bad(f"line {n} has no key before '='")
            out[k.strip()] = v.strip()
    return out


def _check_nested(value) -> None:
    """Depth and finiteness of a structured value, without recursion (a hostile input may nest
    100,000 levels)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            if depth > MAX_DEPTH:
                raise _Bad(f"is nested deeper than {MAX_DEPTH} levels")
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            if depth > MAX_DEPTH:
                raise _Bad(f"is nested deeper than {MAX_DEPTH} levels")
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, float) and not math.isfinite(v):
            raise _Bad("contains NaN or Infinity, which JSON cannot carry")


def _key_value(value):
    """A key-value list from a form ([{key, value}] or ["k=v"]) or an object, as an object."""
    if isinstance(value, dict):
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
    if isinstance(value, list):
        out = {}
        for item in value:
            if isinstance(item, dict) and "key" in item:
                v = item.get("value", "")
                out[str(item["key"])] = v if isinstance(v, str) else json.dumps(v)
            elif isinstance(item, str) and "=" in item:
                k, v = item.split("=", 1)
                out[k.strip()] = v.strip()
            else:
                raise _Bad("each item must be {\"key\": ..., \"value\": ...} or \"key=value\"")
        return out
    raise _Bad("must be an object or a list of key-value pairs")


def resolve(action: dict, raw: dict | None, check=None) -> dict:
    """Defaults, coercion and validation. Raises one InputError naming every bad input.

    ``check(values) -> [problem]`` is the action's own check (the manifest's ``check``: what no
    JSON Schema can say, such as whether an output file can be written), run on the values that
    resolved, so its problems and the schema's come in the same error, before any request."""
    if raw is not None and not isinstance(raw, dict):
        raise InputError([{"key": "(inputs)", "label": "Inputs",
                           "reason": f"must be a JSON object of input keys to values, not {type(raw).__name__}"}])
    raw = dict(raw or {})
    by_key = {i["key"]: i for i in data_inputs(action)}
    problems: list[dict] = []
    values: dict = {}
    aliases = _aliases(action)
    unknown = 0
    if aliases and any(k in aliases for k in raw):
        raw = _unalias(raw, aliases, by_key, problems)
    for key, value in raw.items():
        inp = by_key.get(key)
        if inp is None:
            unknown += 1
            problems.append({"key": key, "label": key, "reason": unknown_input(action, key, guess=unknown <= SUGGEST_KEYS)})
            continue
        if value is None or (isinstance(value, str) and value.strip() == "" and inp.get("type") not in ("text",)):
            continue  # an empty form field means "not given"
        try:
            if isinstance(value, (dict, list)):
                _check_nested(value)
            values[key] = _coerce(value, inp)
        except _Bad as exc:
            problems.append({"key": key, "label": inp["label"], "reason": str(exc)})
    for key, inp in by_key.items():
        if key not in values and key not in {p["key"] for p in problems} and "default" in inp:
            values[key] = inp["default"]
    if problems:
        # Still validate what coerced, so every bad input is named in one error.
        problems += _schema_problems(action, values, by_key, skip={p["key"] for p in problems})
        problems += _checked(check, values, {p["key"] for p in problems})
        raise InputError(problems)
    problems = [] if _fast_valid(action, values) else _schema_problems(action, values, by_key)
    problems += _checked(check, values, {p["key"] for p in problems})
    if problems:
        raise InputError(problems)
    return values


def _checked(check, values: dict, skip: set) -> list[dict]:
    """The action's own check on the inputs that are not already known to be bad."""
    if check is None:
        return []
    found = check({k: v for k, v in values.items() if k not in skip}) or []
    return [p for p in found if p.get("key") not in skip]


def _schema_problems(action, values, by_key, skip=frozenset()) -> list[dict]:
    out, seen = [], set()
    v = validator(action)
    for err in v.iter_errors(values):
        key, reason = _rule_problem(err, v.schema, by_key, values) or _describe(err, by_key)
        if key in skip or (key, reason) in seen:
            continue
        if key is None and skip:
            continue
        seen.add((key, reason))
        out.append({"key": key or "(inputs)", "label": by_key[key]["label"] if key in by_key else "Inputs", "reason": reason})
    return out


def _rule_problem(err, schema, by_key, values):
    """A failed cross-field rule, reported on the input its manifest rule names, with its message."""
    path = list(err.absolute_schema_path)
    if len(path) < 2 or path[0] != "allOf":
        return None
    rule = schema["allOf"][path[1]]
    if "dependentRequired" in rule:
        for key, needs in rule["dependentRequired"].items():
            missing = [n for n in needs if key in values and n not in values]
            if missing:
                return missing[0], f"is required when {by_key.get(key, {}).get('label', key)} is given"
        return None
    if "x-message" not in rule:
        return None
    message = rule["x-message"]
    if len(path) == 3 and path[2] == "oneOf" and not err.context and "x-message-many" in rule:
        message = rule["x-message-many"]          # several branches matched, not none
    return rule["x-input"], message


def _enum_labels(prop: dict) -> bool:
    """A oneOf of {const, title} that lists exactly the enum's values: labels, no further constraint."""
    one_of, enum = prop.get("oneOf"), prop.get("enum")
    return (isinstance(one_of, list) and isinstance(enum, list) and len(one_of) == len(enum)
            and all(isinstance(b, dict) and set(b) <= {"const", "title"} and "const" in b for b in one_of)
            and [b["const"] for b in one_of] == enum)


def _describe(err, by_key):
    if err.validator == "required" and not err.absolute_path:
        m = re.match(r"'(.+)' is a required property", err.message)
        return (m.group(1) if m else None), "is required"
    if err.validator == "additionalProperties" and not err.absolute_path:
        return None, err.message
    if err.absolute_path:
        key = err.absolute_path[0]
        inp = by_key.get(key, {})
        where = "".join(f"[{p!r}]" for p in list(err.absolute_path)[1:])
        if err.validator == "enum" or (err.validator == "oneOf" and _enum_labels(err.schema) and not where):
            reason = f"must be one of {', '.join(map(str, err.schema['enum']))}"
        elif err.validator == "type" and not where:
            reason = f"must be {_article(err.validator_value)}"
        elif err.validator == "not" and err.schema.get("x-message"):
            reason = err.schema["x-message"]
        else:
            reason = err.message if not is_secret(inp) else f"is invalid ({err.validator})"
            if len(reason) > 300:
                reason = reason[:300] + "..."
        return key, (f"{where} " if where else "") + reason
    if err.validator == "not":                 # an exclusive rule
        names = err.validator_value.get("required", [])
        labels = " and ".join(by_key[n]["label"] for n in names if n in by_key)
        return names[0] if names else None, f"cannot be combined with {labels.split(' and ')[-1]}" if labels else err.message
    if err.validator == "anyOf":
        names = [s["required"][0] for s in err.validator_value if s.get("required")]
        return names[0] if names else None, "or " + ", ".join(by_key[n]["label"] for n in names[1:] if n in by_key) + " is required"
    return None, err.message


def _article(t) -> str:
    names = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
             "object": "a JSON object", "array": "a JSON array"}
    if isinstance(t, list):
        return " or ".join(names.get(x, x) for x in t)
    return names.get(t, t)


# --------------------------------------------------------------------------- aliases and unknown keys
#
# An input may list ``aliases``: the names it had before (``wait_for_state`` for ``wait``), still
# accepted from every front door, so a renamed input never breaks a saved workflow. An alias is a
# key, or ``{key, values}`` when the old input took other values (``cancel_on_timeout: true``
# means ``on_timeout: cancel``). The resolved inputs carry the input's own key only.

_ALIAS_MAPS: dict[str, dict] = {}


def aliases_of(inp: dict) -> list[dict]:
    """An input's aliases as ``[{"key": old, "values": {old value: new value} or None}]``."""
    return [{"key": a, "values": None} if isinstance(a, str) else {"key": a["key"], "values": a.get("values")}
            for a in inp.get("aliases") or ()]


def _aliases(action: dict) -> dict:
    """{alias: (input, values)} of an item, built once per process."""
    found = _ALIAS_MAPS.get(action["key"])
    if found is None:
        found = {a["key"]: (inp, a["values"]) for inp in data_inputs(action) for a in aliases_of(inp)}
        _ALIAS_MAPS[action["key"]] = found
    return found


def _alias_value(value, mapping: dict):
    """An old input's value in the new input's terms; raises _Bad when the old input had no such value."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value.strip()
        low = text.lower()
        if low in TRUE and "true" in mapping:
            text = "true"
        elif low in FALSE and "false" in mapping:
            text = "false"
    elif isinstance(value, (int, float)):
        text = str(value)
    else:
        raise _Bad(f"must be one of {', '.join(map(str, mapping))}")
    if text not in mapping:
        raise _Bad(f"must be one of {', '.join(map(str, mapping))}")
    return mapping[text]


def _empty(value, inp: dict) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "" and inp.get("type") not in ("text",))


def _unalias(raw: dict, aliases: dict, by_key: dict, problems: list) -> dict:
    """The raw inputs with every alias renamed to its input's key (values translated); an input
    given under two names is a problem named on the input, unless the two agree."""
    out = {k: v for k, v in raw.items() if k not in aliases}
    for old, value in raw.items():
        if old not in aliases:
            continue
        inp, mapping = aliases[old]
        key = inp["key"]
        if _empty(value, inp):
            continue
        if mapping is not None:
            try:
                value = _alias_value(value, mapping)
            except _Bad as exc:
                problems.append({"key": old, "label": inp["label"], "reason": f"(the old name of {key}) {exc}"})
                continue
        if key in out and not _empty(out[key], inp) and out[key] != value:
            problems.append({"key": key, "label": inp["label"],
                             "reason": f"is given twice, as {key} and under its old name {old}; give only {key}"})
            continue
        out[key] = value
    return out


SUGGEST_MAX = 100          # longer names get no did-you-mean
SUGGEST_KEYS = 20          # unknown keys of one call that get one; the rest are only named


def suggest(name: str, known, n: int = 3) -> list[str]:
    """The known names closest to a mistyped one (case and separators ignored), best first."""
    import difflib

    if not isinstance(name, str) or len(name) > SUGGEST_MAX:
        return []                  # a hostile 20 MB key costs no comparison
    norm = lambda t: re.sub(r"[\s_\-]+", "_", str(t).strip().lower())  # noqa: E731
    by_norm: dict = {}
    for k in known:
        by_norm.setdefault(norm(k), k)
    target = norm(name)
    if target in by_norm:
        return [by_norm[target]]
    close = difflib.get_close_matches(target, list(by_norm), n=n, cutoff=0.6)
    if not close:   # a prefix or a part of a name: "cluster" -> cluster_id
        close = [k for k in by_norm if target and (k.startswith(target) or target in k.split("_"))][:n]
    return [by_norm[c] for c in close]


def unknown_input(action: dict, key: str, *, guess: bool = True) -> str:
    """Why ``key`` is refused: not an input of this item, the inputs it may have meant, and all of its inputs."""
    inputs = data_inputs(action)
    names = [i["key"] for i in inputs]
    if not guess:
        return f"is not an input of {action.get('label') or 'this action'}"
    labels = {i["label"]: i["key"] for i in inputs}
    guess = suggest(key, names + list(labels) + list(_aliases(action)))
    guess = list(dict.fromkeys(labels.get(g, _aliases(action)[g][0]["key"] if g in _aliases(action) else g) for g in guess))
    text = f"is not an input of {action.get('label') or 'this action'}"
    if guess:
        text += " (did you mean " + " or ".join(guess) + "?)"
    return text + f"; its inputs: {', '.join(names)}"
