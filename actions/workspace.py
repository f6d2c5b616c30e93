"""Workspace API (2.0): notebooks, files and folders."""
from __future__ import annotations

import base64
import binascii

from ..errors import ConnectorError

API = "/api/2.0/workspace"


def list_workspace_folder(session, inputs):
    doc = session.get(f"{API}/list", {"path": inputs["path"]})
    objects = doc.get("objects") or []
    if not isinstance(objects, list):
        raise ConnectorError("server_error", "The workspace list answer has objects that are not a list",
                             hint="Run the step again.")
    return {"objects": objects, "count": len(objects)}


def get_workspace_object_status(session, inputs):
    return session.get(f"{API}/get-status", {"path": inputs["path"]}, require=("object_type",))


def check_import_notebook(inputs) -> list:
    if inputs.get("content_base64") is None:
        return []
    try:
        base64.b64decode("".join(inputs["content_base64"].split()), validate=True)
    except (binascii.Error, ValueError):
        return [{"key": "content_base64", "label": "Content (Base64)", "reason": "is not valid base64"}]
    return []


def import_notebook(session, inputs):
    if inputs.get("content") is not None:
        content = base64.b64encode(inputs["content"].encode("utf-8")).decode("ascii")
    else:
        content = "".join(inputs["content_base64"].split())
    fmt = inputs.get("format") or "SOURCE"
    body = {"path": inputs["path"], "format": fmt, "content": content, "overwrite": bool(inputs.get("overwrite"))}
    if inputs.get("language") and fmt == "SOURCE":
        body["language"] = inputs["language"]
    # overwrite=true makes a re-sent import harmless; without it a re-send would meet its own object
    session.post(f"{API}/import", body, idempotent=bool(inputs.get("overwrite")))
    # A notebook may be stored without its file extension (etl.py -> etl, etl.ipynb -> etl): the object
    # imported is the one at the path given, else at the path without the extension.
    path = inputs["path"]
    candidates = [path]
    stem, dot, ext = path.rpartition(".")
    if dot and "/" not in ext and ext.lower() in ("py", "sql", "scala", "r", "ipynb", "html", "rmd"):
        candidates.append(stem)
    for i, candidate in enumerate(candidates):
        try:
            return session.get(f"{API}/get-status", {"path": candidate}, require=("object_type",))
        except ConnectorError as exc:
            if exc.type != "not_found" or i == len(candidates) - 1:
                raise


def export_notebook(session, inputs):
    fmt = inputs.get("format") or "SOURCE"
    doc = session.get(f"{API}/export", {"path": inputs["path"], "format": fmt}, require=("content",))
    try:
        data = base64.b64decode(doc["content"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ConnectorError("server_error", "The export answer's content is not base64",
                             hint="Run the step again.") from None
    out = {"path": inputs["path"], "format": fmt, "file_type": doc.get("file_type")}
    if (inputs.get("content_format") or "text") == "base64":
        out["content_base64"] = doc["content"]
        return out
    try:
        out["content"] = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConnectorError("invalid_input", f"{inputs['path']} exported as {fmt} is not UTF-8 text",
                             hint="Set Content Format to base64.") from None
    return out


def create_workspace_folder(session, inputs):
    session.post(f"{API}/mkdirs", {"path": inputs["path"]}, idempotent=True)
    return session.get(f"{API}/get-status", {"path": inputs["path"]}, require=("object_type",))


def delete_workspace_object(session, inputs):
    session.post(f"{API}/delete", {"path": inputs["path"], "recursive": bool(inputs.get("recursive"))})
    return {"path": inputs["path"], "deleted": True}


def select_workspace_path(session, inputs):
    doc = session.get(f"{API}/list", {"path": inputs.get("folder") or "/"})
    out = []
    for o in doc.get("objects") or []:
        if isinstance(o, dict) and o.get("path"):
            name = o["path"].rstrip("/").rsplit("/", 1)[-1] or o["path"]
            out.append({"label": f"{name} ({o.get('object_type', 'OBJECT')})", "value": o["path"]})
    return out
