"""Workspace API (contract areas §2.6): notebooks, files and folders, as the jobs area runs them.

    GET  /api/2.0/workspace/list?path=           the folder's objects (or the object itself)
    GET  /api/2.0/workspace/get-status?path=     one ObjectInfo
    POST /api/2.0/workspace/import               {path, content (base64), format, language, overwrite}
    GET  /api/2.0/workspace/export?path=&format= {content (base64), file_type} (or the bytes: direct_download)
    POST /api/2.0/workspace/mkdirs               {path}: the folder and its parents
    POST /api/2.0/workspace/delete               {path, recursive}

Objects are kept in a tree of :class:`Node` (a folder holds its children by name, in name
order), indexed by path and by ``object_id`` (the permissions area addresses notebooks and folders
by id). A notebook keeps its source in the SOURCE format (``# Databricks notebook source``, cells
split by ``# COMMAND ----------``); JUPYTER and HTML imports are converted to it and back on
export. A file keeps its bytes. The tree starts with ``/``, ``/Shared``, ``/Users`` and a home
folder for every user and service principal of the workspace.

Errors are the Workspace API's: 404 ``RESOURCE_DOES_NOT_EXIST`` ("Path (/x) doesn't exist."),
400 ``RESOURCE_ALREADY_EXISTS``, 400 ``DIRECTORY_NOT_EMPTY``, 400 ``MAX_NOTEBOOK_SIZE_EXCEEDED``
(10 MB), 400 ``INVALID_PARAMETER_VALUE``. DBC archives are not supported (400, said so).

For the jobs area: :func:`resolve` finds a notebook or file by a task's path (``/Workspace/...``
accepted), :func:`notebook_cells` turns a notebook into the cells a Python worker runs.
"""
from __future__ import annotations

import base64
import binascii
import bisect
import html
import io
import itertools
import json
import re
import secrets
import zipfile
from typing import Dict, List, Optional, Tuple

from .api import ApiError, invalid_parameter, json_response, parse_bool, route

API = r"/api/2\.0/workspace"
MAX_BYTES = 10 * 1024 * 1024
LANGUAGES = ("PYTHON", "SQL", "SCALA", "R")
IMPORT_FORMATS = ("AUTO", "SOURCE", "HTML", "JUPYTER", "DBC", "R_MARKDOWN", "RAW")
EXPORT_FORMATS = IMPORT_FORMATS

# language -> (comment prefix, file extension)
_SYNTAX = {"PYTHON": ("#", "py"), "SQL": ("--", "sql"), "SCALA": ("//", "scala"), "R": ("#", "r")}
_EXT_LANGUAGE = {"py": "PYTHON", "sql": "SQL", "scala": "SCALA", "r": "R", "ipynb": "PYTHON"}
_HTML_MARK = "databricks-emulator-notebook"


def _header(language: str) -> str:
    return f"{_SYNTAX[language][0]} Databricks notebook source"


def _separator(language: str) -> str:
    return f"{_SYNTAX[language][0]} COMMAND ----------"


def _magic(language: str) -> str:
    return f"{_SYNTAX[language][0]} MAGIC"


# --------------------------------------------------------------------------- the tree

class Node:
    __slots__ = ("path", "name", "object_type", "object_id", "language", "source", "data", "created_at",
                 "modified_at", "children", "names", "parent", "origin", "creator")

    def __init__(self, path: str, object_type: str, object_id: int, now: int, parent: Optional["Node"],
                 creator: Optional[str] = None):
        self.path = path
        self.name = path.rsplit("/", 1)[-1]
        self.object_type = object_type
        self.object_id = object_id
        self.language: Optional[str] = None
        self.source: Optional[str] = None        # a notebook's SOURCE text
        self.data: Optional[bytes] = None        # a file's bytes
        self.origin = "SOURCE"                   # the format a notebook was imported in (AUTO export)
        self.created_at = now
        self.modified_at = now
        self.children: Dict[str, "Node"] = {}
        self.names: List[str] = []               # children names, sorted
        self.parent = parent
        self.creator = creator

    def info(self) -> dict:
        """The ObjectInfo of this object."""
        out = {"object_type": self.object_type, "path": self.path, "object_id": self.object_id,
               "resource_id": str(self.object_id)}
        if self.object_type == "NOTEBOOK":
            out["language"] = self.language
            out["created_at"] = self.created_at
            out["modified_at"] = self.modified_at
        elif self.object_type == "FILE":
            out["created_at"] = self.created_at
            out["modified_at"] = self.modified_at
            out["size"] = len(self.data or b"")
        return out


class Tree:
    def __init__(self, state) -> None:
        self.ids = itertools.count(secrets.randbelow(9 * 10 ** 14) + 10 ** 15)
        now = state.now_ms()
        self.root = Node("/", "DIRECTORY", 0, now, None)
        self.root.name = ""
        self.by_path: Dict[str, Node] = {"/": self.root}
        self.by_id: Dict[int, Node] = {0: self.root}
        self.homes = 0
        for p in ("/Shared", "/Users"):
            self._add(state, p, "DIRECTORY", now)

    def _add(self, state, path: str, object_type: str, now: int, creator: Optional[str] = None) -> Node:
        parent_path, _, name = path.rpartition("/")
        parent = self.by_path[parent_path or "/"]
        node = Node(path, object_type, next(self.ids), now, parent, creator)
        parent.children[name] = node
        bisect.insort(parent.names, name)
        self.by_path[path] = node
        self.by_id[node.object_id] = node
        return node

    def remove(self, node: Node) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            stack.extend(n.children.values())
            self.by_path.pop(n.path, None)
            self.by_id.pop(n.object_id, None)
        parent = node.parent
        del parent.children[node.name]
        i = bisect.bisect_left(parent.names, node.name)
        del parent.names[i]

    def ensure_homes(self, state) -> None:
        """A home folder for every principal (new ones appear as users and service principals do)."""
        names = list(state.users) + list(state.service_principals)
        if len(names) == self.homes:
            return
        now = state.now_ms()
        for name in names:
            p = f"/Users/{name}"
            if p not in self.by_path:
                self._add(state, p, "DIRECTORY", now, creator=name)
        self.homes = len(names)


def tree(state) -> Tree:
    """The workspace tree of an emulator (created on first use). Call under the state lock."""
    t = state.area("workspace_tree", lambda: Tree(state))
    t.ensure_homes(state)
    return t


def _norm(path) -> str:
    if path is None or path == "":
        raise invalid_parameter("Missing required field: path")
    if not isinstance(path, str):
        raise invalid_parameter(f"Invalid path: {path!r}")
    if not path.startswith("/"):
        raise invalid_parameter(f"Path ({path}) doesn't start with '/'")
    if path == "/Workspace" or path.startswith("/Workspace/"):
        path = path[len("/Workspace"):] or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    parts = path.split("/")[1:]
    if path != "/" and any(p in ("", ".", "..") for p in parts):
        raise invalid_parameter(f"Invalid path: {path}")
    return path


def _missing(path: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")


def _node(t: Tree, path: str) -> Node:
    node = t.by_path.get(path)
    if node is None:
        raise _missing(path)
    return node


def resolve(state, path: str) -> Optional[Node]:
    """A notebook, file or folder by a task's path ("/Workspace/..." too), or None. Under the lock."""
    try:
        p = _norm(path)
    except ApiError:
        return None
    return tree(state).by_path.get(p)


def by_id(state, object_id) -> Optional[Node]:
    try:
        oid = int(object_id)
    except (TypeError, ValueError):
        return None
    return tree(state).by_id.get(oid)


# --------------------------------------------------------------------------- formats

def _decode(content) -> bytes:
    if content is None:
        return b""
    if not isinstance(content, str):
        raise invalid_parameter("content must be a base64-encoded string.")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_parameter("content is not valid base64.") from None
    _check_size(len(data))
    return data


def _check_size(n: int) -> None:
    if n > MAX_BYTES:
        raise ApiError(400, "MAX_NOTEBOOK_SIZE_EXCEEDED",
                       f"File size imported is ({n} bytes), exceeded max size ({MAX_BYTES} bytes)")


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_parameter("The notebook source is not UTF-8 text.") from None


def _header_language(text: str) -> Optional[str]:
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    for lang in ("PYTHON", "SQL", "SCALA"):
        if first == _header(lang):
            return lang
    return None


def _normal_source(text: str, language: str) -> str:
    """SOURCE text with its header line."""
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    if text.split("\n", 1)[0].strip() != _header(language):
        text = f"{_header(language)}\n{text}"
    return text


def split_cells(source: str, language: str) -> List[str]:
    """A SOURCE notebook's cells (the header line dropped)."""
    lines = source.replace("\r\n", "\n").split("\n")
    if lines and lines[0].strip() == _header(language):
        lines = lines[1:]
    cells, cur = [], []
    sep = _separator(language)
    for line in lines:
        if line.strip() == sep:
            cells.append("\n".join(cur).strip("\n"))
            cur = []
        else:
            cur.append(line)
    cells.append("\n".join(cur).strip("\n"))
    return [c for c in cells if c.strip()]


def _join_cells(cells: List[str], language: str) -> str:
    sep = f"\n\n{_separator(language)}\n\n"
    return f"{_header(language)}\n" + sep.join(cells) + "\n"


def _from_jupyter(data: bytes) -> Tuple[str, str]:
    try:
        nb = json.loads(data)
        cells_in = nb["cells"]
    except (ValueError, KeyError, TypeError):
        raise invalid_parameter("The content is not a Jupyter notebook (.ipynb JSON).") from None
    cells = []
    for cell in cells_in:
        src = cell.get("source", "")
        text = "".join(src) if isinstance(src, list) else str(src)
        if cell.get("cell_type") == "markdown":
            text = "\n".join(f"# MAGIC {('%md ' if i == 0 else '')}{line}".rstrip()
                             for i, line in enumerate(text.split("\n")))
        elif cell.get("cell_type") != "code":
            continue
        elif text.startswith("%"):
            text = "\n".join(f"# MAGIC {line}".rstrip() for line in text.split("\n"))
        cells.append(text)
    return _join_cells(cells or [""], "PYTHON"), "PYTHON"


def _to_jupyter(node: Node) -> bytes:
    cells = []
    for cell in split_cells(node.source or "", node.language):
        lines = cell.split("\n")
        kind = "code"
        if all(line.startswith("# MAGIC") for line in lines if line.strip()):
            lines = [line[len("# MAGIC"):].lstrip(" ") if line.startswith("# MAGIC") else line for line in lines]
            if lines and lines[0].startswith("%md"):
                kind = "markdown"
                lines[0] = lines[0][3:].lstrip()
        src = [line + "\n" for line in lines[:-1]] + [lines[-1]] if lines else []
        cell_doc = {"cell_type": kind, "metadata": {}, "source": src}
        if kind == "code":
            cell_doc.update(execution_count=None, outputs=[])
        cells.append(cell_doc)
    doc = {"cells": cells, "metadata": {"language_info": {"name": "python"},
                                        "application/vnd.databricks.v1+notebook": {"notebookName": node.name,
                                                                                   "language": "python"}},
           "nbformat": 4, "nbformat_minor": 0}
    return json.dumps(doc, indent=1).encode("utf-8")


def _to_html(node: Node) -> bytes:
    payload = base64.b64encode(json.dumps({"language": node.language, "source": node.source}).encode()).decode()
    cells = "".join(f"<pre class=\"cell\">{html.escape(c)}</pre>\n"
                    for c in split_cells(node.source or "", node.language))
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(node.name)}</title>"
            f"<meta name=\"{_HTML_MARK}\" content=\"{payload}\"></head>\n<body>\n<h1>{html.escape(node.name)}</h1>\n"
            f"{cells}</body></html>\n")
    return page.encode("utf-8")


def notebook_html(name: str, language: str, source: str) -> str:
    """The HTML export of a notebook (also what runs/export returns for a notebook task)."""
    n = Node("/" + name, "NOTEBOOK", 0, 0, None)
    n.language, n.source = language, source
    return _to_html(n).decode("utf-8")


def _from_html(data: bytes) -> Tuple[str, str]:
    m = re.search(rf'<meta name="{_HTML_MARK}" content="([^"]+)"', _text(data))
    if not m:
        raise invalid_parameter("The emulator imports HTML notebooks only as it exports them "
                                "(export with format HTML first).")
    doc = json.loads(base64.b64decode(m.group(1)))
    return doc["source"], doc["language"]


def _from_rmd(text: str) -> Tuple[str, str]:
    cells, cur, in_code = [], [], False
    for line in text.replace("\r\n", "\n").split("\n"):
        if not in_code and re.match(r"^```\{r.*\}\s*$", line):
            if "".join(cur).strip():
                cells.append("\n".join(f"# MAGIC {('%md ' if i == 0 else '')}{x}".rstrip()
                                       for i, x in enumerate("\n".join(cur).strip("\n").split("\n"))))
            cur, in_code = [], True
        elif in_code and line.strip() == "```":
            cells.append("\n".join(cur))
            cur, in_code = [], False
        else:
            cur.append(line)
    if "".join(cur).strip():
        cells.append("\n".join(f"# MAGIC {('%md ' if i == 0 else '')}{x}".rstrip()
                               for i, x in enumerate("\n".join(cur).strip("\n").split("\n"))))
    return _join_cells(cells or [""], "R"), "R"


def _to_rmd(node: Node) -> bytes:
    parts = []
    for cell in split_cells(node.source or "", "R"):
        lines = cell.split("\n")
        if all(x.startswith("# MAGIC") for x in lines if x.strip()):
            lines = [x[len("# MAGIC"):].lstrip(" ") for x in lines]
            if lines and lines[0].startswith("%md"):
                lines[0] = lines[0][3:].lstrip()
            parts.append("\n".join(lines))
        else:
            parts.append("```{r}\n" + cell + "\n```")
    return ("\n\n".join(parts) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- notebooks for the jobs area

_SQL_CELL = """
for _dbx_statement in {statements!r}:
    _dbx_df = spark.sql(_dbx_statement)
display(_dbx_df)
"""


def split_sql(text: str) -> List[str]:
    """SQL statements separated by ';' (outside quotes and comments)."""
    out, cur, quote, i = [], [], None, 0
    while i < len(text):
        ch = text[i]
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            cur.append(ch)
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
            continue
        elif ch == ";":
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur).strip())
    return [s for s in out if s]


class NotebookError(Exception):
    """A notebook cannot be run by the emulator (the task fails with this message)."""


def notebook_cells(state, node: Node, _depth: int = 0) -> List[str]:
    """The Python cells a worker runs for a notebook: markdown skipped, ``%sql`` cells and SQL
    notebooks run through ``spark.sql``, ``%run <path>`` inlines that notebook (relative paths
    from this one's folder), ``%pip`` is a no-op. Scala and R cannot run here."""
    if node.language not in ("PYTHON", "SQL"):
        raise NotebookError(f"The emulator runs Python and SQL notebooks only; {node.path} is a "
                            f"{node.language.title()} notebook.")
    if _depth > 8:
        raise NotebookError("%run is nested too deeply (more than 8 levels).")
    out = []
    magic = _magic(node.language)
    for cell in split_cells(node.source or "", node.language):
        lines = cell.split("\n")
        is_magic = all(x.startswith(magic) for x in lines if x.strip())
        if is_magic:
            lines = [x[len(magic):].lstrip(" ") if x.startswith(magic) else x for x in lines]
            first = lines[0].strip()
            cmd = first.split(None, 1)[0] if first else ""
            body = "\n".join([first[len(cmd):].strip()] + lines[1:]).strip()
            if cmd in ("%md", "%md-sandbox"):
                continue
            if cmd == "%pip":
                out.append(f"print({('(emulator) %pip ' + body + ': not run, the standard library only')!r})")
                continue
            if cmd == "%python":
                out.append(body)
                continue
            if cmd == "%sql":
                stmts = split_sql(body)
                if stmts:
                    out.append(_SQL_CELL.format(statements=stmts))
                continue
            if cmd == "%run":
                target = body.split()[0] if body.split() else ""
                path = target if target.startswith("/") else _relative(node.path, target)
                other = resolve(state, path)
                if other is None or other.object_type != "NOTEBOOK":
                    raise NotebookError(f"Notebook not found: {path}. Notebooks can be specified via a relative "
                                        "path (./Notebook or ../folder/Notebook) or via an absolute path "
                                        "(/Abs/Path/to/Notebook). Make sure you are specifying the path correctly.")
                out.extend(notebook_cells(state, other, _depth + 1))
                continue
            raise NotebookError(f"The emulator cannot run {cmd or 'this'} cells ({node.path}).")
        if node.language == "SQL":
            stmts = split_sql(cell)
            if stmts:
                out.append(_SQL_CELL.format(statements=stmts))
        else:
            out.append(cell)
    return out


def _relative(base: str, target: str) -> str:
    parts = base.split("/")[1:-1]
    for seg in target.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
        else:
            parts.append(seg)
    return "/" + "/".join(parts)


# --------------------------------------------------------------------------- endpoints

def _principal(req) -> Optional[str]:
    return req.principal.user_name if req.principal else None


@route("GET", API + r"/get-status")
def get_status(req):
    path = _norm(req.param("path"))
    with req.state.lock:
        return _node(tree(req.state), path).info()


@route("GET", API + r"/list")
def list_objects(req):
    path = _norm(req.param("path"))
    after = req.q_int("notebooks_modified_after")
    with req.state.lock:
        node = _node(tree(req.state), path)
        if node.object_type != "DIRECTORY":
            return {"objects": [node.info()]}
        items = []
        for name in node.names:
            child = node.children[name]
            if after is not None and child.object_type == "NOTEBOOK" and child.modified_at <= after:
                continue
            items.append(child.info())
        return json_response({"objects": items} if items else {})


@route("POST", API + r"/mkdirs")
def mkdirs(req):
    path = _norm(req.body.get("path"))
    st = req.state
    with st.lock:
        t = tree(st)
        existed = path in t.by_path
        _mkdirs(st, t, path, _principal(req))
        if not existed:                     # mkdirs of a folder that exists changes nothing
            st.applied["workspace/mkdirs"] += 1
    return {}


def _mkdirs(st, t: Tree, path: str, creator: Optional[str]) -> Node:
    parts = path.split("/")[1:] if path != "/" else []
    cur = "/"
    node = t.root
    now = st.now_ms()
    for seg in parts:
        cur = cur.rstrip("/") + "/" + seg
        nxt = t.by_path.get(cur)
        if nxt is None:
            nxt = t._add(st, cur, "DIRECTORY", now, creator)
        elif nxt.object_type != "DIRECTORY":
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"{cur} already exists and it is not a folder.")
        node = nxt
    return node


@route("POST", API + r"/delete")
def delete(req):
    body = req.body
    path = _norm(body.get("path"))
    recursive = parse_bool(body.get("recursive", False), "recursive")
    st = req.state
    with st.lock:
        t = tree(st)
        node = _node(t, path)
        home = node.parent is t.by_path["/Users"] and (node.name in st.users or node.name in st.service_principals)
        if path in ("/", "/Users", "/Shared") or home:
            raise ApiError(403, "PERMISSION_DENIED", f"Folder ({path}) is a system folder and cannot be deleted.")
        if node.object_type == "DIRECTORY" and node.children and not recursive:
            raise ApiError(400, "DIRECTORY_NOT_EMPTY", f"Folder ({path}) is not empty.")
        t.remove(node)
        st.applied["workspace/delete"] += 1
    return {}


def _import_body(req) -> dict:
    """The import request: a JSON body, or a multipart form with the content as a file part."""
    ctype = (req.header("Content-Type") or "").lower()
    if "multipart/form-data" not in ctype:
        return req.body
    from email.parser import BytesParser
    from email.policy import HTTP
    msg = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {req.header('Content-Type')}\r\n\r\n".encode() + req.raw)
    out: dict = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        if name == "content":
            _check_size(len(data))
            out["content"] = base64.b64encode(data).decode()
        else:
            out[name] = data.decode("utf-8", "replace")
    return out


@route("POST", API + r"/import", parse_json=True)
def import_object(req):
    body = _import_body(req)
    path = _norm(body.get("path"))
    fmt = body.get("format") or "SOURCE"
    language = body.get("language")
    overwrite = parse_bool(body.get("overwrite", False), "overwrite")
    problems = []
    if fmt not in IMPORT_FORMATS:
        problems.append(f"Invalid format {fmt!r}: one of {', '.join(IMPORT_FORMATS)}")
    if language is not None and language not in LANGUAGES:
        problems.append(f"Invalid language {language!r}: one of {', '.join(LANGUAGES)}")
    if problems:
        raise invalid_parameter("; ".join(problems))
    if path == "/":
        raise invalid_parameter("Cannot import at the root folder path (/).")
    data = _decode(body.get("content"))
    if fmt == "DBC":
        raise invalid_parameter("DBC archives are not supported by the emulator; import SOURCE, JUPYTER, "
                                "HTML, R_MARKDOWN, AUTO or RAW.")

    # what the content becomes: ("NOTEBOOK", path, language, source, origin) | ("FILE", path, bytes)
    #                           | ("ZIP", path, entries)
    if fmt == "RAW":
        item = ("FILE", path, data)
    elif fmt == "JUPYTER":
        source, lang = _from_jupyter(data)
        item = ("NOTEBOOK", _strip_ext(path, ("ipynb",)), lang, source, "JUPYTER")
    elif fmt == "HTML":
        source, lang = _from_html(data)
        item = ("NOTEBOOK", _strip_ext(path, ("html",)), lang, source, "SOURCE")
    elif fmt == "R_MARKDOWN":
        source, lang = _from_rmd(_text(data))
        item = ("NOTEBOOK", _strip_ext(path, ("rmd", "Rmd")), lang, source, "SOURCE")
    elif fmt == "SOURCE":
        if language is None:
            if not zipfile.is_zipfile(io.BytesIO(data)):
                raise invalid_parameter("The language field is required to import a single file as SOURCE "
                                        "(without it, the content must be a zip archive of a folder).")
            item = ("ZIP", path, data)
        else:
            item = ("NOTEBOOK", path, language, _normal_source(_text(data), language), "SOURCE")
    else:  # AUTO
        lower = path.lower()
        if lower.endswith(".ipynb"):
            source, lang = _from_jupyter(data)
            item = ("NOTEBOOK", path[:-len(".ipynb")], lang, source, "JUPYTER")
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = ""
            lang = _header_language(text)
            if lang == "PYTHON" and lower.endswith(".r"):
                lang = "R"
            if lang is not None:
                item = ("NOTEBOOK", _strip_ext(path, ("py", "sql", "scala", "r", "R")), lang,
                        _normal_source(text, lang), "SOURCE")
            else:
                item = ("FILE", path, data)

    st = req.state
    with st.lock:
        t = tree(st)
        before = None
        if item[0] == "ZIP":
            _import_zip(st, t, item[1], item[2], overwrite, _principal(req))
            changed = True
        else:
            def look(n):
                return None if n is None else (n.object_type, n.language, n.source, n.data)
            before = look(t.by_path.get(item[1]))
            changed = look(_put(st, t, item, overwrite, _principal(req))) != before
        if changed:                         # the same content imported again over itself changes nothing
            st.applied["workspace/update" if before is not None else "workspace/import"] += 1
    return {}


def _strip_ext(path: str, exts) -> str:
    for e in exts:
        if path.endswith("." + e) and len(path) > len(e) + 2:
            return path[:-(len(e) + 1)]
    return path


def _put(st, t: Tree, item: tuple, overwrite: bool, creator: Optional[str]) -> Node:
    path = item[1]
    parent_path = path.rsplit("/", 1)[0] or "/"
    parent = t.by_path.get(parent_path)
    if parent is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"The parent folder ({parent_path}) does not exist.")
    if parent.object_type != "DIRECTORY":
        raise invalid_parameter(f"The parent path ({parent_path}) is not a folder.")
    existing = t.by_path.get(path)
    if existing is not None:
        if not overwrite or existing.object_type == "DIRECTORY":
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")
        if existing.object_type != item[0]:
            t.remove(existing)
            existing = None
    now = st.now_ms()
    node = existing or t._add(st, path, item[0], now, creator)
    node.modified_at = now
    if item[0] == "NOTEBOOK":
        _, _, lang, source, origin = item
        _check_size(len(source.encode("utf-8")))
        node.language, node.source, node.origin, node.data = lang, source, origin, None
    else:
        node.data, node.language, node.source = item[2], None, None
    return node


def _import_zip(st, t: Tree, path: str, data: bytes, overwrite: bool, creator: Optional[str]) -> None:
    """A SOURCE import without language: a zip archive of a folder (notebooks with their header,
    other entries as files)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        entries = [(i.filename, zf.read(i)) for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError):
        raise invalid_parameter("The content is not a valid zip archive.") from None
    if path in t.by_path and not overwrite:
        raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")
    parent_path = path.rsplit("/", 1)[0] or "/"
    if parent_path not in t.by_path:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"The parent folder ({parent_path}) does not exist.")
    items = []
    for name, raw in entries:
        rel = "/".join(seg for seg in name.replace("\\", "/").split("/") if seg not in ("", "."))
        if not rel or ".." in rel.split("/"):
            continue
        target = _norm(f"{path}/{rel}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        lang = _header_language(text)
        if lang is not None:
            items.append(("NOTEBOOK", _strip_ext(target, ("py", "sql", "scala", "r")), lang,
                          _normal_source(text, lang), "SOURCE"))
        else:
            items.append(("FILE", target, raw))
    for item in items:
        _mkdirs(st, t, item[1].rsplit("/", 1)[0] or "/", creator)
        _put(st, t, item, True, creator)
    _mkdirs(st, t, path, creator)


@route("GET", API + r"/export")
def export_object(req):
    path = _norm(req.param("path"))
    fmt = req.q("format") or "SOURCE"
    direct = req.q_bool("direct_download", False)
    if fmt not in EXPORT_FORMATS:
        raise invalid_parameter(f"Invalid format {fmt!r}: one of {', '.join(EXPORT_FORMATS)}")
    with req.state.lock:
        node = _node(tree(req.state), path)
        data, file_type = _export(node, fmt)
    _check_size(len(data))
    if direct:
        return 200, data, {"Content-Type": "application/octet-stream"}
    return {"content": base64.b64encode(data).decode(), "file_type": file_type}


def _export(node: Node, fmt: str) -> Tuple[bytes, str]:
    if fmt == "DBC":
        raise invalid_parameter("DBC archives are not supported by the emulator; export SOURCE, HTML, JUPYTER, "
                                "R_MARKDOWN, AUTO or RAW.")
    if node.object_type == "DIRECTORY":
        if fmt not in ("SOURCE", "AUTO"):
            raise invalid_parameter("Exporting a directory is only supported for the DBC, SOURCE and AUTO formats.")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            stack = [(node, "")]
            while stack:
                cur, prefix = stack.pop()
                for name in cur.names:
                    child = cur.children[name]
                    rel = f"{prefix}{name}"
                    if child.object_type == "DIRECTORY":
                        stack.append((child, rel + "/"))
                    elif child.object_type == "NOTEBOOK":
                        zf.writestr(f"{rel}.{_SYNTAX[child.language][1]}", child.source or "")
                    elif fmt == "AUTO":
                        zf.writestr(rel, child.data or b"")
        return buf.getvalue(), "zip"
    if node.object_type == "FILE":
        if fmt not in ("SOURCE", "AUTO", "RAW"):
            raise invalid_parameter(f"Format {fmt} is not supported for files; use SOURCE, AUTO or RAW.")
        ext = node.name.rsplit(".", 1)[1] if "." in node.name else ""
        return node.data or b"", ext
    # a notebook
    if fmt == "RAW":
        raise invalid_parameter("Format RAW is for files; export a notebook as SOURCE, HTML, JUPYTER or AUTO.")
    if fmt == "AUTO":
        fmt = "JUPYTER" if node.origin == "JUPYTER" else "SOURCE"
    if fmt == "SOURCE":
        return (node.source or "").encode("utf-8"), _SYNTAX[node.language][1]
    if fmt == "HTML":
        return _to_html(node), "html"
    if fmt == "JUPYTER":
        if node.language != "PYTHON":
            raise invalid_parameter(f"Only Python notebooks can be exported as JUPYTER; {node.path} is "
                                    f"{node.language}.")
        return _to_jupyter(node), "ipynb"
    if fmt == "R_MARKDOWN":
        if node.language != "R":
            raise invalid_parameter(f"Only R notebooks can be exported as R_MARKDOWN; {node.path} is "
                                    f"{node.language}.")
        return _to_rmd(node), "Rmd"
    raise invalid_parameter(f"Unsupported format {fmt}.")
