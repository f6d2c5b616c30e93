"""Scenarios of the permissions area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

from . import PAT_USER, scenario, seed_cluster


def _cluster(emulator):
    return {"object_type": "clusters", "object_id": seed_cluster(emulator, "RUNNING")}


def _missing(emulator, connector, conn):
    return {"object_type": "clusters", "object_id": "0000-000000-missing0"}


def _has(out, principal_key, name, level):
    return any(e.get(principal_key) == name and any(p["permission_level"] == level for p in e["all_permissions"])
               for e in out.get("access_control_list", []))


@scenario("get_permissions", failing=_missing, check=lambda out, inputs, conn: out.get("object_id") ==
          f"/clusters/{inputs['object_id']}")
def _get_permissions(emulator, connector, conn):
    return _cluster(emulator)


@scenario("set_permissions", changes_state=True, applied=("permissions/set",), retry_safe="natural", failing=_missing,
          check=lambda out, inputs, conn: _has(out, "group_name", "users", "CAN_RESTART"))
def _set_permissions(emulator, connector, conn):
    return {**_cluster(emulator), "access_control_list": [{"group_name": "users", "permission_level": "CAN_RESTART"}]}


@scenario("update_permissions", changes_state=True, applied=("permissions/update",), retry_safe="natural",
          failing=lambda e, c, k: {**_missing(e, c, k), "access_control_list": [{"group_name": "users",
                                                                               "permission_level": "CAN_RESTART"}]}, check=lambda out, inputs, conn: _has(out, "user_name", PAT_USER, "CAN_ATTACH_TO"))
def _update_permissions(emulator, connector, conn):
    return {**_cluster(emulator), "access_control_list": [{"user_name": PAT_USER, "permission_level": "CAN_ATTACH_TO"}]}


@scenario("get_permission_levels", failing=_missing,
          check=lambda out, inputs, conn: [lv["permission_level"] for lv in out["permission_levels"]]
          == ["CAN_ATTACH_TO", "CAN_RESTART", "CAN_MANAGE"])
def _get_permission_levels(emulator, connector, conn):
    return _cluster(emulator)
