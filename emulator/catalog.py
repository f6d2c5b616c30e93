"""Unity Catalog (contract areas §2.4): catalogs, schemas, tables, volumes and grants, over the SQL
engine's own catalog (``sqlengine`` docstring), so a table created with SQL appears here with its
columns and a table deleted here is gone for SQL::

    GET|POST          /api/2.1/unity-catalog/catalogs              list (max_results, page_token) / create
    GET|DELETE        /api/2.1/unity-catalog/catalogs/{name}       (force on delete)
    GET|POST          /api/2.1/unity-catalog/schemas?catalog_name= list / create
    GET|DELETE        /api/2.1/unity-catalog/schemas/{full_name}   (force on delete)
    GET               /api/2.1/unity-catalog/tables?catalog_name=&schema_name=
    GET|DELETE        /api/2.1/unity-catalog/tables/{full_name}
    GET               /api/2.1/unity-catalog/tables/{full_name}/exists   {table_exists}
    GET|POST          /api/2.1/unity-catalog/volumes?catalog_name=&schema_name= / create
    GET|DELETE        /api/2.1/unity-catalog/volumes/{full_name}
    GET|PATCH         /api/2.1/unity-catalog/permissions/{securable_type}/{full_name}
    GET               /api/2.1/unity-catalog/effective-permissions/{securable_type}/{full_name}

Lists page with ``max_results``/``page_token`` over a snapshot (linear in the list). Without
``max_results`` every item comes in one page, as Databricks does for catalogs and schemas. With it,
the page after the first is empty but carries a token (the quirk of the contract file: a page may
be empty and still not be the last), so a client that stops on an empty page loses items.

A volume is backed by a real folder in a temporary directory (:func:`volume_dir`), which the Files
API (``files.py``) reads and writes. Grants are stored per securable; PATCH applies ``add`` and
``remove`` per principal and answers the resulting assignments. Once any grant exists the SQL
engine's permission hook (``authorize``) enforces them for principals outside ``admins``: SELECT on
a table needs SELECT (on it, its schema or its catalog, or ALL_PRIVILEGES) and USE_SCHEMA and
USE_CATALOG on its parents.

Errors are Unity Catalog's: 404 CATALOG_DOES_NOT_EXIST / SCHEMA_DOES_NOT_EXIST / TABLE_DOES_NOT_EXIST
/ RESOURCE_DOES_NOT_EXIST (volumes), 409 CATALOG_ALREADY_EXISTS / SCHEMA_ALREADY_EXISTS /
RESOURCE_ALREADY_EXISTS, 400 INVALID_PARAMETER_VALUE (a bad name, an unknown privilege or
principal), 400 CATALOG_NOT_EMPTY / SCHEMA_NOT_EMPTY without ``force``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from urllib.parse import unquote

from .api import ApiError, Snapshots, invalid_parameter, route

API = r"/api/2\.1/unity-catalog"
PRIVILEGES = ("ALL_PRIVILEGES", "USE_CATALOG", "USE_SCHEMA", "SELECT", "MODIFY", "CREATE_SCHEMA", "CREATE_TABLE",
              "CREATE_VOLUME", "CREATE_FUNCTION", "READ_VOLUME", "WRITE_VOLUME", "EXECUTE", "BROWSE", "MANAGE",
              "APPLY_TAG", "REFRESH", "CREATE_CATALOG", "CREATE_MODEL")
SECURABLES = ("catalog", "schema", "table", "volume", "function", "metastore")
MAX_PAGE = 1000


def _engine(req):
    from .sqlengine import engine_for
    eng = engine_for(req.state)
    _enforce(req.state)
    return eng


def _snapshots(state) -> Snapshots:
    return state.area("uc_snapshots", Snapshots)


def _sql_error(exc) -> ApiError:
    cls = getattr(exc, "error_class", "")
    text = str(getattr(exc, "message", exc))
    if cls == "NO_SUCH_CATALOG_EXCEPTION":
        return ApiError(404, "CATALOG_DOES_NOT_EXIST", text)
    if cls == "SCHEMA_NOT_FOUND":
        return ApiError(404, "SCHEMA_DOES_NOT_EXIST", text)
    if cls == "TABLE_OR_VIEW_NOT_FOUND":
        return ApiError(404, "TABLE_DOES_NOT_EXIST", text)
    if cls.endswith("ALREADY_EXISTS"):
        return ApiError(409, "CATALOG_ALREADY_EXISTS" if "CATALOG" in cls else "SCHEMA_ALREADY_EXISTS"
                        if "SCHEMA" in cls else "TABLE_ALREADY_EXISTS", text)
    if cls == "SCHEMA_NOT_EMPTY":
        return ApiError(400, "SCHEMA_NOT_EMPTY", text)
    return invalid_parameter(text)


def _page(req, key: str, build):
    """One page of a listing: every item without max_results, else pages over a snapshot, with an
    empty page (carrying the real token) between the first page and the second."""
    size = req.q_int("max_results")
    token = req.q("page_token") or None
    if size is not None and size < 0:
        raise invalid_parameter("max_results must be greater than or equal to 0")
    if not size and not token:
        return {key: build()}
    size = min(size or MAX_PAGE, MAX_PAGE)
    if token and token.startswith("e."):
        return {"next_page_token": token[2:]}       # an empty page that is not the last
    items, nxt, _ = _snapshots(req.state).page(token, build, size, key)
    out = {key: items} if items else {}
    if nxt:
        out["next_page_token"] = nxt if token else "e." + nxt
    return out


# --------------------------------------------------------------------------- catalogs

def _catalog(info: dict, state) -> dict:
    out = {"name": info["name"], "owner": info.get("owner"), "catalog_type": "MANAGED_CATALOG",
           "created_at": info.get("created_at"), "created_by": info.get("created_by"),
           "updated_at": info.get("created_at"), "metastore_id": state.workspace_id,
           "isolation_mode": "OPEN", "securable_type": "CATALOG",
           "full_name": info["name"], "browse_only": False}
    if info.get("comment"):
        out["comment"] = info["comment"]
    if info["name"] == "hive_metastore":
        out["catalog_type"] = "SYSTEM_CATALOG"
    return out


def _get_catalog(req, name: str) -> dict:
    eng = _engine(req)
    for c in eng.catalogs():
        if c["name"] == name.lower():
            return _catalog(c, req.state)
    raise ApiError(404, "CATALOG_DOES_NOT_EXIST", f"Catalog '{name}' does not exist.")


@route("GET", API + r"/catalogs")
def list_catalogs(req):
    eng = _engine(req)
    return _page(req, "catalogs", lambda: [_catalog(c, req.state) for c in eng.catalogs()])


@route("POST", API + r"/catalogs")
def create_catalog(req):
    body = req.body
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_parameter("Missing required field: name")
    eng = _engine(req)
    try:
        eng.create_catalog(name, comment=body.get("comment"), owner=_who(req))
    except Exception as exc:  # noqa: BLE001 - SqlError
        raise _sql_error(exc) from None
    with req.state.lock:
        req.state.applied["catalog/create_catalog"] += 1
    return _get_catalog(req, name)


@route("GET", API + r"/catalogs/(?P<name>[^/]+)")
def get_catalog(req):
    return _get_catalog(req, unquote(req.params["name"]))


@route("DELETE", API + r"/catalogs/(?P<name>[^/]+)")
def delete_catalog(req):
    name = unquote(req.params["name"])
    _get_catalog(req, name)
    if name.lower() in ("main", "hive_metastore", "system", "samples"):
        raise ApiError(403, "PERMISSION_DENIED", f"Catalog '{name}' cannot be deleted.")
    force = req.q_bool("force", False)
    eng = _engine(req)
    vols = [v for v in _volumes(req.state).values() if v["catalog_name"] == name.lower()]
    if vols and not force:
        raise ApiError(400, "CATALOG_NOT_EMPTY", f"Catalog '{name}' is not empty. Use force to delete it and "
                                                 "everything in it.")
    try:
        eng.drop_catalog(name, cascade=force)
    except Exception as exc:  # noqa: BLE001
        err = _sql_error(exc)
        if err.error_code == "SCHEMA_NOT_EMPTY":
            err = ApiError(400, "CATALOG_NOT_EMPTY", f"Catalog '{name}' is not empty. Use force to delete it and "
                                                     "everything in it.")
        raise err from None
    for v in vols:
        _drop_volume(req.state, v["full_name"])
    with req.state.lock:
        req.state.applied["catalog/catalogs/delete"] += 1
    return {}


# --------------------------------------------------------------------------- schemas

def _schema(info: dict, state) -> dict:
    out = {"name": info["name"], "catalog_name": info["catalog_name"], "full_name": info["full_name"],
           "owner": info.get("owner"), "created_at": info.get("created_at"), "updated_at": info.get("created_at"),
           "created_by": info.get("owner"), "metastore_id": state.workspace_id, "catalog_type": "MANAGED_CATALOG",
           "securable_type": "SCHEMA", "browse_only": False}
    if info.get("comment"):
        out["comment"] = info["comment"]
    return out


def _split(full: str, n: int, what: str) -> list:
    parts = full.split(".")
    if len(parts) != n or not all(parts):
        raise invalid_parameter(f"Invalid {what} name '{full}': expected {'.'.join(['x'] * n)} "
                                f"({n}-level name).")
    return [p.lower() for p in parts]


def _get_schema(req, full: str) -> dict:
    cat, sch = _split(full, 2, "schema")
    eng = _engine(req)
    try:
        schemas = eng.schemas(cat)
    except Exception as exc:  # noqa: BLE001
        raise _sql_error(exc) from None
    for s in schemas:
        if s["name"] == sch:
            return _schema(s, req.state)
    raise ApiError(404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{cat}.{sch}' does not exist.")


@route("GET", API + r"/schemas")
def list_schemas(req):
    cat = req.q("catalog_name")
    if not cat:
        raise invalid_parameter("Missing required field: catalog_name")
    eng = _engine(req)
    try:
        schemas = eng.schemas(cat)
    except Exception as exc:  # noqa: BLE001
        raise _sql_error(exc) from None
    return _page(req, "schemas", lambda: [_schema(s, req.state) for s in schemas])


@route("POST", API + r"/schemas")
def create_schema(req):
    body = req.body
    problems = [f"Missing required field: {k}" for k in ("name", "catalog_name")
                if not isinstance(body.get(k), str) or not body.get(k)]
    if problems:
        raise invalid_parameter("; ".join(problems))
    eng = _engine(req)
    try:
        eng.create_schema(body["catalog_name"], body["name"], comment=body.get("comment"), owner=_who(req))
    except Exception as exc:  # noqa: BLE001
        raise _sql_error(exc) from None
    with req.state.lock:
        req.state.applied["catalog/create_schema"] += 1
    return _get_schema(req, f"{body['catalog_name']}.{body['name']}")


@route("GET", API + r"/schemas/(?P<name>[^/]+)")
def get_schema(req):
    return _get_schema(req, unquote(req.params["name"]))


@route("DELETE", API + r"/schemas/(?P<name>[^/]+)")
def delete_schema(req):
    full = unquote(req.params["name"])
    info = _get_schema(req, full)
    force = req.q_bool("force", False)
    vols = [v for v in _volumes(req.state).values()
            if (v["catalog_name"], v["schema_name"]) == (info["catalog_name"], info["name"])]
    if vols and not force:
        raise ApiError(400, "SCHEMA_NOT_EMPTY", f"Schema '{info['full_name']}' is not empty. Use force to delete "
                                                "it and everything in it.")
    try:
        _engine(req).drop_schema(info["catalog_name"], info["name"], cascade=force)
    except Exception as exc:  # noqa: BLE001
        raise _sql_error(exc) from None
    for v in vols:
        _drop_volume(req.state, v["full_name"])
    with req.state.lock:
        req.state.applied["catalog/schemas/delete"] += 1
    return {}


# --------------------------------------------------------------------------- tables

def _table(info: dict, state) -> dict:
    out = {k: v for k, v in info.items() if v is not None}
    out["metastore_id"] = state.workspace_id
    out["table_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{state.workspace_id}/{info['full_name']}"))
    if info.get("table_type") != "VIEW":
        out["storage_location"] = f"s3://emulator-metastore/{out['table_id']}"
    out["securable_type"] = "TABLE"
    out["columns"] = [{k: v for k, v in c.items() if v is not None} for c in info.get("columns", [])]
    return out


def _get_table(req, full: str) -> dict:
    cat, sch, name = _split(full, 3, "table")
    eng = _engine(req)
    info = eng.table(f"{cat}.{sch}.{name}")
    if info is None:
        _get_schema(req, f"{cat}.{sch}")
        raise ApiError(404, "TABLE_DOES_NOT_EXIST", f"Table '{cat}.{sch}.{name}' does not exist.")
    return _table(info, req.state)


@route("GET", API + r"/tables")
def list_tables(req):
    problems = [f"Missing required field: {k}" for k in ("catalog_name", "schema_name") if not req.q(k)]
    if problems:
        raise invalid_parameter("; ".join(problems))
    eng = _engine(req)
    try:
        tables = eng.tables(req.q("catalog_name"), req.q("schema_name"))
    except Exception as exc:  # noqa: BLE001
        raise _sql_error(exc) from None
    omit_columns = req.q_bool("omit_columns", False)

    def build():
        out = [_table(t, req.state) for t in tables]
        if omit_columns:
            for t in out:
                t.pop("columns", None)
        return out
    return _page(req, "tables", build)


@route("GET", API + r"/tables/(?P<name>[^/]+)")
def get_table(req):
    return _get_table(req, unquote(req.params["name"]))


@route("GET", API + r"/tables/(?P<name>[^/]+)/exists")
def table_exists(req):
    cat, sch, name = _split(unquote(req.params["name"]), 3, "table")
    _get_schema(req, f"{cat}.{sch}")                 # a missing catalog or schema is an error, not "false"
    return {"table_exists": _engine(req).table(f"{cat}.{sch}.{name}") is not None}


@route("DELETE", API + r"/tables/(?P<name>[^/]+)")
def delete_table(req):
    info = _get_table(req, unquote(req.params["name"]))
    try:
        _engine(req).drop_table(info["full_name"])
    except Exception as exc:  # noqa: BLE001
        raise _sql_error(exc) from None
    with req.state.lock:
        req.state.applied["catalog/tables/delete"] += 1
    return {}


# --------------------------------------------------------------------------- volumes

def _volumes(state) -> dict:
    return state.area("uc_volumes")


def _root(state) -> str:
    def make():
        path = tempfile.mkdtemp(prefix="emulator-volumes-")
        state.on_close(lambda: shutil.rmtree(path, ignore_errors=True))
        return path
    return state.area("uc_volume_root", make)


def volume_dir(state, catalog: str, schema: str, volume: str):
    """The folder that backs a volume, or None when there is no such volume."""
    with state.lock:
        v = _volumes(state).get(f"{catalog}.{schema}.{volume}".lower())
        return v["_dir"] if v else None


def _volume_view(v: dict) -> dict:
    return {k: val for k, val in v.items() if not k.startswith("_") and val is not None}


def _drop_volume(state, full: str) -> None:
    with state.lock:
        v = _volumes(state).pop(full, None)
    if v:
        shutil.rmtree(v["_dir"], ignore_errors=True)


@route("GET", API + r"/volumes")
def list_volumes(req):
    problems = [f"Missing required field: {k}" for k in ("catalog_name", "schema_name") if not req.q(k)]
    if problems:
        raise invalid_parameter("; ".join(problems))
    info = _get_schema(req, f"{req.q('catalog_name')}.{req.q('schema_name')}")

    def build():
        with req.state.lock:
            return [_volume_view(v) for k, v in sorted(_volumes(req.state).items())
                    if (v["catalog_name"], v["schema_name"]) == (info["catalog_name"], info["name"])]
    return _page(req, "volumes", build)


@route("POST", API + r"/volumes")
def create_volume(req):
    body = req.body
    problems = [f"Missing required field: {k}" for k in ("catalog_name", "schema_name", "name")
                if not isinstance(body.get(k), str) or not body.get(k)]
    vtype = body.get("volume_type", "MANAGED")
    if vtype not in ("MANAGED", "EXTERNAL"):
        problems.append(f"Invalid volume_type: {vtype!r} (MANAGED or EXTERNAL)")
    elif vtype == "EXTERNAL" and not body.get("storage_location"):
        problems.append("An EXTERNAL volume needs a storage_location")
    if problems:
        raise invalid_parameter("; ".join(problems))
    name = body["name"]
    if "." in name or "/" in name or len(name) > 255:
        raise invalid_parameter(f"Invalid volume name '{name}'.")
    schema = _get_schema(req, f"{body['catalog_name']}.{body['schema_name']}")
    full = f"{schema['full_name']}.{name.lower()}"
    st = req.state
    with st.lock:
        if full in _volumes(st):
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Volume '{full}' already exists.")
        vid = str(uuid.uuid4())
        folder = os.path.join(_root(st), vid)
        os.makedirs(folder)
        now = st.now_ms()
        who = _who(req)
        v = {"catalog_name": schema["catalog_name"], "schema_name": schema["name"], "name": name.lower(),
             "full_name": full, "volume_type": vtype, "volume_id": vid, "owner": who, "created_by": who,
             "updated_by": who, "created_at": now, "updated_at": now, "metastore_id": st.workspace_id,
             "storage_location": body.get("storage_location") or f"s3://emulator-metastore/volumes/{vid}",
             "comment": body.get("comment"), "_dir": folder}
        _volumes(st)[full] = v
        st.applied["catalog/create_volume"] += 1
        return _volume_view(v)


def _get_volume(req, full: str) -> dict:
    cat, sch, name = _split(full, 3, "volume")
    with req.state.lock:
        v = _volumes(req.state).get(f"{cat}.{sch}.{name}")
        if v is not None:
            return v
    _get_schema(req, f"{cat}.{sch}")
    raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Volume '{cat}.{sch}.{name}' does not exist.")


@route("GET", API + r"/volumes/(?P<name>[^/]+)")
def get_volume(req):
    return _volume_view(_get_volume(req, unquote(req.params["name"])))


@route("DELETE", API + r"/volumes/(?P<name>[^/]+)")
def delete_volume(req):
    v = _get_volume(req, unquote(req.params["name"]))
    _drop_volume(req.state, v["full_name"])
    with req.state.lock:
        req.state.applied["catalog/volumes/delete"] += 1
    return {}


# --------------------------------------------------------------------------- grants

def _grants(state) -> dict:
    """(securable type, full name) -> {principal: set of privileges}"""
    return state.area("uc_grants")


def _who(req):
    return req.principal.user_name if req.principal else None


def _securable(req) -> tuple:
    kind = req.params["type"].lower()
    full = unquote(req.params["name"])
    if kind not in SECURABLES:
        raise invalid_parameter(f"Invalid securable type '{req.params['type']}': one of {', '.join(SECURABLES)}")
    if kind == "catalog":
        full = _get_catalog(req, full)["full_name"]
    elif kind == "schema":
        full = _get_schema(req, full)["full_name"]
    elif kind == "table":
        full = _get_table(req, full)["full_name"]
    elif kind == "volume":
        full = _get_volume(req, full)["full_name"]
    elif kind == "function":
        raise ApiError(404, "FUNCTION_DOES_NOT_EXIST", f"Function '{full}' does not exist.")
    return kind, full.lower()


def _known_principal(state, name: str) -> bool:
    from .permissions import _groups
    return name in state.users or name in state.service_principals or name in _groups(state)


def _assignments(grants: dict, principal=None) -> list:
    return [{"principal": p, "privileges": sorted(privs)} for p, privs in sorted(grants.items())
            if privs and (principal is None or p == principal)]


@route("GET", API + r"/permissions/(?P<type>[A-Za-z_]+)/(?P<name>[^/]+)")
def get_grants(req):
    key = _securable(req)
    with req.state.lock:
        return {"privilege_assignments": _assignments(_grants(req.state).get(key, {}), req.q("principal"))}


@route("PATCH", API + r"/permissions/(?P<type>[A-Za-z_]+)/(?P<name>[^/]+)")
def update_grants(req):
    key = _securable(req)
    changes = req.body.get("changes")
    if not isinstance(changes, list):
        raise invalid_parameter("Missing required field: changes")
    st = req.state
    problems = []
    for i, ch in enumerate(changes):
        if not isinstance(ch, dict) or not isinstance(ch.get("principal"), str) or not ch.get("principal"):
            problems.append(f"changes[{i}] needs a principal")
            continue
        if not _known_principal(st, ch["principal"]):
            problems.append(f"Could not find principal with name {ch['principal']}")
        for op in ("add", "remove"):
            for p in ch.get(op) or []:
                if p not in PRIVILEGES:
                    problems.append(f"Privilege {p} is not applicable to this entity")
    if problems:
        raise invalid_parameter("; ".join(problems))
    with st.lock:
        grants = _grants(st).setdefault(key, {})
        before = {p: set(v) for p, v in grants.items()}
        for ch in changes:
            held = grants.setdefault(ch["principal"], set())
            held.update(ch.get("add") or [])
            held.difference_update(ch.get("remove") or [])
        if {p: v for p, v in grants.items() if v} != {p: v for p, v in before.items() if v}:
            st.applied["catalog/grants/update"] += 1      # the same change again changes nothing
        _enforce(st)
        return {"privilege_assignments": _assignments(grants)}


def _parents(kind: str, full: str) -> list:
    parts = full.split(".")
    out = [(kind, full)]
    if kind in ("table", "volume", "function"):
        out += [("schema", ".".join(parts[:2])), ("catalog", parts[0])]
    elif kind == "schema":
        out.append(("catalog", parts[0]))
    return out


@route("GET", API + r"/effective-permissions/(?P<type>[A-Za-z_]+)/(?P<name>[^/]+)")
def get_effective_grants(req):
    kind, full = _securable(req)
    wanted = req.q("principal")
    st = req.state
    with st.lock:
        by_principal: dict = {}
        for k, name in _parents(kind, full):
            for p, privs in sorted(_grants(st).get((k, name), {}).items()):
                if wanted and p != wanted:
                    continue
                for priv in sorted(privs):
                    item = {"privilege": priv}
                    if (k, name) != (kind, full):
                        item.update({"inherited_from_type": k.upper(), "inherited_from_name": name})
                    by_principal.setdefault(p, []).append(item)
        return {"privilege_assignments": [{"principal": p, "privileges": privs}
                                          for p, privs in by_principal.items()]}


def _enforce(state) -> None:
    """Install the SQL engine's permission hook (once): grants decide for non-admins."""
    if state.area("uc_enforced", dict).get("on"):
        return
    from .sqlengine import engine_for
    eng = engine_for(state)

    def held(principal_name: str, groups, kind: str, full: str) -> set:
        grants = _grants(state)
        out: set = set()
        for who in [principal_name, *groups]:
            out |= grants.get((kind, full), {}).get(who, set())
        return out

    def authorize(principal, privilege, securable_type, full_name) -> bool:
        if principal is None or isinstance(principal, str):
            name, groups = principal, []
            p = state.users.get(principal) if principal else None
            if p is not None:
                groups = list(p.groups or [])
        else:
            name, groups = principal.user_name, list(principal.groups or [])
        if name is None or "admins" in groups:
            return True
        groups = groups + ["account users"]
        kind = securable_type.lower()
        if kind == "metastore":
            return False
        with state.lock:
            chain = _parents(kind, full_name.lower())
            for k, n in chain[1:]:
                need = "USE_CATALOG" if k == "catalog" else "USE_SCHEMA"
                privs = held(name, groups, k, n)
                if need not in privs and "ALL_PRIVILEGES" not in privs:
                    return False
            for k, n in chain:
                privs = held(name, groups, k, n)
                if privilege in privs or "ALL_PRIVILEGES" in privs:
                    return True
        return False

    eng.authorize = authorize
    state.area("uc_enforced", dict)["on"] = True
