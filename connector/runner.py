"""The action runner: manifest entry -> resolved inputs -> handler(session, inputs) -> JSON.

One ``SharedSession`` per connection is shared by every action and thread of a ``Connector``
that uses it, from a bounded cache (``SessionCache``): at most ``max_sessions`` sessions (least
recently used evicted first), none idle for more than ``session_idle_seconds``, and every evicted
session closed (its sockets released). A session in use by a running call is never evicted.
``Connector.close()`` closes a connector's sessions; ``databricks_connector.close()`` those of
every connector in the process.

The cache key is ``(Connection.fingerprint, session options)``. A connection document seen for
the first time is built once and remembered under its JSON form, so a warm call does not rebuild
it; a new document with the same fingerprint (e.g. a user-OAuth connection whose refresh token
rotated, when its type defines the fingerprint without the rotating token) reuses the session.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from importlib import import_module

from . import inputs as _inputs
from . import manifest as _manifest
from .errors import ConnectorError, InputError, Interrupted, Pending

_DEFAULT = None
_CONNECTORS: "weakref.WeakSet[Connector]" = weakref.WeakSet()
MAX_SESSIONS = 128
SESSION_IDLE_SECONDS = 600.0


class _Entry:
    __slots__ = ("session", "used", "busy")

    def __init__(self, session):
        self.session = session
        self.used = time.monotonic()
        self.busy = 0


class SessionCache:
    """Shared sessions by connection: bounded, least recently used first out, idle ones expired,
    evicted ones closed. Thread-safe; a hit costs one lock and a dict lookup."""

    def __init__(self, max_sessions: int = MAX_SESSIONS, idle_seconds: float = SESSION_IDLE_SECONDS):
        self.max_sessions = max(1, int(max_sessions))
        self.idle_seconds = float(idle_seconds)
        self._lock = threading.Lock()
        self._entries: OrderedDict = OrderedDict()     # identity key -> _Entry, least recently used first
        self._aliases: OrderedDict = OrderedDict()     # connection document key -> identity key
        self.created = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, doc_key, *, busy: bool = False):
        """The session a connection document was seen with, or None."""
        with self._lock:
            ident = self._aliases.get(doc_key)
            if ident is None:
                return None
            entry = self._entries.get(ident)
            if entry is None:
                del self._aliases[doc_key]
                return None
            self._entries.move_to_end(ident)
            entry.used = time.monotonic()
            if busy:
                entry.busy += 1
            return entry.session

    def insert(self, doc_key, ident, make, *, busy: bool = False):
        """The session of ``ident`` (made with ``make()`` when new), remembered under ``doc_key``."""
        closing = []
        with self._lock:
            entry = self._entries.get(ident)
            if entry is None:
                entry = self._entries[ident] = _Entry(make())
                self.created += 1
            self._entries.move_to_end(ident)
            entry.used = time.monotonic()
            if busy:
                entry.busy += 1
            if doc_key is not None:
                self._aliases[doc_key] = ident
                self._aliases.move_to_end(doc_key)
                while len(self._aliases) > 4 * self.max_sessions:
                    self._aliases.popitem(last=False)
            closing = self._evict_locked()
        _close_all(closing)
        return entry.session

    def release(self, session) -> None:
        """A call that used ``session`` ended: it may be evicted again once idle."""
        closing = []
        with self._lock:
            for entry in reversed(self._entries.values()):
                if entry.session is session:
                    entry.busy = max(0, entry.busy - 1)
                    entry.used = time.monotonic()
                    break
            closing = self._evict_locked()
        _close_all(closing)

    def _evict_locked(self) -> list:
        out = []
        now = time.monotonic()
        over = len(self._entries) - self.max_sessions
        if over <= 0:
            head = next(iter(self._entries.values()), None)
            if head is None or now - head.used <= self.idle_seconds:
                return out       # the common case: nothing over the bound, nothing idle
        for ident in list(self._entries):
            entry = self._entries[ident]
            if entry.busy:
                continue
            if over > 0 or now - entry.used > self.idle_seconds:
                del self._entries[ident]
                out.append(entry.session)
                over -= 1
                continue
            break            # the rest were used more recently
        self.evicted += len(out)
        return out

    def close(self) -> None:
        with self._lock:
            closing = [e.session for e in self._entries.values()]
            self._entries.clear()
            self._aliases.clear()
        _close_all(closing)

    def stats(self) -> dict:
        with self._lock:
            return {"sessions": len(self._entries), "created": self.created, "evicted": self.evicted,
                    "busy": sum(1 for e in self._entries.values() if e.busy)}


def _close_all(sessions) -> None:
    for s in sessions:
        try:
            s.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def close_all() -> None:
    """Close the sessions of every connector in this process (``databricks_connector.close()``)."""
    for connector in list(_CONNECTORS):
        connector.close()


def default() -> "Connector":
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Connector()
    return _DEFAULT


class Connector:
    """Runs actions. ``session_options`` go to every ``SharedSession`` (``connect_timeout``,
    ``read_timeout``, ``retry_timeout``, ``policy``, ``pool_size``); ``max_sessions`` and
    ``session_idle_seconds`` bound its session cache."""

    def __init__(self, manifest_path=None, *, max_sessions: int = MAX_SESSIONS,
                 session_idle_seconds: float = SESSION_IDLE_SECONDS, **session_options):
        self._path = manifest_path
        self._manifest = None
        self._index = None
        self.session_options = session_options
        self.sessions = SessionCache(max_sessions, session_idle_seconds)
        _CONNECTORS.add(self)

    def close(self) -> None:
        """Close every session this connector holds (their sockets are released). The connector
        stays usable: the next call opens a new session."""
        self.sessions.close()

    def __enter__(self) -> "Connector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
            items = self.manifest.get(section, [])
            known = ", ".join(sorted(i["key"] for i in items))
            by_label = {i["label"]: i["key"] for i in items}
            guess = list(dict.fromkeys(by_label.get(g, g) for g in _inputs.suggest(name, [i["key"] for i in items] + list(by_label))))
            mean = f"; did you mean {' or '.join(guess)}?" if guess else ""
            raise ConnectorError("invalid_input", f"Unknown {section[:-1]} {name!r}{mean}", hint=f"Known {section}: {known}.",
                                 details={"did_you_mean": guess} if guess else None)
        return item

    def action(self, name: str) -> dict:
        return self._lookup("actions", name)

    # -- running ---------------------------------------------------------------------------
    def session(self, connection, *, _busy: bool = False, **options):
        """The shared session of a connection, created on first use."""
        import json

        opts = tuple(sorted({**self.session_options, **options}.items(), key=lambda kv: kv[0]))
        # The connection document itself is the first key, so a warm call does not rebuild and
        # re-check the connection (host normalisation, auth objects) every time; the session is the
        # connection's by its fingerprint, which for a user login stays the same when Databricks
        # rotates the refresh token (connections/__init__.py).
        if hasattr(connection, "fingerprint"):
            doc_key = None
            conn = connection
        else:
            doc_key = (json.dumps(connection, sort_keys=True, default=str), opts)
            shared = self.sessions.lookup(doc_key, busy=_busy)
            if shared is not None:
                return shared
            from .connections import build

            conn = build(connection)
        from .session import SharedSession

        return self.sessions.insert(doc_key, (conn.fingerprint, opts), lambda: SharedSession(conn, **dict(opts)),
                                    busy=_busy)

    def run(self, action: str, connection, inputs=None, *, progress=None, budget: float | None = None, **options):
        """Run an action. ``progress``: None (lines on stderr), False (silent) or a callable
        ``(message, info)``. ``budget`` (seconds): when a wait would pass it, raise ``Pending``
        (its ``resume`` goes to :meth:`resume`) instead of holding the call open."""
        return self._call(self.action(action), connection, inputs, options, progress=progress, budget=budget)

    def resume(self, resume: dict, connection, *, budget: float | None = None, progress=None, **options):
        """Go on with a step that raised ``Pending``: the same action and resolved inputs, the ids it
        started (nothing is started twice) and each wait's original deadline. Ends like ``run``:
        the output, an error (a timeout cancels as usual), or ``Pending`` again."""
        from .steps import check_resume

        doc = check_resume(resume)
        item = self.action(doc["action"])
        return self._call(item, connection, doc["inputs"], options, progress=progress, budget=budget, resume=doc)

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
        return self._resolve(item, inputs)

    def _resolve(self, item: dict, raw):
        """An item's inputs resolved, with its own ``check`` (a function of its handler module)."""
        check = None
        if item.get("check"):
            module_name, func_name = item["check"].rsplit(".", 1)
            check = getattr(import_module(f"{__package__}.actions.{module_name}"), func_name)
        return _inputs.resolve(item, raw, check)

    def poll(self, trigger: str, connection, inputs=None, state=None, **options) -> dict:
        """One poll of a trigger: ``{"events": [...], "state": {...}, "more": bool, "activated": bool}``.

        The caller keeps ``state`` and passes it to the next poll (None for the first, which
        records where the stream stands and returns no events unless the ``since`` input asks for
        history). See connector/triggers.py for the semantics."""
        import time

        from .triggers import Poll

        item = self._lookup("triggers", trigger)
        values = self._resolve(item, inputs)
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

    def _call(self, item: dict, connection, raw_inputs, options, *, progress=None, budget=None, resume=None):
        from .debuglog import call_secrets
        from .steps import Step, progress_sink

        values = self._resolve(item, raw_inputs)
        sink = progress_sink(progress)
        if connection is None:
            raise ConnectorError("configuration", "No connection was given",
                                 hint="Pass a connection, or set DATABRICKS_HOST and DATABRICKS_TOKEN.")
        if budget is not None and any(_inputs.is_secret(i) and values.get(i["key"]) is not None for i in item["inputs"]):
            budget = None     # a resume document never holds a secret: this step holds the call open instead
        shared = self.session(connection, _busy=True, **options)
        try:
            session = shared.action(debug=bool(values.get("debug")), timeout=None)
            step = Step(item["key"], values, progress=sink, budget=budget, resume=resume, describe=self.action)
            session.step = step
            module_name, func_name = item["handler"].rsplit(".", 1)
            handler = getattr(import_module(f"{__package__}.actions.{module_name}"), func_name)
            # a secret input (Put Secret's value) is masked by value in logs and errors while the call runs
            with call_secrets([values.get(i["key"]) for i in item["inputs"] if _inputs.is_secret(i)]):
                try:
                    return handler(session, values)
                except Pending:
                    raise
                except InputError as err:
                    raise step.annotate(err)
                except ConnectorError as err:
                    if err.details and err.details.get("may_have_been_applied") and "request" in err.details:
                        err.hint = (f"Check in the workspace whether this {item['label']} step took effect "
                                    f"({err.details['request']}) before running it again: running it again may apply it twice.")
                    raise shared.redactor.error(step.annotate(err))
                except Interrupted as exc:
                    shared.redactor.error(exc.error)
                    raise
                except KeyboardInterrupt as exc:
                    interrupted = step.interrupted(session, exc)
                    shared.redactor.error(interrupted.error)
                    raise interrupted from None
                except RecursionError:
                    raise step.annotate(ConnectorError("server_error", f"{item['label']}: an answer was nested too deeply to read",
                                                       hint="Run the step again; if it persists, report it.")) from None
                except Exception as exc:  # a bug in a handler: never a traceback with secrets on stdout
                    raise shared.redactor.error(step.annotate(ConnectorError(
                        "internal", f"Unexpected {type(exc).__name__} in {item['key']}: {shared.redactor.text(str(exc))[:300]}",
                        hint="This is a bug in the connector; please report it with the step's inputs."))) from None
        finally:
            self.sessions.release(shared)

    # -- the spec a platform reads ---------------------------------------------------------
    def current_connection(self, connection) -> dict:
        """The connection document with the tokens the connector holds now: after a user login was
        refreshed (Databricks may rotate its refresh token) store this in place of the old one."""
        from .connections import current_connection

        return current_connection(connection)

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
    out = {k: v for k, v in item.items() if k not in ("handler", "check", "output", "event")}
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
