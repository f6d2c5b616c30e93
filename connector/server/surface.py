"""What the server exposes, derived from ``Connector().spec()`` (the one description of every action).

The spec is read with defaults for what newer manifests add (``annotations``, ``output_schema``,
``triggers``, form hints, ``test`` on connections), so the server works on any spec version and
picks those up as soon as the manifest carries them.

Two rules are the server's own, not a second description of an action:

* inputs that name a file on the machine that runs the step (``output_path``, or any input the
  manifest marks ``local: true``) are not offered over HTTP, and a request that sends one is
  refused: a remote caller must not make the server write its files;
* with ``--read-only`` only the actions annotated ``read_only`` are exposed (on every door).
"""
from __future__ import annotations

import copy

LOCAL_INPUTS = frozenset({"output_path"})
ANNOTATION_KEYS = ("read_only", "destructive", "idempotent", "long_running", "open_world")
PICKER_OUTPUT = {"type": "array", "items": {"type": "object", "required": ["label", "value"],
                                            "properties": {"label": {"type": "string"}, "value": {}}}}


def is_local(inp: dict, prop: dict | None = None) -> bool:
    return inp.get("key") in LOCAL_INPUTS or bool(inp.get("local")) or bool((prop or {}).get("x-local"))


def public_item(item: dict) -> dict:
    """A spec item (action, picker or trigger) without its local inputs."""
    schema = copy.deepcopy(item.get("input_schema") or {"type": "object", "properties": {}})
    props = schema.get("properties", {})
    local = {i["key"] for i in item.get("inputs", []) if is_local(i, props.get(i["key"]))}
    local |= {k for k, p in props.items() if isinstance(p, dict) and p.get("x-local")}
    if not local:
        return item
    for key in local:
        props.pop(key, None)
    if "required" in schema:
        schema["required"] = [k for k in schema["required"] if k not in local]
        if not schema["required"]:
            del schema["required"]
    out = dict(item, input_schema=schema, inputs=[i for i in item.get("inputs", []) if i["key"] not in local])
    out["local_inputs"] = sorted(local)
    return out


def annotations(item: dict) -> dict | None:
    """The action's annotations, or None while the manifest does not declare them."""
    ann = item.get("annotations")
    if not isinstance(ann, dict):
        return None
    return {k: bool(ann.get(k, False)) for k in ANNOTATION_KEYS}


def output_schema(item: dict, kind: str = "action") -> dict:
    schema = item.get("output_schema")
    if isinstance(schema, dict):
        return schema
    if kind == "picker":
        return PICKER_OUTPUT
    return {}


class Surface:
    """The spec as the server serves it: filtered, with local inputs removed, indexed by key."""

    def __init__(self, spec: dict, *, read_only: bool = False):
        self.raw = spec
        self.read_only = read_only
        actions = [public_item(a) for a in spec.get("actions", [])]
        if read_only:
            actions = [a for a in actions if (annotations(a) or {}).get("read_only")]
        self.actions = {a["key"]: a for a in actions}
        self.pickers = {p["key"]: public_item(p) for p in spec.get("pickers", [])}
        self.triggers = {t["key"]: public_item(t) for t in spec.get("triggers", []) or []}
        self.connections = spec.get("connections", [])
        self.connector = spec.get("connector", {})

    def spec(self) -> dict:
        """``GET /spec``: the spec as this server exposes it."""
        out = {k: v for k, v in self.raw.items() if k not in ("actions", "pickers", "triggers")}
        out["actions"] = list(self.actions.values())
        out["pickers"] = list(self.pickers.values())
        out["triggers"] = list(self.triggers.values())
        out["server"] = {"read_only": self.read_only,
                         "local_inputs": "not offered over HTTP: " + ", ".join(sorted(LOCAL_INPUTS))}
        return out

    def connection_test(self, connection_type: str) -> str:
        """The action that tests a connection of this type (its ``test``, else Get Current User)."""
        for c in self.connections:
            if c.get("key") == connection_type and c.get("test"):
                return c["test"]
        return "get_current_user"

    def local_inputs_sent(self, item: dict, inputs: dict) -> list[str]:
        return [k for k in item.get("local_inputs", []) if k in inputs]
