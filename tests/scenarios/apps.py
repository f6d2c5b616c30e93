"""Scenarios of the apps area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import scenario, seed_notebook

APP_SOURCE = "/Shared/apps/scenario"


def seed_app(emulator, compute: str = "ACTIVE", deployed: bool = True) -> str:
    from databricks_connector.emulator import apps

    return apps.add_app(emulator.state, f"scn-{uuid.uuid4().hex[:8]}", compute=compute,
                        source_code_path=f"/Workspace{APP_SOURCE}" if deployed else None)


def seed_source(emulator) -> str:
    seed_notebook(emulator, f"{APP_SOURCE}/app", "print('app')", once=True)
    return f"/Workspace{APP_SOURCE}"


def _unknown_app(emulator, connector, conn):
    return {"app_name": "no-such-app"}


def _same_app(out, inputs, conn):
    return out.get("name") == inputs["app_name"]


@scenario("list_apps", check=lambda out, inputs, conn: out.get("count") == len(out.get("apps", [])))
def _list_apps(emulator, connector, conn):
    seed_app(emulator)
    return {"max_items": 5}


@scenario("get_app", check=_same_app, failing=_unknown_app)
def _get_app(emulator, connector, conn):
    return {"app_name": seed_app(emulator)}


def _wait_start(emulator, connector, conn):
    emulator.config.update({"app_start_seconds": 1.0})
    return {"app_name": seed_app(emulator, "STOPPED"), "wait_for_state": True, "timeout_seconds": 60,
            "poll_interval_seconds": 0.2}


@scenario("start_app", changes_state=True, applied=("apps/start",), retry_safe="natural", check=_same_app,
          failing=_unknown_app, wait=_wait_start)
def _start_app(emulator, connector, conn):
    return {"app_name": seed_app(emulator, "STOPPED")}


def _wait_stop(emulator, connector, conn):
    emulator.config.update({"app_stop_seconds": 1.0})
    return {"app_name": seed_app(emulator, "ACTIVE"), "wait_for_state": True, "timeout_seconds": 60,
            "poll_interval_seconds": 0.2}


@scenario("stop_app", changes_state=True, applied=("apps/stop",), retry_safe="natural", check=_same_app,
          failing=_unknown_app, wait=_wait_stop)
def _stop_app(emulator, connector, conn):
    return {"app_name": seed_app(emulator, "ACTIVE")}


def _wait_deploy(emulator, connector, conn):
    emulator.config.update({"app_deploy_seconds": 1.0})
    return {"app_name": seed_app(emulator, deployed=False), "source_code_path": seed_source(emulator),
            "wait_for_completion": True, "timeout_seconds": 60, "poll_interval_seconds": 0.2}


@scenario("deploy_app", changes_state=True, applied=("apps/deploy",), failing=_unknown_app, wait=_wait_deploy,
          check=lambda out, inputs, conn: bool(out.get("deployment_id")))
def _deploy_app(emulator, connector, conn):
    emulator.config.update({"app_deploy_seconds": 0.05})     # waited for: a second deploy finds none in progress
    return {"app_name": seed_app(emulator, deployed=False), "source_code_path": seed_source(emulator),
            "wait_for_completion": True, "timeout_seconds": 60, "poll_interval_seconds": 0.1}
