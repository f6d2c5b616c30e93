"""Scenarios of the clusters area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import NODE, SPARK, _unknown_cluster, scenario, seed_cluster


# --------------------------------------------------------------------------- clusters: reads

@scenario("get_cluster", check=lambda out, inputs, conn: out.get("cluster_id") == inputs["cluster_id"],
          failing=_unknown_cluster)
def _get_cluster(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING")}


@scenario("list_clusters", check=lambda out, inputs, conn: isinstance(out.get("clusters"), list)
          and out["count"] == len(out["clusters"]))
def _list_clusters(emulator, connector, conn):
    seed_cluster(emulator, "RUNNING")
    return {"states": ["RUNNING"], "max_items": 5}


@scenario("list_node_types")
def _list_node_types(emulator, connector, conn):
    return {}


@scenario("list_spark_versions")
def _list_spark_versions(emulator, connector, conn):
    return {}


@scenario("get_cluster_events", failing=_unknown_cluster, retry_safe="natural", main=("POST", r"/api/2\.1/clusters/events"),   # a read sent as a POST
          check=lambda out, inputs, conn: isinstance(out.get("events"), list))
def _get_cluster_events(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "max_items": 10}


def _wait_cluster(target):
    def prep(emulator, connector, conn):
        emulator.config.cluster_start_seconds = 1.5
        emulator.config.cluster_terminate_seconds = 1.5
        cid = seed_cluster(emulator, "PENDING" if target == "RUNNING" else "TERMINATING")
        return {"cluster_id": cid, "target_state": target, "timeout_seconds": 30, "poll_interval_seconds": 0.2}
    return prep


@scenario("wait_for_cluster_state", failing=_unknown_cluster,
          check=lambda out, inputs, conn: out.get("cluster_id") == inputs["cluster_id"],
          wait=_wait_cluster("RUNNING"))
def _wait_for_cluster_state(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "target_state": "RUNNING", "timeout_seconds": 10,
            "poll_interval_seconds": 0.1}


# --------------------------------------------------------------------------- clusters: changes

@scenario("create_cluster", changes_state=True, applied=("clusters/create",), retry_safe="token",
          check=lambda out, inputs, conn: bool(out.get("cluster_id")))
def _create_cluster(emulator, connector, conn):
    return {"cluster_name": f"scn-{uuid.uuid4().hex[:8]}", "spark_version": SPARK, "node_type_id": NODE,
            "num_workers": 0}


@scenario("edit_cluster", changes_state=True, applied=("clusters/edit",),
          failing=_unknown_cluster)
def _edit_cluster(emulator, connector, conn):
    cid = seed_cluster(emulator, "TERMINATED")
    return {"cluster_id": cid, "cluster_name": "edited", "spark_version": SPARK, "node_type_id": NODE,
            "num_workers": 2}


@scenario("resize_cluster", changes_state=True, applied=("clusters/resize",),
          failing=_unknown_cluster)
def _resize_cluster(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING"), "num_workers": 3}


def _lifecycle(state, **extra):
    def prep(emulator, connector, conn):
        return {"cluster_id": seed_cluster(emulator, state), **extra}
    return prep


def _wait_start(emulator, connector, conn):
    emulator.config.cluster_start_seconds = 1.5
    return {"cluster_id": seed_cluster(emulator, "TERMINATED"), "wait_for_state": True, "timeout_seconds": 30,
            "poll_interval_seconds": 0.2}


scenario("start_terminated_cluster", changes_state=True, applied=("clusters/start",), failing=_unknown_cluster,
         wait=_wait_start)(_lifecycle("TERMINATED"))
scenario("restart_cluster", changes_state=True, applied=("clusters/restart",), failing=_unknown_cluster)(
    _lifecycle("RUNNING"))
scenario("terminate_cluster", changes_state=True, applied=("clusters/delete",), retry_safe="natural",
         failing=_unknown_cluster)(_lifecycle("RUNNING"))
scenario("permanently_delete_cluster", changes_state=True, applied=("clusters/permanent-delete",),
         failing=_unknown_cluster)(_lifecycle("TERMINATED"))
scenario("pin_cluster", changes_state=True, applied=("clusters/pin",), retry_safe="natural",
         failing=_unknown_cluster)(_lifecycle("RUNNING"))


@scenario("unpin_cluster", changes_state=True, applied=("clusters/unpin",), retry_safe="natural",
          failing=_unknown_cluster)
def _unpin(emulator, connector, conn):
    return {"cluster_id": seed_cluster(emulator, "RUNNING", is_pinned=True)}
