"""Identity: the current user or service principal (SCIM Me)."""


def get_current_user(session, inputs):
    return session.get("/api/2.0/preview/scim/v2/Me")


# --------------------------------------------------------------------------- SCIM lists, groups, members

SCIM = "/api/2.0/preview/scim/v2"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_PAGE = 100


def _scim_list(session, resource: str, key: str, inputs: dict):
    """Every page of a SCIM list: 1-based startIndex, until totalResults (or an empty page)."""
    base = {"count": SCIM_PAGE}
    if inputs.get("filter"):
        base["filter"] = inputs["filter"]
    if inputs.get("attributes"):               # with the attributes every output names (its schema requires them)
        required = {"Users": "userName", "Groups": "displayName"}.get(resource)
        base["attributes"] = inputs["attributes"] + (f",{required}" if required else "")

    def page(start):
        return session.get(f"{SCIM}/{resource}", {**base, "startIndex": start or 1})

    def next_start(doc):
        got = doc.get("Resources") or []
        start = doc.get("startIndex") if isinstance(doc.get("startIndex"), int) else 1
        total = doc.get("totalResults")
        if not got or not isinstance(total, int) or start - 1 + len(got) >= total:
            return None
        return start + len(got)

    items, truncated = session.pages(page, items="Resources", next_token=next_start,
                                     max_items=inputs.get("max_items"), require=("id",), what=resource)
    return {key: items, "count": len(items), "truncated": truncated}


def list_users(session, inputs):
    return _scim_list(session, "Users", "users", inputs)


def list_groups(session, inputs):
    return _scim_list(session, "Groups", "groups", inputs)


def list_service_principals(session, inputs):
    return _scim_list(session, "ServicePrincipals", "service_principals", inputs)


def get_user(session, inputs):
    return session.get(f"{SCIM}/Users/{inputs['id']}", require=("id",))


def get_group(session, inputs):
    return session.get(f"{SCIM}/Groups/{inputs['group_id']}", require=("id",))


def _patch_members(session, inputs, op: str):
    body = {"schemas": [PATCH_OP], "Operations": [{"op": op, "path": "members", "value": [{"value": inputs["member_id"]}]}]
            if op == "add" else [{"op": "remove", "path": f'members[value eq "{inputs["member_id"]}"]'}]}
    session.request("PATCH", f"{SCIM}/Groups/{inputs['group_id']}", json=body, idempotent=True)
    return get_group(session, inputs)


def add_group_member(session, inputs):
    return _patch_members(session, inputs, "add")


def remove_group_member(session, inputs):
    return _patch_members(session, inputs, "remove")


def select_group(session, inputs):
    out = _scim_list(session, "Groups", "groups", {"attributes": "id,displayName"})
    return [{"label": g.get("displayName") or g["id"], "value": g["id"]} for g in out["groups"]]
