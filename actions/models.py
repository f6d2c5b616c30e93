"""Models in Unity Catalog (API 2.1): registered models, versions and aliases.

A model is named by its three-level full name, quoted as one path segment. Lists page with
``page_token``/``next_page_token``. Versions are created by MLflow's client (upload, then
finalize), so this area reads them and moves aliases, the promotion mechanism of Unity Catalog.
"""
from __future__ import annotations

from urllib.parse import quote

from ..errors import ConnectorError

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


# --------------------------------------------------------------------------- triggers (polling; see connector/triggers.py)

def model_version_ready(session, inputs, poll):
    """Each version that is READY and was not READY (or not there) at activation fires once. The
    versions are read newest first, every page within the poll's bounds; the dedupe keys are the
    versions already handled, so a version still registering at activation fires when READY."""
    full = inputs["full_name"]
    token, versions = None, []
    while poll.page():
        params = {"max_results": 1000, **({"page_token": token} if token else {})}
        page = session.get(_path(full, "/versions"), params)
        versions.extend(v for v in page.get("model_versions") or [] if isinstance(v, dict)
                        and isinstance(v.get("version"), int))
        token = page.get("next_page_token")
        if not token:
            break
    if poll.first and token and versions:           # the oldest versions were not read: they are history
        poll.data["history_below"] = min(v["version"] for v in versions)
    below = poll.data.get("history_below", 0)
    for v in sorted(versions, key=lambda v: v["version"]):
        if v.get("status") != "READY":
            continue
        key = f"{full}/{v['version']}"
        history = poll.first or v["version"] < below
        if history and not (poll.since is not None and poll.is_new(v.get("created_at"))):
            poll.remember(key, v["version"])          # history: READY before the trigger was activated
            continue
        poll.emit(key, {"event_id": key, "full_name": full, "version": v["version"], "status": "READY",
                        "run_id": v.get("run_id"), "source": v.get("source"),
                        "aliases": [a.get("alias_name") for a in v.get("aliases") or [] if a.get("alias_name")],
                        "created_at": v.get("created_at"), "model_version": v}, v["version"])
    return poll.result()


# --------------------------------------------------------------------------- the workspace model registry (legacy)

MLFLOW = "/api/2.0/mlflow"


def search_registered_models(session, inputs):
    params = {"max_results": 1000}
    if inputs.get("filter"):
        params["filter"] = inputs["filter"]
    found, truncated = session.paginate(f"{MLFLOW}/registered-models/search", items="registered_models", params=params,
                                        max_items=inputs.get("max_items"))
    return {"registered_models": found, "count": len(found), "truncated": truncated}


def get_latest_model_versions(session, inputs):
    body = {"name": inputs["name"]}
    if inputs.get("stages"):
        body["stages"] = inputs["stages"]
    doc = session.post(f"{MLFLOW}/registered-models/get-latest-versions", body, idempotent=True)
    versions = [v for v in doc.get("model_versions") or [] if isinstance(v, dict)]
    return {"name": inputs["name"], "model_versions": versions, "count": len(versions)}


def transition_model_version_stage(session, inputs):
    body = {"name": inputs["name"], "version": str(inputs["version"]), "stage": inputs["stage"],
            "archive_existing_versions": bool(inputs.get("archive_existing_versions"))}
    if inputs.get("comment"):
        body["comment"] = inputs["comment"]
    doc = session.post(f"{MLFLOW}/databricks/model-versions/transition-stage", body, idempotent=True)
    version = doc.get("model_version_databricks") or doc.get("model_version")
    if not isinstance(version, dict):
        raise ConnectorError("server_error", "Databricks answered the stage transition without the model version",
                             hint="Check the version's stage with Get Latest Model Versions before running the step again.")
    return version
