"""MLflow tracking REST API 2.0: experiments, runs, metrics, params, tags, artifacts.

Searches are POSTs that page with ``page_token``/``next_page_token`` (the session's ``pages``);
metric history and artifact lists are GETs paged the same way. Log Metrics and Parameters is one
``runs/log-batch`` call; its limits (1000 metrics, 100 params, 100 tags, 1000 in all) are checked
with the inputs, before any request, so a batch is never half-logged.
"""
from __future__ import annotations

import json
import math
import time

from ..errors import ConnectorError

API = "/api/2.0/mlflow"
ENDED = ("FINISHED", "FAILED", "KILLED")
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_TOTAL = 1000, 100, 100, 1000


def _tags(value) -> list:
    return [{"key": k, "value": v} for k, v in (value or {}).items()]


def _search(session, path: str, body: dict, items: str, max_items):
    def page(token):
        return session.post(path, dict(body, **({"page_token": token} if token else {})), idempotent=True)

    return session.pages(page, items=items, next_token=lambda p: p.get("next_page_token"), max_items=max_items,
                         what=path)


# --------------------------------------------------------------------------- experiments

def create_experiment(session, inputs):
    body = {"name": inputs["name"]}
    if inputs.get("artifact_location"):
        body["artifact_location"] = inputs["artifact_location"]
    if inputs.get("tags"):
        body["tags"] = _tags(inputs["tags"])
    doc = session.post(f"{API}/experiments/create", body, require=("experiment_id",))
    return {"experiment_id": str(doc["experiment_id"])}


def get_experiment(session, inputs):
    if inputs.get("experiment_id"):
        doc = session.get(f"{API}/experiments/get", {"experiment_id": inputs["experiment_id"]})
    else:
        doc = session.get(f"{API}/experiments/get-by-name", {"experiment_name": inputs["experiment_name"]})
    return _object(session, doc, "experiment")


def _object(session, doc: dict, key: str) -> dict:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise ConnectorError("server_error", f"Databricks answered without the {key} object",
                             hint="Run the step again; the answer did not have Databricks' shape.")
    return value


def search_experiments(session, inputs):
    body = {"view_type": inputs.get("view_type") or "ACTIVE_ONLY", "max_results": 1000}
    if inputs.get("filter"):
        body["filter"] = inputs["filter"]
    if inputs.get("order_by"):
        body["order_by"] = inputs["order_by"]
    found, truncated = _search(session, f"{API}/experiments/search", body, "experiments", inputs.get("max_items"))
    return {"experiments": found, "count": len(found), "truncated": truncated}


def delete_experiment(session, inputs):
    eid = inputs["experiment_id"]
    session.post(f"{API}/experiments/delete", {"experiment_id": eid}, idempotent=True)
    return {"experiment_id": eid, "deleted": True}


def select_experiment(session, inputs):
    found, _ = _search(session, f"{API}/experiments/search", {"view_type": "ACTIVE_ONLY", "max_results": 1000},
                       "experiments", 1000)
    return [{"label": e.get("name") or e["experiment_id"], "value": str(e["experiment_id"])}
            for e in found if e.get("experiment_id")]


# --------------------------------------------------------------------------- runs

def create_mlflow_run(session, inputs):
    body = {"experiment_id": inputs["experiment_id"]}
    if inputs.get("run_name"):
        body["run_name"] = inputs["run_name"]
    if inputs.get("start_time") is not None:
        body["start_time"] = inputs["start_time"]
    if inputs.get("tags"):
        body["tags"] = _tags(inputs["tags"])
    doc = session.post(f"{API}/runs/create", body)
    return _object(session, doc, "run")


def get_mlflow_run(session, inputs):
    return _object(session, session.get(f"{API}/runs/get", {"run_id": inputs["run_id"]}), "run")


def search_mlflow_runs(session, inputs):
    body = {"experiment_ids": inputs["experiment_ids"], "run_view_type": inputs.get("run_view_type") or "ACTIVE_ONLY",
            "max_results": 1000}
    if inputs.get("filter"):
        body["filter"] = inputs["filter"]
    if inputs.get("order_by"):
        body["order_by"] = inputs["order_by"]
    found, truncated = _search(session, f"{API}/runs/search", body, "runs", inputs.get("max_items"))
    return {"runs": found, "count": len(found), "truncated": truncated}


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        try:
            v = float(value.strip())
        except ValueError:
            return None
        return v if math.isfinite(v) else None
    return None


def _metric_items(value):
    """(items [{key, value, step?, timestamp?}], problems) of the Metrics input."""
    if value in (None, "", [], {}):
        return [], []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("{", "[")):
            try:
                value = json.loads(text)
            except ValueError:
                return [], ["is not valid JSON"]
        else:
            value = {}
            for n, line in enumerate(text.splitlines(), 1):
                for part in line.split(","):
                    if not part.strip():
                        continue
                    if "=" not in part:
                        return [], [f"line {n} is not name=number"]
                    k, v = part.split("=", 1)
                    value[k.strip()] = v.strip()
    if isinstance(value, dict):
        items = [{"key": k, "value": v} for k, v in value.items()]
    elif isinstance(value, list):
        items = []
        for i, m in enumerate(value):
            if isinstance(m, dict) and "key" in m:
                items.append(dict(m))
            elif isinstance(m, str) and "=" in m:
                k, v = m.split("=", 1)
                items.append({"key": k.strip(), "value": v.strip()})
            else:
                return [], [f"item {i} must be {{\"key\": ..., \"value\": <number>}} or \"name=number\""]
    else:
        return [], ["must be an object of name: number or a list of {key, value}"]
    problems = []
    for m in items:
        name = str(m.get("key") or "")
        if not name.strip():
            problems.append("has a metric without a name")
        elif _number(m.get("value")) is None:
            problems.append(f"metric {name!r} is not a finite number")
        for field in ("step", "timestamp"):
            if field in m and (isinstance(m[field], bool) or not isinstance(m[field], int) or m[field] < 0):
                problems.append(f"metric {name!r}: {field} must be a whole number of at least 0")
    return items, problems


def check_log_mlflow_run_data(inputs) -> list:
    items, problems = _metric_items(inputs.get("metrics"))
    out = [{"key": "metrics", "label": "Metrics", "reason": p} for p in problems]
    counts = {"metrics": len(items), "params": len(inputs.get("params") or {}), "tags": len(inputs.get("tags") or {})}
    for key, label, cap in (("metrics", "Metrics", MAX_METRICS), ("params", "Parameters", MAX_PARAMS),
                            ("tags", "Tags", MAX_TAGS)):
        if counts[key] > cap:
            out.append({"key": key, "label": label, "reason": f"has {counts[key]} items; one batch takes at most {cap}"})
    if sum(counts.values()) > MAX_TOTAL:
        out.append({"key": "metrics", "label": "Metrics", "reason": f"Metrics, Parameters and Tags have "
                    f"{sum(counts.values())} items in all; one batch takes at most {MAX_TOTAL}"})
    for key, label in (("params", "Parameters"), ("tags", "Tags")):
        if any(not str(k).strip() for k in (inputs.get(key) or {})):
            out.append({"key": key, "label": label, "reason": "has an empty name"})
    return out


def log_mlflow_run_data(session, inputs):
    items, _ = _metric_items(inputs.get("metrics"))
    now = int(time.time() * 1000)
    ts = inputs.get("timestamp") if inputs.get("timestamp") is not None else now
    step = inputs.get("step") or 0
    metrics = [{"key": str(m["key"]), "value": _number(m["value"]), "timestamp": m.get("timestamp", ts),
                "step": m.get("step", step)} for m in items]
    params = _tags(inputs.get("params"))
    tags = _tags(inputs.get("tags"))
    body = {"run_id": inputs["run_id"]}
    for key, value in (("metrics", metrics), ("params", params), ("tags", tags)):
        if value:
            body[key] = value
    session.post(f"{API}/runs/log-batch", body)
    return {"run_id": inputs["run_id"], "metrics": len(metrics), "params": len(params), "tags": len(tags)}


def update_mlflow_run(session, inputs):
    rid = inputs["run_id"]
    body = {"run_id": rid}
    if inputs.get("status"):
        body["status"] = inputs["status"]
    if inputs.get("run_name"):
        body["run_name"] = inputs["run_name"]
    if inputs.get("end_time") is not None:
        body["end_time"] = inputs["end_time"]
    elif inputs.get("status") in ENDED:
        # An ended run gets an end time, as MLflow's client gives it; a run that already has one keeps it,
        # so ending a run twice changes nothing.
        info = get_mlflow_run(session, {"run_id": rid}).get("info") or {}
        if info.get("end_time") is None:
            body["end_time"] = int(time.time() * 1000)
    doc = session.post(f"{API}/runs/update", body, idempotent=True)
    return _object(session, doc, "run_info")


def get_metric_history(session, inputs):
    rid, key = inputs["run_id"], inputs["metric_key"]
    metrics, truncated = session.paginate(f"{API}/metrics/get-history", items="metrics",
                                          params={"run_id": rid, "metric_key": key, "max_results": 25000},
                                          max_items=inputs.get("max_items"))
    return {"run_id": rid, "metric_key": key, "metrics": metrics, "count": len(metrics), "truncated": truncated}


def list_run_artifacts(session, inputs):
    rid = inputs["run_id"]
    params = {"run_id": rid}
    if inputs.get("path"):
        params["path"] = inputs["path"]
    root = {}

    def page(token):
        doc = session.get(f"{API}/artifacts/list", dict(params, **({"page_token": token} if token else {})))
        root.setdefault("uri", doc.get("root_uri"))
        return doc

    files, truncated = session.pages(page, items="files", next_token=lambda p: p.get("next_page_token"),
                                     max_items=inputs.get("max_items"), what="artifacts/list")
    return {"run_id": rid, "root_uri": root.get("uri"), "files": files, "count": len(files), "truncated": truncated}
