"""Permissions API (contract §1.1, §5.3): ``GET | PUT | PATCH /api/2.0/permissions/{type}/{id}`` and
``GET /api/2.0/permissions/{type}/{id}/permissionLevels``, with the SDK's shapes::

    {"object_id": "/clusters/0123-...", "object_type": "cluster",
     "access_control_list": [
        {"user_name": "a@example.com", "display_name": "A User",
         "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": false}]},
        {"group_name": "admins",
         "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": true,
                              "inherited_from_object": ["/clusters/"]}]}]}

Object types are rows of :data:`OBJECT_TYPES` (``register`` adds one: later areas add pipelines,
serving endpoints, experiments): the URL segment, the ``object_type`` Databricks reports, the
permission levels with their descriptions, the level the creator gets, and how to find an object
(its creator, and the folders it inherits from). Direct permissions are stored per object; the
creator's level and the ``admins`` group's CAN_MANAGE are implied, like in a workspace.

* PUT replaces the direct permissions (an object that has an owner keeps it when none is given;
  there is at most one IS_OWNER, a user or a service principal); PATCH adds to them (a principal's
  level is replaced). Both answer the resulting permissions.
* Principals must exist: users and service principals of the workspace, groups ``admins``,
  ``users`` and those its principals are in ("Principal: UserName(x) does not exist").
* Changing permissions needs CAN_MANAGE (or IS_OWNER, or being an admin): 403 PERMISSION_DENIED.
* An unknown object: 404 RESOURCE_DOES_NOT_EXIST; an unknown type: 404 (no such endpoint).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from .api import ApiError, invalid_parameter, route

PRINCIPAL_KEYS = ("user_name", "group_name", "service_principal_name")


@dataclass
class Target:
    """An object whose permissions are asked for."""
    object_id: str                  # "/clusters/<id>"
    creator: Optional[str] = None   # user name / application id that created it
    parents: List[tuple] = field(default_factory=list)   # [(type segment, id)] it inherits from, nearest first


@dataclass
class ObjectType:
    segment: str                    # the URL segment: /api/2.0/permissions/<segment>/<id>
    object_type: str                # what the answer calls it
    levels: Dict[str, str]          # level -> description, lowest first
    creator_level: Optional[str]    # what the creator gets (IS_OWNER: the owner)
    root: str                       # inherited_from_object of the admins' CAN_MANAGE
    find: Callable[..., Optional[Target]]   # find(state, id) -> Target or None
    missing: Callable[[str], str]   # the not-found message

    @property
    def has_owner(self) -> bool:
        return "IS_OWNER" in self.levels


OBJECT_TYPES: Dict[str, ObjectType] = {}


def register(kind: ObjectType) -> ObjectType:
    OBJECT_TYPES[kind.segment] = kind
    return kind


# --------------------------------------------------------------------------- the object types

def _cluster(state, oid: str) -> Optional[Target]:
    from .clusters import lookup
    c = lookup(state, oid)
    if c is None:
        return None
    return Target(f"/clusters/{oid}", c.details.get("creator_user_name"))


def _job(state, oid: str) -> Optional[Target]:
    from .jobs import store_of
    try:
        job = store_of(state).jobs.get(int(oid))
    except ValueError:
        return None
    if job is None:
        return None
    return Target(f"/jobs/{oid}", job.get("creator_user_name"))


def _warehouse(state, oid: str) -> Optional[Target]:
    try:
        from .warehouses import warehouses
        wh = warehouses(state).get(oid)
    except Exception:  # noqa: BLE001 - the SQL area is optional here
        return None
    if wh is None or wh.get("state") == "DELETED":
        return None
    return Target(f"/sql/warehouses/{oid}", wh.get("creator_name"))


def _workspace_object(kind: str):
    def find(state, oid: str) -> Optional[Target]:
        from .workspace import by_id
        node = by_id(state, oid)
        want = "DIRECTORY" if kind == "directories" else "NOTEBOOK" if kind == "notebooks" else "FILE"
        if node is None or node.object_type != want:
            return None
        parents = []
        p = node.parent
        while p is not None:
            parents.append(("directories", str(p.object_id)))
            p = p.parent
        return Target(f"/{kind}/{oid}", node.creator, parents)
    return find


_WS_LEVELS = {"CAN_READ": "Can read the object", "CAN_RUN": "Can run the object",
              "CAN_EDIT": "Can edit the object", "CAN_MANAGE": "Can manage the object"}

register(ObjectType("clusters", "cluster",
                    {"CAN_ATTACH_TO": "Can attach to the cluster", "CAN_RESTART": "Can restart the cluster",
                     "CAN_MANAGE": "Can manage the cluster"},
                    "CAN_MANAGE", "/clusters/", _cluster, lambda i: f"Cluster {i} does not exist."))
register(ObjectType("jobs", "job",
                    {"CAN_VIEW": "Can view the job", "CAN_MANAGE_RUN": "Can manage runs of the job",
                     "IS_OWNER": "Is the owner of the job", "CAN_MANAGE": "Can manage the job"},
                    "IS_OWNER", "/jobs/", _job, lambda i: f"Job {i} does not exist."))
register(ObjectType("warehouses", "warehouses",
                    {"CAN_VIEW": "Can view the warehouse", "CAN_MONITOR": "Can monitor the warehouse",
                     "CAN_USE": "Can use the warehouse", "IS_OWNER": "Is the owner of the warehouse",
                     "CAN_MANAGE": "Can manage the warehouse"},
                    "IS_OWNER", "/sql/warehouses/", _warehouse, lambda i: f"Warehouse {i} does not exist."))
register(ObjectType("notebooks", "notebook", dict(_WS_LEVELS), "CAN_MANAGE", "/directories/",
                    _workspace_object("notebooks"), lambda i: f"Notebook {i} does not exist."))
register(ObjectType("directories", "directory", dict(_WS_LEVELS), "CAN_MANAGE", "/directories/",
                    _workspace_object("directories"), lambda i: f"Directory {i} does not exist."))
register(ObjectType("files", "file", dict(_WS_LEVELS), "CAN_MANAGE", "/directories/",
                    _workspace_object("files"), lambda i: f"File {i} does not exist."))


# --------------------------------------------------------------------------- storage and views

def _store(state) -> dict:
    """(segment, id) -> {"acl": {(principal key, name): level}, "owner": name or None}"""
    return state.area("permissions")


def _record(state, kind: ObjectType, oid: str, target: Target) -> dict:
    rec = _store(state).get((kind.segment, oid))
    if rec is None:
        owner = target.creator if kind.has_owner else None
        rec = {"acl": {}, "owner": owner, "owner_key": "user_name"}
        if owner and owner in state.service_principals:
            rec["owner_key"] = "service_principal_name"
        _store(state)[(kind.segment, oid)] = rec
    return rec


def _principal_key(state, name: str) -> str:
    return "service_principal_name" if name in state.service_principals else "user_name"


def _display(state, key: str, name: str) -> Optional[str]:
    if key == "user_name":
        p = state.users.get(name)
        return p.display_name if p else None
    if key == "service_principal_name":
        sp = state.service_principals.get(name)
        return sp["principal"].display_name if sp else None
    return None


def _groups(state) -> set:
    out = {"admins", "users"}
    for p in state.users.values():
        out.update(p.groups or [])
    for sp in state.service_principals.values():
        out.update(sp["principal"].groups or [])
    return out


def _direct(state, kind: ObjectType, oid: str, target: Target) -> Dict[tuple, List[str]]:
    """(key, name) -> the levels granted directly on the object (creator and owner included)."""
    rec = _record(state, kind, oid, target)
    out: Dict[tuple, List[str]] = {}
    if kind.has_owner:
        if rec["owner"]:
            out.setdefault((rec["owner_key"], rec["owner"]), []).append("IS_OWNER")
    elif target.creator and kind.creator_level:
        out.setdefault((_principal_key(state, target.creator), target.creator), []).append(kind.creator_level)
    for k, level in rec["acl"].items():
        if level not in out.setdefault(k, []):
            out[k].append(level)
    return out


def view(state, kind: ObjectType, oid: str, target: Target) -> dict:
    entries: Dict[tuple, List[dict]] = {}
    for k, levels in _direct(state, kind, oid, target).items():
        for level in levels:
            entries.setdefault(k, []).append({"permission_level": level, "inherited": False})
    # what the object inherits from its folders (workspace objects), nearest first
    for seg, pid in target.parents:
        parent_kind = OBJECT_TYPES.get(seg)
        if parent_kind is None or pid == "0":
            continue
        parent = parent_kind.find(state, pid)
        if parent is None:
            continue
        for k, levels in _direct(state, parent_kind, pid, parent).items():
            for level in levels:
                entries.setdefault(k, []).append({"permission_level": level, "inherited": True,
                                                  "inherited_from_object": [f"/{seg}/{pid}"]})
    entries.setdefault(("group_name", "admins"), []).append(
        {"permission_level": "CAN_MANAGE", "inherited": True, "inherited_from_object": [kind.root]})
    acl = []
    for (key, name), perms in entries.items():
        item = {key: name}
        display = _display(state, key, name)
        if display:
            item["display_name"] = display
        item["all_permissions"] = perms
        acl.append(item)
    return {"object_id": target.object_id, "object_type": kind.object_type, "access_control_list": acl}


def _rank(kind: ObjectType, level: str) -> int:
    order = list(kind.levels)
    if level == "IS_OWNER":
        return len(order) + 1
    return order.index(level) if level in order else -1


def can_manage(state, kind: ObjectType, oid: str, target: Target, principal) -> bool:
    if principal is None or "admins" in (principal.groups or []):
        return True
    name = principal.user_name
    key = "service_principal_name" if principal.kind == "service_principal" else "user_name"
    held = view(state, kind, oid, target)["access_control_list"]
    manage = _rank(kind, "CAN_MANAGE")
    for entry in held:
        mine = entry.get(key) == name or (entry.get("group_name") in (principal.groups or []))
        if mine and any(_rank(kind, p["permission_level"]) >= manage for p in entry["all_permissions"]):
            return True
    return False


# --------------------------------------------------------------------------- requests

def _kind_and_target(req):
    seg, oid = req.params["type"], req.params["id"]
    kind = OBJECT_TYPES.get(seg)
    if kind is None:
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{req.method} {req.path}'")
    target = kind.find(req.state, oid)
    if target is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", kind.missing(oid))
    return kind, oid, target


def _parse_acl(req, kind: ObjectType) -> List[tuple]:
    """[(key, name, level)] of the request, or 400 naming every bad entry."""
    body = req.body
    acl = body.get("access_control_list", [])
    if not isinstance(acl, list):
        raise invalid_parameter("access_control_list must be an array.")
    st = req.state
    groups = _groups(st)
    problems, out = [], []
    for i, entry in enumerate(acl):
        if not isinstance(entry, dict):
            problems.append(f"access_control_list[{i}] must be an object")
            continue
        keys = [k for k in PRINCIPAL_KEYS if entry.get(k)]
        if len(keys) != 1:
            problems.append(f"access_control_list[{i}] needs exactly one of user_name, group_name, "
                            "service_principal_name")
            continue
        key = keys[0]
        name = entry[key]
        level = entry.get("permission_level")
        if level not in kind.levels:
            problems.append(f"Permission level {level} is not supported for {kind.object_type}; one of "
                            f"{', '.join(kind.levels)}")
            continue
        if key == "user_name" and name not in st.users:
            problems.append(f"Principal: UserName({name}) does not exist")
            continue
        if key == "service_principal_name" and name not in st.service_principals:
            problems.append(f"Principal: ServicePrincipalName({name}) does not exist")
            continue
        if key == "group_name" and name not in groups:
            problems.append(f"Principal: GroupName({name}) does not exist")
            continue
        if level == "IS_OWNER" and key == "group_name":
            problems.append(f"A group cannot be the owner of a {kind.object_type}: {name}")
            continue
        out.append((key, name, level))
    owners = [x for x in out if x[2] == "IS_OWNER"]
    if len(owners) > 1:
        problems.append(f"A {kind.object_type} has exactly one owner; {len(owners)} were given")
    if problems:
        raise invalid_parameter("; ".join(problems))
    return out


def _apply(state, kind: ObjectType, oid: str, target: Target, entries: List[tuple], replace: bool) -> None:
    rec = _record(state, kind, oid, target)
    acl = {} if replace else dict(rec["acl"])
    for key, name, level in entries:
        if level == "IS_OWNER":
            rec["owner"], rec["owner_key"] = name, key
            acl.pop((key, name), None)
        else:
            acl[(key, name)] = level
    rec["acl"] = acl


def set_initial(state, segment: str, oid: str, acl: list) -> None:
    """Apply a create request's ``access_control_list`` (jobs/create). Entries were checked."""
    kind = OBJECT_TYPES[segment]
    target = kind.find(state, oid)
    if target is None:
        return
    entries = []
    for e in acl or []:
        key = next((k for k in PRINCIPAL_KEYS if isinstance(e, dict) and e.get(k)), None)
        if key and e.get("permission_level") in kind.levels:
            entries.append((key, e[key], e["permission_level"]))
    _apply(state, kind, oid, target, entries, replace=False)


P = r"/api/2\.0/permissions/(?P<type>[a-z\-]+)/(?P<id>[^/]+)"


@route("GET", P)
def get_permissions(req):
    with req.state.lock:
        kind, oid, target = _kind_and_target(req)
        return view(req.state, kind, oid, target)


@route("GET", P + r"/permissionLevels")
def get_permission_levels(req):
    with req.state.lock:
        kind, oid, target = _kind_and_target(req)
        return {"permission_levels": [{"permission_level": k, "description": v} for k, v in kind.levels.items()]}


def _change(req, replace: bool):
    st = req.state
    with st.lock:
        kind, oid, target = _kind_and_target(req)
        entries = _parse_acl(req, kind)
        if not can_manage(st, kind, oid, target, req.principal):
            raise ApiError(403, "PERMISSION_DENIED", f"{req.principal.user_name} does not have Manage permissions "
                                                     f"on {target.object_id}.")
        rec = _record(st, kind, oid, target)
        before = (dict(rec["acl"]), rec["owner"], rec["owner_key"])
        _apply(st, kind, oid, target, entries, replace)
        if (rec["acl"], rec["owner"], rec["owner_key"]) != before:     # the same list again changes nothing
            st.applied["permissions/set" if replace else "permissions/update"] += 1
        return view(st, kind, oid, target)


@route("PUT", P)
def set_permissions(req):
    return _change(req, True)


@route("PATCH", P)
def update_permissions(req):
    return _change(req, False)
