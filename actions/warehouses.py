"""SQL Warehouses API (2.0)."""
from __future__ import annotations

API = "/api/2.0/sql/warehouses"


def list_sql_warehouses(session, inputs):
    warehouses, truncated = session.paginate(API, items="warehouses", max_items=inputs.get("max_items"))
    return {"warehouses": warehouses, "count": len(warehouses), "truncated": truncated}


def select_sql_warehouse(session, inputs):
    warehouses, _ = session.paginate(API, items="warehouses")
    return [{"label": f"{w.get('name') or w['id']} ({w.get('state', 'UNKNOWN')})", "value": w["id"]} for w in warehouses]
