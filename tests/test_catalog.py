"""Unity Catalog over real HTTP against the emulator: the metastore and the SQL engine agree (a
table made by SQL is listed with its columns; one deleted by the API is gone for SQL), every page
is read (an empty page that carries a token does not end a list), deletes need force when not
empty, and grants are enforced for SQL (a user without SELECT is refused until granted)."""
import pytest

from databricks_connector.errors import ConnectorError
from tests.scenarios import seed_warehouse
from tests.scenarios._uc import api, new_catalog, new_schema, new_volume, sql


def test_sql_and_the_tables_api_see_the_same_tables(emulator, connector, conn):
    schema = new_schema(emulator)
    sql(emulator, f"CREATE TABLE main.{schema}.orders (id BIGINT NOT NULL, amount DECIMAL(10,2))")
    t = connector.run("get_table", conn, {"catalog_name": "main", "schema_name": schema, "table_name": "orders"})
    assert [(c["name"], c["type_text"].lower(), c["nullable"]) for c in t["columns"]] == \
        [("id", "bigint", False), ("amount", "decimal(10,2)", True)]
    ins = {"catalog_name": "main", "schema_name": schema, "table_name": "orders"}
    assert connector.run("table_exists", conn, ins)["table_exists"] is True
    connector.run("delete_table", conn, ins)
    assert connector.run("table_exists", conn, ins)["table_exists"] is False
    wid = seed_warehouse(emulator, "RUNNING")
    with pytest.raises(ConnectorError) as exc:
        connector.run("execute_sql_statement", conn, {"warehouse_id": wid, "statement": f"SELECT * FROM main.{schema}.orders"})
    assert "TABLE_OR_VIEW_NOT_FOUND" in exc.value.message


def test_every_page_is_read_across_an_empty_page(emulator, connector, pat):
    cat = new_catalog(emulator)
    for i in range(130):                          # two pages of 100, with the emulator's empty page between
        api(emulator, "POST", "/api/2.1/unity-catalog/schemas", {"catalog_name": cat, "name": f"s{i:03d}"})
    since = len(emulator.requests)
    out = connector.run("list_schemas", pat, {"catalog_name": cat})
    assert out["count"] == 131 and not out["truncated"]                       # and its default schema
    assert sorted(s["name"] for s in out["schemas"]) == sorted([f"s{i:03d}" for i in range(130)] + ["default"])
    assert len([r for r in emulator.requests[since:] if r["path"].endswith("/schemas")]) == 3
    capped = connector.run("list_schemas", pat, {"catalog_name": cat, "max_items": 5})
    assert capped["count"] == 5 and capped["truncated"]
    picked = connector.pick("select_schema", pat, {"catalog_name": cat})
    assert len(picked) == 131


def test_delete_needs_force_when_not_empty(emulator, connector, pat):
    cat = new_catalog(emulator)
    _, schema, vol = new_volume(emulator, cat)
    with pytest.raises(ConnectorError) as exc:
        connector.run("delete_schema", pat, {"catalog_name": cat, "schema_name": schema})
    assert exc.value.error_code == "SCHEMA_NOT_EMPTY"
    with pytest.raises(ConnectorError) as exc:
        connector.run("delete_catalog", pat, {"catalog_name": cat})
    assert exc.value.error_code == "CATALOG_NOT_EMPTY"
    assert connector.run("delete_catalog", pat, {"catalog_name": cat, "force": True})["deleted"] is True
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_volume", pat, {"catalog_name": cat, "schema_name": schema, "volume_name": vol})
    assert exc.value.type == "not_found"


def test_grants_are_enforced_for_sql(emulator, connector, pat):
    schema = new_schema(emulator)
    sql(emulator, f"CREATE TABLE main.{schema}.t AS SELECT 1 AS x")
    analyst = emulator.state.add_user(f"analyst-{schema}@example.com")
    token = emulator.add_pat(analyst.user_name)
    groups = connector.run("list_groups", pat, {"filter": 'displayName eq "admins"'})["groups"]
    connector.run("remove_group_member", pat, {"group_id": groups[0]["id"], "member_id": analyst.id})
    as_analyst = dict(pat, token=token)
    wid = seed_warehouse(emulator, "RUNNING")
    query = {"warehouse_id": wid, "statement": f"SELECT x FROM main.{schema}.t"}
    with pytest.raises(ConnectorError) as exc:
        connector.run("execute_sql_statement", as_analyst, query)
    assert "INSUFFICIENT_PERMISSIONS" in exc.value.message
    who = analyst.user_name
    connector.run("update_grants", pat, {"securable_type": "catalog", "full_name": "main",
                                         "changes": [{"principal": who, "add": ["USE_CATALOG"]}]})
    out = connector.run("update_grants", pat, {"securable_type": "schema", "full_name": f"main.{schema}",
                                               "changes": [{"principal": who, "add": ["USE_SCHEMA", "SELECT", "MODIFY"]}]})
    assert out["privilege_assignments"] == [{"principal": who, "privileges": ["MODIFY", "SELECT", "USE_SCHEMA"]}]
    out = connector.run("update_grants", pat, {"securable_type": "schema", "full_name": f"main.{schema}",
                                               "changes": [{"principal": who, "remove": ["MODIFY"]}]})
    assert out["privilege_assignments"] == [{"principal": who, "privileges": ["SELECT", "USE_SCHEMA"]}]
    assert connector.run("execute_sql_statement", as_analyst, query)["rows"] == [{"x": 1}]
    eff = connector.run("get_effective_grants", pat, {"securable_type": "table", "full_name": f"main.{schema}.t",
                                                      "principal": who})
    assert {"privilege": "SELECT", "inherited_from_type": "SCHEMA", "inherited_from_name": f"main.{schema}"} in \
        eff["privilege_assignments"][0]["privileges"]
    connector.run("update_grants", pat, {"securable_type": "catalog", "full_name": "main",
                                         "changes": [{"principal": who, "remove": ["USE_CATALOG"]}]})


def test_update_grants_refuses_contradictions_before_any_request(emulator, connector, pat):
    since = len(emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        connector.run("update_grants", pat, {"securable_type": "schema", "full_name": "main.default",
                                             "changes": [{"principal": "a", "add": ["SELECT"], "remove": ["SELECT"]},
                                                         {"principal": "a", "add": ["MODIFY"]}]})
    assert exc.value.type == "invalid_input" and "twice" in exc.value.message and "both adds" in exc.value.message
    assert len(emulator.requests) == since
