"""Docs generated from the manifest, in the reference documentation's shape: per connection its
setup steps and an Input | Comments | Default table; per action its description, the same
table and an example output. ``check_docs`` reports drift."""
from __future__ import annotations

import json
from pathlib import Path

FILE = "connector.md"


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


def _table(rows: list[list[str]]) -> list[str]:
    head = ["Input", "Comments", "Default"]
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(3)]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return [fmt(head), "| " + " | ".join("-" * w for w in widths) + " |", *(fmt(r) for r in rows)]


def _input_rows(inputs) -> list[list[str]]:
    rows = []
    for i in inputs:
        comments = _cell(i.get("comments"))
        if i.get("choices") and i.get("type") != "connection":
            values = [c["value"] if isinstance(c, dict) else c for c in i["choices"]]
            comments = (comments + " " if comments else "") + "One of: " + ", ".join(f"`{_cell(v)}`" for v in values) + "."
        rows.append([_cell(i["label"]), comments, _cell(i.get("default"))])
    return rows


def render(manifest: dict) -> str:
    meta = manifest["connector"]
    out = [f"# {meta['label']} Connector", "",
           f"![{meta['label']}](../{meta['icon']}#connector-icon)",
           meta["description"].strip(), "",
           "<!-- Generated from connector.yaml by `databricks-connector docs`; do not edit by hand. -->", "",
           "## Connections", ""]
    for conn in manifest["connections"]:
        out += [f"### {conn['label']}", "", conn["description"].strip(), ""]
        out += _table([[_cell(f["label"]), _cell(f.get("comments")), _cell(f.get("default"))] for f in conn["fields"]])
        out.append("")
    out += ["## Actions", ""]
    for action in sorted(manifest["actions"], key=lambda a: a["label"].lower()):
        out += [f"### {action['label']}", "", action["description"].strip(), ""]
        out += _table(_input_rows(action["inputs"]))
        if "example_output" in action:
            out += ["", "Example output:", "", "```json", json.dumps(action["example_output"], indent=2), "```"]
        out.append("")
    if manifest.get("pickers"):
        out += ["## Pickers", "", "Data sources that fill a builder's dropdowns; each returns a list of `{label, value}` options.", ""]
        for picker in sorted(manifest["pickers"], key=lambda a: a["label"].lower()):
            out += [f"### {picker['label']}", "", picker["description"].strip(), ""]
            out += _table(_input_rows(picker["inputs"]))
            out.append("")
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
