"""Model Serving API 2.0: endpoints, config updates (waited for with the runtime's one waiting
mechanism), and queries.

Query Serving Endpoint posts to ``/serving-endpoints/{name}/invocations`` (no ``/api/2.0``). With
Input Format ``auto`` the request's shape is read from the endpoint's own OpenAPI document
(``GET /api/2.0/serving-endpoints/{name}/openapi``: the properties its request schema names:
``messages`` chat, ``prompt`` completions, ``input`` embeddings, ``dataframe_*``/``instances``/
``inputs`` a model), or, when the endpoint has none, from its ``task``; for a model, the shape of
Input picks records, split or instances.
"""
from __future__ import annotations

from urllib.parse import quote

from ..errors import ConnectorError, InputError

API = "/api/2.0/serving-endpoints"
FAILED = ("UPDATE_FAILED", "UPDATE_CANCELED")
LLM = {"llm/v1/chat": "chat", "llm/v1/completions": "completions", "llm/v1/embeddings": "embeddings"}
DATAFRAME = ("dataframe_records", "dataframe_split", "instances", "inputs")


def _path(name: str, suffix: str = "") -> str:
    return f"{API}/{quote(name, safe='')}{suffix}"


def list_serving_endpoints(session, inputs):
    doc = session.get(API)
    endpoints = [e for e in doc.get("endpoints") or [] if isinstance(e, dict)]
    cap = inputs.get("max_items")
    truncated = cap is not None and len(endpoints) > cap
    endpoints = endpoints[:cap] if cap is not None else endpoints
    return {"endpoints": endpoints, "count": len(endpoints), "truncated": truncated}


def get_serving_endpoint(session, inputs):
    return session.get(_path(inputs["name"]), require=("name",))


def select_serving_endpoint(session, inputs):
    doc = session.get(API)
    return [{"label": f"{e['name']} ({(e.get('state') or {}).get('ready', 'UNKNOWN')})", "value": e["name"]}
            for e in doc.get("endpoints") or [] if isinstance(e, dict) and e.get("name")]


def _config(inputs) -> dict:
    if inputs.get("served_entities"):
        entities = inputs["served_entities"]
    else:
        entity = {"entity_name": inputs["entity_name"], "workload_size": inputs.get("workload_size") or "Small",
                  "scale_to_zero_enabled": bool(inputs.get("scale_to_zero_enabled", True))}
        if inputs.get("entity_version"):
            entity["entity_version"] = str(inputs["entity_version"])
        entities = [entity]
    config = {"served_entities": entities}
    if inputs.get("traffic_config"):
        config["traffic_config"] = inputs["traffic_config"]
    return config


def _wait(session, name: str, inputs) -> dict:
    def poll():
        ep = session.get(_path(name), require=("name",))
        update = (ep.get("state") or {}).get("config_update") or "UNKNOWN"
        if update in FAILED:
            raise ConnectorError("operation_failed", f"The config update of serving endpoint {name} ended {update}",
                                 details={"name": name, "state": ep.get("state")},
                                 hint="Check the served entity (name, version, workload) and the endpoint's build "
                                      "logs in the workspace, then update the config again.")
        return update == "NOT_UPDATING", ep, update

    return session.wait(poll, what=f"serving endpoint {name} config update", timeout=inputs["timeout_seconds"],
                        interval=inputs["poll_interval_seconds"], follow_up=("get_serving_endpoint", {"name": name}))


def create_serving_endpoint(session, inputs):
    name = inputs["name"]
    body = {"name": name, "config": _config(inputs)}
    if inputs.get("tags"):
        body["tags"] = [{"key": k, "value": v} for k, v in inputs["tags"].items()]
    ep = session.start("create", lambda: session.post(API, body, require=("name",)), ids={"name": name},
                       follow_up="get_serving_endpoint")
    if inputs.get("wait"):
        return _wait(session, name, inputs)
    return ep


def update_serving_endpoint_config(session, inputs):
    name = inputs["name"]
    ep = session.start("update", lambda: session.request("PUT", _path(name, "/config"), json=_config(inputs),
                                                         require=("name",)),
                       ids={"name": name}, follow_up="get_serving_endpoint")
    if inputs.get("wait"):
        return _wait(session, name, inputs)
    return ep


def delete_serving_endpoint(session, inputs):
    session.request("DELETE", _path(inputs["name"]), idempotent=False)     # a repeat would answer 404
    return {"name": inputs["name"], "deleted": True}


# --------------------------------------------------------------------------- query

def _properties(schema, doc, depth=0) -> set:
    """The property names a request schema allows (through $ref, allOf, anyOf, oneOf)."""
    if not isinstance(schema, dict) or depth > 8:
        return set()
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target = doc
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return _properties(target, doc, depth + 1)
    names = set((schema.get("properties") or {}).keys()) if isinstance(schema.get("properties"), dict) else set()
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            names |= _properties(sub, doc, depth + 1)
    return names


def _from_openapi(doc) -> set:
    names = set()
    for item in (doc.get("paths") or {}).values() if isinstance(doc, dict) else []:
        post = item.get("post") if isinstance(item, dict) else None
        content = ((post or {}).get("requestBody") or {}).get("content") or {}
        for media in content.values():
            names |= _properties((media or {}).get("schema"), doc)
    return names


def _detect(session, name: str) -> str | None:
    """chat, completions, embeddings or "model" from the endpoint's OpenAPI document, else its task."""
    try:
        names = _from_openapi(session.get(_path(name, "/openapi")))
    except ConnectorError as exc:
        if exc.type not in ("not_found", "bad_request", "invalid_state", "server_error"):
            raise
        names = set()
    for prop, kind in (("messages", "chat"), ("prompt", "completions"), ("input", "embeddings")):
        if prop in names:
            return kind
    if names & set(DATAFRAME):
        return "model"
    task = session.get(_path(name), require=("name",)).get("task")
    return LLM.get(task) or ("model" if not task else None)


def _model_format(value) -> str:
    if isinstance(value, dict) and "data" in value and ("columns" in value or "index" in value):
        return "dataframe_split"
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return "dataframe_records"
    if isinstance(value, list):
        return "instances"
    return "inputs"


def check_query_serving_endpoint(inputs) -> list:
    fmt, value = inputs.get("input_format") or "auto", _value(inputs)
    problems = []
    key, label = ("text", "Text") if inputs.get("text") not in (None, "") else ("input", "Model Input")

    def bad(reason):
        problems.append({"key": key, "label": label, "reason": reason})

    if key == "text" and fmt in DATAFRAME:
        bad(f"is for chat, completions and embeddings; a model takes rows in Model Input ({fmt})")
    elif value in (None, "", [], {}):
        if inputs.get("text") is not None or inputs.get("input") is not None:
            bad("is empty")
    elif fmt == "chat" and not isinstance(value, str) and not (
            isinstance(value, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)):
        bad('for chat must be a text or a list of {"role", "content"} messages')
    elif fmt == "completions" and not (isinstance(value, str) or (isinstance(value, list)
                                                                  and all(isinstance(p, str) for p in value))):
        bad("for completions must be a text or a list of texts")
    elif fmt == "embeddings" and not (isinstance(value, str) or (isinstance(value, list)
                                                                 and all(isinstance(p, str) for p in value))):
        bad("for embeddings must be a text or a list of texts")
    elif fmt == "dataframe_records" and not (isinstance(value, list) and all(isinstance(r, dict) for r in value)):
        bad("for dataframe records must be a list of row objects")
    elif fmt == "dataframe_split" and not (isinstance(value, dict) and isinstance(value.get("data"), list)):
        bad('for dataframe split must be {"columns": [...], "data": [[...], ...]}')
    elif fmt == "instances" and not isinstance(value, list):
        bad("for instances must be a list")
    if fmt not in ("auto", "chat", "completions") and (inputs.get("max_tokens") is not None
                                                       or inputs.get("temperature") is not None):
        problems.append({"key": "max_tokens" if inputs.get("max_tokens") is not None else "temperature",
                         "label": "Max Tokens" if inputs.get("max_tokens") is not None else "Temperature",
                         "reason": f"applies to chat and completions only, not {fmt}"})
    return problems


def _value(inputs):
    return inputs["text"] if inputs.get("text") not in (None, "") else inputs.get("input")


def _body(fmt: str, inputs) -> dict:
    value = _value(inputs)
    if fmt == "chat":
        messages = [{"role": "user", "content": value}] if isinstance(value, str) else list(value)
        if inputs.get("system_prompt"):
            messages = [{"role": "system", "content": inputs["system_prompt"]}] + messages
        body = {"messages": messages}
    elif fmt == "completions":
        body = {"prompt": value}
    elif fmt == "embeddings":
        body = {"input": value}
    else:
        body = {fmt: value}
    if fmt in ("chat", "completions"):
        for key in ("max_tokens", "temperature"):
            if inputs.get(key) is not None:
                body[key] = inputs[key]
    body.update(inputs.get("extra_params") or {})
    return body


def query_serving_endpoint(session, inputs):
    name = inputs["name"]
    fmt = inputs.get("input_format") or "auto"
    if fmt == "auto":
        kind = _detect(session, name)
        value = _value(inputs)
        if kind is None:          # an unknown task: the shape of Input decides
            kind = "chat" if isinstance(value, str) or (isinstance(value, list) and value and all(
                isinstance(m, dict) and "role" in m for m in value)) else "model"
        fmt = _model_format(value) if kind == "model" else kind
        problems = check_query_serving_endpoint(dict(inputs, input_format=fmt))
        if problems:
            for p in problems:
                p["reason"] += f" (the endpoint {name} takes {fmt})"
            raise InputError(problems)
    path = f"/serving-endpoints/{quote(name, safe='')}/invocations"
    response = session.response("POST", path, json=_body(fmt, inputs), idempotent=True)
    doc = session.decode(response, "POST", path)
    out = dict(doc)
    out["served_model_name"] = response.headers.get("served-model-name") or doc.get("served_model_name")
    out["input_format"] = fmt
    return out
