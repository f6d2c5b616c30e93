"""SQL Warehouses API (2.0)."""
from __future__ import annotations

from urllib.parse import quote

from .. import pickers
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
    return pickers.from_list(session, API, inputs, items="warehouses", require=("id",),
                             option=lambda w: {"label": f"{w.get('name') or w['id']} ({w.get('state', 'UNKNOWN')})", "value": w["id"]})


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
    if inputs.get("wait"):
        return wait_for_warehouse(session, wid, success="RUNNING", failure=("STOPPED", "DELETED", "DELETING"),
                                  timeout=inputs["timeout_seconds"], interval=inputs["poll_interval_seconds"],
                                  what=f"SQL warehouse {wid} to be RUNNING")
    return session.get(_path(wid))


def stop_sql_warehouse(session, inputs):
    wid = inputs["warehouse_id"]
    session.start("stop", lambda: session.post(_path(wid, "/stop"), {}, idempotent=True),
                  ids={"warehouse_id": wid}, follow_up="get_sql_warehouse")
    if inputs.get("wait"):
        return wait_for_warehouse(session, wid, success="STOPPED", failure=(), timeout=inputs["timeout_seconds"],
                                  interval=inputs["poll_interval_seconds"], what=f"SQL warehouse {wid} to be STOPPED")
    return session.get(_path(wid))
