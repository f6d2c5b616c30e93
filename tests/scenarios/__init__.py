"""One scenario per action: how to prepare the emulator for it and which inputs make it succeed.

The reliability tests (faults, fuzzing, concurrency, secrets) run over every action in the
manifest through this registry, so a new action is covered as soon as its scenario is written,
and ``test_faults.py::test_every_action_has_a_scenario`` fails loudly until it is. The registry
and the helpers every area shares live here; each API area's scenarios are in
``tests/scenarios/<area>.py`` (imported below), beside ``actions/<area>.py``.

A scenario is a function ``(emulator, connector, conn) -> inputs`` that seeds what the action
needs (clusters through ``emulator.state.add_cluster``, warehouses through the emulator's SQL
area, or objects created through the connector's own actions) and returns valid inputs, plus
metadata:

* ``changes_state``: the action's main request changes workspace state;
* ``applied``: the ``emulator.state.applied`` keys whose counters prove a change was applied
  (a clean run raises their sum by exactly one);
* ``retry_safe``: what makes re-sending the main request safe: ``"token"`` (an idempotency token
  the server de-duplicates), ``"natural"`` (repeating it is harmless: stop, terminate, cancel,
  pin, a full replacement), or ``None`` (repeating it would apply it twice);
* ``main``: ``(method, path regex)`` of the request faults are injected into; when ``None`` it is
  discovered from a clean run (the first request for a read, the first non-GET for a change);
* ``wait``: inputs that make the action wait (polling) for a while, for the token-expiry case;
* ``check``: ``(output, inputs, conn) -> bool``, the answer belongs to this request (concurrency);
* ``failing``: inputs that make the action fail with a classified error (a not-found id).
"""
from __future__ import annotations

import atexit
import base64
import json
import re
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import quote

PAT_USER = "emulator-user@example.com"
SPARK = "13.3.x-scala2.12"
NODE = "i3.xlarge"


@dataclass(frozen=True)
class Scenario:
    key: str
    prepare: Callable
    changes_state: bool = False
    applied: tuple = ()
    retry_safe: Optional[str] = None
    main: Optional[tuple] = None
    wait: Optional[Callable] = None
    check: Optional[Callable] = None
    failing: Optional[Callable] = None
    own_read_timeout: bool = False      # the action sets its own read timeout for its main request

    @property
    def safe_to_resend(self) -> bool:
        return self.retry_safe is not None


SCENARIOS: dict[str, Scenario] = {}


def scenario(key: str, **meta):
    def deco(fn):
        SCENARIOS[key] = Scenario(key, fn, **meta)
        return fn
    return deco


# Pickers that need inputs (a dependent picker takes another input's value): (emulator, connector,
# conn) -> inputs. A picker not listed here is called with no inputs.
PICKER_SCENARIOS: dict = {}


def picker_scenario(key: str):
    def deco(fn):
        PICKER_SCENARIOS[key] = fn
        return fn
    return deco


def picker_inputs(emulator, connector, conn, key: str) -> dict:
    prepare = PICKER_SCENARIOS.get(key)
    return prepare(emulator, connector, conn) if prepare else {}


# --------------------------------------------------------------------------- helpers

def manifest_actions(connector) -> list[str]:
    return [a["key"] for a in connector.manifest["actions"]]


# --------------------------------------------------------------------------- sampling by kind

# What a fault does to an action is decided by the shared session and waiting mechanism from a few
# facts about the action, not by its area: whether its main request changes state, what makes it
# safe to re-send, whether it sets its own read timeout, whether it waits. Actions alike in these
# facts are one *kind*. The per-action suites run every case for the first REPRESENTATIVES actions
# of each kind and, for every other action, the cases that find a wrong request (the `core`
# faults) plus one more fault chosen by the action's name, so each fault still meets many actions.
# DBC_FULL_MATRIX=1 runs every case for every action (the nightly form; about 3x the cases).
FULL_MATRIX = __import__("os").environ.get("DBC_FULL_MATRIX", "") not in ("", "0")
REPRESENTATIVES = 2


def kind(key: str) -> tuple:
    """An action's kind. A read whose main request is not a GET must say so in ``main``."""
    sc = SCENARIOS[key]
    method = sc.main[0] if sc.main else ("POST" if sc.changes_state else "GET")
    return (sc.changes_state, sc.retry_safe, sc.own_read_timeout, sc.wait is not None, method == "GET")


def representatives(keys, kind_of=None) -> set:
    """The first REPRESENTATIVES actions (in manifest order) of each kind among ``keys``."""
    chosen, seen = set(), {}
    for key in keys:
        if kind_of is None and key not in SCENARIOS:
            chosen.add(key)                      # it fails loudly in its own case: keep it
            continue
        k = (kind_of or kind)(key)
        if seen.get(k, 0) < REPRESENTATIVES:
            seen[k] = seen.get(k, 0) + 1
            chosen.add(key)
    return chosen


def sampled(keys, faults, core=(), kind_of=None, rotate=True) -> list:
    """(key, fault) pairs: every fault for representatives, ``core`` (a tuple, or a function of the
    key giving one) plus (with ``rotate``) one rotating fault for the rest.

    ``faults`` may be any list of variants (connection types too)."""
    import zlib

    faults = list(faults)
    full = set(keys) if FULL_MATRIX else representatives(keys, kind_of)
    pairs = []
    for key in keys:
        if key in full:
            pairs += [(key, f) for f in faults]
            continue
        mine = core(key) if callable(core) else core
        rest = [f for f in faults if f not in mine] if rotate else []
        extra = [rest[zlib.crc32(key.encode()) % len(rest)]] if rest else []
        pairs += [(key, f) for f in faults if f in mine or f in extra]
    return pairs


def sampled_keys(keys) -> list:
    """The keys a per-action test runs for: all with DBC_FULL_MATRIX, else representatives of each kind."""
    return list(keys) if FULL_MATRIX else [k for k in keys if k in representatives(keys)]


def user_name(conn: dict) -> str:
    """The userName the emulator reports for a connection (a service principal's is its client id)."""
    if conn["type"] in ("service_principal", "azure_service_principal", "workload_identity_federation"):
        return conn["client_id"]
    return PAT_USER


def seed_cluster(emulator, state: str = "RUNNING", **fields) -> str:
    fields.setdefault("cluster_name", f"scn-{uuid.uuid4().hex[:8]}")
    fields.setdefault("spark_version", SPARK)
    fields.setdefault("node_type_id", NODE)
    fields.setdefault("num_workers", 1)
    return emulator.state.add_cluster(state=state, **fields)


def seed_warehouse(emulator, state: str = "RUNNING", name: str | None = None) -> str:
    """A warehouse in a settled state (no pending transition)."""
    hook = getattr(emulator.state, "add_warehouse", None)
    if hook is not None:
        try:
            return hook(name=name or f"scn-{uuid.uuid4().hex[:8]}", state=state)
        except TypeError:
            pass
    from databricks_connector.emulator import warehouses as wmod

    st = emulator.state
    with st.lock:
        store = wmod.warehouses(st)
        wh = wmod._new(st, {"name": name or f"scn-{uuid.uuid4().hex[:8]}", "cluster_size": "Small",
                            "warehouse_type": "PRO", "enable_serverless_compute": True}, PAT_USER)
        wh["state"] = state
        wh["num_clusters"] = 1 if state in ("RUNNING", "STOPPING") else 0
        wh["_transitions"] = []
        store[wh["id"]] = wh
        return wh["id"]


def sql_settings(emulator):
    """The SQL area's knobs: the warehouse_* / statement_* / sql_* fields of the one Config."""
    return emulator.config


def applied(emulator, keys) -> int:
    with emulator.state.lock:
        return sum(emulator.state.applied[k] for k in keys)


def new_requests(emulator, since: int) -> list[dict]:
    return emulator.requests[since:]


def api_requests(reqs) -> list[dict]:
    """Requests to the workspace API (not the token endpoint or discovery)."""
    return [r for r in reqs if not r["path"].startswith(("/oidc/", "/.well-known/", "/__emulator/"))]


_MAIN: dict = {}
_MAIN_LOCK = threading.Lock()
_PREPARED: dict = {}


def prepared(emulator, connector, conn, key: str) -> dict:
    """The inputs of a read-only scenario, prepared once per connection and reused (reads leave the
    prepared objects as they were); a state-changing scenario is prepared afresh every time."""
    sc = SCENARIOS[key]
    if sc.changes_state:
        return sc.prepare(emulator, connector, conn)
    ident = (key, conn["type"], conn.get("client_id") or conn.get("token"), conn.get("refresh_token"))
    with _MAIN_LOCK:
        if ident not in _PREPARED:
            _PREPARED[ident] = sc.prepare(emulator, connector, conn)
        return dict(_PREPARED[ident])


def main_request(emulator, connector, conn, key: str) -> tuple[str, str]:
    """(method, fullmatch regex) of the action's main request, from a clean run (cached)."""
    sc = SCENARIOS[key]
    if sc.main is not None:
        return sc.main
    with _MAIN_LOCK:
        if key in _MAIN:
            return _MAIN[key]
        inputs = sc.prepare(emulator, connector, conn)
        since = len(emulator.requests)
        connector.run(key, conn, inputs)
        reqs = api_requests(new_requests(emulator, since))
        assert reqs, f"{key}: a clean run made no API request"
        pick = next((r for r in reqs if r["method"] != "GET"), reqs[0]) if sc.changes_state else reqs[0]
        values = {str(v) for v in inputs.values() if isinstance(v, (str, int)) and not isinstance(v, bool)}
        values |= {quote(v, safe="") for v in list(values)}
        segments = [("[^/]+" if seg in values and seg else re.escape(seg)) for seg in pick["path"].split("/")]
        _MAIN[key] = (pick["method"], "/".join(segments))
        return _MAIN[key]


def _unknown_cluster(emulator, connector, conn):
    return {"cluster_id": "0000-000000-missing0"}


def _unknown_warehouse(emulator, connector, conn):
    return {"warehouse_id": "0000000000000000"}


# --------------------------------------------------------------------------- figures

STATS: dict[str, int] = {}
_STATS_LOCK = threading.Lock()


def count(name: str, n: int = 1) -> None:
    with _STATS_LOCK:
        STATS[name] = STATS.get(name, 0) + n


NOTES: list = []


def note(text: str) -> None:
    with _STATS_LOCK:
        NOTES.append(text)


def figures() -> dict:
    with _STATS_LOCK:
        out = dict(STATS)
    if "fault cases run" in out:
        out.setdefault("duplicates found", 0)      # a state change applied twice where that was not safe
    return dict(sorted(out.items()))


@atexit.register
def _print_figures() -> None:  # pragma: no cover - printed after pytest's own summary
    if STATS:
        sys.__stderr__.write("\nRELIABILITY FIGURES " + json.dumps(figures(), sort_keys=True) + "\n")
        for text in NOTES:
            sys.__stderr__.write(f"  {text}\n")


# --------------------------------------------------------------------------- emulator settings and cleanup

_CLEANUP: list = []


def snapshot_settings(emulator):
    """Save the emulator's configuration and the SQL area's knobs (the conftest restores only the
    configuration, per test); returns a function that restores them and cleans up what scenarios
    left running (execution contexts)."""
    sql = sql_settings(emulator)
    saved_sql = sql.as_dict()
    saved_config = emulator.config.as_dict()

    def restore():
        while _CLEANUP:
            fn = _CLEANUP.pop()
            try:
                fn()
            except Exception:  # noqa: BLE001 - cleanup is best effort
                pass
        sql.update(saved_sql)
        emulator.config.update(saved_config)
    return restore


def fast_jobs(emulator, task_seconds: float = 0.05):
    """Short run timings (the jobs_* knobs of the emulator's configuration), and the notebook the
    jobs scenarios run, in the workspace."""
    emulator.config.update({"jobs_pending_seconds": 0.02, "jobs_task_seconds": task_seconds,
                            "jobs_cancel_seconds": 0.1})
    seed_notebook(emulator, SCENARIO_NOTEBOOK, "print('scenario')\ndbutils.notebook.exit('done')", once=True)


SCENARIO_NOTEBOOK = "/Shared/scenario"


_SEEDED: set = set()


def seed_notebook(emulator, path: str, source: str, language: str = "PYTHON", *, once: bool = False) -> None:
    """A notebook (its folder too) through the emulator's Workspace API, over HTTP. ``once``: not
    again for this emulator (scenarios are prepared inside fault windows too, where a request to the
    workspace would meet the fault meant for the action)."""
    ident = (emulator.url, path, source, language)
    if once and ident in _SEEDED:
        return
    _SEEDED.add(ident)
    _workspace(emulator, "mkdirs", {"path": path.rsplit("/", 1)[0] or "/"})
    _workspace(emulator, "import", {"path": path, "format": "SOURCE", "language": language, "overwrite": True,
                                    "content": base64.b64encode(source.encode()).decode()})


def seed_file(emulator, path: str, data) -> None:
    """A workspace file (a Python script, a SQL file, a wheel) through the Workspace API."""
    raw = data.encode() if isinstance(data, str) else data
    _workspace(emulator, "mkdirs", {"path": path.rsplit("/", 1)[0] or "/"})
    _workspace(emulator, "import", {"path": path, "format": "AUTO", "overwrite": True,
                                    "content": base64.b64encode(raw).decode()})


def script_task(emulator, task_key: str, code: str) -> dict:
    """A Python script task: the code seeded as a workspace file (once per content), run with the
    task's default compute."""
    import hashlib

    path = f"/Shared/scripts/{hashlib.sha256(code.encode()).hexdigest()[:12]}.py"
    ident = (emulator.url, path, code, "FILE")
    if ident not in _SEEDED:
        _SEEDED.add(ident)
        seed_file(emulator, path, code)
    return {"task_key": task_key, "spark_python_task": {"python_file": path}}


def _workspace(emulator, op: str, body: dict) -> None:
    import requests

    conn = emulator.connections()["personal_access_token"]
    r = requests.post(f"{emulator.url}/api/2.0/workspace/{op}", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {emulator.pat}"}, verify=conn.get("ca_bundle") or True)
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- the areas' scenarios

def _load_areas() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_load_areas()
