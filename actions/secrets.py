"""Secrets API (2.0): scopes and write-only secrets. A value goes out once, in Put Secret's body;
the runner masks it (a secret input) in logs, errors and exception text, and no output carries it."""
from __future__ import annotations

from ..errors import ConnectorError

API = "/api/2.0/secrets"


def list_secret_scopes(session, inputs):
    doc = session.get(f"{API}/scopes/list")
    scopes = [s for s in (doc.get("scopes") or []) if isinstance(s, dict) and s.get("name")]
    return {"scopes": scopes, "count": len(scopes)}


def create_secret_scope(session, inputs):
    body = {"scope": inputs["scope"]}
    if inputs.get("initial_manage_principal"):
        body["initial_manage_principal"] = inputs["initial_manage_principal"]
    session.post(f"{API}/scopes/create", body)
    return {"scope": inputs["scope"], "created": True, "initial_manage_principal": inputs.get("initial_manage_principal")}


def delete_secret_scope(session, inputs):
    session.post(f"{API}/scopes/delete", {"scope": inputs["scope"]})
    return {"scope": inputs["scope"], "deleted": True}


def put_secret(session, inputs):
    body = {"scope": inputs["scope"], "key": inputs["key"]}
    if inputs.get("value_is_base64"):
        body["bytes_value"] = "".join(inputs["value"].split())
    else:
        body["string_value"] = inputs["value"]
    session.post(f"{API}/put", body, idempotent=True)          # a replacement: re-sending it is harmless
    return {"scope": inputs["scope"], "key": inputs["key"], "stored": True}


def list_secrets(session, inputs):
    doc = session.get(f"{API}/list", {"scope": inputs["scope"]})
    items = doc.get("secrets") or []
    if not isinstance(items, list):
        raise ConnectorError("server_error", "The secrets list answer has secrets that are not a list",
                             hint="Run the step again.")
    # keys and times only, whatever else an answer holds
    secrets = [{"key": s["key"], "last_updated_timestamp": s.get("last_updated_timestamp")}
               for s in items if isinstance(s, dict) and s.get("key")]
    return {"scope": inputs["scope"], "secrets": secrets, "count": len(secrets)}


def delete_secret(session, inputs):
    session.post(f"{API}/delete", {"scope": inputs["scope"], "key": inputs["key"]})
    return {"scope": inputs["scope"], "key": inputs["key"], "deleted": True}


def select_secret_scope(session, inputs):
    doc = session.get(f"{API}/scopes/list")
    return [{"label": s["name"], "value": s["name"]} for s in doc.get("scopes") or [] if isinstance(s, dict) and s.get("name")]
