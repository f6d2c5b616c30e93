"""Cluster policies and instance pools over real HTTP against the emulator: list, get, pickers,
and Create Cluster with a policy (fixed values and defaults applied, violations refused with
Databricks' error) and a pool (its node type)."""
import pytest

from databricks_connector.errors import ConnectorError

from .scenarios import SPARK
from .scenarios.policies import seed_policy, seed_pool

SMALL = {"num_workers": {"type": "range", "minValue": 1, "maxValue": 4, "defaultValue": 2},
         "autotermination_minutes": {"type": "fixed", "value": 60},
         "spark_version": {"type": "unlimited", "defaultValue": SPARK},
         "custom_tags.team": {"type": "fixed", "value": "analytics"},
         "runtime_engine": {"type": "forbidden"}}


def _node(emulator):
    from databricks_connector.emulator.clusters import node_types
    return node_types(emulator.state)[0]["node_type_id"]


def test_list_get_and_pick_policies_and_pools(connector, conn, emulator):
    pid = seed_policy(emulator, f"aaa-{conn['type']}", SMALL)
    listed = connector.run("list_cluster_policies", conn, {"sort_by": "POLICY_NAME", "sort_order": "ASC"})
    names = [p["name"] for p in listed["policies"]]
    assert names == sorted(names, key=str.lower) and listed["count"] == len(names)
    got = connector.run("get_cluster_policy", conn, {"policy_id": pid})
    import json
    assert json.loads(got["definition"]) == SMALL
    assert {"label": f"aaa-{conn['type']}", "value": pid} in connector.pick("select_cluster_policy", conn)

    pool = seed_pool(emulator, f"pool-{conn['type']}", min_idle_instances=2)
    pools = connector.run("list_instance_pools", conn, {})["instance_pools"]
    assert pool in {p["instance_pool_id"] for p in pools}
    got = connector.run("get_instance_pool", conn, {"instance_pool_id": pool})
    assert got["state"] == "ACTIVE" and got["min_idle_instances"] == 2 and got["node_type_id"] == _node(emulator)
    assert any(o["value"] == pool and o["label"] == f"pool-{conn['type']} ({_node(emulator)})"
               for o in connector.pick("select_instance_pool", conn))
    with pytest.raises(ConnectorError) as err:
        connector.run("get_cluster_policy", conn, {"policy_id": "0000000000000000"})
    assert err.value.type == "not_found" and err.value.status == 404


def test_create_cluster_applies_the_policy_defaults(connector, pat, emulator):
    pid = seed_policy(emulator, "defaults", SMALL)
    pool = seed_pool(emulator, "create-pool")
    out = connector.run("create_cluster", pat, {"cluster_name": "from-policy", "policy_id": pid,
                                                "apply_policy_default_values": True, "instance_pool_id": pool})
    c = connector.run("get_cluster", pat, {"cluster_id": out["cluster_id"]})
    assert c["policy_id"] == pid and c["num_workers"] == 2 and c["spark_version"] == SPARK
    assert c["autotermination_minutes"] == 60 and c["custom_tags"]["team"] == "analytics"
    assert c["instance_pool_id"] == pool and c["node_type_id"] == _node(emulator)


def test_create_cluster_refuses_what_the_policy_forbids(connector, pat, emulator):
    pid = seed_policy(emulator, "strict", SMALL)
    before = emulator.state.applied["clusters/create"]
    with pytest.raises(ConnectorError) as err:
        connector.run("create_cluster", pat, {"policy_id": pid, "spark_version": SPARK, "num_workers": 8,
                                              "node_type_id": _node(emulator), "autotermination_minutes": 30,
                                              "runtime_engine": "PHOTON"})
    e = err.value
    assert e.status == 400 and e.error_code == "INVALID_PARAMETER_VALUE" and "Cluster validation error" in e.message
    for path in ("num_workers", "autotermination_minutes", "runtime_engine"):
        assert f"Validation failed for {path}" in e.message, e.message
    assert emulator.state.applied["clusters/create"] == before
    # without Apply Policy Default Values the size and Spark version stay required, before any request
    with pytest.raises(ConnectorError) as err:
        connector.run("create_cluster", pat, {"policy_id": pid})
    assert err.value.type == "invalid_input" and "Spark Version" in err.value.message
    # a pool's node type is the cluster's: another is refused
    with pytest.raises(ConnectorError) as err:
        connector.run("create_cluster", pat, {"spark_version": SPARK, "num_workers": 1, "node_type_id": "r5.large",
                                              "instance_pool_id": seed_pool(emulator, "nt-pool")})
    assert err.value.status == 400 and "instance pool" in err.value.message
