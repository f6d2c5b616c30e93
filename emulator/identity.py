"""Current user — GET /api/2.0/preview/scim/v2/Me (contract §4)."""

from __future__ import annotations

import zlib

from .api import route

USER_SCHEMAS = ["urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:workspace:2.0:User"]
ENTITLEMENTS = ["allow-cluster-create", "workspace-access", "databricks-sql-access",
                "allow-instance-pool-create"]


def _group_id(workspace_id: str, group: str) -> str:
    return str(10 ** 14 + zlib.crc32(f"{workspace_id}/{group}".encode()))


def scim_user(principal, workspace_id: str) -> dict:
    p = principal
    user = {
        "id": p.id,
        "userName": p.user_name,
        "displayName": p.display_name,
        "active": True,
        "externalId": p.id,
        "groups": [{"display": g, "type": "direct", "value": _group_id(workspace_id, g),
                    "$ref": f"Groups/{_group_id(workspace_id, g)}"} for g in p.groups],
        "entitlements": [{"value": e} for e in ENTITLEMENTS],
        "roles": [],
        "schemas": list(USER_SCHEMAS),
    }
    if p.kind == "user":
        user["name"] = {"givenName": p.given_name, "familyName": p.family_name}
        user["emails"] = [{"value": p.user_name, "type": "work", "primary": True, "display": p.user_name}]
    else:
        user["name"] = {"givenName": p.display_name}
        user["emails"] = []
    return user


@route("GET", r"/api/2\.0/preview/scim/v2/Me")
def me(req):
    user = scim_user(req.principal, req.state.workspace_id)
    excluded = {a.strip() for a in (req.q("excludedAttributes") or "").split(",") if a.strip()}
    wanted = {a.strip() for a in (req.q("attributes") or "").split(",") if a.strip()}
    if wanted:
        user = {k: v for k, v in user.items() if k in wanted or k in ("id", "schemas")}
    for k in excluded:
        if k not in ("id", "schemas"):
            user.pop(k, None)
    return 200, user, {"X-Databricks-Org-Id": req.state.workspace_id}
