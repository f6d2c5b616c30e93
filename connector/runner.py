"""The action runner: manifest entry -> resolved inputs -> handler(session, inputs) -> JSON.

One ``SharedSession`` per connection (keyed by the connection document and the session options)
is kept for the life of the process and shared by every action and thread that uses it.
"""
from __future__ import annotations

import threading
from importlib import import_module

from . import inputs as _inputs
from . import manifest as _manifest
from .errors import ConnectorError, InputError

_SESSIONS: dict = {}
_SESSIONS_LOCK = threading.Lock()
_DEFAULT = None


def default() -> "Connector":
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Connector()
    return _DEFAULT


class Connector:
    def __init__(self, manifest_path=None, **session_options):
        self._path = manifest_path
        self._manifest = None
        self._index = None
        self.session_options = session_options

    # -- the manifest ----------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        if self._manifest is None:
            self._manifest = _manifest.load(self._path)
        return self._manifest

    def _lookup(self, section: str, name: str) -> dict:
        if self._index is None:
            index = {}
            for sec in ("actions", "pickers", "triggers"):
                for item in self.manifest.get(sec, []):
                    index[(sec, item["key"])] = item
                    index[(sec, item["label"].lower())] = item
            self._index = index
        if not isinstance(name, str):
            raise ConnectorError("invalid_input", f"The {section[:-1]} name must be text, not {type(name).__name__}")
        item = self._index.get((section, name)) or self._index.get((section, name.lower()))
        if item is None:
            known = ", ".join(sorted(i["key"] for i in self.manifest.get(section, [])))
            raise ConnectorError("invalid_input", f"Unknown {section[:-1]} {name!r}", hint=f"Known {section}: {known}.")
        return item

    def action(self, name: str) -> dict:
        return self._lookup("actions", name)

    # -- running ---------------------------------------------------------------------------
    def session(self, connection, **options):
        """The shared session of a connection, created on first use."""
        import json

        opts = {**self.session_options, **options}
        # The connection document itself is the cache key, so a warm call does not rebuild and
        # re-check the connection (host normalisation, auth objects) every time.
        if hasattr(connection, "fingerprint"):
            key = (connection.fingerprint, tuple(sorted(opts.items())))
        else:
            key = (json.dumps(connection, sort_keys=True, default=str), tuple(sorted(opts.items())))
        shared = _SESSIONS.get(key)
        if shared is not None:
            return shared
        from .connections import build
        from .session import SharedSession

        conn = connection if hasattr(connection, "fingerprint") else build(connection)
        with _SESSIONS_LOCK:
            shared = _SESSIONS.get(key)
            if shared is None:
                shared = _SESSIONS[key] = SharedSession(conn, **opts)
        return shared

    def run(self, action: str, connection, inputs=None, **options):
        return self._call(self.action(action), connection, inputs, options)

    def pick(self, picker: str, connection, inputs=None, **options):
        return self._call(self._lookup("pickers", picker), connection, inputs, options)

    def validate(self, action: str, inputs=None) -> dict:
        """Resolve inputs without calling anything: form strings are coerced ("true" -> True, "42"
        -> 42, JSON text -> objects, key=value lines -> objects), defaults applied, and the result
        checked against the action's input schema (every problem in one InputError). The value
        returned is what the action's ``input_schema`` describes. Pickers and triggers are found
        by key too."""
        item = None
        for section in ("actions", "pickers", "triggers"):
            try:
                item = self._lookup(section, action)
                break
            except ConnectorError:
                continue
        if item is None:
            item = self.action(action)          # the unknown-action error, with the known keys
        return _inputs.resolve(item, inputs)

    def poll(self, trigger: str, connection, inputs=None, state=None, **options) -> dict:
        """One poll of a trigger: ``{"events": [...], "state": {...}, "more": bool, "activated": bool}``.

        The caller keeps ``state`` and passes it to the next poll (None for the first, which
        records where the stream stands and returns no events unless the ``since`` input asks for
        history). See connector/triggers.py for the semantics."""
        import time

        from .triggers import Poll

        item = self._lookup("triggers", trigger)
        values = _inputs.resolve(item, inputs)
        if connection is None:
            raise ConnectorError("configuration", "No connection was given",
                                 hint="Pass a connection, or set DATABRICKS_HOST and DATABRICKS_TOKEN.")
        timeout = values.get("timeout_seconds")
        poll = Poll(item["key"], values, state, deadline=time.monotonic() + timeout if timeout else None)
        shared = self.session(connection, **options)
        session = shared.action(debug=bool(values.get("debug")), timeout=timeout)
        module_name, func_name = item["handler"].rsplit(".", 1)
        handler = getattr(import_module(f"{__package__}.actions.{module_name}"), func_name)
        try:
            out = handler(session, values, poll)
        except InputError:
            raise
        except ConnectorError as err:
            err.message = shared.redactor.text(err.message)
            raise
        except Exception as exc:  # a bug in a handler: never a traceback with secrets on stdout
            raise ConnectorError("internal", f"Unexpected {type(exc).__name__} in {item['key']}: "
                                 f"{shared.redactor.text(str(exc))[:300]}",
                                 hint="This is a bug in the connector; please report it with the step's inputs.") from exc
        return out if out is not None else poll.result()

    def _call(self, item: dict, connection, raw_inputs, options):
        values = _inputs.resolve(item, raw_inputs)
        if connection is None:
            raise ConnectorError("configuration", "No connection was given",
                                 hint="Pass a connection, or set DATABRICKS_HOST and DATABRICKS_TOKEN.")
        shared = self.session(connection, **options)
        session = shared.action(debug=bool(values.get("debug")), timeout=None)
        module_name, func_name = item["handler"].rsplit(".", 1)
        handler = getattr(import_module(f"{__package__}.actions.{module_name}"), func_name)
        try:
            return handler(session, values)
        except InputError:
            raise
        except ConnectorError as err:
            err.message = shared.redactor.text(err.message)
            raise
        except Exception as exc:  # a bug in a handler: never a traceback with secrets on stdout
            raise ConnectorError("internal", f"Unexpected {type(exc).__name__} in {item['key']}: "
                                 f"{shared.redactor.text(str(exc))[:300]}",
                                 hint="This is a bug in the connector; please report it with the step's inputs.") from exc

    # -- the spec a platform reads ---------------------------------------------------------
    def spec(self) -> dict:
        """Everything a platform needs, derived from the manifest (see ``SPEC_VERSION``)."""
        m = self.manifest
        definitions = m.get("definitions", {})
        out = {"spec_version": SPEC_VERSION, "connector": m["connector"], "conventions": CONVENTIONS,
               "areas": m.get("areas", [])}
        out["connections"] = [{**c, "fields": [{**f, "secret": _inputs.is_secret(f)} for f in c["fields"]],
                               "schema": _connection_schema(c)} for c in m["connections"]]
        for section in ("actions", "pickers", "triggers"):
            out[section] = [_spec_item(section, item, definitions) for item in m.get(section, [])]
        out["definitions"] = definitions
        return out


# The version of the spec's format (not of the connector): a platform reading the spec can tell
# what it may rely on. Minor: keys added; major: keys changed or removed.
SPEC_VERSION = "1.0.0"

CONVENTIONS = {
    "input_schema": "JSON Schema 2020-12 of the resolved inputs: defaults applied and form strings coerced "
                    "(\"true\" -> true, \"42\" -> 42, JSON text -> objects and arrays, key=value lines -> objects). "
                    "A platform may send resolved values, or form strings and let Connector.validate(action, inputs) "
                    "(or the runtime) resolve them. Inputs with a default are not listed as required.",
    "output_schema": "JSON Schema 2020-12 of what the action returns, self-contained: the shared definitions it uses "
                     "are inlined under $defs. Objects from Databricks allow fields Databricks may add; the "
                     "connector's own envelopes are closed. Enumerations Databricks may extend are given as examples.",
    "definitions": "Every shared output definition, referenced as {\"$ref\": \"#/$defs/<name>\"}; place the map under "
                   "$defs (or rewrite the references) to use a definition on its own.",
    "triggers": "Polling: call poll(trigger, connection, inputs, state) and keep the returned state for the next poll; "
                "the first poll (state null) starts from now unless `since` is given. Each event fires once across "
                "polls (dedupe_key names the event field that identifies it); `more` true means poll again soon.",
    "keywords": {
        "x-picker": "the picker (key) whose options fill this input (for an array, its items)",
        "x-picker-inputs": "a dependent picker: {picker input: this action's input whose value it takes}",
        "x-widget": "how to edit the value: textarea, code:sql, code:python or json",
        "x-advanced": "show the input in an advanced / optional group",
        "x-show-if": "show the input only when every named input has this value (or one of these values)",
        "x-secret": "a secret: mask it, never log it",
        "x-greater-than": "{a: b}: when both inputs are given, a must be greater than b (enforced by the runtime; "
                          "a validator that ignores it accepts a superset)",
        "x-runtime-checks": "checks JSON Schema cannot express, in words; the runtime enforces them before any request",
        "x-input": "the input a failed rule is reported on",
        "x-message": "why a failed rule refuses the inputs",
        "x-message-many": "for a oneOf rule: why, when several branches match",
    },
}


def _spec_item(section: str, item: dict, definitions: dict) -> dict:
    out = {k: v for k, v in item.items() if k not in ("handler", "output", "event")}
    out["inputs"] = [{**i, "secret": _inputs.is_secret(i)} for i in item["inputs"]]
    out["input_schema"] = _inputs.compile_schema(item)
    if section == "triggers":
        out["event_schema"] = _manifest.self_contained(item["event"], definitions)
    else:
        out["output_schema"] = _manifest.self_contained(item["output"], definitions)
    return out


def _connection_schema(conn: dict) -> dict:
    schema = _inputs.compile_schema({"key": conn["key"], "label": conn["label"], "inputs": conn["fields"]})
    # A connection document names its type; the schema accepts it (and only this one).
    schema["properties"] = {"type": {"const": conn["key"], "default": conn["key"], "title": "Connection Type"},
                            **schema["properties"]}
    return schema
