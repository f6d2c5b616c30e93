"""Scenarios of the Unity Catalog area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

from . import scenario, picker_scenario
from ._uc import name, new_catalog, new_schema, new_volume, sql


def _missing_catalog(emulator, connector, conn):
    return {"catalog_name": "no_such_catalog_x"}


def _missing_schema(emulator, connector, conn):
    return {"catalog_name": "main", "schema_name": "no_such_schema_x"}


def _table(emulator):
    schema = new_schema(emulator)
    sql(emulator, f"CREATE TABLE main.{schema}.orders (id BIGINT NOT NULL, amount DECIMAL(10,2), note STRING)")
    return {"catalog_name": "main", "schema_name": schema, "table_name": "orders"}


@scenario("list_catalogs", check=lambda out, inputs, conn: any(c["name"] == "main" for c in out["catalogs"]))
def _list_catalogs(emulator, connector, conn):
    return {}


@scenario("get_catalog", check=lambda out, inputs, conn: out.get("name") == inputs["catalog_name"],
          failing=_missing_catalog)
def _get_catalog(emulator, connector, conn):
    return {"catalog_name": "main"}


@scenario("create_catalog", failing=lambda e, c, k: {"catalog_name": "main"}, changes_state=True, applied=("catalog/create_catalog",),
          check=lambda out, inputs, conn: out.get("name") == inputs["catalog_name"])
def _create_catalog(emulator, connector, conn):
    return {"catalog_name": name("cat"), "comment": "made by a scenario"}


@scenario("delete_catalog", changes_state=True, applied=("catalog/catalogs/delete",),
          failing=_missing_catalog, check=lambda out, inputs, conn: out == {"deleted": True, "full_name": inputs["catalog_name"]})
def _delete_catalog(emulator, connector, conn):
    return {"catalog_name": new_catalog(emulator)}


@scenario("list_schemas", main=("GET", r"/api/2\.1/unity-catalog/schemas"), check=lambda out, inputs, conn: any(s["name"] == "default" for s in out["schemas"]),
          failing=_missing_catalog)
def _list_schemas(emulator, connector, conn):
    return {"catalog_name": "main"}


@scenario("get_schema", main=("GET", r"/api/2\.1/unity-catalog/schemas/[^/]+"), check=lambda out, inputs, conn: out.get("full_name") == f"main.{inputs['schema_name']}",
          failing=_missing_schema)
def _get_schema(emulator, connector, conn):
    return {"catalog_name": "main", "schema_name": new_schema(emulator)}


@scenario("create_schema", failing=lambda e, c, k: {"catalog_name": "no_such_catalog_x", "schema_name": "s"}, changes_state=True, applied=("catalog/create_schema",),
          check=lambda out, inputs, conn: out.get("name") == inputs["schema_name"])
def _create_schema(emulator, connector, conn):
    return {"catalog_name": "main", "schema_name": name("scn")}


@scenario("delete_schema", main=("DELETE", r"/api/2\.1/unity-catalog/schemas/[^/]+"), changes_state=True, applied=("catalog/schemas/delete",),
          failing=_missing_schema, check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_schema(emulator, connector, conn):
    return {"catalog_name": "main", "schema_name": new_schema(emulator), "force": True}


@scenario("list_tables", main=("GET", r"/api/2\.1/unity-catalog/tables"), check=lambda out, inputs, conn: [t["name"] for t in out["tables"]] == ["orders"],
          failing=_missing_schema)
def _list_tables(emulator, connector, conn):
    return {k: v for k, v in _table(emulator).items() if k != "table_name"}


def _missing_table(emulator, connector, conn):
    return {"catalog_name": "main", "schema_name": "default", "table_name": "no_such_table_x"}


@scenario("get_table", main=("GET", r"/api/2\.1/unity-catalog/tables/[^/]+"), failing=_missing_table,
          check=lambda out, inputs, conn: [c["name"] for c in out.get("columns", [])] == ["id", "amount", "note"])
def _get_table(emulator, connector, conn):
    return _table(emulator)


@scenario("table_exists", failing=lambda e, c, k: {**_missing_schema(e, c, k), "table_name": "t"}, main=("GET", r"/api/2\.1/unity-catalog/tables/[^/]+/exists"), check=lambda out, inputs, conn: out.get("table_exists") is True)
def _table_exists(emulator, connector, conn):
    return _table(emulator)


@scenario("delete_table", main=("DELETE", r"/api/2\.1/unity-catalog/tables/[^/]+"), changes_state=True, applied=("catalog/tables/delete",),
          failing=_missing_table, check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_table(emulator, connector, conn):
    return _table(emulator)


def _volume_inputs(emulator):
    cat, sch, vol = new_volume(emulator)
    return {"catalog_name": cat, "schema_name": sch, "volume_name": vol}


def _missing_volume(emulator, connector, conn):
    return {"catalog_name": "main", "schema_name": "default", "volume_name": "no_such_volume_x"}


@scenario("list_volumes", main=("GET", r"/api/2\.1/unity-catalog/volumes"), check=lambda out, inputs, conn: out.get("count") == 1, failing=_missing_schema)
def _list_volumes(emulator, connector, conn):
    v = _volume_inputs(emulator)
    return {"catalog_name": v["catalog_name"], "schema_name": v["schema_name"]}


@scenario("get_volume", main=("GET", r"/api/2\.1/unity-catalog/volumes/[^/]+"), failing=_missing_volume, check=lambda out, inputs, conn: out.get("name") == inputs["volume_name"])
def _get_volume(emulator, connector, conn):
    return _volume_inputs(emulator)


@scenario("create_volume", failing=lambda e, c, k: {**_missing_schema(e, c, k), "volume_name": "v"}, changes_state=True, applied=("catalog/create_volume",),
          check=lambda out, inputs, conn: out.get("full_name", "").endswith("." + inputs["volume_name"]))
def _create_volume(emulator, connector, conn):
    return {"catalog_name": "main", "schema_name": new_schema(emulator), "volume_name": name("vol")}


@scenario("delete_volume", main=("DELETE", r"/api/2\.1/unity-catalog/volumes/[^/]+"), changes_state=True, applied=("catalog/volumes/delete",),
          failing=_missing_volume, check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_volume(emulator, connector, conn):
    return _volume_inputs(emulator)


def _grant_target(emulator):
    return {"securable_type": "schema", "full_name": f"main.{new_schema(emulator)}"}


def _missing_grant_target(emulator, connector, conn):
    return {"securable_type": "schema", "full_name": "main.no_such_schema_x"}


@scenario("get_grants", main=("GET", r"/api/2\.1/unity-catalog/permissions/schema/[^/]+"), failing=_missing_grant_target,
          check=lambda out, inputs, conn: out["full_name"] == inputs["full_name"])
def _get_grants(emulator, connector, conn):
    return _grant_target(emulator)


@scenario("get_effective_grants", main=("GET", r"/api/2\.1/unity-catalog/effective-permissions/schema/[^/]+"), failing=_missing_grant_target,
          check=lambda out, inputs, conn: out["full_name"] == inputs["full_name"])
def _get_effective_grants(emulator, connector, conn):
    return _grant_target(emulator)


@scenario("update_grants", main=("PATCH", r"/api/2\.1/unity-catalog/permissions/schema/[^/]+"), changes_state=True, applied=("catalog/grants/update",), retry_safe="natural",
          failing=lambda e, c, k: {**_missing_grant_target(e, c, k), "changes": [{"principal": "users", "add": ["SELECT"]}]},
          check=lambda out, inputs, conn: {"principal": "users", "privileges": ["USE_SCHEMA"]}
          in out["privilege_assignments"])
def _update_grants(emulator, connector, conn):
    return {**_grant_target(emulator), "changes": [{"principal": "users", "add": ["USE_SCHEMA"]}]}


@picker_scenario("select_schema")
def _pick_schema(emulator, connector, conn):
    return {"catalog_name": "main"}


@picker_scenario("select_table")
def _pick_table(emulator, connector, conn):
    return {k: v for k, v in _table(emulator).items() if k != "table_name"}


@picker_scenario("select_volume")
def _pick_volume(emulator, connector, conn):
    v = _volume_inputs(emulator)
    return {"catalog_name": v["catalog_name"], "schema_name": v["schema_name"]}
