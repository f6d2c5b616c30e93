"""Workspace, permissions and SCIM identity over real HTTP against the emulator: a notebook imported
and exported in two formats, folders, deletion; object permissions set, updated and read with their
levels; SCIM users, groups and service principals found by filter, every page (1-based
startIndex), and group membership changed and read back."""
import json

import pytest

from databricks_connector.errors import ConnectorError
from tests.scenarios import PAT_USER, seed_cluster, user_name


def test_import_export_and_delete_a_notebook(emulator, connector, conn):
    folder = f"/Shared/ws-{conn['type']}"
    assert connector.run("create_workspace_folder", conn, {"path": folder})["object_type"] == "DIRECTORY"
    nb = connector.run("import_notebook", conn, {"path": f"{folder}/etl.py", "content": "x = 1\nprint(x)",
                                                "language": "PYTHON"})
    assert nb["path"] in (f"{folder}/etl", f"{folder}/etl.py") and nb["object_type"] == "NOTEBOOK"
    assert nb["language"] == "PYTHON"
    src = connector.run("export_notebook", conn, {"path": nb["path"]})
    assert src["content"].startswith("# Databricks notebook source") and "print(x)" in src["content"]
    ipynb = json.loads(connector.run("export_notebook", conn, {"path": nb["path"], "format": "JUPYTER"})["content"])
    assert any("print(x)" in "".join(c["source"]) for c in ipynb["cells"])
    with pytest.raises(ConnectorError) as exc:
        connector.run("import_notebook", conn, {"path": nb["path"], "content": "y", "language": "PYTHON"})
    assert exc.value.error_code == "RESOURCE_ALREADY_EXISTS"
    listing = connector.run("list_workspace_folder", conn, {"path": folder})
    assert [o["path"] for o in listing["objects"]] == [nb["path"]]
    assert connector.pick("select_workspace_path", conn, {"folder": folder}) == [{"label": f"{nb['path'].rsplit('/', 1)[-1]} (NOTEBOOK)",
                                                                                  "value": nb["path"]}]
    with pytest.raises(ConnectorError) as exc:
        connector.run("delete_workspace_object", conn, {"path": folder})
    assert exc.value.error_code == "DIRECTORY_NOT_EMPTY"
    connector.run("delete_workspace_object", conn, {"path": folder, "recursive": True})
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_workspace_object_status", conn, {"path": folder})
    assert exc.value.type == "not_found"


def test_import_needs_a_language_for_source(emulator, connector, pat):
    since = len(emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        connector.run("import_notebook", pat, {"path": "/Shared/x", "content": "1"})
    assert exc.value.type == "invalid_input" and "language" in exc.value.message.lower()
    assert len(emulator.requests) == since


def test_permissions_set_update_and_levels(emulator, connector, conn):
    cid = seed_cluster(emulator, "RUNNING")
    target = {"object_type": "clusters", "object_id": cid}
    out = connector.run("update_permissions", conn, {**target, "access_control_list": [
        {"group_name": "users", "permission_level": "CAN_ATTACH_TO"}]})
    direct = {(e.get("group_name") or e.get("user_name") or e.get("service_principal_name")): e["all_permissions"]
              for e in out["access_control_list"]}
    assert {"permission_level": "CAN_ATTACH_TO", "inherited": False} in direct["users"]
    out = connector.run("set_permissions", conn, {**target, "access_control_list": [
        {"user_name": PAT_USER, "permission_level": "CAN_RESTART"}]})
    names = {e.get("group_name") or e.get("user_name") for e in out["access_control_list"]
             if any(not p["inherited"] for p in e["all_permissions"])}
    assert "users" not in names and PAT_USER in names          # replaced, not added to
    assert connector.run("get_permissions", conn, target)["object_id"] == f"/clusters/{cid}"
    levels = connector.run("get_permission_levels", conn, target)["permission_levels"]
    assert [lv["permission_level"] for lv in levels] == ["CAN_ATTACH_TO", "CAN_RESTART", "CAN_MANAGE"]
    with pytest.raises(ConnectorError) as exc:
        connector.run("update_permissions", conn, {**target, "access_control_list": [
            {"user_name": "nobody@example.com", "permission_level": "CAN_RESTART"}]})
    assert exc.value.type == "invalid_input" or exc.value.status == 400
    with pytest.raises(ConnectorError) as exc:
        connector.run("update_permissions", conn, {**target, "access_control_list": [
            {"user_name": PAT_USER, "group_name": "users", "permission_level": "CAN_RESTART"}]})
    assert exc.value.type == "invalid_input" and [p["key"] for p in exc.value.details["inputs"]] == ["access_control_list"]


def test_scim_filters_pages_and_membership(emulator, connector, conn):
    names = [emulator.state.add_user(f"scim-{i:03d}@example.com").user_name for i in range(205)]
    since = len(emulator.requests)
    users = connector.run("list_users", conn, {"filter": 'userName sw "scim-"'})
    assert [u["userName"] for u in users["users"]] == names and users["count"] == 205
    starts = [r["query"].get("startIndex") for r in emulator.requests[since:] if r["path"].endswith("/Users")]
    assert starts == [["1"], ["101"], ["201"]]
    assert connector.run("list_users", conn, {"filter": 'userName sw "scim-"', "max_items": 3})["truncated"]
    me = connector.run("get_user", conn, {"id": users["users"][7]["id"]})
    assert me["userName"] == names[7]
    sps = connector.run("list_service_principals", conn, {})["service_principals"]
    if conn["type"] == "service_principal":
        assert user_name(conn) in [sp["applicationId"] for sp in sps]
    with pytest.raises(ConnectorError) as exc:
        connector.run("list_users", conn, {"filter": "userName equals x"})
    assert exc.value.status == 400
    admins = connector.run("list_groups", conn, {"filter": 'displayName eq "users"'})["groups"][0]
    member = users["users"][0]["id"]
    out = connector.run("remove_group_member", conn, {"group_id": admins["id"], "member_id": member})
    assert member not in [m["value"] for m in out["members"]]
    out = connector.run("add_group_member", conn, {"group_id": admins["id"], "member_id": member})
    assert member in [m["value"] for m in out["members"]]
    assert connector.run("get_group", conn, {"group_id": admins["id"]})["displayName"] == "users"
    assert {"label": "users", "value": admins["id"]} in connector.pick("select_group", conn, {})
