"""Cluster policies and instance pools (API 2.0)."""
from __future__ import annotations

POLICIES = "/api/2.0/policies/clusters"
POOLS = "/api/2.0/instance-pools"


def list_cluster_policies(session, inputs):
    params = {"sort_column": inputs.get("sort_by", "POLICY_CREATION_TIME"), "sort_order": inputs.get("sort_order", "DESC")}
    found, _ = session.paginate(f"{POLICIES}/list", items="policies", params=params, require=("policy_id",))
    return {"policies": found, "count": len(found)}


def get_cluster_policy(session, inputs):
    return session.get(f"{POLICIES}/get", {"policy_id": inputs["policy_id"]}, require=("policy_id",))


def list_instance_pools(session, inputs):
    found, _ = session.paginate(f"{POOLS}/list", items="instance_pools", require=("instance_pool_id",))
    return {"instance_pools": found, "count": len(found)}


def get_instance_pool(session, inputs):
    return session.get(f"{POOLS}/get", {"instance_pool_id": inputs["instance_pool_id"]}, require=("instance_pool_id",))


def select_cluster_policy(session, inputs):
    found, _ = session.paginate(f"{POLICIES}/list", items="policies", params={"sort_column": "POLICY_NAME",
                                                                             "sort_order": "ASC"}, require=("policy_id",))
    return [{"label": p.get("name") or p["policy_id"], "value": p["policy_id"]} for p in found]


def select_instance_pool(session, inputs):
    found, _ = session.paginate(f"{POOLS}/list", items="instance_pools", require=("instance_pool_id",))
    return [{"label": f"{p.get('instance_pool_name') or p['instance_pool_id']} ({p.get('node_type_id', '?')})",
             "value": p["instance_pool_id"]} for p in found]
