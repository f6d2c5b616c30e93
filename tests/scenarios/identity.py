"""Scenarios of the identity area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

from . import PAT_USER, scenario, user_name


# --------------------------------------------------------------------------- identity

@scenario("get_current_user", check=lambda out, inputs, conn: out.get("userName") == user_name(conn))
def _get_current_user(emulator, connector, conn):
    return {}


# --------------------------------------------------------------------------- SCIM

def _group(emulator, *, with_member: bool = False) -> dict:
    import uuid

    from ._uc import api
    member = emulator.state.add_user(f"member-{uuid.uuid4().hex[:8]}@example.com")
    body = {"displayName": f"scn-{uuid.uuid4().hex[:8]}"}
    if with_member:
        body["members"] = [{"value": member.id}]
    doc = api(emulator, "POST", "/api/2.0/preview/scim/v2/Groups", body)
    return {"group_id": doc["id"], "member_id": member.id}


def _missing_group(emulator, connector, conn):
    return {"group_id": "1", "member_id": "1"}


@scenario("list_users", check=lambda out, inputs, conn: [u["userName"] for u in out["users"]] == [PAT_USER])
def _list_users(emulator, connector, conn):
    return {"filter": f'userName eq "{PAT_USER}"'}


@scenario("get_user", failing=lambda e, c, k: {"id": "1"}, check=lambda out, inputs, conn: out.get("id") == inputs["id"])
def _get_user(emulator, connector, conn):
    return {"id": emulator.state.users[PAT_USER].id}


@scenario("list_groups", check=lambda out, inputs, conn: [g["displayName"] for g in out["groups"]] == ["admins"])
def _list_groups(emulator, connector, conn):
    return {"filter": 'displayName eq "admins"'}


@scenario("get_group", failing=lambda e, c, k: {"group_id": "1"}, check=lambda out, inputs, conn: out.get("id") == inputs["group_id"])
def _get_group(emulator, connector, conn):
    return {"group_id": _group(emulator)["group_id"]}


@scenario("add_group_member", changes_state=True, applied=("identity/members/add",), retry_safe="natural",
          failing=_missing_group,
          check=lambda out, inputs, conn: inputs["member_id"] in [m["value"] for m in out.get("members", [])])
def _add_group_member(emulator, connector, conn):
    return _group(emulator)


@scenario("remove_group_member", changes_state=True, applied=("identity/members/delete",), retry_safe="natural",
          failing=_missing_group,
          check=lambda out, inputs, conn: inputs["member_id"] not in [m["value"] for m in out.get("members", [])])
def _remove_group_member(emulator, connector, conn):
    return _group(emulator, with_member=True)


@scenario("list_service_principals", check=lambda out, inputs, conn: out["count"] == len(out["service_principals"]) >= 1)
def _list_service_principals(emulator, connector, conn):
    return {}
