"""Unity Catalog (API 2.1): catalogs, schemas, tables, volumes and grants."""
from __future__ import annotations

from urllib.parse import quote

API = "/api/2.1/unity-catalog"
PAGE = 100                  # max_results of every list request (an empty page may still carry a token)


def _q(name: str) -> str:
    return quote(name, safe="")


def _list(session, path: str, key: str, inputs: dict, params=None, require=("name",)):
    """Every page of a Unity Catalog list (an empty page may still carry a token)."""
    items, truncated = session.paginate(path, items=key, params={**(params or {}), "max_results": PAGE},
                                        max_items=inputs.get("max_items"), require=require)
    return {key: items, "count": len(items), "truncated": truncated}


def _delete(session, path: str, params=None):
    """A DELETE sent once past Databricks' own refusals: re-sent after a lost answer it would meet its
    own deletion (404) and report the object missing."""
    return session.request("DELETE", path, params={k: ("true" if v is True else "false" if v is False else v)
                                                   for k, v in (params or {}).items()}, idempotent=False)


def _deleted(full_name: str) -> dict:
    return {"deleted": True, "full_name": full_name}


def _schema_full(inputs) -> str:
    return f"{inputs['catalog_name']}.{inputs['schema_name']}"


# --------------------------------------------------------------------------- catalogs

def list_catalogs(session, inputs):
    return _list(session, f"{API}/catalogs", "catalogs", inputs)


def get_catalog(session, inputs):
    return session.get(f"{API}/catalogs/{_q(inputs['catalog_name'])}", require=("name",))


def create_catalog(session, inputs):
    body = {"name": inputs["catalog_name"]}
    if inputs.get("comment"):
        body["comment"] = inputs["comment"]
    return session.start("create", lambda: session.post(f"{API}/catalogs", body, require=("name",)),
                         ids=lambda c: {"catalog_name": c["name"]}, follow_up="get_catalog")


def delete_catalog(session, inputs):
    _delete(session, f"{API}/catalogs/{_q(inputs['catalog_name'])}", {"force": bool(inputs.get("force"))})
    return _deleted(inputs["catalog_name"])


# --------------------------------------------------------------------------- schemas

def list_schemas(session, inputs):
    return _list(session, f"{API}/schemas", "schemas", inputs, {"catalog_name": inputs["catalog_name"]})


def get_schema(session, inputs):
    return session.get(f"{API}/schemas/{_q(_schema_full(inputs))}", require=("name",))


def create_schema(session, inputs):
    body = {"catalog_name": inputs["catalog_name"], "name": inputs["schema_name"]}
    if inputs.get("comment"):
        body["comment"] = inputs["comment"]
    return session.start("create", lambda: session.post(f"{API}/schemas", body, require=("full_name",)),
                         ids=lambda s: {"full_name": s["full_name"]}, follow_up="get_schema")


def delete_schema(session, inputs):
    _delete(session, f"{API}/schemas/{_q(_schema_full(inputs))}", {"force": bool(inputs.get("force"))})
    return _deleted(_schema_full(inputs))


# --------------------------------------------------------------------------- tables

def _table_full(inputs) -> str:
    return f"{_schema_full(inputs)}.{inputs['table_name']}"


def list_tables(session, inputs):
    params = {"catalog_name": inputs["catalog_name"], "schema_name": inputs["schema_name"]}
    if inputs.get("omit_columns"):
        params["omit_columns"] = True
    return _list(session, f"{API}/tables", "tables", inputs, params)


def get_table(session, inputs):
    return session.get(f"{API}/tables/{_q(_table_full(inputs))}", require=("name",))


def table_exists(session, inputs):
    doc = session.get(f"{API}/tables/{_q(_table_full(inputs))}/exists")
    exists = doc.get("table_exists")
    if not isinstance(exists, bool):
        from ..errors import ConnectorError
        raise ConnectorError("server_error", "The table-exists answer has no boolean table_exists",
                             hint="Run the step again.")
    return {"table_exists": exists, "full_name": _table_full(inputs)}


def delete_table(session, inputs):
    _delete(session, f"{API}/tables/{_q(_table_full(inputs))}")
    return _deleted(_table_full(inputs))


# --------------------------------------------------------------------------- volumes

def _volume_full(inputs) -> str:
    return f"{_schema_full(inputs)}.{inputs['volume_name']}"


def list_volumes(session, inputs):
    params = {"catalog_name": inputs["catalog_name"], "schema_name": inputs["schema_name"]}
    return _list(session, f"{API}/volumes", "volumes", inputs, params)


def get_volume(session, inputs):
    return session.get(f"{API}/volumes/{_q(_volume_full(inputs))}", require=("name",))


def create_volume(session, inputs):
    body = {"catalog_name": inputs["catalog_name"], "schema_name": inputs["schema_name"],
            "name": inputs["volume_name"], "volume_type": inputs.get("volume_type") or "MANAGED"}
    for key in ("storage_location", "comment"):
        if inputs.get(key):
            body[key] = inputs[key]
    return session.start("create", lambda: session.post(f"{API}/volumes", body, require=("full_name",)),
                         ids=lambda v: {"full_name": v["full_name"]}, follow_up="get_volume")


def delete_volume(session, inputs):
    _delete(session, f"{API}/volumes/{_q(_volume_full(inputs))}")
    return _deleted(_volume_full(inputs))


# --------------------------------------------------------------------------- grants

def _grants_path(inputs, kind: str = "permissions") -> str:
    return f"{API}/{kind}/{_q(inputs['securable_type'])}/{_q(inputs['full_name'])}"


def _assignments(session, path, inputs):
    params = {"principal": inputs["principal"]} if inputs.get("principal") else {}
    items, _ = session.paginate(path, items="privilege_assignments", params={**params, "max_results": PAGE},
                                require=("principal",))
    return {"securable_type": inputs["securable_type"], "full_name": inputs["full_name"],
            "privilege_assignments": items}


def get_grants(session, inputs):
    return _assignments(session, _grants_path(inputs), inputs)


def get_effective_grants(session, inputs):
    params = {"principal": inputs["principal"]} if inputs.get("principal") else None
    doc = session.get(_grants_path(inputs, "effective-permissions"), params)
    items = doc.get("privilege_assignments") or []
    return {"securable_type": inputs["securable_type"], "full_name": inputs["full_name"],
            "privilege_assignments": items}


def check_update_grants(inputs) -> list:
    """A privilege added and removed for the same principal, or a principal named twice."""
    problems, seen = [], set()
    for i, change in enumerate(inputs.get("changes") or []):
        if not isinstance(change, dict):
            continue
        who = change.get("principal")
        if who in seen:
            problems.append({"key": "changes", "label": "Changes", "reason": f"names principal {who!r} twice; "
                             "give one entry per principal"})
        seen.add(who)
        both = set(change.get("add") or []) & set(change.get("remove") or [])
        if both:
            problems.append({"key": "changes", "label": "Changes", "reason": f"entry {i + 1} both adds and removes "
                             f"{', '.join(sorted(both))} for {who!r}"})
        if not change.get("add") and not change.get("remove"):
            problems.append({"key": "changes", "label": "Changes", "reason": f"entry {i + 1} ({who!r}) neither "
                             "adds nor removes a privilege"})
    return problems


def update_grants(session, inputs):
    changes = [{k: v for k, v in c.items() if v} for c in inputs["changes"]]
    doc = session.request("PATCH", _grants_path(inputs), json={"changes": changes}, idempotent=True)
    items = doc.get("privilege_assignments") or []
    return {"securable_type": inputs["securable_type"], "full_name": inputs["full_name"],
            "privilege_assignments": items}


# --------------------------------------------------------------------------- pickers

def select_catalog(session, inputs):
    items, _ = session.paginate(f"{API}/catalogs", items="catalogs", params={"max_results": PAGE}, require=("name",))
    return [{"label": c["name"], "value": c["name"]} for c in items]


def select_schema(session, inputs):
    items, _ = session.paginate(f"{API}/schemas", items="schemas", require=("name",),
                                params={"catalog_name": inputs["catalog_name"], "max_results": PAGE})
    return [{"label": s["name"], "value": s["name"]} for s in items]


def select_table(session, inputs):
    items, _ = session.paginate(f"{API}/tables", items="tables", require=("name",),
                                params={"catalog_name": inputs["catalog_name"], "schema_name": inputs["schema_name"],
                                        "omit_columns": True, "max_results": PAGE})
    return [{"label": f"{t['name']} ({t.get('table_type', 'TABLE')})", "value": t["name"]} for t in items]


def select_volume(session, inputs):
    items, _ = session.paginate(f"{API}/volumes", items="volumes", require=("name",),
                                params={"catalog_name": inputs["catalog_name"], "schema_name": inputs["schema_name"],
                                        "max_results": PAGE})
    return [{"label": v["name"], "value": v["name"]} for v in items]
