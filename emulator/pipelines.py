"""Lakeflow Declarative Pipelines (Delta Live Tables) API 2.0 (databricks-api-areas.md §2.7).

Pipelines hold a spec (what create/edit sent), a list of updates and an event log. An update
walks QUEUED -> CREATED -> WAITING_FOR_RESOURCES -> INITIALIZING -> SETTING_UP_TABLES -> RUNNING
-> COMPLETED over time, lazily: every transition is scheduled when the update starts and applied
(with its event) whenever the pipeline is read, so nothing runs in the background. A triggered
update ends COMPLETED; a continuous pipeline's update stays RUNNING until it is stopped; stop
moves the active update to STOPPING and then CANCELED. An update FAILS at INITIALIZING when a
notebook or file library of the pipeline does not exist in the workspace (emulator/workspace.py),
with an ERROR event naming it, as Databricks does. A completed update (not validate-only)
"refreshes" one table per library in the SQL engine when the pipeline publishes to a catalog and
schema (``<catalog>.<schema>.<library file name>``).

Knobs (``pipeline_*`` in the one Config): ``pipeline_step_seconds`` (each state before RUNNING),
``pipeline_run_seconds`` (RUNNING of a triggered update), ``pipeline_stop_seconds`` (STOPPING),
``pipeline_events_page_size`` (default page of the event log), ``pipeline_page_cap`` (the most items
on a page). Changes are counted in
``state.applied["pipelines/<op>"]``.
"""
from __future__ import annotations

import datetime
import re
import uuid
from typing import Dict

from .api import ApiError, Snapshots, copy_json, decode_cursor, encode_cursor, invalid_parameter, route

API = r"/api/2\.0/pipelines"
PIPE = API + r"/(?P<id>[^/]+)"

PRE_RUN = ("QUEUED", "CREATED", "WAITING_FOR_RESOURCES", "INITIALIZING", "SETTING_UP_TABLES")
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")
CAUSES = ("API_CALL", "INFRASTRUCTURE_MAINTENANCE", "JOB_TASK", "RETRY_ON_FAILURE", "SCHEMA_CHANGE",
          "SERVICE_UPGRADE", "USER_ACTION")
# create/edit fields kept in the spec (PipelineSpec); anything else is refused like an unknown field
SPEC_FIELDS = ("budget_policy_id", "catalog", "channel", "clusters", "configuration", "continuous", "deployment",
               "development", "edition", "environment", "event_log", "filters", "gateway_definition", "id",
               "ingestion_definition", "libraries", "name", "notifications", "parent_path", "photon",
               "restart_window", "root_path", "schema", "serverless", "serverless_compute_id", "storage", "tags",
               "target", "trigger", "usage_policy_id", "parameters", "run_as")
REQUEST_ONLY = ("allow_duplicate_names", "dry_run", "expected_last_modified", "pipeline_id")


def pipelines(state) -> Dict[str, dict]:
    return state.area("pipelines", dict)


def _iso(seconds: float) -> str:
    dt = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse_iso(text: str) -> float:
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.datetime.fromisoformat(t)
    except ValueError:
        raise invalid_parameter(f"Invalid timestamp in filter: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def _missing(pid: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"The specified pipeline {pid} was not found.")


# --------------------------------------------------------------------------- the event log and updates

def _event(state, p: dict, at: float, event_type: str, message: str, *, level: str = "INFO",
           update_id=None, details=None, error=None) -> None:
    p["_seq"] += 1
    origin = {"pipeline_id": p["pipeline_id"], "pipeline_name": p["spec"].get("name"), "org_id": int(state.workspace_id)}
    if update_id:
        origin["update_id"] = update_id
    ev = {"id": str(uuid.uuid4()), "sequence": {"control_plane_seq_no": p["_seq"]}, "origin": origin,
          "timestamp": _iso(at), "message": message, "level": level, "maturity_level": "STABLE",
          "event_type": event_type, "_at": at, "_n": p["_seq"]}
    if details is not None:
        ev["details"] = details
    if error is not None:
        ev["error"] = error
    p["events"].append(ev)


def _missing_library(state, spec: dict):
    from . import workspace

    for lib in spec.get("libraries") or []:
        for kind in ("notebook", "file"):
            path = (lib.get(kind) or {}).get("path") if isinstance(lib, dict) else None
            if path and workspace.resolve(state, path) is None:
                return kind, path
    return None


def _plan(state, p: dict, up: dict) -> None:
    """Schedule the update's transitions from now."""
    c = state.config
    step = max(0.0, float(c.pipeline_step_seconds))
    at = state.now()
    plan = []
    failing = _missing_library(state, p["spec"])
    for name in PRE_RUN[1:]:
        at += step
        plan.append((at, name))
        if name == "INITIALIZING" and failing:
            plan.append((at + step, "FAILED"))
            up["_failure"] = failing
            up["_plan"] = plan
            return
    if up.get("validate_only"):
        plan.append((at + step, "COMPLETED"))
    else:
        at += step
        plan.append((at, "RUNNING"))
        if not p["spec"].get("continuous"):
            plan.append((at + max(0.0, float(c.pipeline_run_seconds)), "COMPLETED"))
    up["_plan"] = plan


def _enter(state, p: dict, up: dict, new: str, at: float) -> None:
    uid = up["update_id"]
    tables = []
    if new == "COMPLETED" and not up.get("validate_only"):
        tables, problem = _refresh_tables(state, p, up)
        if problem:
            up["_failure"] = ("table", problem)
            new = "FAILED"
    up["state"] = new
    if new == "FAILED":
        kind, what = up.get("_failure") or ("notebook", "?")
        message = (f"Failed to refresh the pipeline's tables: {what}" if kind == "table"
                   else f"Failed to resolve flow: {kind} {what} does not exist")
        _event(state, p, at, "update_progress", f"Update {uid[:6]} is FAILED.", level="ERROR", update_id=uid,
               details={"update_progress": {"state": "FAILED"}},
               error={"fatal": True, "exceptions": [{"class_name": "java.io.FileNotFoundException"
                                                     if kind != "table" else "org.apache.spark.sql.AnalysisException",
                                                     "message": message}]})
    else:
        for table in tables:
            _event(state, p, at, "flow_progress", f"Flow '{table}' has COMPLETED.", update_id=uid,
                   details={"flow_progress": {"status": "COMPLETED"}})
        _event(state, p, at, "update_progress", f"Update {uid[:6]} is {new}.", update_id=uid,
               details={"update_progress": {"state": new}})
    if new in TERMINAL:
        up["_plan"] = []
        p["_active"] = None
        p["state"] = "FAILED" if new == "FAILED" else "IDLE"
        p["health"] = "UNHEALTHY" if new == "FAILED" else "HEALTHY"
        p["cluster_id"] = None


def _datasets(p: dict) -> list:
    """The datasets of the pipeline: one per notebook or file library, named after its file."""
    names = []
    for lib in p["spec"].get("libraries") or []:
        path = ((lib.get("notebook") or lib.get("file") or {}).get("path") or "") if isinstance(lib, dict) else ""
        if path:
            names.append(re.sub(r"[^A-Za-z0-9_]", "_", path.rstrip("/").rsplit("/", 1)[-1]).lower() or "dataset")
    return names


def _refresh_tables(state, p: dict, up: dict):
    """Refresh the pipeline's tables in the SQL engine when it publishes to a catalog and schema:
    (refreshed table names, None) or (None, the engine's error message)."""
    spec = p["spec"]
    names = _datasets(p)
    wanted = set(up.get("refresh_selection") or []) | set(up.get("full_refresh_selection") or [])
    if wanted:
        names = [n for n in names if n in wanted]
    catalog, schema = spec.get("catalog"), spec.get("schema") or spec.get("target")
    if not (catalog and schema and names):
        return names, None
    from .sqlengine import SqlError, engine_for

    eng = engine_for(state)
    try:
        for name in names:
            full = f"{catalog}.{schema}.{name}"
            replace = bool(up.get("full_refresh")) or name in (up.get("full_refresh_selection") or [])
            if replace or eng.table(full) is None:
                eng.create_table(full, [{"name": "id", "type_text": "BIGINT", "nullable": True}],
                                 comment=f"Materialized by pipeline {p['pipeline_id']}", replace=replace,
                                 if_not_exists=not replace)
    except SqlError as exc:
        return None, exc.message
    return names, None


def advance(state, p: dict) -> dict:
    """Apply every due transition of the active update (caller holds the lock)."""
    uid = p.get("_active")
    if not uid:
        return p
    up = p["_updates"][uid]
    now = state.now()
    plan = up.get("_plan") or []
    while plan and plan[0][0] <= now:
        at, new = plan.pop(0)
        _enter(state, p, up, new, at)
        if new in TERMINAL:
            break
    if p.get("_active"):
        p["state"] = "STOPPING" if up["state"] == "STOPPING" else "RUNNING"
    return p


def _get(req, pid: str) -> dict:
    p = pipelines(req.state).get(pid)
    if p is None or p.get("_deleted"):
        raise _missing(pid)
    return advance(req.state, p)


def _latest(p: dict) -> list:
    return [{"update_id": u["update_id"], "state": u["state"], "creation_time": _iso(u["_created"])}
            for u in (p["_updates"][uid] for uid in reversed(p["_order"][-5:]))]


def _status(p: dict) -> dict:
    out = {"pipeline_id": p["pipeline_id"], "name": p["spec"].get("name"), "state": p["state"],
           "creator_user_name": p["creator_user_name"], "run_as_user_name": p["run_as_user_name"],
           "latest_updates": _latest(p)}
    if p.get("health"):
        out["health"] = p["health"]
    if p.get("cluster_id"):
        out["cluster_id"] = p["cluster_id"]
    return out


def _public(p: dict) -> dict:
    out = _status(p)
    out["spec"] = copy_json(p["spec"])
    out["last_modified"] = p["last_modified"]
    if p["spec"].get("serverless"):
        out["effective_publishing_mode"] = "DEFAULT_PUBLISHING_MODE"
    return out


def _update_info(p: dict, up: dict) -> dict:
    out = {k: copy_json(v) for k, v in up.items() if not k.startswith("_")}
    out["creation_time"] = int(up["_created"] * 1000)
    out["pipeline_id"] = p["pipeline_id"]
    return out


# --------------------------------------------------------------------------- validation

def _validate_spec(req, body: dict, *, pid=None) -> dict:
    unknown = [k for k in body if k not in SPEC_FIELDS and k not in REQUEST_ONLY]
    if unknown:
        raise invalid_parameter(f"Unknown field(s) in the pipeline settings: {', '.join(sorted(unknown))}")
    spec = {k: copy_json(v) for k, v in body.items() if k in SPEC_FIELDS}
    if not isinstance(spec.get("name", ""), str):
        raise invalid_parameter("name must be a string")
    libs = spec.get("libraries")
    if libs is not None:
        if not isinstance(libs, list):
            raise invalid_parameter("libraries must be a list of PipelineLibrary objects")
        for lib in libs:
            kinds = [k for k in ("notebook", "file", "glob", "jar", "maven", "whl") if isinstance(lib, dict) and k in lib]
            if len(kinds) != 1:
                raise invalid_parameter("Each library must have exactly one of notebook, file, glob, jar, maven, whl")
            if kinds[0] in ("notebook", "file") and not isinstance((lib[kinds[0]] or {}).get("path"), str):
                raise invalid_parameter(f"{kinds[0]} library: path is required")
    for key in ("continuous", "development", "serverless", "photon"):
        if key in spec and not isinstance(spec[key], bool):
            raise invalid_parameter(f"{key} must be a boolean")
    if "configuration" in spec and (not isinstance(spec["configuration"], dict)
                                    or not all(isinstance(v, str) for v in spec["configuration"].values())):
        raise invalid_parameter("configuration must be a map of strings")
    if spec.get("serverless") and spec.get("clusters"):
        raise invalid_parameter("clusters cannot be set for a serverless pipeline")
    if spec.get("target") and spec.get("schema"):
        raise invalid_parameter("Only one of target and schema may be set")
    name = spec.get("name")
    if name and not body.get("allow_duplicate_names"):
        for other in pipelines(req.state).values():
            if other["pipeline_id"] != pid and not other.get("_deleted") and other["spec"].get("name") == name:
                raise ApiError(400, "RESOURCE_CONFLICT", f"Pipeline name '{name}' already exists with pipeline id "
                               f"{other['pipeline_id']}. Use a different name or set allow_duplicate_names.")
    return spec


# --------------------------------------------------------------------------- routes: pipelines

_NAME_LIKE = re.compile(r"\s*name\s+like\s+'((?:[^']|'')*)'\s*", re.I)
_NOTEBOOK = re.compile(r"\s*notebook\s*=\s*'((?:[^']|'')*)'\s*", re.I)


def _list_filter(text):
    if not text:
        return lambda p: True
    m = _NAME_LIKE.fullmatch(text)
    if m:
        pattern = m.group(1).replace("''", "'")
        rx = re.compile("".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern),
                        re.I | re.S)
        return lambda p: bool(rx.fullmatch(p["spec"].get("name") or ""))
    m = _NOTEBOOK.fullmatch(text)
    if m:
        path = m.group(1).replace("''", "'")
        return lambda p: any((lib.get("notebook") or {}).get("path") == path for lib in p["spec"].get("libraries") or [])
    raise invalid_parameter(f"Invalid filter: {text!r}. Supported: name LIKE '<pattern>' or notebook='<path>'")


@route("GET", API)
def list_pipelines(req):
    size = req.q_int("max_results", 25)
    if size is None or size < 1 or size > 100:
        raise invalid_parameter("max_results must be between 1 and 100")
    size = min(size, int(req.state.config.pipeline_page_cap))
    token = req.q("page_token")
    order = req.q_list("order_by")
    if order and [o.strip().lower() for o in order] not in (["id"], ["id asc"], ["id desc"]):
        raise invalid_parameter("order_by supports only id (asc or desc)")
    keep = _list_filter(req.q("filter"))
    desc = bool(order) and order[0].strip().lower().endswith("desc")
    with req.state.lock:
        def build():
            found = [p for p in pipelines(req.state).values() if not p.get("_deleted") and keep(p)]
            return sorted(found, key=lambda p: p["pipeline_id"], reverse=desc)

        snapshots = req.state.area("pipeline_list_snapshots", Snapshots)
        page, nxt, prev = snapshots.page(token, build, size, "pl")
        out: dict = {"statuses": [_status(advance(req.state, p)) for p in page]}
    if nxt:
        out["next_page_token"] = nxt
    return out


def _complete_spec(spec: dict, pid: str) -> dict:
    spec["id"] = pid
    spec.setdefault("name", f"Pipeline {pid[:8]}")
    spec.setdefault("channel", "CURRENT")
    spec.setdefault("edition", "ADVANCED")
    return spec


def add_pipeline(state, spec: dict, user: str = "emulator-user@example.com") -> str:
    """A pipeline with these settings (for tests and scenarios: no validation); returns its id."""
    pid = str(uuid.uuid4())
    spec = _complete_spec(copy_json(spec), pid)
    with state.lock:
        now = state.now()
        p = {"pipeline_id": pid, "spec": spec, "state": "IDLE", "health": "HEALTHY", "creator_user_name": user,
             "run_as_user_name": user, "last_modified": int(now * 1000), "_updates": {}, "_order": [],
             "_active": None, "events": [], "_seq": 0}
        _event(state, p, now, "create_pipeline", f"Pipeline '{spec['name']}' was created.")
        pipelines(state)[pid] = p
    return pid


@route("POST", API)
def create_pipeline(req):
    body = req.body
    with req.state.lock:
        spec = _validate_spec(req, body)
        if body.get("dry_run"):
            return {"effective_settings": _complete_spec(spec, str(uuid.uuid4()))}
        pid = add_pipeline(req.state, spec, getattr(req.principal, "user_name", "emulator-user@example.com"))
        req.state.applied["pipelines/create"] += 1
        return {"pipeline_id": pid, "effective_settings": copy_json(pipelines(req.state)[pid]["spec"])}


@route("GET", PIPE)
def get_pipeline(req):
    with req.state.lock:
        return _public(_get(req, req.params["id"]))


@route("PUT", PIPE)
def edit_pipeline(req):
    body = req.body
    pid = req.params["id"]
    with req.state.lock:
        p = _get(req, pid)
        if body.get("id") not in (None, pid) or body.get("pipeline_id") not in (None, pid):
            raise invalid_parameter("The id in the body does not match the pipeline in the path")
        expected = body.get("expected_last_modified")
        if expected is not None and int(expected) != p["last_modified"]:
            raise ApiError(409, "RESOURCE_CONFLICT", f"The pipeline {pid} was modified since "
                           f"{expected} (last modified {p['last_modified']}); read it again and retry.")
        spec = _validate_spec(req, body, pid=pid)
        spec.setdefault("name", p["spec"].get("name"))
        spec = _complete_spec(spec, pid)
        if spec != p["spec"]:        # the same settings again change nothing (a full replacement)
            p["spec"] = spec
            p["last_modified"] = max(p["last_modified"] + 1, int(req.state.now() * 1000))
            _event(req.state, p, req.state.now(), "update_pipeline", "Pipeline settings were updated.")
            req.state.applied["pipelines/edit"] += 1
        return {}


@route("DELETE", PIPE)
def delete_pipeline(req):
    pid = req.params["id"]
    with req.state.lock:
        p = _get(req, pid)
        p["_deleted"] = True
        p["state"] = "DELETED"
        req.state.applied["pipelines/delete"] += 1
        return {}


# --------------------------------------------------------------------------- routes: updates

@route("POST", PIPE + r"/updates")
def start_update(req):
    body = req.body
    pid = req.params["id"]
    for key in ("full_refresh", "validate_only", "development"):
        if key in body and not isinstance(body[key], bool):
            raise invalid_parameter(f"{key} must be a boolean")
    for key in ("refresh_selection", "full_refresh_selection"):
        if key in body and (not isinstance(body[key], list) or not all(isinstance(t, str) for t in body[key])):
            raise invalid_parameter(f"{key} must be a list of table names")
    if body.get("full_refresh") and (body.get("refresh_selection") or body.get("full_refresh_selection")):
        raise invalid_parameter("full_refresh cannot be combined with refresh_selection or full_refresh_selection")
    if "cause" in body and body["cause"] not in CAUSES:
        raise invalid_parameter(f"Invalid cause: {body['cause']!r}")
    with req.state.lock:
        p = _get(req, pid)
        uid = start(req.state, p, body)
        req.state.applied["pipelines/start_update"] += 1
        return {"update_id": uid}


def start(state, p: dict, body: dict) -> str:
    """Start an update of pipeline ``p`` (a dict from ``pipelines(state)``; caller holds the lock)."""
    pid = p["pipeline_id"]
    advance(state, p)
    if p.get("_active"):
        raise ApiError(409, "RESOURCE_CONFLICT", f"Pipeline {pid} has an active update "
                       f"{p['_active']}; stop it or wait for it to finish before starting another.")
    uid = str(uuid.uuid4())
    now = state.now()
    up = {"update_id": uid, "state": "QUEUED", "cause": body.get("cause", "API_CALL"),
          "full_refresh": bool(body.get("full_refresh", False)), "validate_only": bool(body.get("validate_only", False)),
          "config": copy_json(p["spec"]), "_created": now}
    for key in ("refresh_selection", "full_refresh_selection", "parameters"):
        if body.get(key):
            up[key] = copy_json(body[key])
    if p["spec"].get("development") or body.get("development"):
        up["mode"] = "DEVELOPMENT"
    p["_updates"][uid] = up
    p["_order"].append(uid)
    p["_active"] = uid
    p["state"] = "RUNNING"
    p["cluster_id"] = None if p["spec"].get("serverless") else f"{uuid.uuid4().hex[:4]}-{uuid.uuid4().hex[:6]}-dlt"
    _event(state, p, now, "create_update", f"Update {uid[:6]} started by {up['cause']}.", update_id=uid,
           details={"create_update": {"cause": up["cause"], "full_refresh": up["full_refresh"]}})
    _event(state, p, now, "update_progress", f"Update {uid[:6]} is QUEUED.", update_id=uid,
           details={"update_progress": {"state": "QUEUED"}})
    _plan(state, p, up)
    return uid


def start_update_of(state, pipeline_id: str, body=None) -> str:
    """Start an update (for tests and scenarios); returns its id."""
    with state.lock:
        return start(state, pipelines(state)[pipeline_id], dict(body or {}))


@route("GET", PIPE + r"/updates/(?P<update>[^/]+)")
def get_update(req):
    with req.state.lock:
        p = _get(req, req.params["id"])
        up = p["_updates"].get(req.params["update"])
        if up is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"The update {req.params['update']} of pipeline "
                           f"{p['pipeline_id']} was not found.")
        return {"update": _update_info(p, up)}


@route("GET", PIPE + r"/updates")
def list_updates(req):
    size = req.q_int("max_results", 25)
    if size is None or size < 1 or size > 100:
        raise invalid_parameter("max_results must be between 1 and 100")
    size = min(size, int(req.state.config.pipeline_page_cap))
    with req.state.lock:
        p = _get(req, req.params["id"])
        order = list(reversed(p["_order"]))
        offset = 0
        token = req.q("page_token")
        if token:
            offset = int(decode_cursor(token, "pu").get("o", 0))
        page = order[offset:offset + size]
        out: dict = {"updates": [_update_info(p, p["_updates"][u]) for u in page]}
        if offset + size < len(order):
            out["next_page_token"] = encode_cursor("pu", o=offset + size)
        if offset > 0:
            out["prev_page_token"] = encode_cursor("pu", o=max(0, offset - size))
        return out


@route("POST", PIPE + r"/stop")
def stop_pipeline(req):
    with req.state.lock:
        p = _get(req, req.params["id"])
        uid = p.get("_active")
        if uid:
            up = p["_updates"][uid]
            if up["state"] != "STOPPING":
                now = req.state.now()
                _enter(req.state, p, up, "STOPPING", now)
                up["_plan"] = [(now + max(0.0, float(req.state.config.pipeline_stop_seconds)), "CANCELED")]
                p["state"] = "STOPPING"
                req.state.applied["pipelines/stop"] += 1
        return {}


# --------------------------------------------------------------------------- routes: events

_COND = re.compile(r"""\s*(?:
    (?P<lvl>level)\s*=\s*'(?P<lv>[A-Z]+)'
  | level\s+in\s*\((?P<lvs>[^)]*)\)
  | (?P<idf>id)\s*=\s*'(?P<idv>[^']*)'
  | timestamp\s*(?P<op>>=|<=|>|<|=)\s*'(?P<ts>[^']*)'
  | event_type\s*=\s*'(?P<et>[^']*)'
  )\s*""", re.I | re.X)


def _event_filter(text):
    if not text or not text.strip():
        return lambda e: True
    tests = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.I):
        m = _COND.fullmatch(part)
        if not m:
            raise invalid_parameter(f"Invalid filter: {text!r}. Supported: level='INFO', level in ('WARN', 'ERROR'), "
                                    "id='<event id>', timestamp > 'ISO time' (>=, <, <=, =), event_type='<type>', "
                                    "joined with AND")
        if m.group("lvl"):
            tests.append(lambda e, v=m.group("lv").upper(): e["level"] == v)
        elif m.group("lvs") is not None:
            levels = {s.strip().strip("'").upper() for s in m.group("lvs").split(",") if s.strip()}
            tests.append(lambda e, v=levels: e["level"] in v)
        elif m.group("idf"):
            tests.append(lambda e, v=m.group("idv"): e["id"] == v)
        elif m.group("op"):
            t = round(_parse_iso(m.group("ts")) * 1000)       # compared in whole milliseconds, as shown
            cmp = {">": lambda a: a > t, ">=": lambda a: a >= t, "<": lambda a: a < t, "<=": lambda a: a <= t,
                   "=": lambda a: a == t}[m.group("op")]
            tests.append(lambda e, c=cmp: c(int(e["_at"] * 1000)))
        else:
            tests.append(lambda e, v=m.group("et"): e["event_type"] == v)
    return lambda e: all(t(e) for t in tests)


@route("GET", PIPE + r"/events")
def list_events(req):
    cap = 1000
    size = req.q_int("max_results", int(req.state.config.pipeline_events_page_size))
    if size is None or size < 1 or size > cap:
        raise invalid_parameter(f"max_results must be between 1 and {cap}")
    size = min(size, int(req.state.config.pipeline_page_cap))
    token = req.q("page_token")
    if token and (req.q("filter") or req.q_list("order_by")):
        raise invalid_parameter("page_token cannot be combined with filter or order_by")
    with req.state.lock:
        p = _get(req, req.params["id"])
        if token:
            cur = decode_cursor(token, "pe")
            if cur.get("p") != p["pipeline_id"]:
                raise invalid_parameter(f"Invalid page token: {token}")
            desc, text, pos, forward = cur["d"], cur.get("f"), cur["n"], cur["fw"]
        else:
            order = [o.strip().lower() for o in req.q_list("order_by")]
            if order and (len(order) != 1 or order[0] not in ("timestamp", "timestamp asc", "timestamp desc")):
                raise invalid_parameter("order_by supports one of 'timestamp asc' or 'timestamp desc'")
            desc = not order or order[0].endswith("desc")
            text, pos, forward = req.q("filter"), None, True
        keep = _event_filter(text)
        # events are appended in time order; ``_n`` is their position in the log
        ordered = p["events"][::-1] if desc else p["events"]
        before = lambda e: (e["_n"] > pos) if desc else (e["_n"] < pos)     # e comes before position pos
        after = lambda e: (e["_n"] < pos) if desc else (e["_n"] > pos)
        if pos is None:
            rest = [e for e in ordered if keep(e)]
        elif forward:
            rest = [e for e in ordered if after(e) and keep(e)]
        else:
            rest = [e for e in reversed(ordered) if before(e) and keep(e)][:size][::-1]
            rest += [e for e in ordered if not before(e) and keep(e)]
        page = rest[:size]
        had_before = pos is not None and any(before(e) and keep(e) for e in ordered) if not page else \
            any(keep(e) for e in ordered if (e["_n"] > page[0]["_n"] if desc else e["_n"] < page[0]["_n"]))
        out: dict = {"events": [{k: copy_json(v) for k, v in e.items() if not k.startswith("_")} for e in page]}
        if len(rest) > size:
            out["next_page_token"] = encode_cursor("pe", p=p["pipeline_id"], d=desc, f=text, n=page[-1]["_n"], fw=True)
        if page and had_before:
            out["prev_page_token"] = encode_cursor("pe", p=p["pipeline_id"], d=desc, f=text, n=page[0]["_n"], fw=False)
        return out
