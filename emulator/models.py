r"""Models in Unity Catalog (contract part 2, §2.2): registered models, their versions and aliases.

* ``/api/2.1/unity-catalog/models``: list (by catalog and schema, paged), create (the catalog and
  schema must exist in the SQL engine's catalog), get/patch/delete by full name
  (``catalog.schema.model``, case-insensitive, stored lower-case).
* Versions: ``.../models/{full_name}/versions`` (paged, newest first) and
  ``.../versions/{n}``; aliases: ``PUT/DELETE .../aliases/{alias}`` (body ``{version_num}``) and
  ``GET .../aliases/{alias}`` (the version an alias points to).
* A version comes from MLflow's client path, ``POST /api/2.0/mlflow/unity-catalog/model-versions/create``
  (``name, source, run_id?, description?``) then ``.../finalize`` (``name, version``) once its
  files are uploaded: the version is PENDING_REGISTRATION until finalized and becomes READY
  ``model_version_ready_seconds`` after it (FAILED_REGISTRATION when ``model_version_fail_next``
  is set; a one-shot). ``seed_version(state, full_name, ...)`` does both at once for tests.

States move lazily when read (no threads). Applied changes: ``state.applied["models/<op>"]``.
"""
from __future__ import annotations

import re
import uuid
from typing import Any, Dict, Optional
from urllib.parse import unquote

from .api import ApiError, Snapshots, copy_json, decode_page_token, encode_page_token, invalid_parameter, route

UC = r"/api/2\.1/unity-catalog/models"
NAME = r"(?P<name>[^/]+)"
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
_SNAPSHOTS = Snapshots()


def models(state) -> Dict[str, dict]:
    return state.area("uc_models", dict)


def _not_found(full_name: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{full_name}' does not exist.")


def _full(name: str) -> str:
    full = unquote(name).lower()
    parts = full.split(".")
    if len(parts) != 3 or not all(_PART.match(p) for p in parts):
        raise invalid_parameter(f"Invalid registered model name '{unquote(name)}': expected catalog.schema.model")
    return full


def model_record(state, name: str) -> dict:
    full = _full(name)
    model = models(state).get(full)
    if model is None:
        raise _not_found(full)
    return model


def _advance(state, version: dict) -> dict:
    ready_at = version.get("_ready_at")
    if ready_at is not None and state.now() >= ready_at:
        version["status"] = version.pop("_final", "READY")
        version["updated_at"] = int(ready_at * 1000)
        version.pop("_ready_at")
    return version


def _aliases(model: dict, version: Optional[int] = None) -> list:
    return [{"alias_name": a, "version_num": v} for a, v in sorted(model["aliases"].items())
            if version is None or v == version]


def public_model(model: dict, *, include_aliases: bool = True) -> dict:
    out = {k: model[k] for k in ("full_name", "catalog_name", "schema_name", "name", "owner", "created_at",
                                 "created_by", "updated_at", "updated_by", "storage_location", "metastore_id", "id")}
    if model.get("comment"):
        out["comment"] = model["comment"]
    if include_aliases and model["aliases"]:
        out["aliases"] = _aliases(model)
    return out


def public_version(state, model: dict, version: dict, *, include_aliases: bool = True) -> dict:
    _advance(state, version)
    out = {k: v for k, v in version.items() if not k.startswith("_")}
    out.update(model_name=model["name"], catalog_name=model["catalog_name"], schema_name=model["schema_name"])
    aliases = _aliases(model, version["version"])
    if include_aliases and aliases:
        out["aliases"] = aliases
    return out


def _check_schema(state, catalog: str, schema: str) -> None:
    from .sqlengine import SqlError, engine_for
    try:
        eng = engine_for(state)
        if not eng.catalog_exists(catalog):
            raise ApiError(404, "CATALOG_DOES_NOT_EXIST", f"Catalog '{catalog}' does not exist.")
        if not eng.schema_exists(catalog, schema):
            raise ApiError(404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{catalog}.{schema}' does not exist.")
    except SqlError as exc:
        raise ApiError(500, "INTERNAL_ERROR", exc.message) from None


def create_model(state, catalog: str, schema: str, name: str, owner: str, comment: Optional[str] = None) -> dict:
    catalog, schema, name = catalog.lower(), schema.lower(), name.lower()
    full = f"{catalog}.{schema}.{name}"
    _full(full)
    _check_schema(state, catalog, schema)
    with state.lock:
        if full in models(state):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Registered model '{full}' already exists.")
        now = state.now_ms()
        mid = str(uuid.uuid4())
        model = {"full_name": full, "catalog_name": catalog, "schema_name": schema, "name": name, "owner": owner,
                 "created_at": now, "created_by": owner, "updated_at": now, "updated_by": owner, "comment": comment,
                 "storage_location": f"s3://emulator-metastore/models/{mid}", "metastore_id": state.account_id,
                 "id": mid, "aliases": {}, "versions": {}, "_next": 1}
        models(state)[full] = model
        state.applied["models/create"] += 1
        return model


# --------------------------------------------------------------------------- registered models

@route("POST", UC)
def create(req):
    body = req.body
    missing = [k for k in ("catalog_name", "schema_name", "name") if not isinstance(body.get(k), str) or not body[k]]
    if missing:
        raise invalid_parameter("Missing required field(s): " + ", ".join(missing))
    owner = req.principal.user_name if req.principal else "emulator-user@example.com"
    model = create_model(req.state, body["catalog_name"], body["schema_name"], body["name"], owner,
                         body.get("comment"))
    with req.state.lock:
        return public_model(model)


@route("GET", UC)
def list_models(req):
    catalog, schema = (req.q("catalog_name") or "").lower(), (req.q("schema_name") or "").lower()
    if bool(schema) != bool(catalog):
        raise invalid_parameter("catalog_name and schema_name are given together (a schema's models), or neither")
    cap = int(req.config.models_page_size)
    size = req.q_int("max_results", 0) or cap
    if size < 0:
        raise invalid_parameter("max_results must not be negative")
    size = min(size, cap)

    def build():
        with req.state.lock:
            return [public_model(m, include_aliases=bool(req.q_bool("include_aliases", False)))
                    for full, m in sorted(models(req.state).items())
                    if (not catalog or m["catalog_name"] == catalog) and (not schema or m["schema_name"] == schema)]

    page, nxt, _ = _SNAPSHOTS.page(req.q("page_token"), build, size, "models")
    out: Dict[str, Any] = {"registered_models": page}
    if nxt:
        out["next_page_token"] = nxt
    return out


@route("GET", UC + "/" + NAME)
def get_model(req):
    with req.state.lock:
        return public_model(model_record(req.state, req.params["name"]),
                            include_aliases=req.q_bool("include_aliases", True) is not False)


@route("PATCH", UC + "/" + NAME)
def update_model(req):
    body = req.body
    with req.state.lock:
        model = model_record(req.state, req.params["name"])
        changed = False
        for key in ("comment", "owner"):
            if key in body and body[key] != model.get(key):
                model[key] = body[key]
                changed = True
        if changed:
            model["updated_at"] = req.state.now_ms()
            req.state.applied["models/update"] += 1
        return public_model(model)


@route("DELETE", UC + "/" + NAME)
def delete_model(req):
    st = req.state
    with st.lock:
        model = model_record(st, req.params["name"])
        del models(st)[model["full_name"]]
        st.applied["models/delete"] += 1
        return {}


# --------------------------------------------------------------------------- versions

def _version(state, model: dict, raw: str) -> dict:
    try:
        n = int(raw)
    except (TypeError, ValueError):
        raise invalid_parameter(f"Invalid version number '{raw}'") from None
    version = model["versions"].get(n)
    if version is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST",
                       f"Model version {n} of registered model '{model['full_name']}' does not exist.")
    return _advance(state, version)


@route("GET", UC + "/" + NAME + r"/versions")
def list_versions(req):
    cap = int(req.config.models_page_size)
    size = min(req.q_int("max_results", 0) or cap, cap)
    with req.state.lock:
        model = model_record(req.state, req.params["name"])
        items = [public_version(req.state, model, v) for n, v in sorted(model["versions"].items(), reverse=True)]
    token = req.q("page_token")
    offset = decode_page_token(token, "versions") if token else 0
    out: Dict[str, Any] = {"model_versions": items[offset:offset + size]}
    if offset + size < len(items):
        out["next_page_token"] = encode_page_token(offset + size, "versions")
    return out


@route("GET", UC + "/" + NAME + r"/versions/(?P<version>[^/]+)")
def get_version(req):
    with req.state.lock:
        model = model_record(req.state, req.params["name"])
        return public_version(req.state, model, _version(req.state, model, req.params["version"]),
                              include_aliases=req.q_bool("include_aliases", True) is not False)


@route("DELETE", UC + "/" + NAME + r"/versions/(?P<version>[^/]+)")
def delete_version(req):
    with req.state.lock:
        model = model_record(req.state, req.params["name"])
        version = _version(req.state, model, req.params["version"])
        del model["versions"][version["version"]]
        model["aliases"] = {a: v for a, v in model["aliases"].items() if v != version["version"]}
        req.state.applied["models/versions/delete"] += 1
        return {}


_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,254}$")


def _alias_name(raw: str) -> str:
    alias = unquote(raw)
    if not _ALIAS.match(alias) or re.fullmatch(r"(?i)v\d+|latest", alias):
        raise invalid_parameter(f"Invalid alias name '{alias}': letters, digits, _ and -, not starting with a digit, "
                                "and not 'latest' or v<number>")
    return alias.lower()


@route("PUT", UC + "/" + NAME + r"/aliases/(?P<alias>[^/]+)")
def set_alias(req):
    body = req.body
    num = body.get("version_num")
    if isinstance(num, bool) or not isinstance(num, int):
        raise invalid_parameter("version_num is required and must be an integer")
    alias = _alias_name(req.params["alias"])
    with req.state.lock:
        model = model_record(req.state, req.params["name"])
        _version(req.state, model, num)
        if model["aliases"].get(alias) != num:
            model["aliases"][alias] = num
            model["updated_at"] = req.state.now_ms()
            req.state.applied["models/aliases/set"] += 1
        return {"alias_name": alias, "version_num": num}


@route("DELETE", UC + "/" + NAME + r"/aliases/(?P<alias>[^/]+)")
def delete_alias(req):
    alias = _alias_name(req.params["alias"])
    with req.state.lock:
        model = model_record(req.state, req.params["name"])
        if alias not in model["aliases"]:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST",
                           f"Alias '{alias}' does not exist on registered model '{model['full_name']}'.")
        del model["aliases"][alias]
        req.state.applied["models/aliases/delete"] += 1
        return {}


@route("GET", UC + "/" + NAME + r"/aliases/(?P<alias>[^/]+)")
def get_by_alias(req):
    alias = _alias_name(req.params["alias"])
    with req.state.lock:
        model = model_record(req.state, req.params["name"])
        num = model["aliases"].get(alias)
        if num is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST",
                           f"Alias '{alias}' does not exist on registered model '{model['full_name']}'.")
        return public_version(req.state, model, _version(req.state, model, num))


# --------------------------------------------------------------------------- MLflow client path (create a version)

def create_version(state, full_name: str, source: str, *, run_id: Optional[str] = None, comment=None,
                   creator: str = "emulator-user@example.com") -> dict:
    with state.lock:
        model = model_record(state, full_name)
        n = model["_next"]
        model["_next"] += 1
        now = state.now_ms()
        version = {"version": n, "status": "PENDING_REGISTRATION", "source": source, "run_id": run_id,
                   "storage_location": f"{model['storage_location']}/versions/{uuid.uuid4()}",
                   "created_at": now, "created_by": creator, "updated_at": now, "updated_by": creator,
                   "id": str(uuid.uuid4()), "metastore_id": model["metastore_id"]}
        if comment:
            version["comment"] = comment
        if run_id:
            from .mlflow import store as tracking
            run = tracking(state).runs.get(run_id)
            if run is not None:
                version["run_workspace_id"] = int(state.workspace_id)
        model["versions"][n] = version
        state.applied["models/versions/create"] += 1
        return version


def finalize_version(state, full_name: str, number: int) -> dict:
    with state.lock:
        model = model_record(state, full_name)
        version = _version(state, model, number)
        if version["status"] == "PENDING_REGISTRATION" and "_ready_at" not in version:
            version["_ready_at"] = state.now() + float(state.config.model_version_ready_seconds)
            if state.config.model_version_fail_next:
                state.config.model_version_fail_next = False
                version["_final"] = "FAILED_REGISTRATION"
            state.applied["models/versions/finalize"] += 1
        return _advance(state, version)


def seed_version(state, full_name: str, source: str = "dbfs:/emulator/model", run_id: Optional[str] = None) -> int:
    """A version created and finalized at once (it becomes READY after the knob's delay)."""
    v = create_version(state, full_name, source, run_id=run_id)
    finalize_version(state, full_name, v["version"])
    return v["version"]


def _mlflow_version(state, model: dict, version: dict) -> dict:
    _advance(state, version)
    out = {"name": model["full_name"], "version": str(version["version"]), "status": version["status"],
           "source": version["source"], "storage_location": version["storage_location"],
           "creation_timestamp": version["created_at"], "last_updated_timestamp": version["updated_at"],
           "user_id": version["created_by"]}
    if version.get("run_id"):
        out["run_id"] = version["run_id"]
    return out


@route("POST", r"/api/2\.0/mlflow/unity-catalog/model-versions/create")
def mlflow_create_version(req):
    body = req.body
    if not isinstance(body.get("name"), str) or not isinstance(body.get("source"), str) or not body["source"]:
        raise invalid_parameter("name and source are required")
    creator = req.principal.user_name if req.principal else "emulator-user@example.com"
    version = create_version(req.state, body["name"], body["source"], run_id=body.get("run_id") or None,
                             comment=body.get("description"), creator=creator)
    with req.state.lock:
        return {"model_version": _mlflow_version(req.state, model_record(req.state, body["name"]), version)}


@route("POST", r"/api/2\.0/mlflow/unity-catalog/model-versions/finalize")
def mlflow_finalize_version(req):
    body = req.body
    version = finalize_version(req.state, str(body.get("name") or ""), body.get("version"))
    with req.state.lock:
        return {"model_version": _mlflow_version(req.state, model_record(req.state, str(body["name"])),
                                                 copy_json(version))}


# --------------------------------------------------------------------------- the workspace model registry (legacy)
#
# Registered models named by a plain name, versions with stages (None, Staging, Production,
# Archived). A version is READY at once (the registry copies nothing here). Applied changes:
# ``state.applied["registry/<op>"]``; a stage transition to the stage a version already has is not
# counted.

STAGES = ("None", "Staging", "Production", "Archived")
LEGACY = r"/api/2\.0/mlflow"


def registry(state) -> Dict[str, dict]:
    return state.area("workspace_registry", dict)


def _legacy(state, name) -> dict:
    m = registry(state).get(str(name or ""))
    if m is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")
    return m


def _legacy_version(m: dict) -> list:
    return [dict(v) for _, v in sorted(m["versions"].items())]


def _latest(m: dict, stages=None) -> list:
    out = {}
    for n, v in sorted(m["versions"].items()):
        if stages and v["current_stage"] not in stages:
            continue
        out[v["current_stage"]] = dict(v)
    return list(out.values())


def _legacy_public(m: dict) -> dict:
    out = {k: m[k] for k in ("name", "creation_timestamp", "last_updated_timestamp", "user_id")}
    if m.get("description"):
        out["description"] = m["description"]
    if m["tags"]:
        out["tags"] = [{"key": k, "value": v} for k, v in m["tags"].items()]
    latest = _latest(m)
    if latest:
        out["latest_versions"] = latest
    return out


@route("POST", LEGACY + r"/registered-models/create")
def legacy_create(req):
    body = req.body
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid_parameter("Missing value for required parameter 'name'.")
    st = req.state
    with st.lock:
        if name in registry(st):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists.")
        now = st.now_ms()
        m = {"name": name, "creation_timestamp": now, "last_updated_timestamp": now, "description": body.get("description"),
             "user_id": req.principal.user_name if req.principal else "", "versions": {},
             "tags": {t["key"]: t.get("value", "") for t in body.get("tags") or [] if isinstance(t, dict) and t.get("key")}}
        registry(st)[name] = m
        st.applied["registry/create"] += 1
        return {"registered_model": _legacy_public(m)}


@route("GET", LEGACY + r"/registered-models/search")
def legacy_search(req):
    text = (req.param("filter") or "").strip()
    want = None
    if text:
        mm = re.fullmatch(r"""(?i)name\s*(=|like|ilike)\s*(['"])(.*)\2""", text)
        if not mm:
            raise invalid_parameter(f"Invalid filter '{text}': the registry filters by name = '...' or name LIKE '...'")
        op, value = mm.group(1).upper(), mm.group(3)
        if op == "=":
            want = lambda n: n == value                                                  # noqa: E731
        else:
            rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
            want = lambda n: re.fullmatch(rx, n, re.I if op == "ILIKE" else 0) is not None  # noqa: E731
    size = min(int(req.param("max_results") or 100), int(req.config.models_page_size))
    with req.state.lock:
        items = [_legacy_public(m) for n, m in sorted(registry(req.state).items()) if want is None or want(n)]
    token = req.param("page_token")
    offset = decode_page_token(token, "registry") if token else 0
    out: Dict[str, Any] = {}
    if items[offset:offset + size]:
        out["registered_models"] = items[offset:offset + size]
    if offset + size < len(items):
        out["next_page_token"] = encode_page_token(offset + size, "registry")
    return out


@route("POST", LEGACY + r"/model-versions/create")
def legacy_create_version(req):
    body = req.body
    if not isinstance(body.get("source"), str) or not body["source"]:
        raise invalid_parameter("Missing value for required parameter 'source'.")
    st = req.state
    with st.lock:
        m = _legacy(st, body.get("name"))
        n = len(m["versions"]) + 1
        now = st.now_ms()
        v = {"name": m["name"], "version": str(n), "creation_timestamp": now, "last_updated_timestamp": now,
             "user_id": req.principal.user_name if req.principal else "", "current_stage": "None",
             "source": body["source"], "status": "READY"}
        if body.get("run_id"):
            v["run_id"] = body["run_id"]
        m["versions"][n] = v
        st.applied["registry/versions/create"] += 1
        return {"model_version": dict(v)}


@route("POST", LEGACY + r"/registered-models/get-latest-versions")
def legacy_latest(req):
    stages = req.body.get("stages") or []
    if not isinstance(stages, list) or any(s not in STAGES for s in stages):
        raise invalid_parameter(f"stages must be a list of {', '.join(STAGES)}")
    with req.state.lock:
        latest = _latest(_legacy(req.state, req.body.get("name")), set(stages) or None)
    return {"model_versions": latest} if latest else {}


@route("POST", LEGACY + r"/databricks/model-versions/transition-stage")
def legacy_transition(req):
    body = req.body
    stage = body.get("stage")
    if stage not in STAGES:
        raise invalid_parameter(f"stage must be one of {', '.join(STAGES)}")
    st = req.state
    with st.lock:
        m = _legacy(st, body.get("name"))
        try:
            v = m["versions"][int(body.get("version"))]
        except (KeyError, TypeError, ValueError):
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST",
                           f"Model Version (name={m['name']}, version={body.get('version')}) not found") from None
        changed = v["current_stage"] != stage
        v["current_stage"] = stage
        if body.get("archive_existing_versions") and stage in ("Staging", "Production"):
            for other in m["versions"].values():
                if other is not v and other["current_stage"] == stage:
                    other["current_stage"] = "Archived"
                    changed = True
        if changed:
            v["last_updated_timestamp"] = st.now_ms()
            st.applied["registry/versions/stage/update"] += 1
        return {"model_version_databricks": dict(v)}


def add_legacy_model(state, name: str, versions: int = 0) -> str:
    """A workspace-registry model with READY versions in stage None (tests, the demo)."""
    with state.lock:
        now = state.now_ms()
        m = {"name": name, "creation_timestamp": now, "last_updated_timestamp": now, "description": None,
             "user_id": "emulator-user@example.com", "versions": {}, "tags": {}}
        for n in range(1, versions + 1):
            m["versions"][n] = {"name": name, "version": str(n), "creation_timestamp": now,
                                "last_updated_timestamp": now, "user_id": m["user_id"], "current_stage": "None",
                                "source": f"dbfs:/emulator/{name}/{n}", "status": "READY"}
        registry(state)[name] = m
    return name
