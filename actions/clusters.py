"""Clusters API (2.1): read, create, change and wait for clusters."""
from __future__ import annotations

import uuid

from ..errors import ConnectorError, InputError

API = "/api/2.1/clusters"

# Inputs that map one to one onto create/edit body fields (key_value and object inputs included).
SPEC_INPUTS = ("num_workers", "cluster_name", "spark_version", "spark_conf", "custom_tags", "spark_env_vars",
               "azure_attributes", "aws_attributes", "gcp_attributes", "node_type_id", "driver_node_type_id",
               "autotermination_minutes", "enable_elastic_disk", "runtime_engine", "data_security_mode",
               "single_user_name", "policy_id", "instance_pool_id", "driver_instance_pool_id",
               "apply_policy_default_values")

# target state -> states that mean the wait failed
FAILURE_STATES = {"RUNNING": ("ERROR", "TERMINATED", "UNKNOWN"), "TERMINATED": ("ERROR",)}


# --------------------------------------------------------------------------- reads

def get_cluster(session, inputs):
    return _get(session, inputs["cluster_id"])


def _get(session, cluster_id):
    return session.get(f"{API}/get", {"cluster_id": cluster_id})


def list_clusters(session, inputs):
    params = {"page_size": 100}
    if inputs.get("states"):
        params["filter_by.cluster_states"] = list(inputs["states"])
    clusters, truncated = session.paginate(f"{API}/list", items="clusters", params=params,
                                           max_items=inputs.get("max_items"))
    return {"clusters": clusters, "count": len(clusters), "truncated": truncated}


def list_node_types(session, inputs):
    return session.get(f"{API}/list-node-types")


def list_spark_versions(session, inputs):
    return session.get(f"{API}/spark-versions")


def get_cluster_events(session, inputs):
    """Every event page, following the `next_page` request body the server returns."""
    body = {"cluster_id": inputs["cluster_id"], "order": inputs.get("order", "DESC")}
    for key in ("start_time", "end_time", "event_types"):
        if inputs.get(key) not in (None, []):
            body[key] = inputs[key]
    cap = inputs.get("max_items")
    if cap:
        body["limit"] = min(500, max(1, cap))
    events, truncated = session.pages(
        lambda next_body: session.post(f"{API}/events", next_body or body, idempotent=True),  # a read: safe to re-send
        items="events", next_token=lambda page: page.get("next_page"), max_items=cap)
    return {"events": events, "count": len(events), "truncated": truncated}


# --------------------------------------------------------------------------- pickers

def select_cluster(session, inputs):
    clusters, _ = session.paginate(f"{API}/list", items="clusters", params={"page_size": 100}, require=("cluster_id",))
    return [{"label": f"{c.get('cluster_name') or c['cluster_id']} ({c.get('state', 'UNKNOWN')})", "value": c["cluster_id"]}
            for c in clusters]


def select_node_type(session, inputs):
    types = list_node_types(session, inputs).get("node_types") or []
    out = []
    for t in types:
        if t.get("is_deprecated") or t.get("is_hidden"):
            continue
        cores = t.get("num_cores")
        mem = t.get("memory_mb")
        bits = []
        if cores is not None:
            bits.append(f"{cores:g} cores")
        if mem is not None:
            bits.append(f"{mem / 1024:g} GB")
        label = t["node_type_id"] + (f" ({', '.join(bits)})" if bits else "")
        out.append({"label": label, "value": t["node_type_id"]})
    return out


def select_spark_version(session, inputs):
    versions = list_spark_versions(session, inputs).get("versions") or []
    return [{"label": v.get("name") or v["key"], "value": v["key"]} for v in versions]


# --------------------------------------------------------------------------- create / edit / resize

def _size(inputs, given: dict) -> tuple[dict, list]:
    """The size part of a body (num_workers or autoscale) and every problem of the combination.
    ``given`` is what the body already holds (from Additional Settings), which also counts."""
    n = inputs.get("num_workers")
    a_min, a_max = inputs.get("autoscale_min_workers"), inputs.get("autoscale_max_workers")
    if a_min is None and a_max is None:
        if n is not None:
            return {"num_workers": n}, []
        if given.get("num_workers") is not None or given.get("autoscale"):
            return {}, []
        return {}, [{"key": "num_workers", "label": _LABELS["num_workers"],
                     "reason": "or Autoscale Min/Max Workers is required"}]
    problems = []
    if n is not None:
        problems.append({"key": "num_workers", "label": _LABELS["num_workers"],
                         "reason": "cannot be combined with Autoscale Min/Max Workers; give one or the other"})
    if a_min is None or a_max is None:
        missing = "autoscale_min_workers" if a_min is None else "autoscale_max_workers"
        problems.append({"key": missing, "label": _LABELS[missing],
                         "reason": "is required when the other autoscale bound is given"})
    elif a_max <= a_min:
        problems.append({"key": "autoscale_max_workers", "label": _LABELS["autoscale_max_workers"],
                         "reason": f"must be greater than Autoscale Min Workers ({a_min}); got {a_max}"})
    return {"autoscale": {"min_workers": a_min, "max_workers": a_max}}, problems


def _spec(inputs) -> dict:
    """The create/edit body from the inputs; every bad combination reported at once."""
    body = dict(inputs.get("additional_settings") or {})
    for key in SPEC_INPUTS:
        if key != "num_workers" and inputs.get(key) is not None:
            body[key] = inputs[key]
    size, size_problems = _size(inputs, body)
    if "autoscale" in size:
        body.pop("num_workers", None)
    body.update(size)
    problems = []
    # a policy's defaults fill what is left empty (Databricks applies them on create)
    policy_defaults = bool(body.get("policy_id")) and body.get("apply_policy_default_values") is True
    if policy_defaults:
        size_problems = [p for p in size_problems if not p["reason"].startswith("or ")]
    if not body.get("spark_version") and not policy_defaults:
        problems.append({"key": "spark_version", "label": _LABELS["spark_version"], "reason": "is required"})
    # "a size is required" only when nothing else is wrong, so the first fix is the obvious one
    problems += [p for p in size_problems if not (problems and p["reason"].startswith("or "))]
    at = body.get("autotermination_minutes")
    if isinstance(at, int) and 1 <= at <= 9:
        problems.append({"key": "autotermination_minutes", "label": _LABELS["autotermination_minutes"],
                         "reason": f"must be 0 (never) or between 10 and 10000; got {at}"})
    if problems:
        raise InputError(problems)
    return body


_LABELS = {"num_workers": "Number of Workers", "spark_version": "Spark Version",
           "autoscale_min_workers": "Autoscale Min Workers", "autoscale_max_workers": "Autoscale Max Workers",
           "autotermination_minutes": "Auto Termination (minutes)"}


def create_cluster(session, inputs):
    body = _spec(inputs)
    token = inputs.get("idempotency_token") or str(uuid.uuid4())
    body["idempotency_token"] = token
    # The token makes the create safe to re-send after a dropped connection or a 5xx.
    # The answer is recorded with its token, so a resumed step reports the token that was sent.
    created = session.start("create", lambda: {**session.post(f"{API}/create", body, idempotent=True, require=("cluster_id",)),
                                               "idempotency_token": token},
                            ids=lambda r: {"cluster_id": r.get("cluster_id")}, follow_up="wait_for_cluster_state")
    cluster_id, token = created["cluster_id"], created["idempotency_token"]
    out = {"cluster_id": cluster_id, "idempotency_token": token}
    if inputs.get("wait_for_state"):
        cluster = wait_for_cluster(session, cluster_id, "RUNNING", inputs)
        out = {**cluster, **out}
    return out


def edit_cluster(session, inputs):
    body = _spec(inputs)
    body["cluster_id"] = inputs["cluster_id"]
    # Not re-sent: a RUNNING cluster is RESTARTING after the first edit, so a re-send would be refused.
    session.post(f"{API}/edit", body)
    return _get(session, inputs["cluster_id"])


def resize_cluster(session, inputs):
    size, problems = _size(inputs, {})
    if problems:
        raise InputError(problems)
    body = {"cluster_id": inputs["cluster_id"], **size}
    session.post(f"{API}/resize", body)    # not re-sent: the cluster is RESIZING after the first one
    return _get(session, inputs["cluster_id"])


# --------------------------------------------------------------------------- lifecycle

def _lifecycle(session, inputs, op: str, target: str):
    cluster_id = inputs["cluster_id"]
    follow = "wait_for_cluster_state" if target == "RUNNING" else ("wait_for_cluster_state", {"target_state": target})
    session.start(op, lambda: session.post(f"{API}/{op}", {"cluster_id": cluster_id}, idempotent=op == "delete"),
                  ids={"cluster_id": cluster_id}, follow_up=follow)
    if inputs.get("wait_for_state"):
        return wait_for_cluster(session, cluster_id, target, inputs)
    return _get(session, cluster_id)


def start_terminated_cluster(session, inputs):
    return _lifecycle(session, inputs, "start", "RUNNING")


def restart_cluster(session, inputs):
    return _lifecycle(session, inputs, "restart", "RUNNING")


def terminate_cluster(session, inputs):
    return _lifecycle(session, inputs, "delete", "TERMINATED")


def permanently_delete_cluster(session, inputs):
    session.post(f"{API}/permanent-delete", {"cluster_id": inputs["cluster_id"]})
    return {"cluster_id": inputs["cluster_id"], "deleted": True}


def pin_cluster(session, inputs):
    session.post(f"{API}/pin", {"cluster_id": inputs["cluster_id"]}, idempotent=True)
    return {"cluster_id": inputs["cluster_id"], "pinned": True}


def unpin_cluster(session, inputs):
    session.post(f"{API}/unpin", {"cluster_id": inputs["cluster_id"]}, idempotent=True)
    return {"cluster_id": inputs["cluster_id"], "pinned": False}


# --------------------------------------------------------------------------- waiting

def wait_for_cluster_state(session, inputs):
    return wait_for_cluster(session, inputs["cluster_id"], inputs.get("target_state", "RUNNING"), inputs)


def wait_for_cluster(session, cluster_id: str, target: str, inputs) -> dict:
    """Poll clusters/get until the cluster is in ``target``; the one waiting helper of this module.

    Reaching a failure state (ERROR, or TERMINATED while waiting for RUNNING) raises an
    operation_failed error carrying the termination reason; running out of time raises a
    timeout naming how long it waited and the last state."""
    failures = FAILURE_STATES.get(target, ("ERROR",))

    def poll():
        cluster = _get(session, cluster_id)
        state = cluster.get("state", "UNKNOWN")
        if state == target:
            return True, cluster, state
        if state in failures:
            raise _failed(cluster, target)
        return False, cluster, state

    follow = ("wait_for_cluster_state", {"cluster_id": cluster_id, **({} if target == "RUNNING" else {"target_state": target})})
    return session.wait(poll, what=f"cluster {cluster_id} to be {target}",
                        timeout=inputs.get("timeout_seconds", 1200),
                        interval=inputs.get("poll_interval_seconds"), follow_up=follow)


def _failed(cluster: dict, target: str) -> ConnectorError:
    state = cluster.get("state", "UNKNOWN")
    reason = cluster.get("termination_reason") or {}
    message = f"Cluster {cluster.get('cluster_id')} is {state} instead of {target}"
    if reason:
        message += f": {reason.get('code', 'UNKNOWN')} ({reason.get('type', 'UNKNOWN')})"
        params = reason.get("parameters") or {}
        if params:
            message += " " + ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    elif cluster.get("state_message"):
        message += f": {cluster['state_message']}"
    message += "."
    return ConnectorError("operation_failed", message,
                          hint="Read the termination reason, fix its cause (configuration, quota, cloud) and start the cluster again.",
                          details={"cluster_id": cluster.get("cluster_id"), "state": state,
                                   "state_message": cluster.get("state_message"), "termination_reason": reason})


# --------------------------------------------------------------------------- triggers (polling; see connector/triggers.py)

# event type -> the state it moves the cluster to (the event log has no TERMINATED event)
STATE_OF_EVENT = {"CREATING": "PENDING", "STARTING": "PENDING", "RESTARTING": "RESTARTING", "RUNNING": "RUNNING",
                  "RESIZING": "RESIZING", "UPSIZE_COMPLETED": "RUNNING", "TERMINATING": "TERMINATING"}


def _state_event(e, name):
    return {"event_id": f"{e['cluster_id']}/{e['timestamp']}/{e['type']}", "cluster_id": e["cluster_id"],
            "cluster_name": name, "state": STATE_OF_EVENT[e["type"]], "event_type": e["type"],
            "timestamp": e["timestamp"], "details": e.get("details") or {}, "event": e}


def _events_page(session, cluster_id, types, *, start=None, order="ASC", token=None):
    body = token or {"cluster_id": cluster_id, "order": order, "event_types": types, "limit": 100}
    if start is not None and not token:
        body["start_time"] = max(0, int(start))
    page = session.post(f"{API}/events", body, idempotent=True)      # a read: safe to re-send
    return page.get("events") or [], page.get("next_page")


def cluster_state_changed(session, inputs, poll):
    """Each state change in a cluster's event log after activation fires once. Per cluster, the
    cursor is the time of the newest event read; events are read oldest first from a window behind
    it. Watching every cluster, the cluster list is read a few pages a poll (continued by the next)
    and the clusters are visited in turn, each poll starting where the last one was cut off."""
    states = set(inputs.get("states") or STATE_OF_EVENT.values())
    types = sorted(t for t, s in STATE_OF_EVENT.items() if s in states)
    data = poll.data
    cursors = data.setdefault("clusters", {})       # cluster id -> time of the newest event read
    names = data.setdefault("names", {})            # cluster id -> name, for every cluster known
    single = inputs.get("cluster_id")
    if single:
        names.setdefault(single, None)
    else:
        token = data.get("list_token")
        for _ in range(max(1, poll.max_pages // 3)):  # at most a third of the pages go to the list
            if not poll.page():
                break
            try:
                page = session.get(f"{API}/list", {"page_size": 100, **({"page_token": token} if token else {})})
            except ConnectorError as exc:
                if not token or exc.type not in ("bad_request", "invalid_input"):
                    raise
                token = None                          # a page token from an old poll: list again
                continue
            for c in page.get("clusters") or []:
                names[c["cluster_id"]] = c.get("cluster_name")
            token = page.get("next_page_token")
            if not token:
                break
        data["list_token"] = token
    order = sorted(names)
    resume = data.pop("resume_at", None)
    if resume in names:                             # start where the last poll was cut off
        i = order.index(resume)
        order = order[i:] + order[:i]
    for cid in order:
        cursors.setdefault(cid, poll.since if poll.since is not None else poll.activated_at)
        token, last = None, cursors[cid]
        try:
            while True:
                if not poll.page():
                    data["resume_at"] = cid
                    break
                events, token = _events_page(session, cid, types, start=cursors[cid] - poll.overlap_ms, token=token)
                for e in events:
                    if e.get("type") not in STATE_OF_EVENT:
                        continue
                    last = max(last, e["timestamp"])
                    if poll.is_new(e["timestamp"]):
                        event = _state_event(e, names.get(cid))
                        poll.emit(event["event_id"], event, e["timestamp"])
                if not token:
                    break
        except ConnectorError as exc:
            if single or exc.type != "not_found":
                raise
            cursors.pop(cid, None)                  # the cluster is gone (permanently deleted)
            names.pop(cid, None)
            continue
        cursors[cid] = last
        if "resume_at" in data:
            break
    floor = min(cursors.values(), default=0) - poll.overlap_ms
    return poll.result(floor=floor)
