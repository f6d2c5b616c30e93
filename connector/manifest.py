"""Load ``connector.yaml``, check it against its meta-schema, and resolve shared inputs.

The manifest is the single source of truth. Loading it parses YAML and validates it against
``manifest.schema.json`` (every problem reported with its path); the resolved result is cached
as JSON next to the interpreter's bytecode cache so a fresh process does not pay for PyYAML
and jsonschema on every run. The cache is keyed by the manifest's path, size, mtime and the
package version, so any edit is picked up.
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


def manifest_path() -> Path:
    """The installed manifest sits inside the package; in a checkout it is at the repo root."""
    for candidate in (HERE / "connector.yaml", HERE.parent / "connector.yaml"):
        if candidate.is_file():
            return candidate
    raise ConnectorError("configuration", "connector.yaml was not found next to the package")


class ManifestError(ConnectorError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("configuration", "connector.yaml is invalid:\n  " + "\n  ".join(problems),
                         hint="Fix connector.yaml at the paths listed.")


def check(doc) -> list[str]:
    """Every problem in a raw manifest document, each as 'path: reason'."""
    from jsonschema import Draft202012Validator

    schema = json.loads(META_SCHEMA_PATH.read_text())
    problems = []
    for err in sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = "/".join(str(p) for p in err.absolute_path) or "(root)"
        problems.append(f"{path}: {err.message}")
    if problems:
        return problems
    return _check_references(doc)


def _check_references(doc) -> list[str]:
    problems = []
    shared = doc.get("inputs", {})
    pickers = {p["key"] for p in doc.get("pickers", [])}
    seen = set()
    for section in ("actions", "pickers"):
        for i, item in enumerate(doc.get(section, [])):
            where = f"{section}/{i}"
            if item["key"] in seen:
                problems.append(f"{where}/key: duplicate key {item['key']!r}")
            seen.add(item["key"])
            keys = set()
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
                if merged.get("picker") and merged["picker"] not in pickers:
                    problems.append(f"{where}/inputs/{j}/picker: unknown picker {merged['picker']!r}")
                if "choices" in merged and "default" in merged and merged["default"] not in _choice_values(merged["choices"]):
                    problems.append(f"{where}/inputs/{j}/default: {merged['default']!r} is not one of the choices")
    return problems


def _choice_values(choices):
    return [c["value"] if isinstance(c, dict) else c for c in choices]


def resolve(doc) -> dict:
    """Expand shared-input references so every action carries its full input table."""
    shared = doc.get("inputs", {})
    out = {k: v for k, v in doc.items() if k != "inputs"}
    for section in ("actions", "pickers"):
        items = []
        for item in doc.get(section, []):
            inputs = []
            for inp in item.get("inputs", []):
                if isinstance(inp, str):
                    merged = {"key": inp, **shared[inp]}
                else:
                    ref = inp.get("ref")
                    base = {"key": ref, **shared[ref]} if ref else {}
                    merged = {**base, **{k: v for k, v in inp.items() if k != "ref"}}
                inputs.append(merged)
            items.append({**item, "inputs": inputs})
        out[section] = items
    return out


def _cache_files(path: Path, stat) -> list[Path]:
    """Where the resolved manifest is cached: the user's cache directory, else the temp directory
    (a read-only home, as on serverless functions, must not cost a full load on every run)."""
    from . import __version__

    tag = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{__version__}|{sys.version_info[:2]}".encode()).hexdigest()[:16]
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
    stat = path.stat()
    caches = _cache_files(path, stat) if use_cache else []
    for cache in caches:
        try:
            return json.loads(cache.read_text())
        except (OSError, ValueError):
            pass
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except yaml.YAMLError as exc:
        raise ManifestError([f"(yaml): {exc}"]) from None
    problems = check(doc)
    if problems:
        raise ManifestError(problems)
    resolved = resolve(doc)
    text = json.dumps(resolved)
    for cache in caches:
        if _write_atomic(cache, text):
            break
    return resolved


def _write_atomic(target: Path, text: str) -> bool:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob("manifest-*.json"):   # caches of earlier versions of the file
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".manifest-")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, target)
        return True
    except OSError:
        return False  # not writable here: the caller tries the next place
