"""Scenarios of the policies area: cluster policies and instance pools (see tests/scenarios/__init__.py)."""
from __future__ import annotations

from . import scenario


def seed_policy(emulator, name="scn-policy", definition=None) -> str:
    from databricks_connector.emulator import policies

    return policies.add_policy(emulator.state, name, definition or {"num_workers": {"type": "range", "maxValue": 4}})


def seed_pool(emulator, name="scn-pool", **fields) -> str:
    from databricks_connector.emulator import policies

    return policies.add_pool(emulator.state, name, **fields)


@scenario("list_cluster_policies", check=lambda out, inputs, conn: out.get("count") == len(out.get("policies", [])))
def _list_cluster_policies(emulator, connector, conn):
    return {"sort_by": "POLICY_NAME", "sort_order": "ASC"}


@scenario("get_cluster_policy", check=lambda out, inputs, conn: out.get("policy_id") == inputs["policy_id"],
          failing=lambda emulator, connector, conn: {"policy_id": "0000000000000000"})
def _get_cluster_policy(emulator, connector, conn):
    return {"policy_id": seed_policy(emulator)}


@scenario("list_instance_pools", check=lambda out, inputs, conn: out.get("count") == len(out.get("instance_pools", [])))
def _list_instance_pools(emulator, connector, conn):
    return {}


@scenario("get_instance_pool", check=lambda out, inputs, conn: out.get("instance_pool_id") == inputs["instance_pool_id"],
          failing=lambda emulator, connector, conn: {"instance_pool_id": "0000-000000-pool-missing0"})
def _get_instance_pool(emulator, connector, conn):
    return {"instance_pool_id": seed_pool(emulator)}
