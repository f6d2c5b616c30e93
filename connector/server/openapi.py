"""The OpenAPI documents platforms import, generated from the spec.

* ``openapi31(surface, base_url)``: OpenAPI 3.1 - one operation per action, picker and trigger,
  request schemas from the input schemas, response schemas from the output schemas (their
  ``$defs`` hoisted into ``components/schemas``), the error and operation schemas, and a security
  scheme per credential header.
* ``swagger20(surface, base_url)``: OpenAPI 2.0 with what Power Automate and Logic Apps custom
  connectors read: ``x-ms-summary``, ``x-ms-visibility``, ``x-ms-dynamic-values`` bound to the
  pickers (served there as GET operations with query parameters), ``x-ms-trigger`` on GET forms of
  the polling triggers (Power Automate's polling contract: 200 with the new items, 202 when there
  are none, ``Location`` with the next state) and ``x-ms-capabilities.testConnection``. JSON
  Schema 2020-12 is narrowed to the 2.0 subset (``anyOf`` of a type and null becomes
  ``x-nullable``; what 2.0 cannot say is dropped and the schema left open).
"""
from __future__ import annotations

import copy
import json
from urllib.parse import urlsplit

from .surface import Surface, annotations, output_schema

ERROR_STATUSES = {
    "400": "The inputs are invalid (every bad input is named) or Databricks rejected the request.",
    "401": "No API key, a wrong one, or the connection's credential is missing or was rejected.",
    "403": "The credential lacks a permission, or the connection's host is not allowed on this server.",
    "404": "The resource (or the operation) does not exist.",
    "409": "The resource is in a state that does not allow this, or was changed concurrently.",
    "413": "The request body is too large.",
    "415": "The request body is not JSON.",
    "422": "The operation ran and failed (for example a job run or a statement that failed).",
    "429": "Databricks is throttling requests; retry after Retry-After seconds.",
    "500": "A bug in the connector.",
    "502": "Databricks answered with a server error, or could not be reached.",
    "503": "Databricks (or this server) is temporarily unavailable; retry after Retry-After seconds.",
    "504": "The operation did not finish in time.",
}
CREDENTIAL_SCHEMES = {
    "databricks_host": ("X-Databricks-Host", "Workspace host for a personal access token, e.g. dbc-123.cloud.databricks.com."),
    "databricks_token": ("X-Databricks-Token", "Databricks personal access token."),
    "databricks_token_url": ("X-Databricks-Token-Url", "Service principal: the OAuth token URL (.../oidc/v1/token)."),
    "databricks_client_id": ("X-Databricks-Client-Id", "Service principal: client id."),
    "databricks_client_secret": ("X-Databricks-Client-Secret", "Service principal: client secret."),
    "databricks_connection": ("X-Databricks-Connection", "The name of a connection configured on this server."),
}
CONNECTION_ALTERNATIVES = (("databricks_host", "databricks_token"),
                           ("databricks_token_url", "databricks_client_id", "databricks_client_secret"),
                           ("databricks_connection",))

ERROR_SCHEMA = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["type", "message"],
        "properties": {
            "type": {"type": "string", "description": "What the user must do: invalid_input, authentication, "
                     "permission_denied, not_found, invalid_state, conflict, rate_limited, unavailable, ..."},
            "message": {"type": "string"},
            "hint": {"type": ["string", "null"]},
            "status": {"type": ["integer", "null"], "description": "Databricks' HTTP status, when it answered."},
            "error_code": {"type": ["string", "integer", "null"]},
            "details": {"type": "object", "description": "details.started: the ids of what the step started; "
                        "details.inputs: every bad input."},
        }}},
}
OPERATION_SCHEMA = {
    "type": "object", "required": ["status", "operation", "location"],
    "properties": {
        "status": {"type": "string", "enum": ["running"]},
        "operation": {"type": "string", "description": "The signed operation token."},
        "location": {"type": "string", "description": "GET this URL until it answers 200 with the output."},
        "action": {"type": "string"},
        "retry_after": {"type": "integer", "minimum": 1},
        "started": {"type": "object", "description": "The ids of what the step started (cluster_id, run_id, ...)."},
        "state": {"description": "The last state Databricks reported."},
    },
}


def _error_responses(ref_prefix: str) -> dict:
    return {code: {"$ref": f"{ref_prefix}Error{code}"} for code in ERROR_STATUSES}


# ----------------------------------------------------------------------------- schema plumbing

def hoist(schema: dict, store: dict, prefix: str, ref_base: str) -> dict:
    """Move ``$defs``/``definitions`` of a self-contained schema into ``store`` (named once; a
    clash with a different schema gets the item's prefix) and point its ``$ref``s there."""
    schema = copy.deepcopy(schema)
    mapping: dict[str, str] = {}

    def collect(node):
        if isinstance(node, dict):
            for key in ("$defs", "definitions"):
                defs = node.pop(key, None) if isinstance(node.get(key), dict) else None
                for name, sub in (defs or {}).items():
                    collect(sub)
                    target = name
                    if target in store and store[target] != sub:
                        target = f"{prefix}_{name}"
                    mapping[f"#/{key}/{name}"] = target
                    store.setdefault(target, sub)
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(schema)
    if not mapping:
        return schema

    def rewrite(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref in mapping:
                node["$ref"] = ref_base + mapping[ref]
            for v in node.values():
                rewrite(v)
        elif isinstance(node, list):
            for v in node:
                rewrite(v)

    rewrite(schema)
    for name in set(mapping.values()):
        rewrite(store[name])
    return schema


def _clean31(schema: dict) -> dict:
    return {k: v for k, v in schema.items() if k != "$schema"}


_DROP20 = {"$schema", "$id", "$comment", "$anchor", "not", "if", "then", "else", "dependentRequired",
           "dependentSchemas", "prefixItems", "unevaluatedProperties", "unevaluatedItems", "contains",
           "propertyNames", "patternProperties", "writeOnly", "const", "examples", "minContains", "maxContains",
           "contentEncoding", "contentMediaType", "$defs", "definitions", "oneOf", "anyOf"}


def to_swagger_schema(schema, *, nested: bool = True):
    """JSON Schema 2020-12 -> the OpenAPI 2.0 schema subset."""
    if not isinstance(schema, dict):
        return {}
    out: dict = {}
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(alternatives, list):
        real = [a for a in alternatives if not (isinstance(a, dict) and a.get("type") == "null")]
        if len(real) == 1 and len(real) < len(alternatives):
            out.update(to_swagger_schema(real[0]))
            out["x-nullable"] = True
        elif len(real) == 1:
            out.update(to_swagger_schema(real[0]))
    for key, value in schema.items():
        if key in _DROP20:
            continue
        if key == "type":
            types = value if isinstance(value, list) else [value]
            if "null" in types:
                out["x-nullable"] = True
            types = [t for t in types if t != "null"]
            if len(types) == 1:
                out["type"] = types[0]
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: to_swagger_schema(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = to_swagger_schema(value) if isinstance(value, dict) else {}
        elif key == "additionalProperties":
            out[key] = to_swagger_schema(value) if isinstance(value, dict) else bool(value)
        elif key == "allOf" and isinstance(value, list):
            parts = [p for p in (to_swagger_schema(v) for v in value) if p]
            if parts:
                out["allOf"] = parts
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, (int, float)) and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "$ref" and isinstance(value, str):
            out[key] = value
        elif key == "enum" and isinstance(value, list):
            vals = [v for v in value if v is not None]
            if vals:
                out["enum"] = vals
        else:
            out[key] = copy.deepcopy(value)
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if isinstance(schema.get("examples"), list) and schema["examples"] and "example" not in out:
        out["example"] = schema["examples"][0]
    if "type" not in out:
        for k in ("properties", "additionalProperties"):
            if k in out and "allOf" not in out:
                out["type"] = "object"
                break
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {}
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        pass
    return out


def _pascal(key: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in key.replace("-", "_").split("_") if part)


def _summary(text: str) -> str:
    text = " ".join(str(text).split())
    return text[:80].rstrip(" .") if text else ""


# ----------------------------------------------------------------------------- OpenAPI 3.1

def openapi31(surface: Surface, base_url: str, *, api_key: bool = True) -> dict:
    connector = surface.connector
    schemas: dict = {"Error": ERROR_SCHEMA, "Operation": OPERATION_SCHEMA}
    paths: dict = {}
    base = [["api_key"]] if api_key else [[]]
    security = [{name: [] for name in base[0] + list(alt)} for alt in CONNECTION_ALTERNATIVES]
    only_key = [{"api_key": []}] if api_key else []
    errors = _error_responses("#/components/responses/")
    prefer = {"$ref": "#/components/parameters/Prefer"}

    def body(schema):
        required = bool(schema.get("required")) or bool(schema.get("allOf"))
        return {"required": required, "content": {"application/json": {"schema": _clean31(schema)}}}

    for key, action in surface.actions.items():
        out = hoist(output_schema(action), schemas, key, "#/components/schemas/")
        op = {"operationId": key, "summary": _summary(action.get("label", key)),
              "description": action.get("description", ""), "tags": [action.get("group") or action.get("area") or "Actions"],
              "parameters": [prefer], "requestBody": body(action["input_schema"]), "security": security,
              "responses": {"200": {"description": "The action's output.", "content": {"application/json": {"schema": out}}},
                            "202": {"$ref": "#/components/responses/Accepted"}, **errors}}
        ann = annotations(action)
        if ann is not None:
            op["x-annotations"] = ann
        if action.get("version"):
            op["x-version"] = action["version"]
        paths[f"/actions/{key}"] = {"post": op}
    for key, picker in surface.pickers.items():
        out = hoist(output_schema(picker, "picker"), schemas, key, "#/components/schemas/")
        paths[f"/pickers/{key}"] = {"post": {
            "operationId": f"pick_{key}", "summary": _summary(picker.get("label", key)),
            "description": picker.get("description", ""), "tags": ["Pickers"], "security": security,
            "requestBody": body(picker["input_schema"]),
            "responses": {"200": {"description": "The options: label and value of each.",
                                  "content": {"application/json": {"schema": out}}}, **errors}}}
    for key, trigger in surface.triggers.items():
        event = hoist(trigger.get("event_schema") or {}, schemas, key, "#/components/schemas/")
        paths[f"/triggers/{key}/poll"] = {"post": {
            "operationId": f"poll_{key}", "summary": _summary(trigger.get("label", key)),
            "description": trigger.get("description", ""), "tags": ["Triggers"], "security": security,
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False,
                "properties": {"inputs": _clean31(trigger["input_schema"]),
                               "state": {"type": ["object", "null"], "description": "The state the last poll returned; "
                                         "leave out on the first poll (events start from now)."}}}}}},
            "responses": {"200": {"description": "New events, and the state to send with the next poll.",
                                  "content": {"application/json": {"schema": {
                                      "type": "object", "required": ["events", "state"],
                                      "properties": {"events": {"type": "array", "items": event},
                                                     "state": {"type": "object"}}}}}}, **errors}}}
    paths["/connections/test"] = {"post": {
        "operationId": "test_connection", "summary": "Test the connection",
        "description": "Runs the connection type's test action (Get Current User) with the request's connection.",
        "tags": ["Connections"], "security": security,
        "responses": {"200": {"description": "The connection works.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["ok"], "properties": {
                "ok": {"type": "boolean"}, "host": {"type": "string"}, "connection_type": {"type": "string"},
                "user": {"type": ["string", "null"]}, "display_name": {"type": ["string", "null"]},
                "test": {"type": "string"}}}}}}, **errors}}}
    paths["/connections"] = {"get": {
        "operationId": "list_connections", "summary": "List the connections configured on this server",
        "description": "Names to send in X-Databricks-Connection (never their contents).", "tags": ["Connections"],
        "security": only_key, "responses": {"200": {"description": "The names.", "content": {"application/json": {
            "schema": {"type": "object", "required": ["connections"], "properties": {
                "connections": {"type": "array", "items": {"type": "string"}}}}}}},
            "401": errors["401"], "500": errors["500"]}}}
    paths["/operations/{token}"] = {"get": {
        "operationId": "get_operation", "summary": "Follow a long operation",
        "description": "202 while it runs (with a new Location: always follow the latest), 200 with the action's "
                       "output when done. Send the same connection headers as the call that started it.",
        "tags": ["Operations"], "security": security,
        "parameters": [{"name": "token", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": r"^op1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"}}],
        "responses": {"200": {"description": "The action's output.", "content": {"application/json": {"schema": {}}}},
                      "202": {"$ref": "#/components/responses/Accepted"}, **errors}}}
    paths["/spec"] = {"get": {"operationId": "get_spec", "summary": "The connector's spec", "tags": ["Documents"],
                              "security": [], "responses": {"200": {"description": "The spec as this server exposes it.",
                                                                    "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    paths["/healthz"] = {"get": {"operationId": "healthz", "summary": "Liveness", "tags": ["Documents"], "security": [],
                                 "responses": {"200": {"description": "Ready.", "content": {"application/json": {
                                     "schema": {"type": "object", "required": ["status"],
                                                "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}}}}}
    schemes = {"api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                           "description": "This server's own key (from --api-key-env)."}} if api_key else {}
    schemes.update({name: {"type": "apiKey", "in": "header", "name": header, "description": text}
                    for name, (header, text) in CREDENTIAL_SCHEMES.items()})
    retry_after = {"description": "Seconds to wait before the next request.", "schema": {"type": "integer", "minimum": 1}}
    responses = {f"Error{code}": {"description": text, "headers": {"Retry-After": retry_after} if code in ("429", "503") else {},
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                 for code, text in ERROR_STATUSES.items()}
    for r in responses.values():
        if not r["headers"]:
            del r["headers"]
    responses["Accepted"] = {
        "description": "The step runs on: GET the Location until it answers 200.",
        "headers": {"Location": {"description": "The operation's URL.", "schema": {"type": "string"}},
                    "Retry-After": retry_after},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Operation"}}}}
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": connector.get("label", "Databricks"), "version": str(connector.get("version", "0")),
                 "description": connector.get("description", ""),
                 **({"x-spec-version": surface.raw["spec_version"]} if surface.raw.get("spec_version") else {})},
        "servers": [{"url": base_url.rstrip("/")}],
        "tags": sorted(({"name": t} for t in {op["tags"][0] for p in paths.values() for op in p.values()}),
                       key=lambda t: t["name"]),
        "paths": paths,
        "components": {
            "schemas": schemas, "responses": responses, "securitySchemes": schemes,
            "parameters": {"Prefer": {"name": "Prefer", "in": "header", "required": False,
                                      "description": "respond-async: answer 202 with an operation at once when the "
                                                     "step has to wait.",
                                      "schema": {"type": "string", "enum": ["respond-async"]}}},
        },
    }


# ----------------------------------------------------------------------------- OpenAPI 2.0

def _query_parameters(item: dict) -> list[dict]:
    """Simple inputs as query parameters (pickers and triggers' GET forms)."""
    params = []
    schema = item.get("input_schema") or {}
    required = set(schema.get("required", []))
    for key, prop in schema.get("properties", {}).items():
        p = to_swagger_schema(prop)
        kind = p.get("type")
        param = {"name": key, "in": "query", "required": key in required, "x-ms-summary": prop.get("title", key),
                 "description": prop.get("description", "")}
        if kind in ("string", "integer", "number", "boolean"):
            param["type"] = kind
            for k in ("enum", "default", "pattern", "minimum", "maximum", "minLength", "maxLength", "format"):
                if k in p:
                    param[k] = p[k]
        else:
            param["type"] = "string"
            param["description"] = (param["description"] + " (JSON text)").strip()
        if prop.get("x-advanced"):
            param["x-ms-visibility"] = "advanced"
        params.append(param)
    return params


def _ms_body(schema: dict, surface: Surface, picker_ops: dict) -> dict:
    """The request body schema with Power Automate's per-field extensions."""
    out = to_swagger_schema(schema)
    required = set(schema.get("required", []))
    for key, prop in (schema.get("properties") or {}).items():
        target = out["properties"][key]
        target["x-ms-summary"] = prop.get("title", key)
        if prop.get("x-advanced"):
            target["x-ms-visibility"] = "advanced"
        elif key in required:
            target["x-ms-visibility"] = "important"
        picker = prop.get("x-picker")
        if picker in picker_ops:
            params = {pin: {"parameter": ain} for pin, ain in (prop.get("x-picker-inputs") or {}).items()}
            target["x-ms-dynamic-values"] = {"operationId": picker_ops[picker], "value-path": "value",
                                             "value-title": "label", "parameters": params}
            # the newer form, whose references to other body fields are unambiguous
            target["x-ms-dynamic-list"] = {
                "operationId": picker_ops[picker], "itemValuePath": "value", "itemTitlePath": "label",
                "parameters": {pin: {"parameterReference": f"body/{ain}"}
                               for pin, ain in (prop.get("x-picker-inputs") or {}).items()}}
    out.pop("title", None)
    return out


def swagger20(surface: Surface, base_url: str, *, api_key: bool = True) -> dict:
    connector = surface.connector
    parts = urlsplit(base_url)
    definitions: dict = {"Error": to_swagger_schema(ERROR_SCHEMA), "Operation": to_swagger_schema(OPERATION_SCHEMA)}
    paths: dict = {}
    error = {"description": "The error document.", "schema": {"$ref": "#/definitions/Error"}}
    accepted = {"description": "The step runs on: GET the Location until it answers 200.",
                "headers": {"Location": {"type": "string"}, "Retry-After": {"type": "integer"}},
                "schema": {"$ref": "#/definitions/Operation"}}

    def errs():
        return {code: {**error, "description": text} for code, text in ERROR_STATUSES.items()}

    def refs(schema, prefix):
        return to_swagger_schema(hoist(schema, definitions, prefix, "#/definitions/"))

    picker_ops = {key: f"Pick{_pascal(key)}" for key in surface.pickers}
    for key, picker in surface.pickers.items():
        paths[f"/pickers/{key}"] = {"get": {
            "operationId": picker_ops[key], "summary": _summary(picker.get("label", key)),
            "description": picker.get("description", "") or picker.get("label", key), "x-ms-visibility": "internal",
            "parameters": _query_parameters(picker),
            "responses": {"200": {"description": "The options.", "schema": refs(output_schema(picker, "picker"), key)},
                          **errs()}}}
    for key, action in surface.actions.items():
        schema = hoist(action["input_schema"], definitions, key, "#/definitions/")
        op = {"operationId": _pascal(key), "summary": _summary(action.get("label", key)),
              "description": action.get("description", "") or action.get("label", key),
              "tags": [action.get("group") or "Actions"],
              "parameters": [{"name": "body", "in": "body", "required": bool(schema.get("required")),
                              "schema": _ms_body(schema, surface, picker_ops)}],
              "responses": {"200": {"description": "The action's output.", "schema": refs(output_schema(action), key)},
                            "202": accepted, **errs()}}
        ann = annotations(action)
        if ann is not None and ann.get("destructive"):
            op["x-ms-visibility"] = "advanced"
        paths[f"/actions/{key}"] = {"post": op}
    for key, trigger in surface.triggers.items():
        event = refs(trigger.get("event_schema") or {}, key)
        paths[f"/triggers/{key}/poll"] = {"get": {
            "operationId": f"When{_pascal(key)}", "summary": _summary(trigger.get("label", key)),
            "description": trigger.get("description", "") or trigger.get("label", key),
            "x-ms-trigger": "batch", "x-ms-visibility": "important",
            "parameters": _query_parameters(trigger) + [{"name": "state", "in": "query", "required": False, "type": "string",
                                                         "x-ms-visibility": "internal",
                                                         "description": "Set by the server in Location (the poll state)."}],
            "responses": {"200": {"description": "The new events; Location carries the next poll's state.",
                                  "headers": {"Location": {"type": "string"}, "Retry-After": {"type": "integer"}},
                                  "schema": {"type": "array", "items": event}},
                          "202": {"description": "No new events; poll Location after Retry-After.",
                                  "headers": {"Location": {"type": "string"}, "Retry-After": {"type": "integer"}}},
                          **errs()}}}
    paths["/connections/test"] = {"post": {
        "operationId": "TestConnection", "summary": "Test the connection", "description": "Runs Get Current User.",
        "x-ms-visibility": "internal", "parameters": [],
        "responses": {"200": {"description": "The connection works.", "schema": {"type": "object"}}, **errs()}}}
    paths["/operations/{token}"] = {"get": {
        "operationId": "GetOperation", "summary": "Follow a long operation", "x-ms-visibility": "internal",
        "description": "202 while the step runs, 200 with its output when done.",
        "parameters": [{"name": "token", "in": "path", "required": True, "type": "string"}],
        "responses": {"200": {"description": "The action's output.", "schema": {}}, "202": accepted, **errs()}}}
    security_definitions = {"api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}} if api_key else {}
    security_definitions.update({name: {"type": "apiKey", "in": "header", "name": header, "description": text}
                                 for name, (header, text) in CREDENTIAL_SCHEMES.items()})
    doc = {
        "swagger": "2.0",
        "info": {"title": connector.get("label", "Databricks"), "version": str(connector.get("version", "0")),
                 "description": connector.get("description", "")},
        "host": parts.netloc, "basePath": parts.path.rstrip("/") or "/", "schemes": [parts.scheme or "https"],
        "consumes": ["application/json"], "produces": ["application/json"],
        "paths": paths, "definitions": {name: to_swagger_schema(d) for name, d in definitions.items()},
        "securityDefinitions": security_definitions,
        "security": [{"api_key": []}] if api_key else [{"databricks_connection": []}],
        "x-ms-capabilities": {"testConnection": {"operationId": "TestConnection", "parameters": {}}},
        "x-ms-connector-metadata": [
            {"propertyName": "Website", "propertyValue": connector.get("documentation", "https://docs.databricks.com")},
            {"propertyName": "Categories", "propertyValue": "Data;IT Operations"}],
    }
    return json.loads(json.dumps(doc))
