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


# --------------------------------------------------------------------------- SCIM: users, groups, service principals
#
#   GET   /api/2.0/preview/scim/v2/Users | Groups | ServicePrincipals   ?filter=&startIndex=&count=&attributes=
#   GET   /api/2.0/preview/scim/v2/{Users|Groups|ServicePrincipals}/{id}
#   PATCH /api/2.0/preview/scim/v2/Groups/{id}    PatchOp: add / remove members
#
# A ListResponse is {schemas, totalResults, startIndex (1-based), itemsPerPage, Resources}. Filters:
# comparisons `attr op "value"` (op eq, ne, co, sw, ew; attributes userName, displayName, id,
# externalId, applicationId, active) joined by `and` or `or`; anything else is 400 invalidFilter.
# Groups are the ones principals belong to (admins and users always): a member added or removed
# here changes what the principal is in (and so its permissions). Errors are SCIM's (ScimError).

import re as _re

from .api import ScimError as _ScimError

SCIM = r"/api/2\.0/preview/scim/v2"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
SP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"
MAX_COUNT = 10000
_COMPARE = _re.compile(r'\s*([A-Za-z.]+)\s+(eq|ne|co|sw|ew)\s+("(?:[^"\\]|\\.)*"|true|false)\s*', _re.I)


def _group_names(state) -> list:
    names = {"admins", "users"}
    for p in state.users.values():
        names.update(p.groups or [])
    for sp in state.service_principals.values():
        names.update(sp["principal"].groups or [])
    names.update(state.area("scim_groups", set))
    return sorted(names)


def _members(state, name: str) -> list:
    out = []
    for p in state.users.values():
        if name in (p.groups or []):
            out.append({"display": p.display_name, "value": p.id, "$ref": f"Users/{p.id}"})
    for sp in state.service_principals.values():
        p = sp["principal"]
        if name in (p.groups or []):
            out.append({"display": p.display_name, "value": p.id, "$ref": f"ServicePrincipals/{p.id}"})
    return out


def scim_group(state, name: str) -> dict:
    gid = _group_id(state.workspace_id, name)
    return {"id": gid, "displayName": name, "members": _members(state, name), "groups": [],
            "entitlements": [{"value": "workspace-access"}] if name == "users" else [],
            "meta": {"resourceType": "WorkspaceGroup" if name not in ("admins", "users") else "Group"},
            "schemas": [GROUP_SCHEMA]}


def scim_service_principal(state, sp: dict) -> dict:
    p = sp["principal"]
    ws = state.workspace_id
    return {"id": p.id, "applicationId": p.user_name, "displayName": p.display_name, "active": True,
            "externalId": p.id,
            "groups": [{"display": g, "type": "direct", "value": _group_id(ws, g), "$ref": f"Groups/{_group_id(ws, g)}"}
                       for g in p.groups],
            "entitlements": [{"value": e} for e in ENTITLEMENTS], "schemas": [SP_SCHEMA]}


def _parse_filter(text: str):
    """A predicate over a resource for a SCIM filter (or 400 invalidFilter)."""
    if not text or not text.strip():
        return lambda r: True
    pieces = _re.split(r"\s+(and|or)\s+", text.strip(), flags=_re.I)
    terms, joins = pieces[0::2], [j.lower() for j in pieces[1::2]]
    tests = []
    for term in terms:
        m = _COMPARE.fullmatch(term)
        if not m:
            raise _ScimError(400, f"Invalid filter '{text}'", "invalidFilter")
        attr, op, raw = m.group(1), m.group(2).lower(), m.group(3)
        value = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw.lower() == "true"
        tests.append((attr, op, value))

    def one(r, attr, op, value):
        have = r.get(attr)
        if have is None:
            have = next((v for k, v in r.items() if k.lower() == attr.lower()), None)
        if isinstance(value, bool) or isinstance(have, bool):
            ok = have == value
            return ok if op == "eq" else (not ok if op == "ne" else False)
        a, b = str(have if have is not None else "").lower(), str(value).lower()
        return {"eq": a == b, "ne": a != b, "co": b in a, "sw": a.startswith(b), "ew": a.endswith(b)}[op]

    def pred(r):
        result = one(r, *tests[0])
        for join, t in zip(joins, tests[1:]):
            result = (result and one(r, *t)) if join == "and" else (result or one(r, *t))
        return result
    return pred


def _int_param(req, name: str, default: int, minimum: int) -> int:
    v = req.q(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise _ScimError(400, f"Invalid {name}: {v}", "invalidValue") from None
    return max(n, minimum)


def _list(req, resources: list) -> dict:
    pred = _parse_filter(req.q("filter") or "")
    found = [r for r in resources if pred(r)]
    sort_by = req.q("sortBy")
    if sort_by:
        found.sort(key=lambda r: str(r.get(sort_by, "")).lower(), reverse=(req.q("sortOrder") == "descending"))
    start = _int_param(req, "startIndex", 1, 1)
    count = min(_int_param(req, "count", MAX_COUNT, 0), MAX_COUNT)
    page = found[start - 1:start - 1 + count]
    wanted = {a.strip() for a in (req.q("attributes") or "").split(",") if a.strip()}
    excluded = {a.strip() for a in (req.q("excludedAttributes") or "").split(",") if a.strip()}
    if wanted or excluded:
        page = [{k: v for k, v in r.items() if (not wanted or k in wanted or k in ("id", "schemas"))
                 and (k not in excluded or k in ("id", "schemas"))} for r in page]
    out = {"schemas": [LIST_SCHEMA], "totalResults": len(found), "startIndex": start, "itemsPerPage": len(page)}
    if page:
        out["Resources"] = page
    return out


@route("GET", SCIM + r"/Users")
def list_users(req):
    st = req.state
    with st.lock:
        users = sorted(st.users.values(), key=lambda p: p.user_name)
        resources = [scim_user(p, st.workspace_id) for p in users]
    return _list(req, resources)


@route("GET", SCIM + r"/Users/(?P<id>[^/]+)")
def get_user(req):
    st = req.state
    with st.lock:
        for p in st.users.values():
            if p.id == req.params["id"]:
                return scim_user(p, st.workspace_id)
    raise _ScimError(404, f"User {req.params['id']} not found.")


@route("GET", SCIM + r"/ServicePrincipals")
def list_service_principals(req):
    st = req.state
    with st.lock:
        sps = sorted(st.service_principals.values(), key=lambda sp: sp["principal"].user_name)
        resources = [scim_service_principal(st, sp) for sp in sps]
    return _list(req, resources)


@route("GET", SCIM + r"/ServicePrincipals/(?P<id>[^/]+)")
def get_service_principal(req):
    st = req.state
    with st.lock:
        for sp in st.service_principals.values():
            if sp["principal"].id == req.params["id"]:
                return scim_service_principal(st, sp)
    raise _ScimError(404, f"Service principal {req.params['id']} not found.")


@route("GET", SCIM + r"/Groups")
def list_groups(req):
    st = req.state
    with st.lock:
        resources = [scim_group(st, g) for g in _group_names(st)]
    return _list(req, resources)


def _group_by_id(st, gid: str) -> str:
    for name in _group_names(st):
        if _group_id(st.workspace_id, name) == gid:
            return name
    raise _ScimError(404, f"Group with id {gid} not found.")


@route("GET", SCIM + r"/Groups/(?P<id>[^/]+)")
def get_group(req):
    st = req.state
    with st.lock:
        return scim_group(st, _group_by_id(st, req.params["id"]))


def _principal_by_id(st, pid: str):
    for p in st.users.values():
        if p.id == pid:
            return p
    for sp in st.service_principals.values():
        if sp["principal"].id == pid:
            return sp["principal"]
    return None


_MEMBER_PATH = _re.compile(r'members\[value eq "?([^"\]]+)"?\]')


@route("PATCH", SCIM + r"/Groups/(?P<id>[^/]+)")
def patch_group(req):
    body = req.body
    if PATCH_SCHEMA not in (body.get("schemas") or []):
        raise _ScimError(400, f"Request must carry the schema {PATCH_SCHEMA}", "invalidSyntax")
    ops = body.get("Operations")
    if not isinstance(ops, list) or not ops:
        raise _ScimError(400, "Operations must be a non-empty array", "invalidSyntax")
    st = req.state
    with st.lock:
        name = _group_by_id(st, req.params["id"])
        plan = []
        for op in ops:
            kind = str((op or {}).get("op", "")).lower()
            path = (op or {}).get("path") or ""
            if kind not in ("add", "remove", "replace"):
                raise _ScimError(400, f"Unsupported operation {op.get('op')!r}", "invalidSyntax")
            ids = []
            m = _MEMBER_PATH.fullmatch(path)
            if m:
                ids = [m.group(1)]
            elif path == "members" or (not path and kind == "add"):
                value = op.get("value")
                if not path and isinstance(value, dict):
                    value = value.get("members")
                if isinstance(value, dict):
                    value = [value]
                if not isinstance(value, list):
                    raise _ScimError(400, "members must be an array of {value}", "invalidValue")
                ids = [str(v.get("value")) for v in value if isinstance(v, dict)]
            else:
                raise _ScimError(400, f"Unsupported path {path!r}", "invalidPath")
            for pid in ids:
                p = _principal_by_id(st, pid)
                if p is None:
                    raise _ScimError(404, f"Member {pid} not found.", "invalidValue")
                plan.append((kind, p))
        added = removed = False
        for kind, p in plan:
            groups = list(p.groups or [])
            if kind in ("add", "replace") and name not in groups:
                groups.append(name)
            elif kind == "remove" and name in groups:
                groups.remove(name)
            if groups != list(p.groups or []):
                added, removed = added or kind != "remove", removed or kind == "remove"
            p.groups = groups
        if added:                           # a member added twice (or removed twice) changes nothing
            st.applied["identity/members/add"] += 1
        if removed:
            st.applied["identity/members/delete"] += 1
            if name == "admins":                # a principal outside admins: Unity Catalog grants now decide
                from .catalog import _enforce
                _enforce(st)
    return 204, b"", {}


@route("POST", SCIM + r"/Groups")
def create_group(req):
    name = req.body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise _ScimError(400, "displayName is required", "invalidValue")
    st = req.state
    with st.lock:
        if name in _group_names(st):
            raise _ScimError(409, f"Group with name {name} already exists.", "uniqueness")
        st.area("scim_groups", set).add(name)
        for m in req.body.get("members") or []:
            p = _principal_by_id(st, str((m or {}).get("value")))
            if p is not None and name not in p.groups:
                p.groups = list(p.groups) + [name]
        st.applied["identity/create_group"] += 1
        return 201, scim_group(st, name)
