"""Secrets API (contract areas §2.6): scopes and write-only secrets, as a connector sees them::

    POST /api/2.0/secrets/scopes/create   {scope, initial_manage_principal?, scope_backend_type?}
    POST /api/2.0/secrets/scopes/delete   {scope}   (its secrets go with it)
    GET  /api/2.0/secrets/scopes/list     {scopes[{name, backend_type}]}
    POST /api/2.0/secrets/put             {scope, key, string_value | bytes_value (base64)}  (<= 128 KB)
    POST /api/2.0/secrets/delete          {scope, key}
    GET  /api/2.0/secrets/list?scope=     {secrets[{key, last_updated_timestamp}]}   never a value
    GET  /api/2.0/secrets/get             400 BAD_REQUEST: values are served to notebooks only

Errors are Databricks': 400 RESOURCE_ALREADY_EXISTS ("Scope x already exists!"), 404
RESOURCE_DOES_NOT_EXIST ("Scope x does not exist!", "Secret key does not exist in scope x"), 400
INVALID_PARAMETER_VALUE (a name outside ``[A-Za-z0-9_.@-]{1,128}``, both or neither value, a value
over 128 KB, bytes that are not base64). :func:`secret_value` reads a stored value back (what a
notebook's ``dbutils.secrets.get`` would see); no endpoint answers with one.
"""
from __future__ import annotations

import base64
import binascii
import re

from .api import ApiError, invalid_parameter, route

API = r"/api/2\.0/secrets"
NAME = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
MAX_VALUE = 128 * 1024


def _scopes(state) -> dict:
    """scope -> {"backend_type", "secrets": {key: {"value": bytes, "last_updated_timestamp"}}}"""
    return state.area("secret_scopes")


def secret_value(state, scope: str, key: str):
    """The bytes stored under scope/key, or None (for tests and notebooks; never served over HTTP)."""
    with state.lock:
        s = _scopes(state).get(scope)
        item = s["secrets"].get(key) if s else None
        return item["value"] if item else None


def _name(body: dict, field: str, what: str) -> str:
    value = body.get(field)
    if value is None or value == "":
        raise invalid_parameter(f"Missing required field: {field}")
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise invalid_parameter(f"{what} name must consist of alphanumeric characters, dashes, underscores, "
                                f"@, and periods, and may not exceed 128 characters.")
    return value


def _scope(state, name: str) -> dict:
    s = _scopes(state).get(name)
    if s is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Scope {name} does not exist!")
    return s


@route("POST", API + r"/scopes/create")
def create_scope(req):
    body = req.body
    name = _name(body, "scope", "Scope")
    backend = body.get("scope_backend_type", "DATABRICKS")
    if backend not in ("DATABRICKS", "AZURE_KEYVAULT"):
        raise invalid_parameter(f"Invalid scope_backend_type: {backend}")
    if backend == "AZURE_KEYVAULT":
        raise invalid_parameter("Azure Key Vault-backed scopes need an Azure AD token; this workspace has none.")
    manager = body.get("initial_manage_principal")
    if manager not in (None, "", "users"):
        raise invalid_parameter("initial_manage_principal must be 'users' or omitted.")
    st = req.state
    with st.lock:
        if name in _scopes(st):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Scope {name} already exists!")
        _scopes(st)[name] = {"backend_type": "DATABRICKS", "secrets": {}}
        st.applied["secrets/create_scope"] += 1
    return {}


@route("POST", API + r"/scopes/delete")
def delete_scope(req):
    name = _name(req.body, "scope", "Scope")
    st = req.state
    with st.lock:
        _scope(st, name)
        del _scopes(st)[name]
        st.applied["secrets/scopes/delete"] += 1
    return {}


@route("GET", API + r"/scopes/list")
def list_scopes(req):
    with req.state.lock:
        scopes = [{"name": n, "backend_type": s["backend_type"]} for n, s in sorted(_scopes(req.state).items())]
    return {"scopes": scopes} if scopes else {}


@route("POST", API + r"/put")
def put_secret(req):
    body = req.body
    scope = _name(body, "scope", "Scope")
    key = _name(body, "key", "Secret key")
    has_str, has_bytes = body.get("string_value") is not None, body.get("bytes_value") is not None
    if has_str == has_bytes:
        raise invalid_parameter("Exactly one of string_value and bytes_value must be specified.")
    if has_str:
        if not isinstance(body["string_value"], str):
            raise invalid_parameter("string_value must be a string.")
        value = body["string_value"].encode("utf-8")
    else:
        try:
            value = base64.b64decode(str(body["bytes_value"]), validate=True)
        except (binascii.Error, ValueError):
            raise invalid_parameter("bytes_value must be base64-encoded.") from None
    if len(value) > MAX_VALUE:
        raise invalid_parameter(f"Secret value is {len(value)} bytes; the limit is {MAX_VALUE} bytes.")
    st = req.state
    with st.lock:
        s = _scope(st, scope)
        old = s["secrets"].get(key)
        s["secrets"][key] = {"value": value, "last_updated_timestamp": st.now_ms()}
        if old is None:
            st.applied["secrets/put"] += 1
        elif old["value"] != value:                   # a replaced value (the same value again changes nothing)
            st.applied["secrets/update"] += 1
    return {}


@route("POST", API + r"/delete")
def delete_secret(req):
    body = req.body
    scope = _name(body, "scope", "Scope")
    key = _name(body, "key", "Secret key")
    st = req.state
    with st.lock:
        s = _scope(st, scope)
        if key not in s["secrets"]:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Secret {key} does not exist in scope {scope}!")
        del s["secrets"][key]
        st.applied["secrets/delete"] += 1
    return {}


@route("GET", API + r"/list")
def list_secrets(req):
    scope = req.q("scope")
    if not scope:
        raise invalid_parameter("Missing required field: scope")
    with req.state.lock:
        s = _scope(req.state, scope)
        items = [{"key": k, "last_updated_timestamp": v["last_updated_timestamp"]} for k, v in sorted(s["secrets"].items())]
    return {"secrets": items} if items else {}


@route("GET", API + r"/get")
def get_secret(req):
    raise ApiError(400, "BAD_REQUEST", "Secret values can only be read from within a notebook (dbutils.secrets.get).")
