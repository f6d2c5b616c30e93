"""Permissions API (2.0): the access control lists of clusters, jobs, warehouses, notebooks, ..."""
from __future__ import annotations

from urllib.parse import quote

API = "/api/2.0/permissions"
PRINCIPALS = ("user_name", "group_name", "service_principal_name")


def _path(inputs, suffix: str = "") -> str:
    return f"{API}/{inputs['object_type']}/{quote(str(inputs['object_id']), safe='')}{suffix}"


def check_acl(inputs) -> list:
    """Each entry names exactly one principal, and no principal twice."""
    problems, seen = [], set()
    for i, entry in enumerate(inputs.get("access_control_list") or []):
        if not isinstance(entry, dict):
            continue
        keys = [k for k in PRINCIPALS if entry.get(k)]
        if len(keys) != 1:
            problems.append({"key": "access_control_list", "label": "Access Control List",
                             "reason": f"entry {i + 1} must name exactly one of user_name, group_name, service_principal_name"})
            continue
        who = (keys[0], entry[keys[0]])
        if who in seen:
            problems.append({"key": "access_control_list", "label": "Access Control List",
                             "reason": f"entry {i + 1} names {who[1]!r} again; give one level per principal"})
        seen.add(who)
    return problems


def get_permissions(session, inputs):
    return session.get(_path(inputs), require=("object_id",))


def set_permissions(session, inputs):
    body = {"access_control_list": inputs.get("access_control_list") or []}
    return session.request("PUT", _path(inputs), json=body, idempotent=True, require=("object_id",))


def update_permissions(session, inputs):
    body = {"access_control_list": inputs["access_control_list"]}
    return session.request("PATCH", _path(inputs), json=body, idempotent=True, require=("object_id",))


def get_permission_levels(session, inputs):
    doc = session.get(_path(inputs, "/permissionLevels"))
    levels = [lv for lv in doc.get("permission_levels") or [] if isinstance(lv, dict) and lv.get("permission_level")]
    return {"object_type": inputs["object_type"], "permission_levels": levels}
