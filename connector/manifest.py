"""Load the manifest, check it against its meta-schema, and resolve shared inputs.

The manifest is the single source of truth. ``connector.yaml`` holds the connector, its
connections, the shared inputs and the list of API ``areas``; each area's actions, pickers and
triggers are in ``actions/<area>.yaml`` beside that area's handlers (``actions/<area>.py``).
Loading reads them all into one document, validates it against ``manifest.schema.json`` (every
problem reported with its file and path) and resolves shared-input references. The resolved
result is cached as JSON so a fresh process does not pay for PyYAML and jsonschema on every run;
the cache is keyed by the path, size and mtime of every manifest file and the package version, so
any edit is picked up.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from .errors import ConnectorError

HERE = Path(__file__).resolve().parent
META_SCHEMA_PATH = HERE / "manifest.schema.json"
SECTIONS = ("actions", "pickers", "triggers")      # what an area file lists
MERGED = ("inputs", "definitions")                  # maps an area file may add to (no key twice)
# A picker only reads: these are its annotations unless it declares its own.
PICKER_ANNOTATIONS = {"read_only": True, "destructive": False, "idempotent": True, "long_running": False,
                      "open_world": False}


def manifest_path() -> Path:
    """The installed manifest sits inside the package; in a checkout it is at the repo root."""
    for candidate in (HERE / "connector.yaml", HERE.parent / "connector.yaml"):
        if candidate.is_file():
            return candidate
    raise ConnectorError("configuration", "connector.yaml was not found next to the package")


def area_path(path: Path, area: str) -> Path:
    return Path(path).parent / "actions" / f"{area}.yaml"


class ManifestError(ConnectorError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("configuration", "connector.yaml is invalid:\n  " + "\n  ".join(problems),
                         hint="Fix the manifest files at the paths listed.")


def _yaml(path: Path):
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except OSError as exc:
        raise ManifestError([f"{path.name}: cannot be read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        raise ManifestError([f"{path.name} (yaml): {exc}"]) from None


def read(path: Path | None = None) -> tuple[dict, dict]:
    """The raw manifest as one document (connector.yaml with every area file's sections appended
    in the order of ``areas``), and where each item came from: ``{(section, index): area}``."""
    path = Path(path) if path else manifest_path()
    doc = _yaml(path)
    origins: dict = {}
    if not isinstance(doc, dict):
        return doc, origins
    areas = doc.get("areas")
    if not isinstance(areas, list):
        return doc, origins
    problems = []
    for area in areas:
        if not isinstance(area, str):
            continue
        part = _yaml(area_path(path, area))
        if not isinstance(part, dict):
            problems.append(f"actions/{area}.yaml: must be a mapping of {', '.join(SECTIONS)}")
            continue
        unknown = sorted(set(part) - set(SECTIONS) - set(MERGED))
        if unknown:
            problems.append(f"actions/{area}.yaml: unknown section(s) {', '.join(unknown)}; "
                            f"an area file holds {', '.join(SECTIONS + MERGED)}")
        for section in SECTIONS:
            if section not in part:
                continue
            items = part[section] or []
            if not isinstance(items, list):
                problems.append(f"actions/{area}.yaml: {section} must be a list")
                continue
            into = doc.setdefault(section, [])
            for item in items:
                origins[(section, len(into))] = area
                into.append(item)
        for section in MERGED:
            if section not in part:
                continue
            extra = part[section] or {}
            if not isinstance(extra, dict):
                problems.append(f"actions/{area}.yaml: {section} must be a mapping")
                continue
            into = doc.setdefault(section, {})
            for key, value in extra.items():
                if key in into:
                    problems.append(f"actions/{area}.yaml: {section}/{key} is already declared elsewhere")
                into[key] = value
                origins[(section, key)] = area
    if problems:
        raise ManifestError(problems)
    return doc, origins


def check(doc, origins: dict | None = None) -> list[str]:
    """Every problem in a raw (merged) manifest document, each as 'path: reason'; with
    ``origins``, an item's path names its area file."""
    from jsonschema import Draft202012Validator

    schema = json.loads(META_SCHEMA_PATH.read_text())
    problems = [_where(list(err.absolute_path), origins) + f": {err.message}"
                for err in Draft202012Validator(schema).iter_errors(doc)]
    if problems:
        return sorted(problems, key=_natural)
    return _check_references(doc, origins) or _check_aliases(doc, origins)


def _natural(text: str):
    """Sort key: file, then path with numbers in numeric order (actions/2 before actions/10)."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _where(path: list, origins: dict | None) -> str:
    """A problem's place: the file it is in and its path there (an item's index within its area file)."""
    text = "/".join(str(p) for p in path) or "(root)"
    if origins and len(path) >= 2 and (path[0], path[1]) in origins:
        area = origins[(path[0], path[1])]
        if isinstance(path[1], int):
            local = sum(1 for (sec, j), a in origins.items()
                        if sec == path[0] and isinstance(j, int) and j < path[1] and a == area)
            text = "/".join([str(path[0]), str(local), *map(str, path[2:])])
        return f"actions/{area}.yaml: {text}"
    return text


def _check_references(doc, origins=None) -> list[str]:
    problems = []
    shared = doc.get("inputs", {})
    pickers = {p["key"]: p for p in doc.get("pickers", [])}
    definitions = doc.get("definitions", {})
    actions = {a["key"] for a in doc.get("actions", [])}
    seen = set()
    for name, schema in definitions.items():
        problems += _check_schema(schema, definitions, _where(["definitions", name], origins))
    for i, conn in enumerate(doc.get("connections", [])):
        if conn.get("test") not in actions:
            problems.append(f"connections/{i}/test: {conn.get('test')!r} is not an action")
    for section in SECTIONS:
        for i, item in enumerate(doc.get(section, [])):
            where = _where([section, i], origins)
            if item["key"] in seen:
                problems.append(f"{where}/key: duplicate key {item['key']!r}")
            seen.add(item["key"])
            keys, merged_inputs = set(), {}
            for j, inp in enumerate(item.get("inputs", [])):
                ref = inp if isinstance(inp, str) else inp.get("ref")
                if ref is not None and ref not in shared:
                    problems.append(f"{where}/inputs/{j}: unknown shared input {ref!r}")
                    continue
                merged = {**shared.get(ref, {}), **({} if isinstance(inp, str) else inp)}
                key = merged.get("key", ref)
                if key is None:
                    problems.append(f"{where}/inputs/{j}: an inline input needs a key")
                elif key in keys:
                    problems.append(f"{where}/inputs/{j}: duplicate input key {key!r}")
                keys.add(key)
                merged_inputs[j] = (key, merged)
                if merged.get("picker") and merged["picker"] not in pickers:
                    problems.append(f"{where}/inputs/{j}/picker: unknown picker {merged['picker']!r}")
                if "choices" in merged and "default" in merged and merged["default"] not in _choice_values(merged["choices"]):
                    problems.append(f"{where}/inputs/{j}/default: {merged['default']!r} is not one of the choices")
                if "choices" in merged:
                    values = [json.dumps(v, sort_keys=True) for v in _choice_values(merged["choices"])]
                    if len(set(values)) != len(values):
                        problems.append(f"{where}/inputs/{j}/choices: a value is listed twice")
            for j, (key, merged) in merged_inputs.items():
                for other in merged.get("show_if", {}):
                    if other not in keys or other == key:
                        problems.append(f"{where}/inputs/{j}/show_if: {other!r} is not another input of this {section[:-1]}")
                bound = merged.get("picker_inputs")
                if bound:
                    picker = pickers.get(merged.get("picker"))
                    if picker is None:
                        problems.append(f"{where}/inputs/{j}/picker_inputs: needs a picker")
                        continue
                    picker_keys = {_input_key(pi, shared) for pi in picker.get("inputs", [])}
                    for theirs, ours in bound.items():
                        if theirs not in picker_keys:
                            problems.append(f"{where}/inputs/{j}/picker_inputs: {theirs!r} is not an input of picker {picker['key']!r}")
                        if ours not in keys or ours == key:
                            problems.append(f"{where}/inputs/{j}/picker_inputs: {ours!r} is not another input of this {section[:-1]}")
            for j, rule in enumerate(item.get("rules", [])):
                for name in _rule_inputs(rule):
                    if name not in keys:
                        problems.append(f"{where}/rules/{j}: {name!r} is not an input of this {section[:-1]}")
            for j, check_ in enumerate(item.get("runtime_checks", [])):
                if check_["input"] not in keys:
                    problems.append(f"{where}/runtime_checks/{j}/input: {check_['input']!r} is not an input of this {section[:-1]}")
            for field in ("output", "event"):
                if field in item:
                    problems += _check_schema(item[field], definitions, f"{where}/{field}")
            for field, schema_field in (("example_output", "output"), ("example_event", "event")):
                if field in item and schema_field in item and not problems:
                    problems += _check_example(item[field], item[schema_field], definitions, f"{where}/{field}")
    return problems


def _rule_inputs(rule: dict) -> list:
    """The input keys a rule names (so a typo is caught when the manifest is loaded)."""
    names = []
    for kind in ("exclusive", "one_of_required", "together"):
        names += rule.get(kind, [])
    if "greater" in rule:
        names += list(rule["greater"])
    for part in ("if", "then"):
        names += list(rule.get(part, {}))
    if "input" in rule:
        names.append(rule["input"])
    return names


def refs(schema) -> set:
    """The shared definitions a schema refers to (``{"$ref": "#/$defs/<name>"}``), directly."""
    found = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(v for k, v in node.items() if not (k == "$ref" and isinstance(v, str)))
        elif isinstance(node, list):
            stack.extend(node)
    return found


REF_PREFIX = "#/$defs/"


def self_contained(schema: dict, definitions: dict) -> dict:
    """A schema with every shared definition it uses (transitively) inlined under ``$defs``.

    A root that is only a reference is replaced by the definition itself, and a root made of
    alternatives that are all objects says ``type: object``: consumers that need a concrete root
    (MCP output schemas, OpenAPI 2.0) find one."""
    schema = dict(schema)
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF_PREFIX) and ref[len(REF_PREFIX):] in definitions \
            and set(schema) <= {"$ref", "title", "description"}:
        schema.pop("$ref")
        schema = {**definitions[ref[len(REF_PREFIX):]], **schema}
    variants = schema.get("anyOf") or schema.get("oneOf")
    if "type" not in schema and variants and all(_object_type(v, definitions) for v in variants):
        schema["type"] = "object"
    needed, todo = {}, [schema]
    while todo:
        for ref in refs(todo.pop()):
            name = ref[len(REF_PREFIX):] if ref.startswith(REF_PREFIX) else None
            if name in definitions and name not in needed:
                needed[name] = definitions[name]
                todo.append(definitions[name])
    out = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    if needed:
        out["$defs"] = {k: needed[k] for k in sorted(needed)}
    return out


def _object_type(schema, definitions, depth=0) -> bool:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if isinstance(ref, str) and ref.startswith(REF_PREFIX) and depth < 10:
        return _object_type(definitions.get(ref[len(REF_PREFIX):], {}), definitions, depth + 1)
    return isinstance(schema, dict) and schema.get("type") == "object"


def _check_schema(schema, definitions, where) -> list[str]:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    problems = []
    for ref in sorted(refs(schema)):
        if not ref.startswith(REF_PREFIX) or ref[len(REF_PREFIX):] not in definitions:
            problems.append(f"{where}: $ref {ref!r} names no shared definition (declare it under definitions)")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        problems.append(f"{where}/{'/'.join(map(str, exc.path))}: not a valid JSON Schema: {exc.message}")
    return problems


def _check_example(example, schema, definitions, where) -> list[str]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(self_contained(schema, definitions))
    return [f"{where}/{'/'.join(map(str, e.absolute_path))}: the example does not match the declared schema: "
            f"{e.message[:200]}" for e in validator.iter_errors(example)]


def _input_key(inp, shared: dict):
    """The key an input entry resolves to: its own, or its shared input's, or the shared name."""
    if isinstance(inp, str):
        return shared.get(inp, {}).get("key", inp)
    ref = inp.get("ref")
    return inp.get("key", shared.get(ref, {}).get("key", ref))


def _choice_values(choices):
    return [c["value"] if isinstance(c, dict) else c for c in choices]


def resolve(doc, origins: dict | None = None) -> dict:
    """Expand shared-input references so every action carries its full input table; each item
    names its ``area``."""
    shared = doc.get("inputs", {})
    out = {k: v for k, v in doc.items() if k != "inputs"}
    for section in SECTIONS:
        if section not in doc:
            continue
        items = []
        for index, item in enumerate(doc.get(section, [])):
            inputs = []
            for inp in item.get("inputs", []):
                if isinstance(inp, str):
                    merged = {"key": inp, **shared[inp]}
                else:
                    ref = inp.get("ref")
                    base = {"key": ref, **shared[ref]} if ref else {}
                    merged = {**base, **{k: v for k, v in inp.items() if k != "ref"}}
                inputs.append(merged)
            resolved = {**item, "inputs": inputs}
            if section == "pickers":
                resolved.setdefault("annotations", dict(PICKER_ANNOTATIONS))
            if origins and (section, index) in origins:
                resolved["area"] = origins[(section, index)]
            items.append(resolved)
        out[section] = items
    return out


def _files(path: Path) -> list[Path]:
    """Every file the manifest is read from (the area folder is listed, not parsed)."""
    folder = path.parent / "actions"
    try:
        areas = sorted(e.path for e in os.scandir(folder) if e.name.endswith(".yaml"))
    except OSError:
        areas = []
    # the code that resolves the manifest and its meta-schema are part of what the cache holds
    return [path, *map(Path, areas), Path(__file__), META_SCHEMA_PATH]


def _cache_files(path: Path) -> list[Path]:
    """Where the resolved manifest is cached: the user's cache directory, else the temp directory
    (a read-only home, as on serverless functions, must not cost a full load on every run)."""
    from . import __version__

    parts = [f"{__version__}|{sys.version_info[:2]}"]
    for f in _files(path):
        st = f.stat()
        parts.append(f"{f}|{st.st_size}|{st.st_mtime_ns}")
    tag = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    name = f"manifest-{tag}.json"
    explicit = os.environ.get("DATABRICKS_CONNECTOR_CACHE")
    if explicit:
        return [Path(explicit) / name]
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [Path(home) / "databricks-connector" / name,
            Path(tempfile.gettempdir()) / f"databricks-connector-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / name]


def load(path: Path | None = None, *, use_cache: bool = True) -> dict:
    """The resolved, checked manifest."""
    path = Path(path) if path else manifest_path()
    caches = _cache_files(path) if use_cache else []
    for cache in caches:
        try:
            return json.loads(cache.read_text())
        except (OSError, ValueError):
            pass
    doc, origins = read(path)
    problems = check(doc, origins)
    if problems:
        raise ManifestError(problems)
    resolved = resolve(doc, origins)
    text = json.dumps(resolved)
    for cache in caches:
        if _write_atomic(cache, text):
            break
    return resolved


def _write_atomic(target: Path, text: str) -> bool:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob("manifest-*.json"):   # caches of earlier versions of the files
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".manifest-")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, target)
        return True
    except OSError:
        return False  # not writable here: the caller tries the next place


def _check_aliases(doc, origins=None) -> list[str]:
    """An input's ``aliases`` (its earlier names) name no other input or alias of the same item,
    and an alias with ``values`` maps onto the input's choices when it has any."""
    problems = []
    resolved = resolve(doc, origins)
    for section in SECTIONS:
        for i, item in enumerate(resolved.get(section, [])):
            where = _where([section, i], origins)
            keys = {inp["key"] for inp in item.get("inputs", [])}
            seen = {}
            for j, inp in enumerate(item.get("inputs", [])):
                for alias in inp.get("aliases") or ():
                    name = alias if isinstance(alias, str) else alias["key"]
                    if name in keys:
                        problems.append(f"{where}/inputs/{j}/aliases: {name!r} is the key of an input of this {section[:-1]}")
                    elif name in seen:
                        problems.append(f"{where}/inputs/{j}/aliases: {name!r} is already an alias of {seen[name]!r}")
                    seen.setdefault(name, inp["key"])
                    values = None if isinstance(alias, str) else alias.get("values")
                    if values and "choices" in inp:
                        allowed = _choice_values(inp["choices"])
                        for old, new in values.items():
                            if new not in allowed:
                                problems.append(f"{where}/inputs/{j}/aliases: {name!r} maps {old!r} to {new!r}, "
                                                f"which is not one of the choices")
    return problems
