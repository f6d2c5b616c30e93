"""SQL Warehouses API (contract §7).

States move lazily: a warehouse keeps a queue of timed transitions applied whenever it is read
(no background threads). Two warehouses are seeded on first use of the area: a RUNNING
"Starter Warehouse" and a STOPPED one. Knobs are ``warehouse_*`` fields of the emulator's one
``Config`` (``warehouse_start_seconds``, ``warehouse_stop_seconds``, ``warehouse_delete_seconds``,
``warehouse_page_size``, ``warehouse_concurrency``); ``sql_shape_*`` shape the SQL area's network.
"""
from __future__ import annotations

import copy
import secrets
import time
from typing import Dict

from .api import ApiError, Snapshots, invalid_parameter, route

API = r"/api/2\.0/sql/warehouses"
STATES = ("STARTING", "RUNNING", "STOPPING", "STOPPED", "DELETING", "DELETED")
SIZES = ("2X-Small", "X-Small", "Small", "Medium", "Large", "X-Large", "2X-Large", "3X-Large",
         "4X-Large", "5X-Large")
TYPES = ("CLASSIC", "PRO", "REALTIME", "TYPE_UNSPECIFIED")
SPOT = ("COST_OPTIMIZED", "RELIABILITY_OPTIMIZED", "POLICY_UNSPECIFIED")
# edits that a running warehouse restarts to apply
RESTARTS = {"cluster_size", "min_num_clusters", "max_num_clusters", "enable_photon", "enable_serverless_compute",
            "warehouse_type", "spot_instance_policy", "channel", "instance_profile_arn"}


def shape(state, nbytes: int) -> None:
    """Simulated network: fixed latency per request plus transfer time at the configured rate."""
    c = state.config
    delay = float(c.sql_shape_latency_seconds or 0)
    if c.sql_shape_bandwidth_bytes_per_second:
        delay += nbytes / float(c.sql_shape_bandwidth_bytes_per_second)
    if delay > 0:
        time.sleep(delay)


# --------------------------------------------------------------------------- storage

def _seed(state) -> Dict[str, dict]:
    store: Dict[str, dict] = {}
    now = state.now()
    for name, st in (("Starter Warehouse", "RUNNING"), ("Reporting Warehouse", "STOPPED")):
        wh = _new(state, {"name": name, "cluster_size": "Small" if st == "RUNNING" else "X-Small",
                          "warehouse_type": "PRO", "enable_serverless_compute": True,
                          "auto_stop_mins": 10 if st == "RUNNING" else 120},
                  "emulator-user@example.com")
        wh["state"] = st
        wh["num_clusters"] = 1 if st == "RUNNING" else 0
        wh["_since"] = now
        store[wh["id"]] = wh
    return store


def warehouses(state) -> Dict[str, dict]:
    return state.area("warehouses", lambda: _seed(state))


def _new(state, body: dict, creator: str) -> dict:
    wid = secrets.token_hex(8)
    wh = {
        "id": wid,
        "name": body["name"],
        "cluster_size": body.get("cluster_size", "Small"),
        "min_num_clusters": int(body.get("min_num_clusters", 1)),
        "max_num_clusters": int(body.get("max_num_clusters", 1)),
        "auto_stop_mins": int(body.get("auto_stop_mins", 120)),
        "enable_photon": bool(body.get("enable_photon", True)),
        "enable_serverless_compute": bool(body.get("enable_serverless_compute", False)),
        "warehouse_type": body.get("warehouse_type", "CLASSIC"),
        "spot_instance_policy": body.get("spot_instance_policy", "COST_OPTIMIZED"),
        "channel": body.get("channel") or {"name": "CHANNEL_NAME_CURRENT"},
        "tags": body.get("tags") or {"custom_tags": []},
        "creator_name": body.get("creator_name") or creator,
        "state": "STARTING",
        "num_clusters": 0,
        "num_active_sessions": 0,
        "health": {"status": "HEALTHY", "summary": ""},
        "_transitions": [],
        "_since": state.now(),
    }
    return wh


def advance(state, wh: dict) -> dict:
    """Apply the transitions that are due (caller holds the state lock)."""
    now = state.now()
    queue = wh.get("_transitions") or []
    while queue and queue[0][0] <= now:
        at, new_state = queue.pop(0)
        wh["state"] = new_state
        wh["_since"] = at
        wh["num_clusters"] = 1 if new_state in ("RUNNING", "STOPPING") else 0
    return wh


def schedule(state, wh: dict, now_state: str, then: str, seconds: float) -> None:
    now = state.now()
    wh["state"] = now_state
    wh["_since"] = now
    wh["num_clusters"] = 1 if now_state in ("RUNNING", "STOPPING") else 0
    wh["_transitions"] = [(now + max(0.0, float(seconds)), then)]


def start_warehouse(state, wh: dict) -> bool:
    """STOPPED/STOPPING -> STARTING -> RUNNING. Returns True when a start was applied."""
    advance(state, wh)
    if wh["state"] in ("STOPPED", "STOPPING"):
        schedule(state, wh, "STARTING", "RUNNING", state.config.warehouse_start_seconds)
        state.applied["warehouses/start"] += 1
        return True
    return False


def public(req, wh: dict) -> dict:
    out = {k: copy.deepcopy(v) for k, v in wh.items() if not k.startswith("_")}
    host = req.base_url.split("://", 1)[-1].split(":")[0] if req.base_url else "127.0.0.1"
    port = int(req.base_url.rsplit(":", 1)[-1]) if req.base_url and req.base_url.count(":") == 2 else 443
    path = f"/sql/1.0/warehouses/{wh['id']}"
    out["odbc_params"] = {"hostname": host, "path": path, "port": port, "protocol": "https"}
    out["jdbc_url"] = (f"jdbc:databricks://{host}:{port}/default;transportMode=http;ssl=1;AuthMech=3;"
                       f"httpPath={path};")
    return out


def lookup(req, wid: str, *, allow_deleted: bool = True) -> dict:
    store = warehouses(req.state)
    wh = store.get(wid)
    if wh is None or (not allow_deleted and advance(req.state, wh)["state"] == "DELETED"):
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {wid} does not exist.")
    return advance(req.state, wh)


# --------------------------------------------------------------------------- validation

def _validate(body: dict, *, creating: bool) -> None:
    if creating and not body.get("name"):
        raise invalid_parameter("Missing required field: name")
    if "name" in body and (not isinstance(body["name"], str) or len(body["name"]) >= 100):
        raise invalid_parameter("name must be a string shorter than 100 characters")
    if "cluster_size" in body and body["cluster_size"] not in SIZES:
        raise invalid_parameter(f"Invalid cluster_size: {body['cluster_size']!r}")
    if creating and "cluster_size" not in body:
        raise invalid_parameter("Missing required field: cluster_size")
    if "warehouse_type" in body and body["warehouse_type"] not in TYPES:
        raise invalid_parameter(f"Invalid warehouse_type: {body['warehouse_type']!r}")
    if "spot_instance_policy" in body and body["spot_instance_policy"] not in SPOT:
        raise invalid_parameter(f"Invalid spot_instance_policy: {body['spot_instance_policy']!r}")
    mn, mx = body.get("min_num_clusters", 1), body.get("max_num_clusters", body.get("min_num_clusters", 1))
    try:
        mn, mx = int(mn), int(mx)
    except (TypeError, ValueError):
        raise invalid_parameter("min_num_clusters and max_num_clusters must be integers") from None
    if mn < 1 or mx < mn or mx > 40 or mn > 30:
        raise invalid_parameter("Invalid min_num_clusters/max_num_clusters: need 0 < min <= max <= 40, min <= 30")
    if "auto_stop_mins" in body:
        a = body["auto_stop_mins"]
        if not isinstance(a, int) or (a != 0 and a < 10):
            raise invalid_parameter("auto_stop_mins must be 0 or at least 10")
    if body.get("enable_serverless_compute") and body.get("warehouse_type", "PRO") != "PRO":
        raise invalid_parameter("Serverless compute requires warehouse_type PRO")
    tags = body.get("tags")
    if tags is not None:
        ct = tags.get("custom_tags") if isinstance(tags, dict) else None
        if not isinstance(tags, dict) or (ct is not None and not isinstance(ct, list)):
            raise invalid_parameter("tags must be {\"custom_tags\": [{\"key\": ..., \"value\": ...}]}")
        for t in ct or []:
            if not isinstance(t, dict) or "key" not in t:
                raise invalid_parameter("each custom tag must be {\"key\": ..., \"value\": ...}")
        if len(ct or []) >= 45:
            raise invalid_parameter("A warehouse has fewer than 45 custom tags")


# --------------------------------------------------------------------------- routes

@route("GET", API)
def list_warehouses(req):
    cap = int(req.state.config.warehouse_page_size)
    size = req.q_int("page_size", cap) or cap
    if size < 0:
        raise invalid_parameter("page_size must not be negative")
    size = min(size, cap)
    with req.state.lock:
        # paged over the listing's first-page order: each page costs its own size (linear lists)
        def build():
            return [wh for wh in warehouses(req.state).values() if advance(req.state, wh)["state"] != "DELETED"]

        snapshots = req.state.area("warehouse_list_snapshots", Snapshots)
        page, nxt, _ = snapshots.page(req.q("page_token"), build, size, "wh")
        page = [public(req, advance(req.state, wh)) for wh in page]
    out: dict = {}
    if page:
        out["warehouses"] = page
    if nxt:
        out["next_page_token"] = nxt
    return out


@route("POST", API)
def create_warehouse(req):
    body = req.body
    _validate(body, creating=True)
    with req.state.lock:
        store = warehouses(req.state)
        if any(w["name"] == body["name"] and advance(req.state, w)["state"] != "DELETED" for w in store.values()):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Warehouse with name {body['name']!r} already exists.")
        user = getattr(req.principal, "user_name", "emulator-user@example.com")
        wh = _new(req.state, body, user)
        schedule(req.state, wh, "STARTING", "RUNNING", req.state.config.warehouse_start_seconds)
        store[wh["id"]] = wh
        req.state.applied["warehouses/create"] += 1
        return {"id": wh["id"]}


@route("GET", API + r"/(?P<id>[^/]+)")
def get_warehouse(req):
    with req.state.lock:
        return public(req, lookup(req, req.params["id"]))


@route("POST", API + r"/(?P<id>[^/]+)/edit")
def edit_warehouse(req):
    body = dict(req.body)
    body.pop("id", None)
    with req.state.lock:
        wh = lookup(req, req.params["id"], allow_deleted=False)
        merged = {k: v for k, v in wh.items() if not k.startswith("_")}
        merged.update(body)
        _validate(merged, creating=False)
        if "name" in body and body["name"] != wh["name"] and any(
                w["name"] == body["name"] and advance(req.state, w)["state"] != "DELETED"
                for w in warehouses(req.state).values()):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Warehouse with name {body['name']!r} already exists.")
        changed = set()
        for k, v in body.items():
            if k in ("name", "cluster_size", "min_num_clusters", "max_num_clusters", "auto_stop_mins",
                     "enable_photon", "enable_serverless_compute", "warehouse_type", "spot_instance_policy",
                     "channel", "tags", "statement_timeout", "instance_profile_arn") and wh.get(k) != v:
                wh[k] = copy.deepcopy(v)
                changed.add(k)
        if changed:            # the same settings again change nothing
            # a running warehouse restarts on its new compute (the SDK's edit waits for RUNNING)
            if changed & RESTARTS and wh["state"] in ("STARTING", "RUNNING"):
                schedule(req.state, wh, "STARTING", "RUNNING", req.state.config.warehouse_start_seconds)
            req.state.applied["warehouses/edit"] += 1
        return {}


@route("POST", API + r"/(?P<id>[^/]+)/start")
def start(req):
    with req.state.lock:
        wh = lookup(req, req.params["id"], allow_deleted=False)
        if wh["state"] == "DELETING":
            raise ApiError(400, "INVALID_STATE", f"Warehouse {wh['id']} is being deleted.")
        start_warehouse(req.state, wh)
        return {}


@route("POST", API + r"/(?P<id>[^/]+)/stop")
def stop(req):
    with req.state.lock:
        wh = lookup(req, req.params["id"], allow_deleted=False)
        if wh["state"] in ("STARTING", "RUNNING"):
            schedule(req.state, wh, "STOPPING", "STOPPED", req.state.config.warehouse_stop_seconds)
            req.state.applied["warehouses/stop"] += 1
        return {}


@route("DELETE", API + r"/(?P<id>[^/]+)")
def delete(req):
    with req.state.lock:
        wh = lookup(req, req.params["id"], allow_deleted=False)
        if wh["state"] != "DELETING":
            schedule(req.state, wh, "DELETING", "DELETED", req.state.config.warehouse_delete_seconds)
            req.state.applied["warehouses/delete"] += 1
        return {}
