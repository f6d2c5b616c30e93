r"""MLflow tracking (contract part 2, §2.1): experiments, runs, metrics with their history, params,
tags and artifacts as files.

Ids look like Databricks': experiment ids are numeric strings, run ids 32 hex digits. Errors are
MLflow's: ``RESOURCE_DOES_NOT_EXIST`` (404) for an unknown experiment or run,
``RESOURCE_ALREADY_EXISTS`` (400) for a taken experiment name, ``INVALID_PARAMETER_VALUE`` (400)
for a bad filter, a bad order_by, or a param logged again with another value (params are
immutable). Searches accept MLflow's filter syntax: comparisons joined by ``AND`` on
``metrics.<key>``, ``params.<key>``, ``tags.<key>`` and ``attributes.<name>`` (``run_name``,
``status``, ``start_time``, ``end_time``, ``run_id``, ...), with ``= != < <= > >=``, ``LIKE``,
``ILIKE`` and ``IN ('a', 'b')``; keys may be backquoted. Lists page with ``max_results`` and
``page_token`` (``mlflow_page_size`` is the server's cap).

Artifacts: ``add_artifact(state, run_id, path, data)`` stores a file of a run (tests, the demo);
``GET /api/2.0/mlflow/artifacts/list`` lists one directory level.

Applied changes are counted in ``state.applied["mlflow/<op>"]``.
"""
from __future__ import annotations

import itertools
import re
import secrets
from typing import Any, Dict, List, Optional

from .api import ApiError, Snapshots, copy_json, invalid_parameter, route

API = r"/api/2\.0/mlflow"
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
_SNAPSHOTS = Snapshots()


# --------------------------------------------------------------------------- storage

class Store:
    def __init__(self) -> None:
        self.experiments: Dict[str, dict] = {}
        self.runs: Dict[str, dict] = {}
        self.ids = itertools.count(1000000000000001)


def store(state) -> Store:
    return state.area("mlflow", Store)


def not_found(message: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)


def _experiment(state, experiment_id: Any, *, active: bool = False) -> dict:
    exp = store(state).experiments.get(str(experiment_id or ""))
    if exp is None or (active and exp["lifecycle_stage"] != "active"):
        raise not_found(f"Node ID {experiment_id} does not exist.")
    return exp


def run_record(state, run_id: Any) -> dict:
    run = store(state).runs.get(str(run_id or ""))
    if run is None:
        raise not_found(f"Run '{run_id}' not found.")
    return run


def add_artifact(state, run_id: str, path: str, data: bytes) -> None:
    """Store a file among a run's artifacts (tests and the demo; the API has no upload here)."""
    with state.lock:
        run_record(state, run_id)["artifacts"][path.strip("/")] = bytes(data)


def _tags(value, what: str = "tags") -> List[dict]:
    if value in (None, []):
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) and isinstance(t.get("key"), str) and t["key"]
                                              for t in value):
        raise invalid_parameter(f"{what} must be a list of {{key, value}} objects with a non-empty key")
    return [{"key": t["key"], "value": "" if t.get("value") is None else str(t["value"])} for t in value]


def _set_tags(target: Dict[str, str], tags: List[dict]) -> None:
    for t in tags:
        target[t["key"]] = t["value"]


def _tag_list(tags: Dict[str, str]) -> List[dict]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def public_experiment(exp: dict) -> dict:
    out = {k: exp[k] for k in ("experiment_id", "name", "artifact_location", "lifecycle_stage", "last_update_time",
                               "creation_time")}
    if exp["tags"]:
        out["tags"] = _tag_list(exp["tags"])
    return out


def run_info(run: dict) -> dict:
    info = {k: run[k] for k in ("run_id", "run_uuid", "run_name", "experiment_id", "user_id", "status",
                                "start_time", "artifact_uri", "lifecycle_stage")}
    if run.get("end_time") is not None:
        info["end_time"] = run["end_time"]
    return info


def public_run(run: dict) -> dict:
    data: Dict[str, Any] = {}
    latest = [dict(max(hist, key=lambda m: (m["step"], m["timestamp"], m["value"])), key=key)
              for key, hist in run["metrics"].items() if hist]
    if latest:
        data["metrics"] = [{"key": m["key"], "value": m["value"], "timestamp": m["timestamp"], "step": m["step"]}
                           for m in latest]
    if run["params"]:
        data["params"] = [{"key": k, "value": v} for k, v in run["params"].items()]
    if run["tags"]:
        data["tags"] = _tag_list(run["tags"])
    return {"info": run_info(run), "data": data, "inputs": {}}


# --------------------------------------------------------------------------- experiments

@route("POST", API + r"/experiments/create")
def create_experiment(req):
    body = req.body
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid_parameter("Missing value for required parameter 'name'.")
    tags = _tags(body.get("tags"))
    st = req.state
    with st.lock:
        s = store(st)
        if any(e["name"] == name for e in s.experiments.values()):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Node named '{name}' already exists")
        eid = str(next(s.ids))
        now = st.now_ms()
        exp = {"experiment_id": eid, "name": name, "lifecycle_stage": "active", "creation_time": now,
               "last_update_time": now, "tags": {},
               "artifact_location": body.get("artifact_location") or f"dbfs:/databricks/mlflow-tracking/{eid}"}
        _set_tags(exp["tags"], tags)
        s.experiments[eid] = exp
        st.applied["mlflow/experiments/create"] += 1
        return {"experiment_id": eid}


@route("GET", API + r"/experiments/get")
def get_experiment(req):
    with req.state.lock:
        return {"experiment": public_experiment(_experiment(req.state, req.param("experiment_id")))}


@route("GET", API + r"/experiments/get-by-name")
def get_experiment_by_name(req):
    name = req.param("experiment_name")
    with req.state.lock:
        for exp in store(req.state).experiments.values():
            if exp["name"] == name:
                return {"experiment": public_experiment(exp)}
    raise not_found(f"Could not find experiment with name '{name}'")


@route("POST", API + r"/experiments/delete")
def delete_experiment(req):
    st = req.state
    with st.lock:
        exp = _experiment(st, req.body.get("experiment_id"))
        if exp["lifecycle_stage"] == "active":
            exp["lifecycle_stage"] = "deleted"
            exp["last_update_time"] = st.now_ms()
            for run in store(st).runs.values():
                if run["experiment_id"] == exp["experiment_id"]:
                    run["lifecycle_stage"] = "deleted"
            st.applied["mlflow/experiments/delete"] += 1
        return {}


@route("POST", API + r"/experiments/restore")
def restore_experiment(req):
    st = req.state
    with st.lock:
        exp = _experiment(st, req.body.get("experiment_id"))
        if exp["lifecycle_stage"] == "deleted":
            exp["lifecycle_stage"] = "active"
            st.applied["mlflow/experiments/restore"] += 1
        return {}


def _view(value, name: str) -> set:
    value = value or "ACTIVE_ONLY"
    views = {"ACTIVE_ONLY": {"active"}, "DELETED_ONLY": {"deleted"}, "ALL": {"active", "deleted"}}
    if value not in views:
        raise invalid_parameter(f"Invalid value {value!r} for parameter '{name}': one of ACTIVE_ONLY, DELETED_ONLY, ALL")
    return views[value]


def _page_size(req, value, cap_default: int = 1000) -> int:
    cap = int(req.config.mlflow_page_size)
    if value in (None, ""):
        return min(cap, cap_default)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise invalid_parameter(f"Invalid value {value!r} for parameter 'max_results'") from None
    if n < 1 or n > 50000:
        raise invalid_parameter(f"Invalid value {n} for parameter 'max_results' supplied. It must be at most 50000.")
    return min(n, cap)


@route("POST", API + r"/experiments/search")
def search_experiments(req):
    body = req.body
    stages = _view(body.get("view_type"), "view_type")
    conditions = parse_filter(body.get("filter"), kinds=("attributes", "tags"))
    order = parse_order(body.get("order_by"), default=[("attributes", "last_update_time", False),
                                                       ("attributes", "experiment_id", True)])
    size = _page_size(req, body.get("max_results"))

    def build():
        with req.state.lock:
            items = [public_experiment(e) for e in store(req.state).experiments.values()
                     if e["lifecycle_stage"] in stages and all(_match(_exp_value(e, c), c) for c in conditions)]
        return _sort(items, order, _exp_value)

    page, nxt, _ = _SNAPSHOTS.page(body.get("page_token"), build, size, "experiments")
    out: Dict[str, Any] = {"experiments": page} if page else {}
    if nxt:
        out["next_page_token"] = nxt
    return out


def _exp_value(exp: dict, cond):
    kind, key = cond[0], cond[1]
    if kind == "tags":
        tags = exp.get("tags") or {}
        return tags.get(key) if isinstance(tags, dict) else {t["key"]: t.get("value") for t in tags}.get(key)
    return exp.get(key)


# --------------------------------------------------------------------------- runs

@route("POST", API + r"/runs/create")
def create_run(req):
    body = req.body
    st = req.state
    tags = _tags(body.get("tags"))
    with st.lock:
        exp = _experiment(st, body.get("experiment_id"), active=True)
        rid = secrets.token_hex(16)
        now = st.now_ms()
        start = body.get("start_time")
        run = {"run_id": rid, "run_uuid": rid, "experiment_id": exp["experiment_id"],
               "run_name": body.get("run_name") or f"run-{rid[:6]}",
               "user_id": body.get("user_id") or (req.principal.user_name if req.principal else ""),
               "status": "RUNNING", "start_time": int(start) if isinstance(start, (int, float)) else now,
               "end_time": None, "artifact_uri": f"{exp['artifact_location']}/{rid}/artifacts",
               "lifecycle_stage": "active", "metrics": {}, "params": {}, "tags": {}, "artifacts": {}}
        _set_tags(run["tags"], tags)
        run["tags"].setdefault("mlflow.runName", run["run_name"])
        run["tags"].setdefault("mlflow.user", run["user_id"])
        store(st).runs[rid] = run
        st.applied["mlflow/runs/create"] += 1
        return {"run": public_run(run)}


@route("GET", API + r"/runs/get")
def get_run(req):
    with req.state.lock:
        return {"run": public_run(run_record(req.state, req.param("run_id") or req.param("run_uuid")))}


@route("POST", API + r"/runs/update")
def update_run(req):
    body = req.body
    st = req.state
    status = body.get("status")
    if status is not None and status not in RUN_STATUSES:
        raise invalid_parameter(f"Invalid value {status!r} for parameter 'status': one of {', '.join(RUN_STATUSES)}")
    end = body.get("end_time")
    if end is not None and (isinstance(end, bool) or not isinstance(end, (int, float))):
        raise invalid_parameter("end_time must be an integer (epoch milliseconds)")
    with st.lock:
        run = run_record(st, body.get("run_id") or body.get("run_uuid"))
        if run["lifecycle_stage"] != "active":
            raise invalid_parameter(f"The run {run['run_id']} must be in the 'active' state.")
        before = (run["status"], run["end_time"], run["run_name"])
        if status is not None:
            run["status"] = status
        if end is not None:
            run["end_time"] = int(end)
        if body.get("run_name"):
            run["run_name"] = str(body["run_name"])
            run["tags"]["mlflow.runName"] = run["run_name"]
        if (run["status"], run["end_time"], run["run_name"]) != before:
            st.applied["mlflow/runs/update"] += 1
        return {"run_info": run_info(run)}


@route("POST", API + r"/runs/delete")
def delete_run(req):
    st = req.state
    with st.lock:
        run = run_record(st, req.body.get("run_id"))
        if run["lifecycle_stage"] == "active":
            run["lifecycle_stage"] = "deleted"
            st.applied["mlflow/runs/delete"] += 1
        return {}


def _metric(m, i: int, now: int) -> dict:
    if not isinstance(m, dict) or not isinstance(m.get("key"), str) or not m["key"]:
        raise invalid_parameter(f"metrics[{i}] must have a non-empty key")
    value = m.get("value")
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_parameter(f"metrics[{i}] ('{m['key']}') must have a numeric value")
    ts, step = m.get("timestamp", now), m.get("step", 0)
    for name, v in (("timestamp", ts), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise invalid_parameter(f"metrics[{i}] ('{m['key']}'): {name} must be an integer")
    return {"key": m["key"], "value": float(value), "timestamp": ts, "step": step}


@route("POST", API + r"/runs/log-batch")
def log_batch(req):
    body = req.body
    st = req.state
    metrics, params, tags = body.get("metrics") or [], body.get("params") or [], body.get("tags") or []
    for name, value, cap in (("metrics", metrics, 1000), ("params", params, 100), ("tags", tags, 100)):
        if not isinstance(value, list):
            raise invalid_parameter(f"{name} must be a list")
        if len(value) > cap:
            raise invalid_parameter(f"A batch logging request can contain at most {cap} {name}. Got {len(value)}.")
    if len(metrics) + len(params) + len(tags) > 1000:
        raise invalid_parameter("A batch logging request can contain at most 1000 metrics, params and tags in total.")
    now = st.now_ms()
    clean = [_metric(m, i, now) for i, m in enumerate(metrics)]
    params = _tags(params, "params")
    tags = _tags(tags)
    with st.lock:
        run = run_record(st, body.get("run_id"))
        if run["lifecycle_stage"] != "active":
            raise invalid_parameter(f"The run {run['run_id']} must be in the 'active' state.")
        for p in params:
            old = run["params"].get(p["key"])
            if old is not None and old != p["value"]:
                raise invalid_parameter(f"Changing param values is not allowed. Param with key='{p['key']}' was "
                                        f"already logged with value='{old}' for run ID='{run['run_id']}'. "
                                        f"Attempted logging new value '{p['value']}'.")
        for p in params:
            run["params"][p["key"]] = p["value"]
        for m in clean:
            run["metrics"].setdefault(m["key"], []).append({k: m[k] for k in ("value", "timestamp", "step")})
        _set_tags(run["tags"], tags)
        if clean or params or tags:
            st.applied["mlflow/runs/log-batch"] += 1
        return {}


@route("POST", API + r"/runs/log-metric")
def log_metric(req):
    b = req.body
    return log_batch(_sub(req, {"run_id": b.get("run_id") or b.get("run_uuid"), "metrics": [
        {k: b[k] for k in ("key", "value", "timestamp", "step") if k in b}]}))


@route("POST", API + r"/runs/log-parameter")
def log_param(req):
    b = req.body
    return log_batch(_sub(req, {"run_id": b.get("run_id") or b.get("run_uuid"),
                                "params": [{"key": b.get("key"), "value": b.get("value")}]}))


@route("POST", API + r"/runs/set-tag")
def set_tag(req):
    b = req.body
    return log_batch(_sub(req, {"run_id": b.get("run_id") or b.get("run_uuid"),
                                "tags": [{"key": b.get("key"), "value": b.get("value")}]}))


def _sub(req, body):
    import dataclasses
    return dataclasses.replace(req, json=body)


@route("GET", API + r"/metrics/get-history")
def metric_history(req):
    key = req.param("metric_key")
    if not key:
        raise invalid_parameter("Missing value for required parameter 'metric_key'.")
    size = _page_size(req, req.param("max_results"), 25000)
    with req.state.lock:
        run = run_record(req.state, req.param("run_id") or req.param("run_uuid"))
        history = [dict(m, key=key) for m in run["metrics"].get(key, [])]
    token = req.param("page_token")
    offset = 0
    if token:
        try:
            offset = int(token)
        except ValueError:
            raise invalid_parameter(f"Invalid page token: {token}") from None
    page = history[offset:offset + size]
    out: Dict[str, Any] = {"metrics": page} if page else {}
    if offset + size < len(history):
        out["next_page_token"] = str(offset + size)
    return out


@route("GET", API + r"/artifacts/list")
def list_artifacts(req):
    path = (req.param("path") or "").strip("/")
    with req.state.lock:
        run = run_record(req.state, req.param("run_id") or req.param("run_uuid"))
        files = dict(run["artifacts"])
        root = run["artifact_uri"]
    prefix = path + "/" if path else ""
    entries: Dict[str, dict] = {}
    for name, data in files.items():
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        head, sep, _ = rest.partition("/")
        full = prefix + head
        if sep:
            entries.setdefault(full, {"path": full, "is_dir": True})
        else:
            entries[full] = {"path": full, "is_dir": False, "file_size": len(data)}
    out: Dict[str, Any] = {"root_uri": root}
    if entries:
        out["files"] = [entries[k] for k in sorted(entries)]
    return out


# --------------------------------------------------------------------------- search runs

_ATTRS = {"run_id": "run_id", "run_name": "run_name", "status": "status", "start_time": "start_time",
          "end_time": "end_time", "artifact_uri": "artifact_uri", "user_id": "user_id",
          "lifecycle_stage": "lifecycle_stage", "experiment_id": "experiment_id", "run_uuid": "run_id",
          "name": "name", "experiment_name": "name", "creation_time": "creation_time",
          "last_update_time": "last_update_time"}
_KINDS = {"metric": "metrics", "metrics": "metrics", "param": "params", "params": "params", "parameter": "params",
          "parameters": "params", "tag": "tags", "tags": "tags", "attribute": "attributes",
          "attributes": "attributes", "attr": "attributes", "run": "attributes"}


def _ident(text: str, kinds) -> tuple:
    if "." in text:
        kind, key = text.split(".", 1)
        kind = _KINDS.get(kind.lower())
        key = key.strip("`\"")
    else:
        kind, key = "attributes", text
    if kind is None or kind not in kinds:
        raise invalid_parameter(f"Invalid filter: '{text}' is not a valid identifier (use "
                                + ", ".join(f"{k}.<key>" for k in kinds) + ")")
    if kind == "attributes":
        if key.lower() not in _ATTRS:
            raise invalid_parameter(f"Invalid attribute key '{key}' in the filter.")
        key = _ATTRS[key.lower()]
    return kind, key


def parse_filter(text, *, kinds=("metrics", "params", "tags", "attributes")) -> list:
    """[(kind, key, op, value)] of an MLflow filter string; an unreadable filter is a 400."""
    if text in (None, ""):
        return []
    if not isinstance(text, str):
        raise invalid_parameter("filter must be a string")
    conditions = []
    for part in re.split(r"(?i)\s+and\s+", text.strip()):
        m = re.match(r"\s*(?P<ident>[A-Za-z_]\w*(?:\.(?:`[^`]+`|\"[^\"]+\"|[\w.\-]+))?)\s*"
                     r"(?P<op>!=|<=|>=|=|<|>|(?i:not\s+like)|(?i:not\s+in)|(?i:ilike)|(?i:like)|(?i:in))\s*"
                     r"(?P<value>.+?)\s*$", part, re.S)
        if not m:
            raise invalid_parameter(f"Invalid filter '{text}': could not parse '{part.strip()}'")
        kind, key = _ident(m.group("ident"), kinds)
        op = " ".join(m.group("op").upper().split())
        raw = m.group("value")
        if op in ("IN", "NOT IN"):
            inner = raw.strip()
            if not (inner.startswith("(") and inner.endswith(")")):
                raise invalid_parameter(f"Invalid filter '{text}': {op} needs a list in parentheses")
            values = [_literal(v.strip(), text) for v in _split_list(inner[1:-1])]
            conditions.append((kind, key, op, values))
        else:
            conditions.append((kind, key, op, _literal(raw, text)))
    return conditions


def _split_list(text: str) -> list:
    return [v for v in re.findall(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^,\s]+""", text)]


def _literal(raw: str, text: str):
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1].replace("\\'", "'").replace('\\"', '"')
    try:
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        raise invalid_parameter(f"Invalid filter '{text}': {raw!r} is not a quoted string or a number") from None


def _like(pattern: str, value: str, flags=0) -> bool:
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, flags | re.S) is not None


def _match(value, cond) -> bool:
    _, key, op, want = cond
    if value is None:                 # a run without the metric, param or tag never matches
        return False
    if op in ("IN", "NOT IN"):
        hit = str(value) in {str(w) for w in want}
        return hit if op == "IN" else not hit
    if op in ("LIKE", "ILIKE", "NOT LIKE"):
        hit = _like(str(want), str(value), re.I if op == "ILIKE" else 0)
        return hit if op != "NOT LIKE" else not hit
    if isinstance(value, (int, float)) and not isinstance(want, str):
        a, b = float(value), float(want)
    elif isinstance(value, (int, float)) and isinstance(want, str):
        try:
            a, b = float(value), float(want)
        except ValueError:
            return False
    else:
        a, b = str(value), str(want)
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _run_value(run: dict, cond):
    kind, key = cond[0], cond[1]
    if kind == "metrics":
        hist = run["metrics"].get(key)
        return max(hist, key=lambda m: (m["step"], m["timestamp"], m["value"]))["value"] if hist else None
    if kind == "params":
        return run["params"].get(key)
    if kind == "tags":
        return run["tags"].get(key)
    return run.get(key)


def parse_order(value, *, default) -> list:
    """[(kind, key, ascending)] of an order_by list ("metrics.rmse DESC", "attributes.start_time")."""
    if value in (None, []):
        return list(default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise invalid_parameter("order_by must be a list of strings")
    out = []
    for item in value:
        m = re.fullmatch(r"\s*(\S+?)\s*(?:\s(ASC|DESC))?\s*", str(item), re.I)
        if not m:
            raise invalid_parameter(f"Invalid order_by clause '{item}'")
        kind, key = _ident(m.group(1), ("metrics", "params", "tags", "attributes"))
        out.append((kind, key, (m.group(2) or "ASC").upper() == "ASC"))
    return out + [d for d in default if d[:2] not in {o[:2] for o in out}]


def _sort(items: list, order: list, value_of) -> list:
    """Stable multi-key sort; missing values last whatever the direction (as MLflow does)."""
    for kind, key, asc in reversed(order):
        present = [i for i in items if value_of(i, (kind, key)) is not None]
        missing = [i for i in items if value_of(i, (kind, key)) is None]
        present.sort(key=lambda i: _sortable(value_of(i, (kind, key))), reverse=not asc)
        items = present + missing
    return items


def _sortable(v):
    return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))


@route("POST", API + r"/runs/search")
def search_runs(req):
    body = req.body
    ids = body.get("experiment_ids") or []
    if not isinstance(ids, list) or not ids:
        raise invalid_parameter("experiment_ids must be a non-empty list of experiment ids")
    stages = _view(body.get("run_view_type"), "run_view_type")
    conditions = parse_filter(body.get("filter"))
    order = parse_order(body.get("order_by"), default=[("attributes", "start_time", False),
                                                       ("attributes", "run_id", True)])
    size = _page_size(req, body.get("max_results"))
    with req.state.lock:
        for eid in ids:
            _experiment(req.state, eid)

    def build():
        wanted = {str(i) for i in ids}
        with req.state.lock:
            runs = [r for r in store(req.state).runs.values() if r["experiment_id"] in wanted
                    and r["lifecycle_stage"] in stages and all(_match(_run_value(r, c), c) for c in conditions)]
            runs = _sort(runs, order, _run_value)
            return [copy_json(public_run(r)) for r in runs]

    page, nxt, _ = _SNAPSHOTS.page(body.get("page_token"), build, size, "runs")
    out: Dict[str, Any] = {"runs": page} if page else {}
    if nxt:
        out["next_page_token"] = nxt
    return out


def experiment_by_id(state, experiment_id: str) -> Optional[dict]:
    with state.lock:
        return store(state).experiments.get(str(experiment_id))


def add_experiment(state, name: str) -> str:
    """An experiment named ``name`` (tests, the demo); an existing one's id when the name is taken."""
    with state.lock:
        s = store(state)
        for exp in s.experiments.values():
            if exp["name"] == name:
                return exp["experiment_id"]
        eid = str(next(s.ids))
        now = state.now_ms()
        s.experiments[eid] = {"experiment_id": eid, "name": name, "lifecycle_stage": "active", "creation_time": now,
                              "last_update_time": now, "tags": {},
                              "artifact_location": f"dbfs:/databricks/mlflow-tracking/{eid}"}
        return eid
