"""Scenarios of the libraries area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import _unknown_cluster, scenario, seed_cluster


def _unknown_cluster_lib(emulator, connector, conn):
    return {**_unknown_cluster(emulator, connector, conn), "pypi_packages": ["six"]}


def _package() -> str:
    return f"scn-pkg-{uuid.uuid4().hex[:8]}==1.0"


def _wait_install(emulator, connector, conn):
    emulator.config.update({"library_install_seconds": 0.5})
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "pypi_packages": [_package()],
            "wait_for_installation": True, "timeout_seconds": 60, "poll_interval_seconds": 0.2}


@scenario("install_libraries", changes_state=True, applied=("libraries/install",), retry_safe="natural",
          failing=_unknown_cluster_lib, wait=_wait_install,
          check=lambda out, inputs, conn: out.get("cluster_id") == inputs["cluster_id"])
def _install_libraries(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "pypi_packages": [_package()],
            "maven_coordinates": ["com.example:scn_2.12:1.0.0"]}


@scenario("uninstall_libraries", changes_state=True, applied=("libraries/uninstall",), retry_safe="natural",
          failing=_unknown_cluster_lib, check=lambda out, inputs, conn: out.get("cluster_id") == inputs["cluster_id"])
def _uninstall_libraries(emulator, connector, conn):
    from databricks_connector.emulator import libraries

    cid = seed_cluster(emulator, "RUNNING")
    pkg = _package()
    with emulator.state.lock:
        libraries._store(emulator.state)[cid] = [{"library": {"pypi": {"package": pkg}}, "status": "PENDING",
                                                  "_added": 0.0, "_from": 0.0, "_ctx": None, "_problem": None}]
    return {"cluster_id": cid, "pypi_packages": [pkg]}


@scenario("get_library_status", failing=_unknown_cluster,
          check=lambda out, inputs, conn: out.get("cluster_id") == inputs["cluster_id"])
def _get_library_status(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING")}
