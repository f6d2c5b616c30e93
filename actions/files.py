"""Files API on Unity Catalog volumes. Uploads and downloads go through the runtime's transfer
mechanism (connector/transfer.py): streamed, bounded memory, never a file opened here."""
from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from .. import transfer
from ..errors import ConnectorError
from ..results import check_file

FILES = "/api/2.0/fs/files"
DIRS = "/api/2.0/fs/directories"
PAGE = 1000


def _escaped(path: str) -> str:
    """Each segment escaped on its own (the API splits the path on '/')."""
    return "/".join(quote(seg, safe="") for seg in path.rstrip("/").split("/"))


def check_upload_file(inputs) -> list:
    problems = []
    if inputs.get("local_path") is not None:
        problems += transfer.check_local_file(inputs["local_path"], key="local_path", label="Local File")
    if inputs.get("content_base64") is not None:
        try:
            base64.b64decode("".join(inputs["content_base64"].split()), validate=True)
        except (binascii.Error, ValueError):
            problems.append({"key": "content_base64", "label": "Content (Base64)", "reason": "is not valid base64"})
    return problems


def check_download_file(inputs) -> list:
    if inputs.get("output_path") is None:
        return []
    return check_file(inputs["output_path"], key="output_path", label="Output File")


def upload_file(session, inputs):
    path = inputs["file_path"]
    overwrite = bool(inputs.get("overwrite", True))
    if inputs.get("local_path") is not None:
        sent = transfer.upload(session, FILES + _escaped(path), local_path=inputs["local_path"], overwrite=overwrite,
                               timeout=inputs.get("timeout_seconds"))
    else:
        if inputs.get("content") is not None:
            data = inputs["content"].encode("utf-8")
        else:
            data = base64.b64decode("".join(inputs["content_base64"].split()))
        sent = transfer.upload(session, FILES + _escaped(path), data=data, overwrite=overwrite,
                               timeout=inputs.get("timeout_seconds"))
    return {"path": path, "size": sent["size"], "overwrite": overwrite}


def download_file(session, inputs):
    path = inputs["file_path"]
    got = transfer.download(session, FILES + _escaped(path), output_path=inputs.get("output_path"),
                            inline_limit=inputs.get("max_inline_bytes") or 10 * 1024 * 1024,
                            timeout=inputs.get("timeout_seconds"), what=path)
    out = {"path": path, "size": got["size"], "content_type": got["content_type"],
           "last_modified": got["last_modified"], "resumed": got["resumed"]}
    if "output_path" in got:
        out["output_path"] = got["output_path"]
        return out
    data = got["content"]
    if (inputs.get("content_format") or "text") == "base64":
        out["content_base64"] = base64.b64encode(data).decode("ascii")
    else:
        try:
            out["content"] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConnectorError("invalid_input", f"{path} is not UTF-8 text ({len(data)} bytes)",
                                 hint="Set Content Format to base64, or give an Output File.") from None
    return out


def get_file_metadata(session, inputs):
    path = inputs["file_path"]
    # A GET whose body is never read, rather than HEAD: the same headers, and an error answer carries
    # Databricks' JSON (an answer to HEAD has no body, so a refused token could not say so).
    response = session.response("GET", FILES + _escaped(path), stream=True, headers={"Accept": "application/octet-stream"})
    response.close()
    size = response.headers.get("Content-Length")
    return {"path": path, "size": int(size) if size and size.isdigit() else None,
            "content_type": response.headers.get("Content-Type"),
            "last_modified": response.headers.get("Last-Modified")}


def _delete(session, path: str):
    """Sent once past Databricks' own refusals: re-sent after a lost answer it would meet 404."""
    return session.request("DELETE", path, idempotent=False)


def _entries(session, directory: str, max_items=None):
    return session.paginate(DIRS + _escaped(directory), items="contents", params={"page_size": PAGE},
                            max_items=max_items, require=("path",))


def list_directory(session, inputs):
    contents, truncated = _entries(session, inputs["directory_path"], inputs.get("max_items"))
    return {"contents": contents, "count": len(contents), "truncated": truncated}


def create_directory(session, inputs):
    session.request("PUT", DIRS + _escaped(inputs["directory_path"]), idempotent=True)
    return {"path": inputs["directory_path"], "created": True}


def delete_file(session, inputs):
    _delete(session, FILES + _escaped(inputs["file_path"]))
    return {"path": inputs["file_path"], "deleted": True}


def delete_directory(session, inputs):
    """Without Recursive: one DELETE (Databricks refuses a directory that is not empty). With it:
    list the whole tree first, delete every file, then the folders deepest first, the directory last."""
    root = inputs["directory_path"].rstrip("/")
    files, folders = [], []
    if inputs.get("recursive"):
        pending = [root]
        while pending:
            folder = pending.pop()
            folders.append(folder)
            entries, _ = _entries(session, folder)
            for e in entries:
                p = e["path"].rstrip("/")
                (pending if e.get("is_directory") else files).append(p)
        session.progress(f"deleting {len(files)} files and {len(folders)} folders under {root}",
                         {"files": len(files), "folders": len(folders)})
        folders.sort(key=lambda p: p.count("/"), reverse=True)
    else:
        folders = [root]
    done_files, done_dirs = [], []
    try:
        for f in files:
            _delete(session, FILES + _escaped(f))
            done_files.append(f)
        for d in folders:
            _delete(session, DIRS + _escaped(d))
            done_dirs.append(d)
    except ConnectorError as exc:             # say what is gone already: running the step again finishes it
        exc.details = {**(exc.details or {}), "files_deleted": done_files, "directories_deleted": done_dirs}
        exc.message += f" (after deleting {len(done_files)} files and {len(done_dirs)} folders)"
        raise
    return {"path": root, "deleted": True, "files_deleted": done_files, "directories_deleted": done_dirs}
