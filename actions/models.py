"""Models in Unity Catalog (API 2.1): registered models, versions and aliases.

A model is named by its three-level full name, quoted as one path segment. Lists page with
``page_token``/``next_page_token``. Versions are created by MLflow's client (upload, then
finalize), so this area reads them and moves aliases, the promotion mechanism of Unity Catalog.
"""
from __future__ import annotations

from urllib.parse import quote

API = "/api/2.1/unity-catalog/models"


def _path(full_name: str, suffix: str = "") -> str:
    return f"{API}/{quote(full_name, safe='')}{suffix}"


def list_registered_models(session, inputs):
    params = {"max_results": 1000}
    if inputs.get("catalog_name"):
        params.update(catalog_name=inputs["catalog_name"], schema_name=inputs["schema_name"])
    found, truncated = session.paginate(API, items="registered_models", params=params,
                                        max_items=inputs.get("max_items"))
    return {"registered_models": found, "count": len(found), "truncated": truncated}


def get_registered_model(session, inputs):
    return session.get(_path(inputs["full_name"]), {"include_aliases": True}, require=("full_name",))


def create_registered_model(session, inputs):
    body = {"catalog_name": inputs["catalog_name"], "schema_name": inputs["schema_name"], "name": inputs["name"]}
    if inputs.get("comment"):
        body["comment"] = inputs["comment"]
    return session.post(API, body, require=("full_name",))


def delete_registered_model(session, inputs):
    session.request("DELETE", _path(inputs["full_name"]), idempotent=False)   # a repeat would answer 404
    return {"full_name": inputs["full_name"], "deleted": True}


def list_model_versions(session, inputs):
    found, truncated = session.paginate(_path(inputs["full_name"], "/versions"), items="model_versions",
                                        params={"max_results": 1000}, max_items=inputs.get("max_items"))
    return {"model_versions": found, "count": len(found), "truncated": truncated}


def get_model_version(session, inputs):
    return session.get(_path(inputs["full_name"], f"/versions/{int(inputs['version'])}"), {"include_aliases": True},
                       require=("version",))


def get_model_version_by_alias(session, inputs):
    return session.get(_path(inputs["full_name"], f"/aliases/{quote(inputs['alias'], safe='')}"),
                       {"include_aliases": True}, require=("version",))


def set_model_alias(session, inputs):
    doc = session.request("PUT", _path(inputs["full_name"], f"/aliases/{quote(inputs['alias'], safe='')}"),
                          json={"version_num": int(inputs["version"])}, idempotent=True)
    return {"full_name": inputs["full_name"], "alias_name": doc.get("alias_name") or inputs["alias"],
            "version_num": doc.get("version_num") if isinstance(doc.get("version_num"), int) else int(inputs["version"])}


def delete_model_alias(session, inputs):
    session.request("DELETE", _path(inputs["full_name"], f"/aliases/{quote(inputs['alias'], safe='')}"),
                    idempotent=False)                 # a repeat would answer 404
    return {"full_name": inputs["full_name"], "alias_name": inputs["alias"], "deleted": True}


def select_registered_model(session, inputs):
    found, _ = session.paginate(API, items="registered_models", params={"max_results": 1000}, max_items=1000,
                                require=("full_name",))
    return [{"label": m["full_name"], "value": m["full_name"]} for m in found]


def select_model_version(session, inputs):
    found, _ = session.paginate(_path(inputs["full_name"], "/versions"), items="model_versions",
                                params={"max_results": 1000}, max_items=1000)
    out = []
    for v in found:
        if not isinstance(v.get("version"), int):
            continue
        aliases = ", ".join(a.get("alias_name", "") for a in v.get("aliases") or [])
        out.append({"label": f"{v['version']} ({v.get('status', 'UNKNOWN')}" + (f"; {aliases})" if aliases else ")"),
                    "value": v["version"]})
    return out
