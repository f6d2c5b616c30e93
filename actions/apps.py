"""Databricks Apps API 2.0: apps, their compute and deployments."""
from __future__ import annotations

from urllib.parse import quote

from ..errors import ConnectorError

API = "/api/2.0/apps"


def _path(name: str, suffix: str = "") -> str:
    return f"{API}/{quote(name, safe='')}{suffix}"


def list_apps(session, inputs):
    found, truncated = session.paginate(API, items="apps", params={"page_size": 100}, max_items=inputs.get("max_items"),
                                        require=("name",))
    return {"apps": found, "count": len(found), "truncated": truncated}


def get_app(session, inputs):
    return session.get(_path(inputs["app_name"]), require=("name",))


def select_app(session, inputs):
    found, _ = session.paginate(API, items="apps", params={"page_size": 100}, require=("name",))
    return [{"label": f"{a['name']} ({(a.get('app_status') or {}).get('state', 'UNKNOWN')})", "value": a["name"]}
            for a in found]


def _compute(app) -> str:
    return (app.get("compute_status") or {}).get("state") or "UNKNOWN"


def _wait_compute(session, name, target, failure, inputs):
    def poll():
        app = session.get(_path(name), require=("name",))
        state = _compute(app)
        if state in failure:
            message = (app.get("compute_status") or {}).get("message") or ""
            raise ConnectorError("operation_failed", f"App {name}'s compute is {state}, not {target}"
                                 + (f": {message}" if message else ""), details={"app_name": name, "state": state},
                                 hint="Check the app's compute status in the workspace and start it again.")
        return state == target, app, state

    return session.wait(poll, what=f"app {name} to be {target}", timeout=inputs["timeout_seconds"],
                        interval=inputs["poll_interval_seconds"], follow_up="get_app")


def start_app(session, inputs):
    name = inputs["app_name"]
    app = session.start("start", lambda: session.post(_path(name, "/start"), {}, idempotent=True),
                        ids={"app_name": name}, follow_up="get_app")
    if inputs.get("wait_for_state"):
        return _wait_compute(session, name, "ACTIVE", ("ERROR", "STOPPED", "DELETING"), inputs)
    return app if isinstance(app, dict) and app.get("name") else get_app(session, inputs)


def stop_app(session, inputs):
    name = inputs["app_name"]
    app = session.start("stop", lambda: session.post(_path(name, "/stop"), {}, idempotent=True),
                        ids={"app_name": name}, follow_up="get_app")
    if inputs.get("wait_for_state"):
        return _wait_compute(session, name, "STOPPED", ("ERROR", "DELETING"), inputs)
    return app if isinstance(app, dict) and app.get("name") else get_app(session, inputs)


def deploy_app(session, inputs):
    name = inputs["app_name"]
    body = {"mode": inputs.get("mode", "SNAPSHOT")}
    if inputs.get("source_code_path"):
        body["source_code_path"] = inputs["source_code_path"]
    d = session.start("deploy", lambda: session.post(_path(name, "/deployments"), body, require=("deployment_id",)),
                      ids=lambda doc: {"app_name": name, "deployment_id": doc.get("deployment_id")},
                      follow_up="get_app")
    if not inputs.get("wait_for_completion"):
        return d
    did = d["deployment_id"]

    def poll():
        dep = session.get(_path(name, f"/deployments/{quote(did, safe='')}"), require=("deployment_id",))
        state = (dep.get("status") or {}).get("state") or "UNKNOWN"
        return state in ("SUCCEEDED", "FAILED", "CANCELLED"), dep, state

    dep = session.wait(poll, what=f"deployment {did} of app {name}", timeout=inputs["timeout_seconds"],
                       interval=inputs["poll_interval_seconds"], follow_up="get_app")
    status = dep.get("status") or {}
    if status.get("state") != "SUCCEEDED":
        message = status.get("message") or ""
        raise ConnectorError("operation_failed", f"Deployment {did} of app {name} ended {status.get('state')}"
                             + (f": {message}" if message else ""),
                             hint="Fix the app's source code (or its path) and deploy again; the previous deployment "
                                  "keeps running.", details={"app_name": name, "deployment_id": did, "deployment": dep})
    return dep
