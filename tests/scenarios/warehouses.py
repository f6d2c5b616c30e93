"""Scenarios of the warehouses area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import _unknown_warehouse, scenario, seed_warehouse, sql_settings


# --------------------------------------------------------------------------- warehouses

@scenario("get_sql_warehouse", check=lambda out, inputs, conn: out.get("id") == inputs["warehouse_id"],
          failing=_unknown_warehouse)
def _get_sql_warehouse(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "RUNNING")}


@scenario("list_sql_warehouses", check=lambda out, inputs, conn: out.get("count") == len(out.get("warehouses", [])))
def _list_sql_warehouses(emulator, connector, conn):
    return {"max_items": 5}


def _wait_warehouse_start(emulator, connector, conn):
    sql_settings(emulator).warehouse_start_seconds = 1.5
    return {"warehouse_id": seed_warehouse(emulator, "STOPPED"), "wait_for_state": True, "timeout_seconds": 30,
            "poll_interval_seconds": 0.2}


@scenario("start_sql_warehouse", changes_state=True, applied=("warehouses/start",), retry_safe="natural",
          failing=_unknown_warehouse, wait=_wait_warehouse_start,
          check=lambda out, inputs, conn: out.get("id") == inputs["warehouse_id"])
def _start_sql_warehouse(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "STOPPED")}


@scenario("stop_sql_warehouse", changes_state=True, applied=("warehouses/stop",), retry_safe="natural",
          failing=_unknown_warehouse, check=lambda out, inputs, conn: out.get("id") == inputs["warehouse_id"])
def _stop_sql_warehouse(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "RUNNING")}


# --------------------------------------------------------------------------- create / edit / delete

def _wait_warehouse_create(emulator, connector, conn):
    sql_settings(emulator).warehouse_start_seconds = 1.5
    return {"name": f"scn-create-{uuid.uuid4().hex[:8]}", "cluster_size": "X-Small", "wait_for_state": True,
            "timeout_seconds": 30, "poll_interval_seconds": 0.2}


def _existing_warehouse_name(emulator, connector, conn):
    return {"name": "Starter Warehouse", "cluster_size": "Small"}      # names are unique: a classified 400


@scenario("create_sql_warehouse", changes_state=True, applied=("warehouses/create",), wait=_wait_warehouse_create,
          failing=_existing_warehouse_name,
          check=lambda out, inputs, conn: bool(out.get("id")))
def _create_sql_warehouse(emulator, connector, conn):
    return {"name": f"scn-create-{uuid.uuid4().hex[:8]}", "cluster_size": "X-Small", "auto_stop_mins": 10,
            "tags": {"team": "scenario"}}


def _wait_warehouse_edit(emulator, connector, conn):
    sql_settings(emulator).warehouse_start_seconds = 1.5
    return {"warehouse_id": seed_warehouse(emulator, "RUNNING"), "cluster_size": "Medium", "wait_for_state": True,
            "timeout_seconds": 30, "poll_interval_seconds": 0.2}


@scenario("edit_sql_warehouse", changes_state=True, applied=("warehouses/edit",), retry_safe="natural",
          failing=_unknown_warehouse, wait=_wait_warehouse_edit,
          check=lambda out, inputs, conn: out.get("id") == inputs["warehouse_id"])
def _edit_sql_warehouse(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "STOPPED"), "auto_stop_mins": 30, "max_num_clusters": 2}


@scenario("delete_sql_warehouse", changes_state=True, applied=("warehouses/delete",), retry_safe="natural",
          failing=_unknown_warehouse, check=lambda out, inputs, conn: out.get("warehouse_id") == inputs["warehouse_id"])
def _delete_sql_warehouse(emulator, connector, conn):
    return {"warehouse_id": seed_warehouse(emulator, "STOPPED")}
