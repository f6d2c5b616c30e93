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
            for sec in ("actions", "pickers"):
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

        opts = {**self.session_options, **options}
        # The connection's fingerprint is the cache key, so a warm call does not rebuild and
        # re-check the connection (host normalisation, auth objects) every time. For a user login
        # it stays the same when Databricks rotates the refresh token (connections/__init__.py).
        if hasattr(connection, "fingerprint"):
            key = (connection.fingerprint, tuple(sorted(opts.items())))
        else:
            from .connections import fingerprint

            key = (fingerprint(connection), tuple(sorted(opts.items())))
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
        """Resolve inputs without calling anything (defaults, coercion, validation)."""
        return _inputs.resolve(self.action(action), inputs)

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
    def current_connection(self, connection) -> dict:
        """The connection document with the tokens the connector holds now: after a user login was
        refreshed (Databricks may rotate its refresh token) store this in place of the old one."""
        from .connections import current_connection

        return current_connection(connection)

    def spec(self) -> dict:
        m = self.manifest
        out = {k: v for k, v in m.items() if k not in ("actions", "pickers", "connections")}
        out["connections"] = [{**c, "fields": [{**f, "secret": _inputs.is_secret(f)} for f in c["fields"]],
                               "schema": _connection_schema(c)} for c in m["connections"]]
        for section in ("actions", "pickers"):
            out[section] = [{**{k: v for k, v in item.items() if k != "handler"},
                             "inputs": [{**i, "secret": _inputs.is_secret(i)} for i in item["inputs"]],
                             "input_schema": _inputs.compile_schema(item)} for item in m.get(section, [])]
        return out


def _connection_schema(conn: dict) -> dict:
    return _inputs.compile_schema({"key": conn["key"], "label": conn["label"], "inputs": conn["fields"]})
