"""Databricks Apps API 2.0 (databricks-api-areas.md §2.9): apps, their compute and deployments.

An app's compute moves STOPPED -> STARTING -> ACTIVE (``app_start_seconds``) on create (unless
``no_compute``) and start, ACTIVE -> STOPPING -> STOPPED (``app_stop_seconds``) on stop; a
deployment moves IN_PROGRESS -> SUCCEEDED (``app_deploy_seconds``) and becomes the active
deployment, or FAILED when its source code path is not in the workspace (emulator/workspace.py).
Transitions are applied lazily whenever the app is read. ``app_status`` follows: RUNNING with an
active deployment on ACTIVE compute, DEPLOYING while the first deployment runs, UNAVAILABLE
otherwise. Deploying needs ACTIVE compute (400 INVALID_STATE otherwise), and one deployment at a
time. Changes are counted in ``state.applied["apps/<op>"]``.
"""
from __future__ import annotations

import datetime
import re
import uuid
from typing import Dict

from .api import ApiError, Snapshots, copy_json, invalid_parameter, invalid_state, route

API = r"/api/2\.0/apps"
APP = API + r"/(?P<name>[^/]+)"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,28}[a-z0-9]")


def apps(state) -> Dict[str, dict]:
    return state.area("apps", dict)


def _iso(seconds: float) -> str:
    dt = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _missing(name: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"App with name {name} does not exist or is deleted.")


def add_app(state, name: str, *, compute: str = "ACTIVE", source_code_path=None,
            creator: str = "emulator-user@example.com", description: str = "") -> str:
    """An app in a settled state (for tests and scenarios); with ``source_code_path`` it has an
    active deployment of it."""
    with state.lock:
        a = _new(state, {"name": name, "description": description}, creator)
        a["compute_status"] = {"state": compute, "message": f"App compute is {compute.lower()}."}
        if source_code_path:
            d = _deployment(state, a, {"source_code_path": source_code_path}, creator)
            d["status"] = {"state": "SUCCEEDED", "message": "App started successfully"}
            a["_deployments"][d["deployment_id"]] = d
            a["_active"] = d["deployment_id"]
        apps(state)[name] = a
        return name


def _new(state, body: dict, creator: str) -> dict:
    now = state.now()
    name = body["name"]
    return {"name": name, "id": str(uuid.uuid4()), "description": body.get("description") or "",
            "url": f"https://{name}-{state.workspace_id}.emulator.databricksapps.com",
            "service_principal_client_id": str(uuid.uuid4()), "service_principal_id": int(now * 1000) % 10 ** 15,
            "service_principal_name": f"app-{name}", "creator": creator, "updater": creator,
            "create_time": _iso(now), "update_time": _iso(now), "resources": copy_json(body.get("resources") or []),
            "compute_status": {"state": "STOPPED", "message": "App compute is stopped."}, "_plan": [],
            "_deployments": {}, "_order": [], "_active": None, "_pending": None}


def _deployment(state, a: dict, body: dict, creator: str) -> dict:
    now = state.now()
    did = uuid.uuid4().hex[:32]
    a["_order"].append(did)
    path = body.get("source_code_path") or a.get("default_source_code_path")
    return {"deployment_id": did, "source_code_path": path, "mode": body.get("mode") or "SNAPSHOT",
            "deployment_artifacts": {"source_code_path": f"/Workspace/Users/{a['service_principal_client_id']}/src/{did}"},
            "status": {"state": "IN_PROGRESS", "message": "Preparing source code for new app deployment."},
            "creator": creator, "create_time": _iso(now), "update_time": _iso(now), "_at": now}


def advance(state, a: dict) -> dict:
    now = state.now()
    while a["_plan"] and a["_plan"][0][0] <= now:
        _, new = a["_plan"].pop(0)
        a["compute_status"] = {"state": new, "message": f"App compute is {new.lower()}."}
    pid = a.get("_pending")
    if pid:
        d = a["_deployments"][pid]
        if d["_done_at"] <= now:
            from . import workspace

            path = d.get("source_code_path") or ""
            rel = path[len("/Workspace"):] if path.startswith("/Workspace/") else path
            if not path or workspace.resolve(state, rel) is None:
                d["status"] = {"state": "FAILED", "message": f"Source code path {path} does not exist."}
            else:
                d["status"] = {"state": "SUCCEEDED", "message": "App started successfully"}
                a["_active"] = pid
            d["update_time"] = _iso(d["_done_at"])
            a["_pending"] = None
    return a


def _get(req, name: str) -> dict:
    a = apps(req.state).get(name)
    if a is None:
        raise _missing(name)
    return advance(req.state, a)


def _public_deployment(d: dict) -> dict:
    return {k: copy_json(v) for k, v in d.items() if not k.startswith("_")}


def _public(a: dict) -> dict:
    out = {k: copy_json(v) for k, v in a.items() if not k.startswith("_")}
    compute = a["compute_status"]["state"]
    if a["_active"]:
        out["active_deployment"] = _public_deployment(a["_deployments"][a["_active"]])
        out["default_source_code_path"] = out["active_deployment"]["source_code_path"]
    if a["_pending"]:
        out["pending_deployment"] = _public_deployment(a["_deployments"][a["_pending"]])
    if compute == "ACTIVE" and a["_active"]:
        out["app_status"] = {"state": "RUNNING", "message": "App has status: App is running"}
    elif compute == "ACTIVE" and a["_pending"]:
        out["app_status"] = {"state": "DEPLOYING", "message": "App has status: App is being deployed"}
    elif compute == "ACTIVE":
        out["app_status"] = {"state": "UNAVAILABLE", "message": "App has not been deployed yet."}
    else:
        out["app_status"] = {"state": "UNAVAILABLE", "message": "App is not running: its compute is not active."}
    out["compute_status"]["active_instances"] = 1 if compute == "ACTIVE" else 0
    return out


def _schedule(state, a: dict, now_state: str, then: str, seconds: float) -> None:
    a["compute_status"] = {"state": now_state, "message": f"App compute is {now_state.lower()}."}
    a["_plan"] = [(state.now() + max(0.0, float(seconds)), then)]


# --------------------------------------------------------------------------- routes

@route("GET", API)
def list_apps(req):
    size = req.q_int("page_size", 50)
    if size is None or size < 1 or size > 100:
        raise invalid_parameter("page_size must be between 1 and 100")
    with req.state.lock:
        def build():
            return sorted(apps(req.state).values(), key=lambda a: a["name"])

        snapshots = req.state.area("app_list_snapshots", Snapshots)
        page, nxt, _ = snapshots.page(req.q("page_token"), build, size, "ap")
        out: dict = {"apps": [_public(advance(req.state, a)) for a in page]}
    if nxt:
        out["next_page_token"] = nxt
    return out


@route("POST", API)
def create_app(req):
    body = req.body
    name = body.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise invalid_parameter("name must be 2 to 30 lower-case letters, digits and dashes, not starting or "
                                "ending with a dash")
    with req.state.lock:
        if name in apps(req.state):
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"An app with name {name} already exists.")
        a = _new(req.state, body, getattr(req.principal, "user_name", "emulator-user@example.com"))
        if not req.q_bool("no_compute", False):
            _schedule(req.state, a, "STARTING", "ACTIVE", req.state.config.app_start_seconds)
        apps(req.state)[name] = a
        req.state.applied["apps/create"] += 1
        return _public(a)


@route("GET", APP)
def get_app(req):
    with req.state.lock:
        return _public(_get(req, req.params["name"]))


@route("DELETE", APP)
def delete_app(req):
    with req.state.lock:
        a = _get(req, req.params["name"])
        del apps(req.state)[a["name"]]
        req.state.applied["apps/delete"] += 1
        out = _public(a)
        out["compute_status"] = {"state": "DELETING", "message": "App compute is being deleted."}
        return out


@route("POST", APP + r"/start")
def start_app(req):
    with req.state.lock:
        a = _get(req, req.params["name"])
        if a["compute_status"]["state"] in ("STOPPED", "STOPPING", "ERROR"):
            _schedule(req.state, a, "STARTING", "ACTIVE", req.state.config.app_start_seconds)
            req.state.applied["apps/start"] += 1
        return _public(a)


@route("POST", APP + r"/stop")
def stop_app(req):
    with req.state.lock:
        a = _get(req, req.params["name"])
        if a["compute_status"]["state"] in ("ACTIVE", "STARTING", "UPDATING"):
            _schedule(req.state, a, "STOPPING", "STOPPED", req.state.config.app_stop_seconds)
            req.state.applied["apps/stop"] += 1
        return _public(a)


@route("POST", APP + r"/deployments")
def deploy(req):
    body = req.body
    mode = body.get("mode", "SNAPSHOT")
    if mode not in ("SNAPSHOT", "AUTO_SYNC"):
        raise invalid_parameter(f"Invalid mode: {mode!r} (SNAPSHOT or AUTO_SYNC)")
    path = body.get("source_code_path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise invalid_parameter("source_code_path must be a workspace path such as /Workspace/Users/me/app")
    with req.state.lock:
        a = _get(req, req.params["name"])
        if not path and not a["_active"]:
            raise invalid_parameter("source_code_path is required for the first deployment of an app")
        if a["compute_status"]["state"] != "ACTIVE":
            raise invalid_state(f"Cannot deploy app {a['name']}: its compute is {a['compute_status']['state']}; "
                                "start the app first.")
        if a["_pending"]:
            raise invalid_state(f"App {a['name']} has a deployment in progress ({a['_pending']}).")
        if not path:
            body = dict(body, source_code_path=a["_deployments"][a["_active"]]["source_code_path"])
        d = _deployment(req.state, a, body, getattr(req.principal, "user_name", "emulator-user@example.com"))
        d["_done_at"] = req.state.now() + max(0.0, float(req.state.config.app_deploy_seconds))
        a["_deployments"][d["deployment_id"]] = d
        a["_pending"] = d["deployment_id"]
        req.state.applied["apps/deploy"] += 1
        return _public_deployment(d)


@route("GET", APP + r"/deployments/(?P<id>[^/]+)")
def get_deployment(req):
    with req.state.lock:
        a = _get(req, req.params["name"])
        d = a["_deployments"].get(req.params["id"])
        if d is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Deployment {req.params['id']} of app {a['name']} "
                           "does not exist.")
        return _public_deployment(d)


@route("GET", APP + r"/deployments")
def list_deployments(req):
    with req.state.lock:
        a = _get(req, req.params["name"])
        return {"app_deployments": [_public_deployment(a["_deployments"][d]) for d in reversed(a["_order"])]}
