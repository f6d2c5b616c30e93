"""SQL Warehouses API (2.0)."""
from __future__ import annotations

from urllib.parse import quote

from ..errors import ConnectorError

API = "/api/2.0/sql/warehouses"


def _path(warehouse_id: str, suffix: str = "") -> str:
    return f"{API}/{quote(warehouse_id, safe='')}{suffix}"


def get_sql_warehouse(session, inputs):
    return session.get(_path(inputs["warehouse_id"]))


def list_sql_warehouses(session, inputs):
    warehouses, truncated = session.paginate(API, items="warehouses", max_items=inputs.get("max_items"))
    return {"warehouses": warehouses, "count": len(warehouses), "truncated": truncated}


def select_sql_warehouse(session, inputs):
    warehouses, _ = session.paginate(API, items="warehouses", require=("id",))
    return [{"label": f"{w.get('name') or w['id']} ({w.get('state', 'UNKNOWN')})", "value": w["id"]} for w in warehouses]


def wait_for_warehouse(session, warehouse_id: str, *, success: str, failure: tuple, timeout: float,
                       interval: float, what: str) -> dict:
    """Poll the warehouse until ``success``; a state in ``failure`` is an operation_failed error."""

    import time

    started = time.monotonic()
    seen = set()

    def poll():
        wh = session.get(_path(warehouse_id))
        state = wh.get("state", "UNKNOWN")
        seen.add(state)
        if state == success:
            return True, wh, state
        # A start is not visible at once everywhere: STOPPED right after the call is not yet a failure.
        settling = state == "STOPPED" and seen == {"STOPPED"} and time.monotonic() - started < 15
        if state in failure and not settling:
            health = wh.get("health") or {}
            reason = health.get("summary") or health.get("message") or ""
            raise ConnectorError("operation_failed", f"SQL warehouse {warehouse_id} is {state}, not {success}"
                                 + (f": {reason}" if reason else ""), details={"warehouse_id": warehouse_id, "state": state,
                                                                              "health": health or None},
                                 hint="Start the warehouse again, or check its health in the workspace.")
        return False, wh, state

    return session.wait(poll, what=what, timeout=timeout, interval=interval,
                        follow_up=("get_sql_warehouse", {"warehouse_id": warehouse_id}))


def start_sql_warehouse(session, inputs):
    wid = inputs["warehouse_id"]
    session.start("start", lambda: session.post(_path(wid, "/start"), {}, idempotent=True),
                  ids={"warehouse_id": wid}, follow_up="get_sql_warehouse")
    if inputs.get("wait_for_state"):
        return wait_for_warehouse(session, wid, success="RUNNING", failure=("STOPPED", "DELETED", "DELETING"),
                                  timeout=inputs["timeout_seconds"], interval=inputs["poll_interval_seconds"],
                                  what=f"SQL warehouse {wid} to be RUNNING")
    return session.get(_path(wid))


def stop_sql_warehouse(session, inputs):
    wid = inputs["warehouse_id"]
    session.start("stop", lambda: session.post(_path(wid, "/stop"), {}, idempotent=True),
                  ids={"warehouse_id": wid}, follow_up="get_sql_warehouse")
    if inputs.get("wait_for_state"):
        return wait_for_warehouse(session, wid, success="STOPPED", failure=(), timeout=inputs["timeout_seconds"],
                                  interval=inputs["poll_interval_seconds"], what=f"SQL warehouse {wid} to be STOPPED")
    return session.get(_path(wid))


# --------------------------------------------------------------------------- create / edit / delete

# inputs that map one to one onto create/edit body fields
SETTING_INPUTS = ("name", "cluster_size", "warehouse_type", "enable_serverless_compute", "auto_stop_mins",
                  "min_num_clusters", "max_num_clusters", "enable_photon", "spot_instance_policy")


def check_warehouse_settings(inputs) -> list:
    """What Create/Edit SQL Warehouse's schema cannot say: the cluster bounds and serverless type."""
    problems = []
    settings = inputs.get("settings") or {}
    lo = inputs.get("min_num_clusters", settings.get("min_num_clusters"))
    hi = inputs.get("max_num_clusters", settings.get("max_num_clusters"))
    if isinstance(lo, int) and isinstance(hi, int) and hi < lo:
        problems.append({"key": "max_num_clusters", "label": "Max Clusters",
                         "reason": f"must be at least Min Clusters ({lo}); got {hi}"})
    kind = inputs.get("warehouse_type", settings.get("warehouse_type"))
    if inputs.get("enable_serverless_compute") and kind == "CLASSIC":
        problems.append({"key": "enable_serverless_compute", "label": "Serverless",
                         "reason": "needs Warehouse Type PRO (a CLASSIC warehouse cannot be serverless)"})
    return problems


def _body(inputs, base: dict) -> dict:
    body = dict(base)
    body.update(inputs.get("settings") or {})
    for key in SETTING_INPUTS:
        if inputs.get(key) is not None:
            body[key] = inputs[key]
    if inputs.get("channel"):
        body["channel"] = {"name": inputs["channel"]}
    if inputs.get("tags") is not None:
        body["tags"] = {"custom_tags": [{"key": k, "value": v} for k, v in inputs["tags"].items()]}
    return body


def create_sql_warehouse(session, inputs):
    body = _body(inputs, {})
    body.setdefault("warehouse_type", "PRO")
    if body["warehouse_type"] == "PRO":
        body.setdefault("enable_serverless_compute", True)
    created = session.start("create", lambda: session.post(API, body, require=("id",)),
                            ids=lambda doc: {"warehouse_id": doc.get("id")}, follow_up="get_sql_warehouse")
    wid = created["id"]
    if inputs.get("wait_for_state"):
        return wait_for_warehouse(session, wid, success="RUNNING", failure=("STOPPED", "DELETED", "DELETING"),
                                  timeout=inputs["timeout_seconds"], interval=inputs["poll_interval_seconds"],
                                  what=f"SQL warehouse {wid} to be RUNNING")
    return {"id": wid}


# edit-request fields (EditWarehouseRequest); what a get returns beside them is not sent back
EDIT_FIELDS = SETTING_INPUTS + ("channel", "tags", "statement_timeout", "instance_profile_arn", "max_dbu")


def edit_sql_warehouse(session, inputs):
    wid = inputs["warehouse_id"]
    current = session.get(_path(wid), require=("id",))
    body = _body(inputs, {k: v for k, v in current.items() if k in EDIT_FIELDS})
    session.start("edit", lambda: session.post(_path(wid, "/edit"), body, idempotent=True),   # a full replacement
                  ids={"warehouse_id": wid}, follow_up="get_sql_warehouse")
    if not inputs.get("wait_for_state"):
        return session.get(_path(wid))

    def poll():
        wh = session.get(_path(wid))
        state = wh.get("state", "UNKNOWN")
        if state in ("DELETING", "DELETED"):
            raise ConnectorError("operation_failed", f"SQL warehouse {wid} is {state}", details={"warehouse_id": wid,
                                 "state": state}, hint="The warehouse is being deleted; create a new one.")
        return state in ("RUNNING", "STOPPED"), wh, state

    return session.wait(poll, what=f"SQL warehouse {wid} to settle (RUNNING or STOPPED)", timeout=inputs["timeout_seconds"],
                        interval=inputs["poll_interval_seconds"], follow_up="get_sql_warehouse")


def delete_sql_warehouse(session, inputs):
    wid = inputs["warehouse_id"]
    session.delete(_path(wid))
    return {"warehouse_id": wid, "deleted": True}
