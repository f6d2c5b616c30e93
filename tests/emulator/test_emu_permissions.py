"""The emulator's Permissions API and clusters/change-owner over HTTP, with the SDK's shapes."""
import base64

import pytest

P = "/api/2.0/permissions"
C = "/api/2.1/clusters"
USER = "emulator-user@example.com"


def acl_by_principal(doc):
    out = {}
    for entry in doc["access_control_list"]:
        key = entry.get("user_name") or entry.get("group_name") or entry.get("service_principal_name")
        out[key] = entry
    return out


def levels(entry, inherited=None):
    return sorted(p["permission_level"] for p in entry["all_permissions"]
                  if inherited is None or p["inherited"] == inherited)


def error(r, status, code):
    assert r.status_code == status, r.text
    assert r.json()["error_code"] == code, r.text
    return r.json()["message"]


def test_cluster_permissions_get_set_update(emu, api):
    cid = api.post(C + "/create", {"cluster_name": "p", "spark_version": "13.3.x-scala2.12",
                                   "node_type_id": "i3.xlarge", "num_workers": 1}).json()["cluster_id"]
    doc = api.get(f"{P}/clusters/{cid}").json()
    assert doc["object_id"] == f"/clusters/{cid}" and doc["object_type"] == "cluster"
    acl = acl_by_principal(doc)
    assert acl[USER]["all_permissions"] == [{"permission_level": "CAN_MANAGE", "inherited": False}]
    assert acl[USER]["display_name"]
    assert acl["admins"]["all_permissions"] == [{"permission_level": "CAN_MANAGE", "inherited": True,
                                                 "inherited_from_object": ["/clusters/"]}]
    lv = api.get(f"{P}/clusters/{cid}/permissionLevels").json()["permission_levels"]
    assert [x["permission_level"] for x in lv] == ["CAN_ATTACH_TO", "CAN_RESTART", "CAN_MANAGE"]
    assert all(x["description"] for x in lv)

    # PATCH adds, and answers the result
    r = api.send("PATCH", f"{P}/clusters/{cid}", {"access_control_list": [
        {"group_name": "users", "permission_level": "CAN_ATTACH_TO"},
        {"service_principal_name": emu.client_id, "permission_level": "CAN_RESTART"}]})
    assert r.status_code == 200, r.text
    acl = acl_by_principal(r.json())
    assert levels(acl["users"]) == ["CAN_ATTACH_TO"] and levels(acl[emu.client_id]) == ["CAN_RESTART"]
    assert r.json() == api.get(f"{P}/clusters/{cid}").json()
    # PUT replaces the direct permissions (the creator's stay implied)
    r = api.send("PUT", f"{P}/clusters/{cid}", {"access_control_list": [
        {"group_name": "users", "permission_level": "CAN_RESTART"}]})
    acl = acl_by_principal(r.json())
    assert levels(acl["users"]) == ["CAN_RESTART"] and emu.client_id not in acl
    assert emu.state.applied["permissions/update"] == 1 and emu.state.applied["permissions/set"] == 1


def test_bad_requests_name_every_problem_and_change_nothing(emu, api):
    cid = emu.state.add_cluster()
    before = api.get(f"{P}/clusters/{cid}").json()
    r = api.send("PATCH", f"{P}/clusters/{cid}", {"access_control_list": [
        {"user_name": "nobody@example.com", "permission_level": "CAN_MANAGE"},
        {"group_name": "nogroup", "permission_level": "CAN_MANAGE"},
        {"group_name": "users", "permission_level": "CAN_VIEW"},
        {"user_name": USER, "group_name": "users", "permission_level": "CAN_MANAGE"}]})
    msg = error(r, 400, "INVALID_PARAMETER_VALUE")
    assert "Principal: UserName(nobody@example.com) does not exist" in msg
    assert "Principal: GroupName(nogroup) does not exist" in msg
    assert "Permission level CAN_VIEW is not supported for cluster" in msg
    assert "exactly one of user_name, group_name, service_principal_name" in msg
    assert api.get(f"{P}/clusters/{cid}").json() == before
    assert error(api.get(f"{P}/clusters/0000-000000-missing0"), 404,
                 "RESOURCE_DOES_NOT_EXIST") == "Cluster 0000-000000-missing0 does not exist."
    assert error(api.get(f"{P}/clusters/0000-000000-missing0/permissionLevels"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert error(api.get(f"{P}/bananas/1"), 404, "ENDPOINT_NOT_FOUND")


def test_job_owner_and_create_acl(emu, api):
    jid = api.post("/api/2.2/jobs/create", {"name": "owned", "access_control_list": [
        {"group_name": "users", "permission_level": "CAN_VIEW"}]}).json()["job_id"]
    doc = api.get(f"{P}/jobs/{jid}").json()
    assert doc["object_id"] == f"/jobs/{jid}" and doc["object_type"] == "job"
    acl = acl_by_principal(doc)
    assert levels(acl[USER]) == ["IS_OWNER"] and levels(acl["users"]) == ["CAN_VIEW"]
    assert acl["admins"]["all_permissions"][0]["inherited_from_object"] == ["/jobs/"]
    lv = [x["permission_level"] for x in api.get(f"{P}/jobs/{jid}/permissionLevels").json()["permission_levels"]]
    assert lv == ["CAN_VIEW", "CAN_MANAGE_RUN", "IS_OWNER", "CAN_MANAGE"]
    # a PUT without an owner keeps the owner; ownership moves to a user or service principal only
    acl = acl_by_principal(api.send("PUT", f"{P}/jobs/{jid}", {"access_control_list": []}).json())
    assert levels(acl[USER]) == ["IS_OWNER"] and "users" not in acl
    acl = acl_by_principal(api.send("PUT", f"{P}/jobs/{jid}", {"access_control_list": [
        {"service_principal_name": emu.client_id, "permission_level": "IS_OWNER"}]}).json())
    assert levels(acl[emu.client_id]) == ["IS_OWNER"] and USER not in acl
    msg = error(api.send("PUT", f"{P}/jobs/{jid}", {"access_control_list": [
        {"group_name": "users", "permission_level": "IS_OWNER"},
        {"user_name": USER, "permission_level": "IS_OWNER"},
        {"service_principal_name": emu.client_id, "permission_level": "IS_OWNER"}]}), 400, "INVALID_PARAMETER_VALUE")
    assert "A group cannot be the owner" in msg and "exactly one owner" in msg
    assert error(api.get(f"{P}/jobs/123"), 404, "RESOURCE_DOES_NOT_EXIST") == "Job 123 does not exist."


def test_warehouse_notebook_and_directory_permissions(emu, api):
    wid = api.get("/api/2.0/sql/warehouses").json()["warehouses"][0]["id"]
    doc = api.get(f"{P}/warehouses/{wid}").json()
    assert doc["object_id"] == f"/sql/warehouses/{wid}" and doc["object_type"] == "warehouses"
    assert "CAN_USE" in [x["permission_level"] for x in
                         api.get(f"{P}/warehouses/{wid}/permissionLevels").json()["permission_levels"]]

    assert api.post("/api/2.0/workspace/mkdirs", {"path": "/Shared/team"}).status_code == 200
    content = base64.b64encode(b"print(1)").decode()
    assert api.post("/api/2.0/workspace/import", {"path": "/Shared/team/nb", "content": content,
                                                  "language": "PYTHON"}).status_code == 200
    folder = api.get("/api/2.0/workspace/get-status", path="/Shared/team").json()["object_id"]
    nb = api.get("/api/2.0/workspace/get-status", path="/Shared/team/nb").json()["object_id"]
    r = api.send("PATCH", f"{P}/directories/{folder}", {"access_control_list": [
        {"group_name": "users", "permission_level": "CAN_RUN"}]})
    assert r.status_code == 200 and r.json()["object_type"] == "directory"
    doc = api.get(f"{P}/notebooks/{nb}").json()
    assert doc["object_id"] == f"/notebooks/{nb}" and doc["object_type"] == "notebook"
    acl = acl_by_principal(doc)
    assert acl["users"]["all_permissions"] == [{"permission_level": "CAN_RUN", "inherited": True,
                                                "inherited_from_object": [f"/directories/{folder}"]}]
    assert levels(acl[USER], inherited=False) == ["CAN_MANAGE"]
    assert error(api.get(f"{P}/notebooks/{folder}"), 404, "RESOURCE_DOES_NOT_EXIST")    # a folder is no notebook
    home = api.get("/api/2.0/workspace/get-status", path=f"/Users/{USER}").json()["object_id"]
    assert levels(acl_by_principal(api.get(f"{P}/directories/{home}").json())[USER]) == ["CAN_MANAGE"]


def test_changing_permissions_needs_manage(emu, api_for):
    cid = emu.state.add_cluster()
    token = emu.add_pat("bob@example.com")
    emu.state.users["bob@example.com"].groups = ["users"]        # not an admin
    bob = api_for(token)
    assert bob.get(f"{P}/clusters/{cid}").status_code == 200
    r = bob.send("PATCH", f"{P}/clusters/{cid}", {"access_control_list": [
        {"user_name": "bob@example.com", "permission_level": "CAN_MANAGE"}]})
    error(r, 403, "PERMISSION_DENIED")
    assert error(bob.post(C + "/change-owner", {"cluster_id": cid, "owner_username": "bob@example.com"}), 403,
                 "PERMISSION_DENIED")


def test_change_owner(emu, api):
    cid = emu.state.add_cluster(state="RUNNING")
    emu.add_pat("carol@example.com")
    r = api.post(C + "/change-owner", {"cluster_id": cid, "owner_username": "carol@example.com"})
    assert error(r, 400, "INVALID_STATE") == f"Cluster {cid} is in unexpected state Running."
    assert api.post(C + "/delete", {"cluster_id": cid}).status_code == 200
    emu.state.clock.advance(60)
    assert api.get(C + "/get", cluster_id=cid).json()["state"] == "TERMINATED"
    assert error(api.post(C + "/change-owner", {"cluster_id": cid, "owner_username": "zed@example.com"}), 400,
                 "INVALID_PARAMETER_VALUE")
    assert api.post(C + "/change-owner", {"cluster_id": cid, "owner_username": "carol@example.com"}).json() == {}
    d = api.get(C + "/get", cluster_id=cid).json()
    assert d["creator_user_name"] == "carol@example.com" and d["default_tags"]["Creator"] == "carol@example.com"
    assert levels(acl_by_principal(api.get(f"{P}/clusters/{cid}").json())["carol@example.com"]) == ["CAN_MANAGE"]
    assert error(api.post(C + "/change-owner", {"cluster_id": "0000-000000-missing0",
                                                "owner_username": "carol@example.com"}), 400, "INVALID_PARAMETER_VALUE")
    assert emu.state.applied["clusters/change-owner"] == 1


@pytest.mark.parametrize("segment", ["clusters", "jobs", "warehouses", "notebooks", "directories"])
def test_every_object_type_answers_levels(api, segment):
    r = api.get(f"{P}/{segment}/does-not-exist/permissionLevels")
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
