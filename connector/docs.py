"""Docs generated from the manifest, in the reference documentation's shape: per connection its
setup steps and an Input | Comments | Default table (then Key and Required); per action its
description, the same table, its output fields and an example output; the pickers; the triggers
with their event fields; the shared output definitions. ``check_docs`` reports drift."""
from __future__ import annotations

import json
from pathlib import Path

FILE = "connector.md"
HEAD = ["Input", "Comments", "Default", "Key", "Required"]
REF = "#/$defs/"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _table(rows: list[list[str]], head: list[str] = HEAD) -> list[str]:
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return [fmt(head), "| " + " | ".join("-" * w for w in widths) + " |", *(fmt(r) for r in rows)]


def _required(inp) -> str:
    if inp.get("type") == "connection" or (inp.get("required") and "default" not in inp):
        return "yes"
    return ""


def _input_rows(inputs) -> list[list[str]]:
    rows = []
    for i in inputs:
        comments = _cell(i.get("comments"))
        if i.get("choices") and i.get("type") != "connection":
            values = [c["value"] if isinstance(c, dict) else c for c in i["choices"]]
            comments = (comments + " " if comments else "") + "One of: " + ", ".join(f"`{_cell(v)}`" for v in values) + "."
        if i.get("aliases"):
            old = [a if isinstance(a, str) else a["key"] for a in i["aliases"]]
            comments = (comments + " " if comments else "") + "Also accepted as " + ", ".join(f"`{a}`" for a in old) + "."
        rows.append([_cell(i["label"]), comments, _cell(i.get("default")), f"`{i['key']}`", _required(i)])
    return rows


# --------------------------------------------------------------------------- output schemas as field tables

def _def_link(name: str, definitions: dict) -> str:
    d = definitions.get(name, {})
    return f"[{d['title']}](#def-{name})" if d.get("title") else None


def _type(schema: dict, definitions: dict) -> str:
    """A schema as a short type text: string, array of [Run](#def-run), object, ..."""
    if not isinstance(schema, dict) or not schema:
        return "any"
    if "$ref" in schema:
        name = schema["$ref"][len(REF):]
        link = _def_link(name, definitions)
        return link or _type(definitions.get(name, {}), definitions)
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(dict.fromkeys(_type(s, definitions) for s in schema[key]))
    t = schema.get("type")
    if isinstance(t, list):
        return " or ".join("null" if x == "null" else x for x in t)
    if t == "array":
        return f"array of {_type(schema.get('items', {}), definitions)}"
    if t == "object" and isinstance(schema.get("additionalProperties"), dict) and not schema.get("properties"):
        return f"object of {_type(schema['additionalProperties'], definitions)}"
    return t or "any"


def _fields(schema: dict, definitions: dict) -> list[list[str]]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in (schema.get("properties") or {}).items():
        desc = prop.get("description", "") if isinstance(prop, dict) else ""
        if isinstance(prop, dict) and prop.get("examples") and "enum" not in prop:
            desc = (desc + " " if desc else "") + "E.g. " + ", ".join(f"`{_cell(v)}`" for v in prop["examples"][:8]) + "."
        rows.append([f"`{name}`", _cell(_type(prop, definitions)), "yes" if name in required else "", _cell(desc)])
    return rows


def _schema_section(schema: dict, definitions: dict, what: str) -> list[str]:
    """How an output (or event) is described: the fields of each shape it can take."""
    variants = schema.get("anyOf") or schema.get("oneOf")
    shapes = variants if variants and not schema.get("properties") else [schema]
    out = []
    for shape in shapes:
        title = shape.get("title")
        ref = shape.get("$ref")
        own = _fields(shape, definitions)
        if ref:
            name = ref[len(REF):]
            target = _def_link(name, definitions) or name
            extra = f", with {', '.join(r[0] for r in own)}" if own else ""
            lead = f"**{title}**: {target}{extra}." if title else f"{what} {target}{extra}."
            out += [lead, ""]
            continue
        if own:
            if title:
                out += [f"**{title}**:", ""]
            out += _table(own, ["Field", "Type", "Always", "Description"]) + [""]
        else:
            text = f"{_type(shape, definitions)}" + (f" ({shape['description']})" if shape.get("description") else "")
            out += [f"**{title}**: {text}." if title else f"{what} {text}.", ""]
    return out


# --------------------------------------------------------------------------- the page

def _annotations(item) -> str:
    a = item.get("annotations") or {}
    words = [w for w, on in (("read-only", a.get("read_only")), ("destructive", a.get("destructive")),
                             ("idempotent", a.get("idempotent")), ("long-running", a.get("long_running")),
                             ("open world", a.get("open_world"))) if on]
    return f"_Version {item['version']}" + (f"; {', '.join(words)}" if words else "") + "._"


def _notes(item) -> list[str]:
    """The cross-field rules and runtime checks, in words (all checked before any request)."""
    label = {i["key"]: i["label"] for i in item["inputs"]}
    names = lambda keys: ", ".join(label.get(k, k) for k in keys)  # noqa: E731
    notes = []
    for rule in item.get("rules", []):
        if "message" in rule:
            notes.append(f"* {label.get(rule['input'], rule['input'])}: {rule['message']}.")
        elif "exclusive" in rule:
            notes.append(f"* At most one of {names(rule['exclusive'])}.")
        elif "one_of_required" in rule:
            notes.append(f"* At least one of {names(rule['one_of_required'])}.")
        elif "together" in rule:
            notes.append(f"* {names(rule['together'])}: all or none.")
        elif "greater" in rule:
            (a, b), = rule["greater"].items()
            notes.append(f"* {label.get(a, a)} must be greater than {label.get(b, b)}.")
    for check in item.get("runtime_checks", []):
        notes.append(f"* {label.get(check['input'], check['input'])}: {check['rule']}")
    return (["Rules (checked before any request):", "", *notes, ""]) if notes else []


def render(manifest: dict) -> str:
    meta = manifest["connector"]
    defs = manifest.get("definitions", {})
    labels = {a["key"]: a["label"] for a in manifest["actions"]}
    out = [f"# {meta['label']} Connector", "",
           f"![{meta['label']}](../{meta['icon']}#connector-icon)",
           meta["description"].strip(), "",
           "<!-- Generated from connector.yaml by `databricks-connector docs`; do not edit by hand. -->", "",
           "## Connections", ""]
    for conn in manifest["connections"]:
        out += [f"### {conn['label']}", "", conn["description"].strip(), ""]
        out += _table([[_cell(f["label"]), _cell(f.get("comments")), _cell(f.get("default")), f"`{f['key']}`",
                        "yes" if f.get("required") and "default" not in f else ""] for f in conn["fields"]])
        out += ["", f"Connection type `{conn['key']}`; tested with {labels.get(conn.get('test'), conn.get('test'))} "
                    f"(`{conn.get('test')}`).", ""]
    out += ["## Actions", ""]
    for action in sorted(manifest["actions"], key=lambda a: a["label"].lower()):
        out += [f"### {action['label']}", "", action["description"].strip(), "", _annotations(action), ""]
        out += _table(_input_rows(action["inputs"]))
        out.append("")
        out += _notes(action)
        out += ["Output:", ""] + _schema_section(action["output"], defs, "Returns")
        if "example_output" in action:
            out += ["Example output:", "", "```json", json.dumps(action["example_output"], indent=2), "```"]
        out.append("")
    if manifest.get("pickers"):
        out += ["## Pickers", "", "Data sources that fill a builder's dropdowns; each returns a list of `{label, value}` options.", ""]
        for picker in sorted(manifest["pickers"], key=lambda a: a["label"].lower()):
            out += [f"### {picker['label']}", "", picker["description"].strip(), ""]
            out += _table(_input_rows(picker["inputs"]))
            out.append("")
    if manifest.get("triggers"):
        out += ["## Triggers", "",
                "Polling triggers. Each poll (`databricks-connector poll TRIGGER --state FILE`, or "
                "`poll(trigger, connection, inputs, state)` in Python) returns the new events and a state to pass to "
                "the next poll; the caller keeps the state, the connector keeps nothing. The first poll starts from "
                "now (no history unless Since is given); every poll reads an overlap window behind its cursor and "
                "skips events it already emitted, so each event fires exactly once, in order, even when events arrive "
                "late or out of order; a poll reads at most Max Pages pages within its timeout, and `more` is true "
                "when the next poll should come soon.", ""]
        for trig in sorted(manifest["triggers"], key=lambda a: a["label"].lower()):
            out += [f"### {trig['label']}", "", trig["description"].strip(), "", _annotations(trig), ""]
            out += _table(_input_rows(trig["inputs"]))
            out.append("")
            out += _notes(trig)
            out += [f"Each event is identified by `{trig['dedupe_key']}`."
                    + (f" Cursor: {trig['cursor']}" if trig.get("cursor") else ""), "", "Event:", ""]
            out += _schema_section(trig["event"], defs, "Each event:")
            out += ["Example event:", "", "```json", json.dumps(trig["example_event"], indent=2), "```", ""]
    titled = sorted((n for n, d in defs.items() if d.get("title")), key=lambda n: defs[n]["title"].lower())
    if titled:
        out += ["## Output definitions", "", "The shapes shared by the outputs above (JSON Schema in `databricks-connector spec`).", ""]
        for name in titled:
            d = defs[name]
            out += [f'<a id="def-{name}"></a>', "", f"### {d['title']}", ""]
            if d.get("description"):
                out += [d["description"].strip(), ""]
            out += _schema_section({k: v for k, v in d.items() if k != "title"}, defs, "It is")
    return "\n".join(out).rstrip() + "\n"


def expected() -> dict[str, str]:
    from . import manifest

    return {FILE: render(manifest.load())}


def write_docs(directory: str) -> list[str]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected().items():
        (d / name).write_text(text, encoding="utf-8")
        written.append(str(d / name))
    return written


def check_docs(directory: str) -> list[str]:
    """Names of generated files that are missing or differ."""
    drift = []
    for name, text in expected().items():
        path = Path(directory) / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            drift.append(str(path))
    return drift
