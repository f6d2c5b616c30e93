"""Files API for Unity Catalog volumes (contract areas §2.5), on real files: every volume is a folder
of a temporary directory (``catalog.volume_dir``), so uploads and downloads stream to and from disk
and never sit in memory::

    PUT    /api/2.0/fs/files/Volumes/{cat}/{schema}/{volume}/{path}?overwrite=   raw bytes; parents made
    GET    /api/2.0/fs/files/...          the bytes (Range: bytes=a-b / a- / -n answers 206 + Content-Range)
    HEAD   /api/2.0/fs/files/...          content-length, content-type, last-modified
    DELETE /api/2.0/fs/files/...
    PUT    /api/2.0/fs/directories/...    mkdir -p (idempotent)
    GET    /api/2.0/fs/directories/...    {contents[{path,name,is_directory,file_size,last_modified}],
                                           next_page_token}  (page_size <= 1000, default 1000)
    HEAD   /api/2.0/fs/directories/...
    DELETE /api/2.0/fs/directories/...    only when empty

Paths are escaped per segment on the wire and unescaped here. An upload is written beside its
target and renamed when the whole body has arrived (a cut upload leaves nothing behind); a body
shorter than its Content-Length is refused. Errors (``error_code`` and status as the Files API
sends them): 404 NOT_FOUND ("The file being accessed is not found." / a missing directory or
volume), 409 ALREADY_EXISTS (``overwrite=false`` on an existing file, or a file where a directory
is asked for), 409 DIRECTORY_NOT_EMPTY, 400 INVALID_PARAMETER_VALUE (a path outside
``/Volumes/<catalog>/<schema>/<volume>``, ``..``), 416 on a Range beyond the end.
``X-Databricks-Workspace-Id`` is accepted and ignored.
"""
from __future__ import annotations

import email.utils
import filecmp
import mimetypes
import os
import re
from urllib.parse import unquote

from .api import ApiError, Snapshots, invalid_parameter, route

FILES = r"/api/2\.0/fs/files(?P<path>/.*)"
DIRS = r"/api/2\.0/fs/directories(?P<path>/.*)"
MAX_PAGE = 1000
UPLOAD_LIMIT = 5 * 1024 ** 3


def _locate(req, *, want_root: bool = False):
    """(volume folder, relative parts, display path) of a request's path."""
    from .catalog import volume_dir
    raw = req.params["path"]
    parts = [unquote(p) for p in raw.split("/")[1:]]
    if parts and parts[-1] == "":
        parts = parts[:-1]
    display = "/" + "/".join(parts)
    if len(parts) < 4 or parts[0] != "Volumes" or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise invalid_parameter(f"Invalid path {display}: expected /Volumes/<catalog>/<schema>/<volume>/...")
    root = volume_dir(req.state, parts[1], parts[2], parts[3])
    if root is None:
        raise ApiError(404, "NOT_FOUND", f"Volume '{'.'.join(parts[1:4])}' does not exist.")
    return root, parts[4:], display


def _local(root: str, rel) -> str:
    return os.path.join(root, *rel) if rel else root


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _file_headers(path: str, st) -> dict:
    ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return {"Content-Type": ctype, "Content-Length": str(st.st_size), "Last-Modified": _http_date(st.st_mtime),
            "Accept-Ranges": "bytes"}


def _not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The file being accessed is not found.")


# --------------------------------------------------------------------------- files

@route("PUT", FILES, stream_body=True)
def upload(req):
    root, rel, display = _locate(req)
    if not rel:
        raise ApiError(409, "ALREADY_EXISTS", f"{display} is a volume, not a file.")
    overwrite = req.q_bool("overwrite", True)
    target = _local(root, rel)
    stream = req.body_stream
    length = stream.length if stream is not None else len(req.raw)
    if length is not None and length > UPLOAD_LIMIT:
        raise ApiError(413, "FILE_TOO_LARGE", f"A single upload is at most 5 GiB; this one is {length} bytes.")
    folder = os.path.dirname(target)
    for i in range(1, len(rel)):
        p = _local(root, rel[:i])
        if os.path.exists(p) and not os.path.isdir(p):
            raise ApiError(409, "ALREADY_EXISTS", f"/{'/'.join(display.split('/')[1:5 + i - 1])} is a file, "
                                                  "not a directory.")
    if os.path.isdir(target):
        raise ApiError(409, "ALREADY_EXISTS", f"{display} is a directory.")
    if not overwrite and os.path.exists(target):
        raise ApiError(409, "ALREADY_EXISTS", "The file being created already exists.")
    os.makedirs(folder, exist_ok=True)
    part = os.path.join(folder, f".{rel[-1][:200]}.{os.urandom(4).hex()}.upload")
    received = 0
    try:
        with open(part, "wb") as fh:
            if stream is None:
                fh.write(req.raw)
                received = len(req.raw)
            else:
                while True:
                    data = stream.read(1 << 20)
                    if not data:
                        break
                    fh.write(data)
                    received += len(data)
        if length is not None and received != length:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"The upload ended after {received} of {length} bytes.")
        with req.state.lock:
            if not overwrite and os.path.exists(target):
                raise ApiError(409, "ALREADY_EXISTS", "The file being created already exists.")
            existed = os.path.isfile(target)
            same = existed and os.path.getsize(target) == received and filecmp.cmp(part, target, shallow=False)
            os.replace(part, target)
            if not same:                      # the same bytes uploaded over themselves change nothing
                req.state.applied["files/update" if existed else "files/upload"] += 1
    finally:
        if os.path.exists(part):
            os.unlink(part)
    return 204, b"", {"Content-Type": "application/octet-stream"}


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@route("GET", FILES)
def download(req):
    root, rel, display = _locate(req)
    target = _local(root, rel)
    if not rel or not os.path.isfile(target):
        raise _not_found()
    fh = open(target, "rb")
    try:
        st = os.fstat(fh.fileno())
        headers = _file_headers(display, st)
        since = req.header("If-Unmodified-Since")
        if since:
            when = email.utils.parsedate_to_datetime(since).timestamp() if since else None
            if when is not None and int(st.st_mtime) > int(when):
                raise ApiError(412, "PRECONDITION_FAILED", "The file was modified after the given time.")
        spec = req.header("Range")
        if spec:
            m = _RANGE.fullmatch(spec.strip())
            size = st.st_size
            if not m or (not m.group(1) and not m.group(2)):
                raise invalid_parameter(f"Invalid Range header: {spec}")
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size or end < start:
                raise ApiError(416, "INVALID_PARAMETER_VALUE", f"Range {spec} is not satisfiable (size {size}).",
                               headers={"Content-Range": f"bytes */{size}"})
            fh.seek(start)
            headers.update({"Content-Length": str(end - start + 1), "Content-Range": f"bytes {start}-{end}/{size}"})
            return 206, fh, headers
        return 200, fh, headers
    except BaseException:
        fh.close()
        raise


@route("HEAD", FILES)
def file_metadata(req):
    root, rel, display = _locate(req)
    target = _local(root, rel)
    if not rel or not os.path.isfile(target):
        raise _not_found()
    fh = open(target, "rb")                      # a file answer to HEAD: its headers, no body
    return 200, fh, _file_headers(display, os.fstat(fh.fileno()))


@route("DELETE", FILES)
def delete_file(req):
    root, rel, display = _locate(req)
    target = _local(root, rel)
    with req.state.lock:
        if not rel or not os.path.isfile(target):
            raise _not_found()
        os.unlink(target)
        req.state.applied["files/files/delete"] += 1
    return 204, b"", {}


# --------------------------------------------------------------------------- directories

def _snapshots(state) -> Snapshots:
    return state.area("files_snapshots", Snapshots)


@route("PUT", DIRS)
def create_directory(req):
    root, rel, display = _locate(req)
    with req.state.lock:
        for i in range(1, len(rel) + 1):
            p = _local(root, rel[:i])
            if os.path.exists(p) and not os.path.isdir(p):
                raise ApiError(409, "ALREADY_EXISTS", f"A file exists at {display}; it is not a directory.")
        existed = os.path.isdir(_local(root, rel))
        os.makedirs(_local(root, rel), exist_ok=True)
        if not existed:
            req.state.applied["files/create_directory"] += 1
    return 204, b"", {}


@route("HEAD", DIRS)
def directory_metadata(req):
    root, rel, display = _locate(req)
    if not os.path.isdir(_local(root, rel)):
        raise ApiError(404, "NOT_FOUND", f"The directory {display} is not found.")
    return 200, b"", {}


@route("GET", DIRS)
def list_directory(req):
    root, rel, display = _locate(req)
    folder = _local(root, rel)
    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise ApiError(400, "NOT_A_DIRECTORY", f"{display} is a file, not a directory.")
        raise ApiError(404, "NOT_FOUND", f"The directory {display} is not found.")
    size = req.q_int("page_size") or MAX_PAGE
    if size < 0:
        raise invalid_parameter("page_size must be positive")
    size = min(size, MAX_PAGE)
    base = display.rstrip("/")

    def build():
        out = []
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not e.name.endswith(".upload") or not e.name.startswith(".")),
                             key=lambda e: e.name)
        for e in entries:
            st = e.stat()
            if e.is_dir():
                out.append({"path": f"{base}/{e.name}/", "name": e.name, "is_directory": True,
                            "last_modified": int(st.st_mtime * 1000)})
            else:
                out.append({"path": f"{base}/{e.name}", "name": e.name, "is_directory": False,
                            "file_size": st.st_size, "last_modified": int(st.st_mtime * 1000)})
        return out

    items, nxt, _ = _snapshots(req.state).page(req.q("page_token") or None, build, size, "contents")
    out = {"contents": items} if items else {}
    if nxt:
        out["next_page_token"] = nxt
    return out


@route("DELETE", DIRS)
def delete_directory(req):
    root, rel, display = _locate(req)
    folder = _local(root, rel)
    with req.state.lock:
        if not os.path.isdir(folder):
            raise ApiError(404, "NOT_FOUND", f"The directory {display} is not found.")
        if not rel:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{display} is a volume; delete the volume instead.")
        if any(True for _ in os.scandir(folder)):
            raise ApiError(409, "DIRECTORY_NOT_EMPTY", f"The directory {display} is not empty.")
        os.rmdir(folder)
        req.state.applied["files/directories/delete"] += 1
    return 204, b"", {}
