r"""Model Serving (contract part 2, §2.3): serving endpoints, their config updates, invocations and
per-endpoint OpenAPI documents.

A config update (create, ``PUT .../config``) is asynchronous as in Databricks: the endpoint shows
``state.config_update`` IN_PROGRESS with the new config under ``pending_config`` for
``serving_update_seconds``, then the config becomes current, ``config_update`` NOT_UPDATING and
``ready`` READY (``serving_update_fail_next``: UPDATE_FAILED once, the old config kept). A second
update while one is in progress is refused (409 RESOURCE_CONFLICT). States move when read.

What an endpoint answers (``POST /serving-endpoints/{name}/invocations``, no ``/api/2.0``) depends
on what it serves, decided from the served entity:

* chat (``task`` llm/v1/chat): a foundation or external model whose name is not an embeddings or
  completions model; ``messages`` -> ``choices[{message}]`` from ``serving_chat_template``;
* completions (llm/v1/completions): a name with ``completion`` in it; ``prompt`` -> ``choices[{text}]``;
* embeddings (llm/v1/embeddings): a name with ``embed``, ``gte`` or ``bge`` in it; ``input`` ->
  ``data[{embedding}]``, a deterministic hashed bag of words of ``serving_embedding_dimensions``
  numbers (unit length; texts sharing words are near), also used by vector search for text queries;
* a custom model (a Unity Catalog model, ``catalog.schema.model``): ``dataframe_split``,
  ``dataframe_records``, ``instances`` or ``inputs`` -> ``predictions``, one per row: the sum of the
  row's numbers (the model's declared function).

Every answer carries the ``served-model-name`` header. Two pay-per-token endpoints are seeded, as
in a workspace: ``databricks-meta-llama-3-3-70b-instruct`` (chat) and ``databricks-gte-large-en``
(embeddings). Applied changes: ``state.applied["serving/<op>"]``.
"""
from __future__ import annotations

import hashlib
import math
import re
import uuid
from typing import Any, Dict, List, Optional
from urllib.parse import unquote

from .api import ApiError, copy_json, invalid_parameter, route

API = r"/api/2\.0/serving-endpoints"
NAME = r"(?P<name>[^/]+)"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
SIZES = ("Small", "Medium", "Large")
CHAT, COMPLETIONS, EMBEDDINGS, CUSTOM = "llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings", None
SEEDED = (("databricks-meta-llama-3-3-70b-instruct", "system.ai.meta_llama_v3_3_70b_instruct"),
          ("databricks-gte-large-en", "system.ai.gte_large_en"))


def kind_of(entity: dict) -> Optional[str]:
    ext = entity.get("external_model") or {}
    if ext.get("task"):
        return ext["task"]
    name = str(entity.get("entity_name") or ext.get("name") or "").lower()
    if re.search(r"embed|gte|bge", name):
        return EMBEDDINGS
    if "completion" in name:
        return COMPLETIONS
    if ext or name.startswith(("system.ai.", "databricks-")):
        return CHAT
    return CUSTOM


def _seed(state) -> Dict[str, dict]:
    store: Dict[str, dict] = {}
    for name, entity in SEEDED:
        ep = _new(state, name, {"served_entities": [{"entity_name": entity, "entity_version": "1"}]},
                  "System user", {})
        _apply(state, ep, ep.pop("_pending"))
        store[name] = ep
    return store


def endpoints(state) -> Dict[str, dict]:
    return state.area("serving", lambda: _seed(state))


def _served(state, entities: list, creator: str) -> list:
    out = []
    for e in entities:
        item = {k: copy_json(v) for k, v in e.items()}
        version = item.get("entity_version")
        item.setdefault("name", f"{str(item.get('entity_name', 'model')).split('.')[-1]}"
                                + (f"-{version}" if version else ""))
        item.setdefault("workload_size", "Small")
        item.setdefault("scale_to_zero_enabled", False)
        item.update(creator=creator, creation_timestamp=state.now_ms(),
                    state={"deployment": "DEPLOYMENT_READY", "deployment_state_message": ""})
        out.append(item)
    return out


def _check_config(config: Any) -> list:
    if not isinstance(config, dict):
        raise invalid_parameter("config must be an object with served_entities")
    entities = config.get("served_entities") or config.get("served_models")
    if not isinstance(entities, list) or not entities:
        raise invalid_parameter("The config must have at least one served entity (served_entities).")
    for i, e in enumerate(entities):
        if not isinstance(e, dict) or not (e.get("entity_name") or e.get("model_name") or e.get("external_model")):
            raise invalid_parameter(f"served_entities[{i}] needs an entity_name (or an external_model)")
        if "model_name" in e and "entity_name" not in e:
            e = dict(e, entity_name=e["model_name"], entity_version=e.get("model_version"))
            entities[i] = e
        size = e.get("workload_size")
        if size is not None and size not in SIZES:
            raise invalid_parameter(f"served_entities[{i}].workload_size must be one of {', '.join(SIZES)}")
    routes = ((config.get("traffic_config") or {}).get("routes")) or []
    if routes and sum(int(r.get("traffic_percentage", 0)) for r in routes) != 100:
        raise invalid_parameter("The traffic percentages of traffic_config.routes must add up to 100.")
    return entities


def _new(state, name: str, config: dict, creator: str, body: dict) -> dict:
    entities = _check_config(config)
    now = state.now_ms()
    ep = {"name": name, "id": uuid.uuid4().hex, "creator": creator, "creation_timestamp": now,
          "last_updated_timestamp": now, "permission_level": "CAN_MANAGE", "route_optimized": bool(body.get("route_optimized")),
          "state": {"ready": "NOT_READY", "config_update": "IN_PROGRESS"}, "config": None,
          "tags": copy_json(body.get("tags") or []), "_version": 0}
    if body.get("description"):
        ep["description"] = body["description"]
    if body.get("ai_gateway"):
        ep["ai_gateway"] = copy_json(body["ai_gateway"])
    kind = kind_of(entities[0])
    if kind:
        ep["task"] = kind
    ep["_pending"] = _pending(state, ep, entities, config, creator)
    return ep


def _pending(state, ep: dict, entities: list, config: dict, creator: str) -> dict:
    ep["_version"] += 1
    served = _served(state, entities, creator)
    traffic = copy_json(config.get("traffic_config")) or {
        "routes": [{"served_model_name": served[0]["name"], "traffic_percentage": 100}]}
    fail = bool(state.config.serving_update_fail_next)
    if fail:
        state.config.serving_update_fail_next = False
    return {"config_version": ep["_version"], "served_entities": served, "traffic_config": traffic,
            "start_time": state.now_ms(), "_at": state.now() + float(state.config.serving_update_seconds),
            "_fail": fail}


def _apply(state, ep: dict, pending: dict) -> None:
    if pending.get("_fail"):
        ep["state"] = {"ready": "READY" if ep["config"] else "NOT_READY", "config_update": "UPDATE_FAILED"}
        return
    ep["config"] = {"config_version": pending["config_version"], "served_entities": pending["served_entities"],
                    "traffic_config": pending["traffic_config"]}
    ep["state"] = {"ready": "READY", "config_update": "NOT_UPDATING"}
    ep["last_updated_timestamp"] = state.now_ms()


def advance(state, ep: dict) -> dict:
    pending = ep.get("_pending")
    if pending is not None and state.now() >= pending["_at"]:
        ep.pop("_pending")
        _apply(state, ep, pending)
    return ep


def lookup(state, raw: str) -> dict:
    name = unquote(raw)
    ep = endpoints(state).get(name)
    if ep is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint with name '{name}' does not exist.")
    return advance(state, ep)


def public(req, ep: dict, *, detailed: bool = True) -> dict:
    out = {k: copy_json(v) for k, v in ep.items() if not k.startswith("_") and v is not None}
    pending = ep.get("_pending")
    if pending is not None and detailed:
        out["pending_config"] = {k: copy_json(v) for k, v in pending.items() if not k.startswith("_")}
    if ep.get("config") and not detailed:
        out["config"] = {"config_version": ep["config"]["config_version"],
                         "served_entities": [{k: e[k] for k in ("name", "entity_name", "entity_version")
                                              if k in e} for e in ep["config"]["served_entities"]]}
    if detailed:
        out["endpoint_url"] = f"{req.base_url}/serving-endpoints/{ep['name']}/invocations"
    return out


# --------------------------------------------------------------------------- endpoints

@route("POST", API)
def create(req):
    body = req.body
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise invalid_parameter("name is required: letters, digits, '-' and '_', at most 63 characters, starting "
                                "with a letter or digit")
    creator = req.principal.user_name if req.principal else "emulator-user@example.com"
    st = req.state
    with st.lock:
        store = endpoints(st)
        if name in store:
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Endpoint with name '{name}' already exists.")
        ep = _new(st, name, copy_json(body.get("config")), creator, body)
        store[name] = ep
        st.applied["serving/create"] += 1
        return public(req, ep)


@route("GET", API)
def list_endpoints(req):
    with req.state.lock:
        return {"endpoints": [public(req, advance(req.state, ep), detailed=False)
                              for _, ep in sorted(endpoints(req.state).items())]}


@route("GET", API + "/" + NAME)
def get(req):
    with req.state.lock:
        return public(req, lookup(req.state, req.params["name"]))


@route("PUT", API + "/" + NAME + r"/config")
def update_config(req):
    st = req.state
    body = copy_json(req.body)
    with st.lock:
        ep = lookup(st, req.params["name"])
        if "_pending" in ep:
            raise ApiError(409, "RESOURCE_CONFLICT", f"Endpoint '{ep['name']}' is currently updating its config; "
                                                     "wait until config_update is NOT_UPDATING.")
        entities = _check_config(body)
        creator = req.principal.user_name if req.principal else "emulator-user@example.com"
        ep["_pending"] = _pending(st, ep, entities, body, creator)
        ep["state"] = {"ready": ep["state"]["ready"], "config_update": "IN_PROGRESS"}
        st.applied["serving/config/update"] += 1
        return public(req, ep)


@route("DELETE", API + "/" + NAME)
def delete(req):
    st = req.state
    with st.lock:
        ep = lookup(st, req.params["name"])
        del endpoints(st)[ep["name"]]
        st.applied["serving/delete"] += 1
        return {}


# --------------------------------------------------------------------------- OpenAPI of an endpoint

_REQUESTS = {
    CHAT: {"type": "object", "required": ["messages"], "properties": {
        "messages": {"type": "array", "items": {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"type": "string", "enum": ["system", "user", "assistant"]}, "content": {"type": "string"}}}},
        "max_tokens": {"type": "integer"}, "temperature": {"type": "number"}, "stop": {"type": "array"},
        "n": {"type": "integer"}}},
    COMPLETIONS: {"type": "object", "required": ["prompt"], "properties": {
        "prompt": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "max_tokens": {"type": "integer"}, "temperature": {"type": "number"}}},
    EMBEDDINGS: {"type": "object", "required": ["input"], "properties": {
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}},
    CUSTOM: {"type": "object", "properties": {
        "dataframe_split": {"type": "object", "properties": {"columns": {"type": "array"}, "data": {"type": "array"}}},
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "instances": {"type": "array"}, "inputs": {}}},
}


@route("GET", API + "/" + NAME + r"/openapi")
def openapi(req):
    with req.state.lock:
        ep = lookup(req.state, req.params["name"])
        config = ep.get("config")
        if not config:
            raise ApiError(400, "INVALID_STATE", f"Endpoint '{ep['name']}' has no served entity yet.")
        served = config["served_entities"]
    paths = {}
    for e in served:
        kind = kind_of(e)
        paths[f"/serving-endpoints/{ep['name']}/served-models/{e['name']}/invocations"] = {"post": {
            "requestBody": {"content": {"application/json": {"schema": _REQUESTS[kind]}}},
            "responses": {"200": {"description": "Successful operation"}}}}
    return {"openapi": "3.1.0", "info": {"title": ep["name"], "version": str(config["config_version"])},
            "servers": [{"url": f"{req.base_url}/serving-endpoints/{ep['name']}"}], "paths": paths}


# --------------------------------------------------------------------------- invocations

def embed(text: str, dims: int) -> List[float]:
    """A deterministic embedding: each word adds ±1 to a dimension chosen by its hash; unit length."""
    vec = [0.0] * dims
    for word in re.findall(r"\w+", str(text).lower()):
        h = hashlib.sha256(word.encode()).digest()
        vec[int.from_bytes(h[:4], "big") % dims] += 1.0 if h[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0:
        vec[0], norm = 1.0, 1.0
    return [round(v / norm, 6) for v in vec]


def _tokens(text: str) -> int:
    return max(1, len(re.findall(r"\w+|[^\w\s]", str(text))))


def _row_value(row) -> float:
    values = row.values() if isinstance(row, dict) else row if isinstance(row, list) else [row]
    total = 0.0
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            total += float(v)
    return total


def _rows(body: dict) -> list:
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise invalid_parameter("dataframe_split must be {columns, data}")
        cols = split.get("columns")
        return [dict(zip(cols, r)) if cols and isinstance(r, list) else r for r in split["data"]]
    for key in ("dataframe_records", "instances", "inputs"):
        if key in body:
            value = body[key]
            if isinstance(value, dict):        # columnar {"col": [values]}
                cols = list(value)
                n = max((len(v) for v in value.values() if isinstance(v, list)), default=0)
                return [{c: (value[c][i] if isinstance(value[c], list) and i < len(value[c]) else None) for c in cols}
                        for i in range(n)]
            if not isinstance(value, list):
                raise invalid_parameter(f"{key} must be a list")
            return value
    raise ApiError(400, "BAD_REQUEST", "The input must be one of dataframe_split, dataframe_records, instances "
                                       "or inputs for this model.")


def _answer(state, ep: dict, entity: dict, body: dict) -> dict:
    kind = kind_of(entity)
    model = entity["name"]
    if kind == CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ApiError(400, "BAD_REQUEST", "This is a chat endpoint: the request needs messages "
                                               "[{role, content}].")
        question = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
        text = state.config.serving_chat_template.format(question=question, model=entity.get("entity_name", model))
        n = int(body.get("n") or 1)
        prompt = sum(_tokens(m.get("content", "")) for m in messages)
        return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(state.now()),
                "model": entity.get("entity_name", model),
                "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                            for i in range(n)],
                "usage": {"prompt_tokens": prompt, "completion_tokens": _tokens(text) * n,
                          "total_tokens": prompt + _tokens(text) * n}}
    if kind == COMPLETIONS:
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)):
            raise ApiError(400, "BAD_REQUEST", "This is a completions endpoint: the request needs a prompt.")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        texts = [state.config.serving_chat_template.format(question=p, model=entity.get("entity_name", model))
                 for p in prompts]
        used = sum(_tokens(p) for p in prompts)
        return {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(state.now()),
                "model": entity.get("entity_name", model),
                "choices": [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": used, "completion_tokens": sum(map(_tokens, texts)),
                          "total_tokens": used + sum(map(_tokens, texts))}}
    if kind == EMBEDDINGS:
        value = body.get("input")
        if not isinstance(value, (str, list)) or (isinstance(value, list) and not all(isinstance(v, str) for v in value)):
            raise ApiError(400, "BAD_REQUEST", "This is an embeddings endpoint: the request needs input (a string "
                                               "or a list of strings).")
        texts = [value] if isinstance(value, str) else value
        dims = int(state.config.serving_embedding_dimensions)
        used = sum(map(_tokens, texts))
        return {"object": "list", "model": entity.get("entity_name", model),
                "data": [{"object": "embedding", "index": i, "embedding": embed(t, dims)} for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": used, "total_tokens": used}}
    return {"predictions": [_row_value(r) for r in _rows(body)]}


@route("POST", r"/serving-endpoints/" + NAME + r"/invocations", auth=True)
def invocations(req):
    body = req.body
    with req.state.lock:
        ep = lookup(req.state, req.params["name"])
        config = copy_json(ep.get("config"))
    if not config or ep["state"]["ready"] != "READY":
        raise ApiError(400, "BAD_REQUEST", f"Endpoint '{ep['name']}' is not ready (its config is still updating).")
    entities = config["served_entities"]
    routes = (config.get("traffic_config") or {}).get("routes") or []
    name = max(routes, key=lambda r: r.get("traffic_percentage", 0))["served_model_name"] if routes else None
    entity = next((e for e in entities if e["name"] == name), entities[0])
    out = _answer(req.state, ep, entity, body)
    return 200, out, {"served-model-name": entity["name"]}
