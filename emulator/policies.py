"""Cluster policies and instance pools (Clusters API 2.0 neighbours), and policy enforcement on
cluster create.

Seeded on first use: three policies ("Personal Compute", the workspace's default, "Job Compute",
and "Small Clusters" with a fixed auto-termination, a worker range, a node-type allowlist and
defaults) and one ACTIVE instance pool per workspace ("Default Pool"). Tests add their own with
:func:`add_policy` / :func:`add_pool`.

Enforcement (:func:`enforce`, called by ``clusters/create``) follows Databricks' policy
definitions: a JSON object of ``path: rule`` where the path is a cluster attribute (``num_workers``,
``spark_version``, ``autoscale.max_workers``, ``custom_tags.<tag>``, ``spark_conf.<key>``,
``aws_attributes.availability``, ...) and the rule's ``type`` is ``fixed`` (``value``), ``forbidden``,
``allowlist``/``blocklist`` (``values``), ``regex`` (``pattern``), ``range`` (``minValue``/
``maxValue``) or ``unlimited``; ``isOptional: false`` makes an attribute required; ``defaultValue``
fills an omitted attribute when the request sets ``apply_policy_default_values`` (fixed values are
applied either way). Every violation is listed in one 400 INVALID_PARAMETER_VALUE whose message
starts "Cluster validation error". A pool gives the cluster its node type; giving another is
refused.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any, Dict

from .api import ApiError, copy_json, invalid_parameter, route

POLICIES = r"/api/2\.0/policies/clusters"
POOLS = r"/api/2\.0/instance-pools"
_MISSING = object()


def _node_types(state) -> list:
    from .clusters import node_types

    return [t["node_type_id"] for t in node_types(state)]


def _seed_policies(state) -> Dict[str, dict]:
    nodes = _node_types(state)
    small = nodes[:3]
    definitions = {
        "Personal Compute": {"spark_conf.spark.databricks.cluster.profile": {"type": "fixed", "value": "singleNode",
                                                                             "hidden": True},
                             "num_workers": {"type": "fixed", "value": 0, "hidden": True},
                             "node_type_id": {"type": "allowlist", "values": nodes[:5], "defaultValue": nodes[0]},
                             "spark_version": {"type": "unlimited", "defaultValue": "13.3.x-scala2.12"}},
        "Job Compute": {"cluster_type": {"type": "fixed", "value": "job"},
                        "node_type_id": {"type": "unlimited", "defaultValue": nodes[0]}},
        "Small Clusters": {"autotermination_minutes": {"type": "fixed", "value": 60, "hidden": True},
                           "num_workers": {"type": "range", "minValue": 1, "maxValue": 4, "defaultValue": 2},
                           "node_type_id": {"type": "allowlist", "values": small, "defaultValue": small[0]},
                           "spark_version": {"type": "unlimited", "defaultValue": "13.3.x-scala2.12"},
                           "custom_tags.team": {"type": "fixed", "value": "analytics"}},
    }
    store: Dict[str, dict] = {}
    for i, (name, definition) in enumerate(definitions.items()):
        p = _policy(state, name, definition, description=f"The {name} policy", is_default=(i == 0))
        if name == "Personal Compute":
            p["policy_family_id"] = "personal-vm"
        store[p["policy_id"]] = p
    return store


def _policy(state, name: str, definition: dict, *, description=None, is_default=False,
            max_clusters_per_user=None, creator="emulator-user@example.com") -> dict:
    p = {"policy_id": uuid.uuid4().hex[:16].upper(), "name": name, "definition": json.dumps(definition),
         "creator_user_name": creator, "created_at_timestamp": state.now_ms(), "is_default": is_default}
    if description:
        p["description"] = description
    if max_clusters_per_user is not None:
        p["max_clusters_per_user"] = max_clusters_per_user
    return p


def policies(state) -> Dict[str, dict]:
    return state.area("cluster_policies", lambda: _seed_policies(state))


def _seed_pools(state) -> Dict[str, dict]:
    pool = _pool(state, "Default Pool", _node_types(state)[0], min_idle_instances=1, max_capacity=10)
    return {pool["instance_pool_id"]: pool}


def _pool(state, name: str, node_type_id: str, **fields) -> dict:
    pid = f"{uuid.uuid4().hex[:4]}-{uuid.uuid4().hex[:6]}-pool-{uuid.uuid4().hex[:8]}"
    pool = {"instance_pool_id": pid, "instance_pool_name": name, "node_type_id": node_type_id, "state": "ACTIVE",
            "idle_instance_autotermination_minutes": fields.pop("idle_instance_autotermination_minutes", 60),
            "enable_elastic_disk": True, "preloaded_spark_versions": [], "custom_tags": {},
            "default_tags": {"Vendor": "Databricks", "DatabricksInstancePoolCreatorId": "1",
                             "DatabricksInstancePoolId": pid},
            "stats": {"used_count": 0, "idle_count": fields.get("min_idle_instances", 0), "pending_used_count": 0,
                      "pending_idle_count": 0}, "status": {}}
    pool.update(fields)
    return pool


def pools(state) -> Dict[str, dict]:
    return state.area("instance_pools", lambda: _seed_pools(state))


def add_policy(state, name: str, definition: dict, **fields) -> str:
    """A cluster policy (for tests and scenarios); returns its id."""
    with state.lock:
        p = _policy(state, name, definition, **fields)
        policies(state)[p["policy_id"]] = p
        return p["policy_id"]


def add_pool(state, name: str, node_type_id=None, **fields) -> str:
    """An ACTIVE instance pool (for tests and scenarios); returns its id."""
    with state.lock:
        pool = _pool(state, name, node_type_id or _node_types(state)[0], **fields)
        pools(state)[pool["instance_pool_id"]] = pool
        return pool["instance_pool_id"]


# --------------------------------------------------------------------------- routes

@route("GET", POLICIES + r"/list")
def list_policies(req):
    column = req.q("sort_column", "POLICY_CREATION_TIME")
    order = req.q("sort_order", "DESC")
    if column not in ("POLICY_CREATION_TIME", "POLICY_NAME") or order not in ("ASC", "DESC"):
        raise invalid_parameter("sort_column must be POLICY_CREATION_TIME or POLICY_NAME; sort_order ASC or DESC")
    with req.state.lock:
        found = list(policies(req.state).values())
        key = (lambda p: p["name"].lower()) if column == "POLICY_NAME" else (lambda p: p["created_at_timestamp"])
        found.sort(key=key, reverse=order == "DESC")
        out = {"policies": [copy_json(p) for p in found]}
    return out


@route("GET", POLICIES + r"/get")
def get_policy(req):
    pid = req.q("policy_id")
    if not pid:
        raise invalid_parameter("Missing required field: policy_id")
    with req.state.lock:
        p = policies(req.state).get(pid)
        if p is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Can't find a cluster policy with id: {pid}.")
        return copy_json(p)


@route("GET", POOLS + r"/list")
def list_pools(req):
    with req.state.lock:
        found = [copy_json(p) for p in pools(req.state).values() if p["state"] != "DELETED"]
    return {"instance_pools": found} if found else {}


@route("GET", POOLS + r"/get")
def get_pool(req):
    pid = req.q("instance_pool_id")
    if not pid:
        raise invalid_parameter("Missing required field: instance_pool_id")
    with req.state.lock:
        p = pools(req.state).get(pid)
        if p is None or p["state"] == "DELETED":
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Instance pool {pid} does not exist.")
        return copy_json(p)


# --------------------------------------------------------------------------- enforcement

def _get_path(body: dict, path: str):
    head, _, rest = path.partition(".")
    if head in ("custom_tags", "spark_conf", "spark_env_vars") and rest:
        return (body.get(head) or {}).get(rest, _MISSING)
    cur: Any = body
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def _set_path(body: dict, path: str, value) -> None:
    head, _, rest = path.partition(".")
    if head in ("custom_tags", "spark_conf", "spark_env_vars") and rest:
        body.setdefault(head, {})[rest] = value
        return
    parts = path.split(".")
    cur = body
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


# attributes of a policy definition that describe the cluster's kind, not a request field
_VIRTUAL = ("cluster_type", "dbus_per_hour")


def enforce(state, body: dict) -> dict:
    """The create request with the policy applied (fixed values, and defaults when asked), or a 400
    naming every violation; ``body`` without a ``policy_id`` or ``instance_pool_id`` is unchanged."""
    body = copy_json(body)
    pool_id = body.get("instance_pool_id")
    if pool_id is not None:
        with state.lock:
            pool = pools(state).get(pool_id) if isinstance(pool_id, str) else None
        if pool is None or pool["state"] == "DELETED":
            raise invalid_parameter(f"Instance pool {pool_id} does not exist.")
        if body.get("node_type_id") not in (None, pool["node_type_id"]):
            raise invalid_parameter(f"node_type_id {body['node_type_id']} cannot be set for a cluster in instance "
                                    f"pool {pool_id} (its node type is {pool['node_type_id']}).")
        body["node_type_id"] = pool["node_type_id"]
    pid = body.get("policy_id")
    if pid is None:
        return body
    with state.lock:
        policy = policies(state).get(pid) if isinstance(pid, str) else None
    if policy is None:
        raise invalid_parameter(f"Cluster policy {pid} does not exist.")
    definition = json.loads(policy["definition"] or "{}")
    defaults = bool(body.get("apply_policy_default_values"))
    problems = []
    for path, rule in definition.items():
        if path in _VIRTUAL or not isinstance(rule, dict):
            continue
        kind = rule.get("type", "unlimited")
        value = _get_path(body, path)
        if value is _MISSING:
            if kind == "fixed":
                _set_path(body, path, rule.get("value"))
                continue
            if defaults and "defaultValue" in rule:
                _set_path(body, path, rule["defaultValue"])
                value = rule["defaultValue"]
            elif rule.get("isOptional") is False:
                problems.append(f"Validation failed for {path}, the value must be present")
                continue
            else:
                continue
        if kind == "fixed" and value != rule.get("value"):
            problems.append(f"Validation failed for {path}, the value must be {json.dumps(rule.get('value'))} "
                            f"(is {json.dumps(value)})")
        elif kind == "forbidden":
            problems.append(f"Validation failed for {path}, the value must not be present")
        elif kind == "allowlist" and value not in (rule.get("values") or []):
            problems.append(f"Validation failed for {path}, the value must be one of "
                            f"{json.dumps(rule.get('values'))} (is {json.dumps(value)})")
        elif kind == "blocklist" and value in (rule.get("values") or []):
            problems.append(f"Validation failed for {path}, the value must not be one of "
                            f"{json.dumps(rule.get('values'))} (is {json.dumps(value)})")
        elif kind == "regex" and not (isinstance(value, str) and re.fullmatch(rule.get("pattern", ".*"), value)):
            problems.append(f"Validation failed for {path}, the value must match {rule.get('pattern')!r} "
                            f"(is {json.dumps(value)})")
        elif kind == "range":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                problems.append(f"Validation failed for {path}, the value must be a number (is {json.dumps(value)})")
            elif "minValue" in rule and value < rule["minValue"]:
                problems.append(f"Validation failed for {path}, the value must be at least {rule['minValue']} "
                                f"(is {value})")
            elif "maxValue" in rule and value > rule["maxValue"]:
                problems.append(f"Validation failed for {path}, the value must be at most {rule['maxValue']} "
                                f"(is {value})")
    if problems:
        raise invalid_parameter("Cluster validation error: " + "; ".join(problems))
    return body
