"""Clusters API (contract §5), served under /api/2.0 and /api/2.1.

States move lazily: each cluster keeps a queue of timed transitions that is applied whenever the
cluster is read (no background threads). The node-type catalogue, the zones and the default cloud
attributes follow ``config.cloud`` (AWS, AZURE or GCP). Lists are linear in their size: a 2.1
listing is paged over the order it had when its first page was read (a snapshot), and an event
listing over the filtered view computed once per filter.

Job clusters (``cluster_source: JOB``) are made by the jobs area through :func:`create_job_cluster`
and :func:`terminate_job_cluster`; they cannot be started, edited or used as an
``existing_cluster_id``.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import random
import secrets
import string
import time
from typing import Any, Dict, List, Optional

from .api import (ApiError, Snapshots, copy_json, decode_page_token, encode_page_token, invalid_parameter,
                  invalid_state, json_response, not_found, route)

V = r"/api/(?P<version>2\.[01])/clusters"

STATES = ["PENDING", "RUNNING", "RESTARTING", "RESIZING", "TERMINATING", "TERMINATED", "ERROR", "UNKNOWN"]
SOURCES = ["API", "JOB", "MODELS", "PIPELINE", "PIPELINE_MAINTENANCE", "SQL", "UI"]
PENDING_MESSAGE = "Finding instances for new nodes, acquiring more instances if necessary"
RETENTION_MS = 30 * 24 * 3600 * 1000
_SEQ = itertools.count(1)


def _nt(node_type_id: str, memory_mb: int, cores: float, category: str, *, gpus: int = 0, photon: bool = True,
        io_cache: bool = False, disks: Optional[dict] = None, cloud: str = "AWS", description: str = "") -> dict:
    out = {"node_type_id": node_type_id, "memory_mb": memory_mb, "num_cores": cores, "num_gpus": gpus,
           "description": description or node_type_id, "instance_type_id": node_type_id, "category": category,
           "support_ebs_volumes": cloud == "AWS", "support_cluster_tags": True, "support_port_forwarding": True,
           "is_io_cache_enabled": io_cache, "photon_driver_capable": photon, "photon_worker_capable": photon,
           "display_order": 0, "is_deprecated": False, "is_hidden": False,
           "node_instance_type": dict({"instance_type_id": node_type_id}, **(disks or {}))}
    if cloud == "AWS":
        out["is_graviton"] = False
    return out


NODE_TYPES_BY_CLOUD: Dict[str, List[dict]] = {
    "AWS": [
        _nt("i3.xlarge", 31232, 4.0, "Storage Optimized", io_cache=True,
            disks={"local_nvme_disks": 1, "local_nvme_disk_size_gb": 950}),
        _nt("i3.2xlarge", 62464, 8.0, "Storage Optimized", io_cache=True,
            disks={"local_nvme_disks": 1, "local_nvme_disk_size_gb": 1900}),
        _nt("m5d.large", 8192, 2.0, "General Purpose", photon=False, io_cache=True,
            disks={"local_nvme_disks": 1, "local_nvme_disk_size_gb": 75}),
        _nt("m5d.xlarge", 16384, 4.0, "General Purpose", io_cache=True,
            disks={"local_nvme_disks": 1, "local_nvme_disk_size_gb": 150}),
        _nt("r5d.xlarge", 32768, 4.0, "Memory Optimized", io_cache=True,
            disks={"local_nvme_disks": 1, "local_nvme_disk_size_gb": 150}),
        _nt("c5d.xlarge", 8192, 4.0, "Compute Optimized", io_cache=True,
            disks={"local_nvme_disks": 1, "local_nvme_disk_size_gb": 100}),
        _nt("g4dn.xlarge", 16384, 4.0, "GPU Accelerated", gpus=1, photon=False, description="g4dn.xlarge (GPU)",
            disks={"local_nvme_disks": 1, "local_nvme_disk_size_gb": 125}),
    ],
    "AZURE": [
        _nt("Standard_DS3_v2", 14336, 4.0, "General Purpose", cloud="AZURE",
            disks={"local_disks": 1, "local_disk_size_gb": 28}),
        _nt("Standard_DS4_v2", 28672, 8.0, "General Purpose", cloud="AZURE",
            disks={"local_disks": 1, "local_disk_size_gb": 56}),
        _nt("Standard_D4ds_v5", 16384, 4.0, "General Purpose", cloud="AZURE", io_cache=True,
            disks={"local_disks": 1, "local_disk_size_gb": 150}),
        _nt("Standard_E8ds_v4", 65536, 8.0, "Memory Optimized", cloud="AZURE", io_cache=True,
            disks={"local_disks": 1, "local_disk_size_gb": 300}),
        _nt("Standard_F4s", 8192, 4.0, "Compute Optimized", cloud="AZURE", photon=False,
            disks={"local_disks": 1, "local_disk_size_gb": 16}),
        _nt("Standard_NC6s_v3", 114688, 6.0, "GPU Accelerated", cloud="AZURE", gpus=1, photon=False,
            description="Standard_NC6s_v3 (GPU)", disks={"local_disks": 1, "local_disk_size_gb": 736}),
    ],
    "GCP": [
        _nt("n2-standard-4", 16384, 4.0, "General Purpose", cloud="GCP", disks={"local_disks": 0}),
        _nt("n2-standard-8", 32768, 8.0, "General Purpose", cloud="GCP", disks={"local_disks": 0}),
        _nt("n2-highmem-4", 32768, 4.0, "Memory Optimized", cloud="GCP", disks={"local_disks": 0}),
        _nt("n2d-standard-4", 16384, 4.0, "General Purpose", cloud="GCP", photon=False, disks={"local_disks": 0}),
        _nt("c2-standard-4", 16384, 4.0, "Compute Optimized", cloud="GCP", photon=False, disks={"local_disks": 0}),
        _nt("a2-highgpu-1g", 87040, 12.0, "GPU Accelerated", cloud="GCP", gpus=1, photon=False,
            description="a2-highgpu-1g (GPU)", disks={"local_disks": 0}),
    ],
}

ZONES = {"AWS": (["us-west-2a", "us-west-2b", "us-west-2c"], "us-west-2a"),
         "AZURE": (["1", "2", "3"], "1"),
         "GCP": (["us-central1-a", "us-central1-b", "us-central1-c"], "us-central1-a")}

SPARK_VERSIONS = [
    {"key": "10.4.x-scala2.12", "name": "10.4 LTS (includes Apache Spark 3.2.1, Scala 2.12)"},
    {"key": "11.3.x-scala2.12", "name": "11.3 LTS (includes Apache Spark 3.3.0, Scala 2.12)"},
    {"key": "12.2.x-scala2.12", "name": "12.2 LTS (includes Apache Spark 3.3.2, Scala 2.12)"},
    {"key": "13.3.x-scala2.12", "name": "13.3 LTS (includes Apache Spark 3.4.1, Scala 2.12)"},
    {"key": "13.3.x-photon-scala2.12", "name": "13.3 LTS Photon (includes Apache Spark 3.4.1, Scala 2.12)"},
    {"key": "14.3.x-scala2.12", "name": "14.3 LTS (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "15.4.x-scala2.12", "name": "15.4 LTS (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "15.4.x-photon-scala2.12", "name": "15.4 LTS Photon (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "15.4.x-cpu-ml-scala2.12", "name": "15.4 LTS ML (includes Apache Spark 3.5.0, Scala 2.12)"},
    {"key": "16.4.x-scala2.12", "name": "16.4 LTS (includes Apache Spark 3.5.2, Scala 2.12)"},
]
SPARK_VERSION_KEYS = {v["key"] for v in SPARK_VERSIONS}

# Fields a create/edit request may carry (the spec snapshot keeps what the user sent).
SPEC_FIELDS = [
    "cluster_name", "spark_version", "num_workers", "autoscale", "node_type_id", "driver_node_type_id",
    "instance_pool_id", "driver_instance_pool_id", "policy_id", "apply_policy_default_values",
    "spark_conf", "spark_env_vars", "custom_tags", "autotermination_minutes", "enable_elastic_disk",
    "enable_local_disk_encryption", "runtime_engine", "data_security_mode", "single_user_name",
    "azure_attributes", "aws_attributes", "gcp_attributes", "cluster_log_conf", "init_scripts",
    "ssh_public_keys", "docker_image", "workload_type", "kind", "is_single_node", "use_ml_runtime",
    "clone_from",
]
# Request-only fields: kept in `spec`, never part of the ClusterDetails themselves.
_REQUEST_ONLY = ("apply_policy_default_values", "clone_from")
# The SDK's ClusterAttributes: what a CREATING / EDITED event carries as `attributes` (no size).
ATTRIBUTE_FIELDS = (
    "spark_version", "autotermination_minutes", "aws_attributes", "azure_attributes", "cluster_log_conf",
    "cluster_name", "custom_tags", "data_security_mode", "docker_image", "driver_instance_pool_id",
    "driver_node_type_id", "enable_elastic_disk", "enable_local_disk_encryption", "gcp_attributes",
    "init_scripts", "instance_pool_id", "is_single_node", "kind", "node_type_id", "policy_id",
    "runtime_engine", "single_user_name", "spark_conf", "spark_env_vars", "ssh_public_keys",
    "use_ml_runtime", "workload_type",
)

_FAILURE_TYPES = {"INIT_SCRIPT_FAILURE": "CLIENT_ERROR", "INVALID_ARGUMENT": "CLIENT_ERROR",
                  "SPARK_STARTUP_FAILURE": "SERVICE_FAULT", "INTERNAL_ERROR": "SERVICE_FAULT",
                  "DRIVER_UNREACHABLE": "SERVICE_FAULT", "TRIAL_EXPIRED": "CLIENT_ERROR"}
_LIST_ORDER = {"RUNNING": 0, "PENDING": 1, "RESTARTING": 2, "RESIZING": 3, "TERMINATING": 4,
               "ERROR": 5, "UNKNOWN": 6, "TERMINATED": 7}


def node_types(state) -> List[dict]:
    """The node-type catalogue of the configured cloud."""
    return NODE_TYPES_BY_CLOUD.get(str(state.config.cloud).upper(), NODE_TYPES_BY_CLOUD["AWS"])


def node_type(state, node_type_id: Optional[str]) -> Optional[dict]:
    for n in node_types(state):
        if n["node_type_id"] == node_type_id:
            return n
    return None


class Cluster:
    """A cluster: public ClusterDetails + private bookkeeping."""

    def __init__(self, details: dict, spec: dict) -> None:
        self.details = details
        self.spec = spec
        self.events: List[dict] = []
        self.events_version = 0
        self._event_views: Dict[tuple, list] = {}
        self._event_views_version = -1
        self.transitions: List[tuple] = []   # (at_seconds, kind, data) sorted by time
        self.idempotency_token: Optional[str] = None
        self.pinned = False
        self.seq = 0   # creation order
        self.target_workers = 0             # an autoscaling cluster's current target
        self.running_since: Optional[int] = None   # ms when it last became RUNNING
        self.launches = 0                   # starts so far (a job waits for the one it asked for)

    @property
    def id(self) -> str:
        return self.details["cluster_id"]

    @property
    def state(self) -> str:
        return self.details["state"]

    @property
    def source(self) -> str:
        return self.details.get("cluster_source", "API")


# --------------------------------------------------------------------------- helpers

def _new_cluster_id() -> str:
    t = time.gmtime()
    rand = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    return f"{t.tm_mon:02d}{t.tm_mday:02d}-{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}-{rand}"


def _title(state: str) -> str:
    return state.capitalize()


def _event(c: Cluster, ts_ms: int, etype: str, **details) -> None:
    ev = {"cluster_id": c.id, "timestamp": ts_ms, "type": etype, "details": details}
    if c.events and c.events[-1]["timestamp"] > ts_ms:       # keep the list in time order
        keys = [e["timestamp"] for e in c.events]
        c.events.insert(bisect.bisect_right(keys, ts_ms), ev)
    else:
        c.events.append(ev)
    c.events_version += 1


def _schedule(c: Cluster, at: float, kind: str, **data) -> None:
    c.transitions.append((at, kind, data))
    c.transitions.sort(key=lambda t: t[0])


def _size(d: dict) -> dict:
    if d.get("autoscale"):
        return {"autoscale": {"min_workers": d["autoscale"]["min_workers"],
                              "max_workers": d["autoscale"]["max_workers"]}}
    return {"num_workers": d.get("num_workers", 0)}


def _attributes(d: dict) -> dict:
    """The cluster's ClusterAttributes (what an event's `attributes` carries: no size fields)."""
    return {k: copy_json(d[k]) for k in ATTRIBUTE_FIELDS if k in d}


def _within_limit(state, n: int, field: str) -> None:
    cap = state.config.cluster_max_workers
    if n > cap:
        raise invalid_parameter(f"The requested {field} ({n}) exceeds the workspace's limit of {cap} workers "
                                f"per cluster.")


def _target_workers(c: Cluster) -> int:
    d = c.details
    if d.get("autoscale"):
        return int(c.target_workers or d["autoscale"]["min_workers"])
    return int(d.get("num_workers") or 0)


def _ip() -> str:
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def _node(ts_ms: int) -> dict:
    ip = _ip()
    return {"node_id": secrets.token_hex(16), "instance_id": "i-" + secrets.token_hex(8),
            "private_ip": ip, "host_private_ip": _ip(), "public_dns": "", "start_timestamp": ts_ms}


def _come_up(state, c: Cluster, ts_ms: int) -> None:
    """Apply RUNNING: driver, executors, spark context, size."""
    d = c.details
    d["state"] = "RUNNING"
    d["state_message"] = ""
    n = _target_workers(c)
    d["driver"] = _node(ts_ms)
    d["executors"] = [_node(ts_ms) for _ in range(n)]
    d["spark_context_id"] = random.randint(10 ** 17, 9 * 10 ** 18)
    d["jdbc_port"] = 10000
    nt = node_type(state, d.get("node_type_id")) or {"num_cores": 4.0, "memory_mb": 16384}
    dnt = node_type(state, d.get("driver_node_type_id")) or nt
    d["cluster_cores"] = float(dnt["num_cores"] + n * nt["num_cores"])
    d["cluster_memory_mb"] = int(dnt["memory_mb"] + n * nt["memory_mb"])
    d.pop("termination_reason", None)
    c.running_since = ts_ms


def _go_down(c: Cluster, ts_ms: int) -> None:
    d = c.details
    d["state"] = "TERMINATED"
    d["terminated_time"] = ts_ms
    for k in ("driver", "executors", "spark_context_id", "cluster_cores", "cluster_memory_mb"):
        d.pop(k, None)
    c.idempotency_token = None
    c.running_since = None


def _apply(state, c: Cluster, at: float, kind: str, data: dict) -> None:
    ts = int(at * 1000)
    d = c.details
    if kind == "running":
        _come_up(state, c, ts)
        if data.get("restarted"):
            d["last_restarted_time"] = ts
        _event(c, ts, "RUNNING", current_num_workers=len(d["executors"]), target_num_workers=_target_workers(c))
    elif kind == "resized":
        # A resize adds or removes workers; the driver and its Spark context (and so the
        # execution contexts attached to it) survive.
        keep = {k: d[k] for k in ("driver", "spark_context_id") if k in d}
        since = c.running_since
        _come_up(state, c, ts)
        d.update(keep)
        c.running_since = since
        _event(c, ts, "UPSIZE_COMPLETED", current_num_workers=len(d["executors"]),
               target_num_workers=_target_workers(c))
    elif kind == "launch_failed":
        reason = data["reason"]
        d["termination_reason"] = reason
        d["state_message"] = f"{reason['code']}: the cluster could not be launched (injected failure)."
        _event(c, ts, "TERMINATING", reason=reason)
        _go_down(c, ts)
    elif kind == "terminated":
        _go_down(c, ts)


def refresh(state, c: Cluster) -> None:
    now = state.now()
    while c.transitions and c.transitions[0][0] <= now:
        at, kind, data = c.transitions.pop(0)
        _apply(state, c, at, kind, data)


def _launch(state, c: Cluster, now: float, restarted: bool = False) -> None:
    """Schedule PENDING -> RUNNING (or the one-shot injected launch failure)."""
    cfg = state.config
    at = now + float(cfg.cluster_start_seconds)
    c.launches += 1
    code = cfg.cluster_launch_failure
    if code:
        cfg.cluster_launch_failure = None
        ftype = _FAILURE_TYPES.get(code, cfg.cluster_launch_failure_type or "CLOUD_FAILURE")
        reason = {"code": code, "type": ftype,
                  "parameters": {"databricks_error_message": f"Injected launch failure {code}."}}
        _schedule(c, at, "launch_failed", reason=reason)
    else:
        _schedule(c, at, "running", restarted=restarted)


def _terminate(state, c: Cluster, user: Optional[str], now: float,
               reason: Optional[dict] = None) -> None:
    d = c.details
    ts = int(now * 1000)
    c.transitions.clear()
    reason = reason or {"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {"username": user or ""}}
    d["state"] = "TERMINATING"
    d["state_message"] = f"Termination requested by {user}" if reason["code"] == "USER_REQUEST" else ""
    d["termination_reason"] = reason
    details = {"reason": copy_json(reason)}
    if user:
        details["user"] = user
    _event(c, ts, "TERMINATING", **details)
    _schedule(c, now + float(state.config.cluster_terminate_seconds), "terminated")


def _start(state, c: Cluster, now: float, user: Optional[str]) -> None:
    """TERMINATED -> PENDING (the same cluster, its last configuration)."""
    d = c.details
    d["state"] = "PENDING"
    d["state_message"] = PENDING_MESSAGE
    d["start_time"] = int(now * 1000)
    d.pop("terminated_time", None)
    d.pop("termination_reason", None)
    if d.get("autoscale"):
        c.target_workers = d["autoscale"]["min_workers"]
    details = {"user": user} if user else {}
    _event(c, int(now * 1000), "STARTING", **details)
    _launch(state, c, now)


def _user(req) -> str:
    return req.principal.user_name if req.principal else "emulator-user@example.com"


def _get(req, cluster_id: Any) -> Cluster:
    if not cluster_id or not isinstance(cluster_id, str):
        raise invalid_parameter("Missing required field: cluster_id")
    c = req.state.clusters.get(cluster_id)
    if c is None:
        raise not_found(req.config, f"Cluster {cluster_id} does not exist")
    refresh(req.state, c)
    return c


def _public(c: Cluster, with_spec: bool = True) -> dict:
    d = copy_json(c.details)
    if with_spec:
        d["spec"] = copy_json(c.spec)
    return d


def snapshot(state, cluster_id: str) -> Optional[dict]:
    with state.lock:
        c = state.clusters.get(cluster_id)
        if c is None:
            return None
        refresh(state, c)
        return _public(c)


def lookup(state, cluster_id: str) -> Optional[Cluster]:
    """The cluster (its due transitions applied), or None. Call under the state lock."""
    c = state.clusters.get(cluster_id) if isinstance(cluster_id, str) else None
    if c is not None:
        refresh(state, c)
    return c


# --------------------------------------------------------------------------- validation

def validate_spec(state, body: dict) -> dict:
    """The spec a create/edit (or a job's new_cluster) asks for, checked; 400 on the first problem."""
    if not isinstance(body, dict):
        raise invalid_parameter("The cluster specification must be an object.")
    sv = body.get("spark_version")
    if not sv or not isinstance(sv, str):
        raise invalid_parameter("Missing required field: spark_version")
    if state.config.validate_spark_version and sv not in SPARK_VERSION_KEYS:
        raise invalid_parameter(f"Invalid spark version {sv}.")
    has_n = body.get("num_workers") is not None
    has_a = body.get("autoscale") is not None
    if has_n == has_a:
        raise invalid_parameter("Exactly one of num_workers or autoscale must be specified.")
    if has_n:
        n = body["num_workers"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise invalid_parameter(f"Invalid num_workers: {n!r}. It must be a non-negative integer.")
        _within_limit(state, n, "num_workers")
    else:
        a = body["autoscale"]
        if not isinstance(a, dict):
            raise invalid_parameter("autoscale must be an object with min_workers and max_workers.")
        mn, mx = a.get("min_workers"), a.get("max_workers")
        if not isinstance(mn, int) or not isinstance(mx, int) or mn < 0:
            raise invalid_parameter("autoscale requires integer min_workers >= 0 and max_workers.")
        if mx <= mn:
            raise invalid_parameter(
                f"Autoscale max_workers ({mx}) must be greater than min_workers ({mn}).")
        _within_limit(state, mx, "autoscale.max_workers")
    nt = body.get("node_type_id")
    if nt is None and not body.get("instance_pool_id") and not body.get("policy_id"):
        raise invalid_parameter("Missing required field: node_type_id")
    for key in ("node_type_id", "driver_node_type_id"):
        v = body.get(key)
        if v is not None and node_type(state, v) is None:
            raise invalid_parameter(f"Node type {v} is not supported.")
    at = body.get("autotermination_minutes")
    if at is not None:
        if not isinstance(at, int) or isinstance(at, bool) or not (at == 0 or 10 <= at <= 10000):
            raise invalid_parameter(
                "Auto-termination minutes must be 0 (disabled) or between 10 and 10000; got "
                f"{at!r}.")
    tags = body.get("custom_tags")
    if tags is not None:
        if not isinstance(tags, dict):
            raise invalid_parameter("custom_tags must be a map of string to string.")
        if len(tags) > 45:
            raise invalid_parameter("The number of custom tags cannot exceed 45.")
    for key in ("spark_conf", "spark_env_vars"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise invalid_parameter(f"{key} must be a map of string to string.")
    if body.get("runtime_engine") not in (None, "STANDARD", "PHOTON", "NULL"):
        raise invalid_parameter(f"Invalid runtime_engine: {body['runtime_engine']}")
    if body.get("runtime_engine") == "PHOTON" and "-photon-" in sv:
        raise invalid_parameter("runtime_engine PHOTON cannot be combined with a photon spark_version.")
    return {k: copy.deepcopy(body[k]) for k in SPEC_FIELDS if k in body}


_validate_spec = validate_spec


def _apply_spec(state, c: Cluster, spec: dict, creator: str) -> None:
    """Rebuild the configuration part of the details from a (full) spec."""
    d = c.details
    for k in SPEC_FIELDS:
        d.pop(k, None)
    d.update({k: copy.deepcopy(v) for k, v in spec.items() if k not in _REQUEST_ONLY})
    d.setdefault("cluster_name", "")
    if d.get("node_type_id") and not d.get("driver_node_type_id"):
        d["driver_node_type_id"] = d["node_type_id"]
    d.setdefault("enable_elastic_disk", False)
    d.setdefault("enable_local_disk_encryption", False)
    d.setdefault("spark_conf", {})
    d.setdefault("spark_env_vars", {})
    d.setdefault("custom_tags", {})
    d.setdefault("data_security_mode", "NONE")
    d.setdefault("runtime_engine", "PHOTON" if "-photon-" in d["spark_version"] else "STANDARD")
    if d["data_security_mode"] in ("SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED") and not d.get("single_user_name"):
        d["single_user_name"] = creator
    if d.get("autoscale"):
        d.pop("num_workers", None)
        d["autoscale"] = {"min_workers": d["autoscale"]["min_workers"],
                          "max_workers": d["autoscale"]["max_workers"]}
        c.target_workers = d["autoscale"]["min_workers"]
    d["default_tags"] = {"Vendor": "Databricks", "Creator": d.get("creator_user_name", creator),
                         "ClusterName": d.get("cluster_name", ""), "ClusterId": c.id,
                         "Name": f"workerenv-{c.id[-8:]}"}
    cloud = str(state.config.cloud).upper()
    if cloud == "AWS":
        aws = d.setdefault("aws_attributes", {})
        aws.setdefault("availability", "SPOT_WITH_FALLBACK")
        aws.setdefault("zone_id", ZONES["AWS"][1])
        aws.setdefault("first_on_demand", 1)
        aws.setdefault("spot_bid_price_percent", 100)
    elif cloud == "AZURE":
        az = d.setdefault("azure_attributes", {})
        az.setdefault("availability", "ON_DEMAND_AZURE")
        az.setdefault("first_on_demand", 1)
        az.setdefault("spot_bid_max_price", -1.0)
    elif cloud == "GCP":
        gcp = d.setdefault("gcp_attributes", {})
        gcp.setdefault("availability", "ON_DEMAND_GCP")
        gcp.setdefault("first_on_demand", 1)
        gcp.setdefault("zone_id", "HA")


def _new_cluster(state, spec: dict, creator: str, source: str, now: float,
                 cluster_id: Optional[str] = None) -> Cluster:
    cid = cluster_id or _new_cluster_id()
    while cid in state.clusters:
        cid = _new_cluster_id()
    c = Cluster({"cluster_id": cid, "creator_user_name": creator, "cluster_source": source,
                 "state": "PENDING", "state_message": PENDING_MESSAGE,
                 "start_time": int(now * 1000), "last_state_loss_time": 0,
                 "cluster_log_status": {}}, spec)
    _apply_spec(state, c, spec, creator)
    c.seq = next(_SEQ)
    state.clusters[cid] = c
    return c


# --------------------------------------------------------------------------- job clusters (jobs area)

def create_job_cluster(state, spec: dict, creator: str, name: str, at: float) -> Cluster:
    """A job cluster for a run (``cluster_source: JOB``), launched at ``at`` (seconds)."""
    spec = dict(spec, cluster_name=name)
    c = _new_cluster(state, spec, creator, "JOB", at)
    _event(c, int(at * 1000), "CREATING", user=creator, cluster_size=_size(c.details),
           attributes=_attributes(c.details))
    _launch(state, c, at)
    return c


def start_for_job(state, c: Cluster, at: float, user: str) -> None:
    """The jobs service starts a terminated all-purpose cluster a task needs."""
    _start(state, c, at, user)
    state.applied["clusters/start"] += 1


def terminate_job_cluster(state, c: Cluster, at: float) -> None:
    """A run has ended: its job cluster goes down (termination reason JOB_FINISHED)."""
    refresh(state, c)
    if c.state in ("TERMINATING", "TERMINATED"):
        return
    _terminate(state, c, None, at, {"code": "JOB_FINISHED", "type": "SUCCESS", "parameters": {}})


# --------------------------------------------------------------------------- test hook

def seed_cluster(state, /, **fields) -> str:
    """Seed a cluster in any state. Accepts ClusterDetails fields plus:
    ``is_pinned`` (bool), ``idempotency_token``, ``events`` (list), ``transitions``
    (default True: PENDING/RESTARTING/RESIZING/TERMINATING move on as usual)."""
    with state.lock:
        now = state.now()
        fields = dict(fields)
        pinned = bool(fields.pop("is_pinned", False))
        token = fields.pop("idempotency_token", None)
        events = fields.pop("events", None)
        move = fields.pop("transitions", True)
        st = fields.pop("state", "RUNNING")
        if st not in STATES:
            raise ValueError(f"unknown cluster state {st}")
        spec = {k: fields.pop(k) for k in list(fields) if k in SPEC_FIELDS}
        spec.setdefault("spark_version", "13.3.x-scala2.12")
        spec.setdefault("node_type_id", node_types(state)[0]["node_type_id"])
        if "autoscale" not in spec:
            spec.setdefault("num_workers", 1)
        spec.setdefault("cluster_name", "seeded-cluster")
        creator = fields.pop("creator_user_name", "emulator-user@example.com")
        source = fields.pop("cluster_source", "UI")
        c = _new_cluster(state, spec, creator, source, now, fields.pop("cluster_id", None))
        c.pinned = pinned
        c.idempotency_token = token
        if token:
            state.area("cluster_tokens")[token] = c.id
        ts = int(now * 1000)
        c.details["state"] = st
        if st == "RUNNING":
            _come_up(state, c, ts)
        elif st in ("RESTARTING", "RESIZING"):
            _come_up(state, c, ts)
            c.details["state"] = st
            c.details["state_message"] = "Restarting Spark" if st == "RESTARTING" else "Resizing cluster"
            if move:
                secs = state.config.cluster_restart_seconds if st == "RESTARTING" else state.config.cluster_resize_seconds
                _schedule(c, now + float(secs), "running")
        elif st == "PENDING":
            if move:
                _launch(state, c, now)
        elif st == "TERMINATING":
            c.details["state_message"] = "Termination requested by " + creator
            c.details["termination_reason"] = {"code": "USER_REQUEST", "type": "SUCCESS",
                                               "parameters": {"username": creator}}
            if move:
                _schedule(c, now + float(state.config.cluster_terminate_seconds), "terminated")
        elif st == "TERMINATED":
            c.details["state_message"] = "Termination requested by " + creator
            c.details["termination_reason"] = {"code": "USER_REQUEST", "type": "SUCCESS",
                                               "parameters": {"username": creator}}
            _go_down(c, ts)
        else:  # ERROR / UNKNOWN
            c.details["state_message"] = fields.pop("state_message", "")
        if st not in ("PENDING", "RESTARTING", "RESIZING") and c.details.get("state_message") == PENDING_MESSAGE:
            c.details["state_message"] = ""
        c.details.update(copy.deepcopy(fields))
        _event(c, ts, "CREATING", user=creator, cluster_size=_size(c.details), attributes=_attributes(c.details))
        if events is not None:
            c.events = [dict(e, cluster_id=c.id) for e in events]
            c.events.sort(key=lambda e: e["timestamp"])
            c.events_version += 1
        return c.id


# --------------------------------------------------------------------------- endpoints

@route("GET", V + r"/get")
def get_cluster(req):
    with req.state.lock:
        return _public(_get(req, req.param("cluster_id")))


def _list_sort_key(c: Cluster):
    return (_LIST_ORDER.get(c.state, 8), 0 if c.pinned else 1, c.details.get("cluster_name", "").lower(), c.seq)


def _listed(st) -> List[Cluster]:
    """Every cluster a list shows (retention applied), refreshed."""
    now_ms = st.now_ms()
    items = []
    for c in st.clusters.values():
        refresh(st, c)
        if (c.state == "TERMINATED" and not c.pinned
                and now_ms - int(c.details.get("terminated_time") or now_ms) > RETENTION_MS):
            continue
        items.append(c)
    return items


def _list_item(c: Cluster) -> dict:
    return c.details   # serialised under the state lock (json_response), so never copied


@route("GET", V + r"/list")
def list_clusters(req):
    st = req.state
    if req.params["version"] == "2.0":
        with st.lock:
            items = sorted(_listed(st), key=_list_sort_key)
            return json_response({"clusters": [_list_item(c) for c in items]})

    states = req.q_list("filter_by.cluster_states")
    sources = req.q_list("filter_by.cluster_sources")
    problems = [f"Invalid cluster state: {s}" for s in states if s not in STATES]
    problems += [f"Invalid cluster source: {s}" for s in sources if s not in SOURCES]
    if problems:
        raise invalid_parameter("; ".join(problems))
    pinned = req.q_bool("filter_by.is_pinned")
    policy = req.q("filter_by.policy_id")
    field = (req.q("sort_by.field") or "DEFAULT").upper()
    direction = (req.q("sort_by.direction") or "ASC").upper()
    if field not in ("DEFAULT", "CLUSTER_NAME") or direction not in ("ASC", "DESC"):
        raise invalid_parameter("Invalid sort_by: field must be CLUSTER_NAME or DEFAULT, "
                                "direction ASC or DESC.")
    cap = max(1, int(st.config.list_page_size))
    size = req.q_int("page_size", 0) or int(st.config.list_default_page_size)
    if size < 0:
        raise invalid_parameter("page_size must be non-negative.")
    size = min(size, cap)

    def build() -> List[Cluster]:
        items = _listed(st)
        if states:
            items = [c for c in items if c.state in states]
        if sources:
            items = [c for c in items if c.source in sources]
        if pinned is not None:
            items = [c for c in items if c.pinned == pinned]
        if policy:
            items = [c for c in items if c.details.get("policy_id") == policy]
        if field == "CLUSTER_NAME":
            items.sort(key=lambda c: (c.details.get("cluster_name", "").lower(), c.seq))
        else:
            items.sort(key=_list_sort_key)
        if direction == "DESC":
            items.reverse()
        return items

    with st.lock:
        # A listing is paged over the order it had when its first page was read, so clusters
        # that change state between pages are neither repeated nor skipped.
        snapshots = st.area("cluster_list_snapshots", Snapshots)
        page, nxt, prev = snapshots.page(req.q("page_token"), build, size, "clusters")
        shown = []
        for c in page:
            if st.clusters.get(c.id) is c:            # permanently deleted since: left out
                refresh(st, c)
                shown.append(_list_item(c))
        out: Dict[str, Any] = {"clusters": shown}
        if nxt:
            out["next_page_token"] = nxt
        if prev:
            out["prev_page_token"] = prev
        return json_response(out)


@route("GET", V + r"/list-node-types")
def list_node_types(req):
    return {"node_types": copy.deepcopy(node_types(req.state))}


@route("GET", V + r"/spark-versions")
def spark_versions(req):
    return {"versions": copy.deepcopy(SPARK_VERSIONS)}


@route("GET", V + r"/list-zones")
def list_zones(req):
    zones, default = ZONES.get(str(req.config.cloud).upper(), ZONES["AWS"])
    return {"zones": list(zones), "default_zone": default}


@route("POST", V + r"/create")
def create(req):
    body = req.body
    st = req.state
    token = body.get("idempotency_token")
    if token is not None and (not isinstance(token, str) or len(token) > 64):
        raise invalid_parameter("idempotency_token must be a string of at most 64 characters.")
    with st.lock:
        if token:
            tokens = st.area("cluster_tokens")
            cid = tokens.get(token)
            c = st.clusters.get(cid) if cid else None
            if c is not None:
                refresh(st, c)
                if c.idempotency_token == token and c.state != "TERMINATED":
                    return {"cluster_id": c.id}
        from . import policies     # a policy's fixed values and defaults, and its checks (ops, issue 19)

        body = policies.enforce(st, body)
        spec = validate_spec(st, body)
        now = st.now()
        user = _user(req)
        c = _new_cluster(st, spec, user, "API", now)
        c.idempotency_token = token or None
        if token:
            st.area("cluster_tokens")[token] = c.id
        _event(c, int(now * 1000), "CREATING", user=user, cluster_size=_size(c.details),
               attributes=_attributes(c.details))
        _launch(st, c, now)
        st.applied["clusters/create"] += 1
        return {"cluster_id": c.id}


def _restart_cycle(st, c: Cluster, now: float, user: str, event: str = "RESTARTING") -> None:
    c.details["state"] = "RESTARTING"
    c.details["state_message"] = "Restarting Spark"
    _event(c, int(now * 1000), event, user=user)
    _schedule(c, now + float(st.config.cluster_restart_seconds), "running", restarted=True)


def _not_a_job_cluster(c: Cluster, what: str) -> None:
    if c.source == "JOB":
        raise invalid_parameter(f"Cluster {c.id} is a job cluster; job clusters cannot be {what}.")


@route("POST", V + r"/edit")
def edit(req):
    body = req.body
    st = req.state
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        _not_a_job_cluster(c, "edited")
        if c.state not in ("RUNNING", "TERMINATED"):
            raise invalid_state(f"Cluster {c.id} is in unexpected state {_title(c.state)}.")
        spec = validate_spec(st, body)
        _edit_apply(req, c, spec)
        st.applied["clusters/edit"] += 1
        return {}


def _edit_apply(req, c: Cluster, spec: dict) -> None:
    st = req.state
    now = st.now()
    user = _user(req)
    prev = _attributes(c.details)
    c.spec = spec
    _apply_spec(st, c, spec, c.details.get("creator_user_name", user))
    _event(c, int(now * 1000), "EDITED", user=user, attributes=_attributes(c.details),
           previous_attributes=prev, cluster_size=_size(c.details))
    if c.state == "RUNNING":
        _restart_cycle(st, c, now, user)


@route("POST", V + r"/update")
def update(req):
    body = req.body
    st = req.state
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        mask = body.get("update_mask")
        if not mask or not isinstance(mask, str):
            raise invalid_parameter("Missing required field: update_mask")
        patch = body.get("cluster") or {}
        if not isinstance(patch, dict):
            raise invalid_parameter("cluster must be an object.")
        _not_a_job_cluster(c, "edited")
        if c.state not in ("RUNNING", "TERMINATED"):
            raise invalid_state(f"Cluster {c.id} is in unexpected state {_title(c.state)}.")
        if mask.strip() == "*":
            new = dict(patch)
        else:
            new = copy.deepcopy(c.spec)
            for path in mask.split(","):
                top = path.strip().split(".")[0]
                if top not in SPEC_FIELDS:
                    raise invalid_parameter(f"Invalid field in update_mask: {path}")
                if top in patch:
                    new[top] = copy.deepcopy(patch[top])
                else:
                    new.pop(top, None)
                if top == "autoscale" and top in patch:
                    new.pop("num_workers", None)
                if top == "num_workers" and top in patch:
                    new.pop("autoscale", None)
        spec = validate_spec(st, new)
        _edit_apply(req, c, spec)
        st.applied["clusters/update"] += 1
        return {}


@route("POST", V + r"/resize")
def resize(req):
    body = req.body
    st = req.state
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        has_n = body.get("num_workers") is not None
        has_a = body.get("autoscale") is not None
        if has_n == has_a:
            raise invalid_parameter("Exactly one of num_workers or autoscale must be specified.")
        if c.state != "RUNNING":
            raise invalid_state(f"Cluster {c.id} is in unexpected state {_title(c.state)}.")
        probe = dict(c.spec)
        probe.pop("num_workers", None)
        probe.pop("autoscale", None)
        if has_n:
            probe["num_workers"] = body["num_workers"]
        else:
            probe["autoscale"] = body["autoscale"]
        spec = validate_spec(st, probe)
        now = st.now()
        prev = _size(c.details)
        c.spec = spec
        d = c.details
        d.pop("num_workers", None)
        d.pop("autoscale", None)
        if has_n:
            d["num_workers"] = spec["num_workers"]
        else:
            d["autoscale"] = {"min_workers": spec["autoscale"]["min_workers"],
                              "max_workers": spec["autoscale"]["max_workers"]}
            c.target_workers = spec["autoscale"]["min_workers"]
        d["state"] = "RESIZING"
        d["state_message"] = "Resizing cluster"
        _event(c, int(now * 1000), "RESIZING", user=_user(req), previous_cluster_size=prev,
               cluster_size=_size(d), current_num_workers=len(d.get("executors", [])),
               target_num_workers=_target_workers(c))
        _schedule(c, now + float(st.config.cluster_resize_seconds), "resized")
        st.applied["clusters/resize"] += 1
        return {}


@route("POST", V + r"/start")
def start(req):
    body = req.body
    st = req.state
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        if c.source == "JOB":
            raise invalid_parameter(f"Cluster {c.id} is a job cluster and cannot be started.")
        if c.state != "TERMINATED":
            raise invalid_state(f"Cluster {c.id} is in unexpected state {_title(c.state)}.")
        _start(st, c, st.now(), _user(req))
        st.applied["clusters/start"] += 1
        return {}


@route("POST", V + r"/restart")
def restart(req):
    body = req.body
    st = req.state
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        if c.state != "RUNNING":
            raise invalid_state(f"Cluster {c.id} is in unexpected state {_title(c.state)}.")
        _restart_cycle(st, c, st.now(), body.get("restart_user") or _user(req))
        st.applied["clusters/restart"] += 1
        return {}


@route("POST", V + r"/delete")
def delete(req):
    body = req.body
    st = req.state
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        if c.state in ("TERMINATING", "TERMINATED"):
            return {}
        _terminate(st, c, _user(req), st.now())
        st.applied["clusters/delete"] += 1
        return {}


@route("POST", V + r"/permanent-delete")
def permanent_delete(req):
    body = req.body
    st = req.state
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        del st.clusters[c.id]
        st.applied["clusters/permanent-delete"] += 1
        return {}


def _pin(req, pinned: bool):
    body = req.body
    st = req.state
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        if c.pinned != pinned:
            c.pinned = pinned
            _event(c, st.now_ms(), "PINNED" if pinned else "UNPINNED", user=_user(req))
            st.applied["clusters/pin" if pinned else "clusters/unpin"] += 1
        return {}


@route("POST", V + r"/pin")
def pin(req):
    return _pin(req, True)


@route("POST", V + r"/unpin")
def unpin(req):
    return _pin(req, False)


def _is_admin(principal) -> bool:
    return principal is None or "admins" in (getattr(principal, "groups", None) or [])


@route("POST", V + r"/change-owner")
def change_owner(req):
    """Admins only; the cluster must be terminated. The new owner is a user name or a service
    principal's application id; it becomes the cluster's creator (and its CAN_MANAGE owner)."""
    body = req.body
    st = req.state
    owner = body.get("owner_username")
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        if not owner or not isinstance(owner, str):
            raise invalid_parameter("Missing required field: owner_username")
        if not _is_admin(req.principal):
            raise ApiError(403, "PERMISSION_DENIED", "Only workspace admins can change the owner of a cluster.")
        known = owner in st.users or owner in st.service_principals
        if not known:
            raise invalid_parameter(f"Principal: UserName({owner}) does not exist")
        if c.state != "TERMINATED":
            raise invalid_state(f"Cluster {c.id} is in unexpected state {_title(c.state)}.")
        c.details["creator_user_name"] = owner
        c.details.setdefault("default_tags", {})["Creator"] = owner
        st.applied["clusters/change-owner"] += 1
        return {}


def _event_view(c: Cluster, start_time, end_time, types: tuple, order: str) -> list:
    """The events a filter selects, in order; computed once per filter while the events are unchanged."""
    if c._event_views_version != c.events_version:
        c._event_views = {}
        c._event_views_version = c.events_version
    key = (start_time, end_time, types, order)
    view = c._event_views.get(key)
    if view is None:
        evs = c.events
        if start_time is not None or end_time is not None:
            stamps = [e["timestamp"] for e in evs]
            lo = bisect.bisect_left(stamps, int(start_time)) if start_time is not None else 0
            hi = bisect.bisect_right(stamps, int(end_time)) if end_time is not None else len(evs)
            evs = evs[lo:hi]
        if types:
            wanted = set(types)
            evs = [e for e in evs if e["type"] in wanted]
        # ties (events of the same millisecond) keep the order they happened in, reversed for DESC
        view = list(reversed(evs)) if order == "DESC" else list(evs)
        if len(c._event_views) > 32:
            c._event_views.clear()
        c._event_views[key] = view
    return view


@route("POST", V + r"/events")
def events(req):
    body = req.body
    st = req.state
    start_time, end_time = body.get("start_time"), body.get("end_time")
    types = body.get("event_types") or []
    if not isinstance(types, list):
        raise invalid_parameter("event_types must be an array.")
    order = (body.get("order") or "DESC").upper()
    if order not in ("ASC", "DESC"):
        raise invalid_parameter(f"Invalid order: {order}")
    for name, v in (("start_time", start_time), ("end_time", end_time)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise invalid_parameter(f"{name} must be an integer (epoch milliseconds).")
    token = body.get("page_token")
    if token:
        offset = decode_page_token(token, "events")
    else:
        offset = body.get("offset") or 0
        if not isinstance(offset, int) or offset < 0:
            raise invalid_parameter("offset must be a non-negative integer.")
    size = body.get("page_size") or body.get("limit") or st.config.events_page_size
    if not isinstance(size, int) or size < 0 or size > 500:
        raise invalid_parameter("page_size/limit must be between 0 and 500.")
    with st.lock:
        c = _get(req, body.get("cluster_id"))
        view = _event_view(c, start_time, end_time, tuple(types), order)
        total = len(view)
        out: Dict[str, Any] = {"events": view[offset:offset + size], "total_count": total}
        if offset + size < total:
            nxt = {k: v for k, v in body.items() if k not in ("page_token", "page_size")}
            nxt.update({"cluster_id": c.id, "offset": offset + size, "limit": size, "order": order})
            out["next_page"] = nxt
            out["next_page_token"] = encode_page_token(offset + size, "events")
        if offset > 0:
            out["prev_page_token"] = encode_page_token(max(0, offset - size), "events")
        return json_response(out)
