"""SQL Statement Execution API 2.0 (contract §8) and the loopback "cloud storage" that serves
EXTERNAL_LINKS.

Statements run asynchronously, each on its own worker thread, as on a warehouse:

* PENDING while the warehouse starts (a statement on a STOPPED warehouse starts it) or while the
  warehouse already runs ``warehouse_concurrency`` statements per cluster; then RUNNING while the
  SQL engine executes it; then SUCCEEDED, FAILED (SQL errors are HTTP 200 with status FAILED and
  ``status.sql_state``), or CANCELED (``POST .../cancel`` or ``on_wait_timeout=CANCEL``: the running
  DuckDB query is interrupted). SUCCEEDED becomes CLOSED ``statement_results_lifetime_seconds``
  after it ended; the record is purged (404) ``statement_purge_after_seconds`` after that.
* ``POST /statements`` waits up to ``wait_timeout`` (``0s`` or ``5s``..``50s``) for a terminal state
  (``0s``: answers at once, PENDING); ``GET /statements/{id}`` never waits.
* A query takes time for real (DuckDB work), or by ``sleep(seconds)`` in the SQL, or by the
  ``sql_delays`` config field (see ``sqlengine``).

Results are split into chunks by real row and byte limits and kept pre-encoded, so serving a
chunk costs no re-encoding. Knobs are the ``statement_*`` / ``sql_*`` / ``warehouse_*`` fields of
the emulator's ``Config``.

EXTERNAL_LINKS point at a SEPARATE loopback HTTP server on its own port (started lazily with
the first link, one per emulator, daemon thread) that behaves like presigned cloud storage:
links are HMAC-signed with an expiry; a request carrying an ``Authorization`` header is refused
with 403 and counted; an expired link answers 403 "Request has expired".

For other areas (Genie, ...): ``submit_statement(state, statement=..., warehouse_id=...,
principal=...)`` starts a statement exactly as the API does and returns its id;
``statement_response(state, statement_id)`` is its StatementResponse document.
"""
from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import hashlib
import hmac
import io
import json
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

from .api import ApiError, invalid_parameter, invalid_state, route
from .sqlengine import format_value
from .warehouses import advance as advance_warehouse
from .warehouses import shape, start_warehouse, warehouses

API = r"/api/2\.0/sql/statements"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "CLOSED")
INLINE_LIMIT_MESSAGE = ("Inline byte limit exceeded. Statements executed with disposition=INLINE can have a result "
                        "size of at most {limit} bytes. Please execute the statement with "
                        "disposition=EXTERNAL_LINKS if you want to download the full result.")
_POLL = 0.02            # how often a PENDING statement looks at its warehouse


# --------------------------------------------------------------------------- engine

def _engine(state):
    from .sqlengine import engine_for
    return engine_for(state)


def _sql_error_fields(exc):
    return (getattr(exc, "error_code", None) or "BAD_REQUEST", getattr(exc, "message", None) or str(exc),
            getattr(exc, "sql_state", None))


# --------------------------------------------------------------------------- values

def _text(v) -> Optional[str]:
    """A value as the API writes it in data_array: every non-null value is a string."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, default=str, separators=(",", ":"))
    return format_value(v)


def _csv_bytes(rows: List[list], columns: List[dict], header: bool) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    if header:
        w.writerow([c["name"] for c in columns])
    for row in rows:
        w.writerow(["null" if v is None else v for v in row])
    return buf.getvalue().encode("utf-8")


def _arrow_bytes(rows: List[tuple], columns: List[dict]) -> bytes:
    """One Arrow IPC stream of typed columns (int64, double, bool, decimal128, date32, timestamp)."""
    import pyarrow as pa

    arrays = []
    for i, c in enumerate(columns):
        values = [r[i] for r in rows]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([_text(v) for v in values], type=pa.string()))
    table = pa.Table.from_arrays(arrays, names=[c["name"] for c in columns])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# --------------------------------------------------------------------------- results

def _build_result(state, st: dict, result) -> None:
    """Split the engine's rows into chunks (pre-encoded) and set manifest facts on ``st``."""
    cfg = state.config
    links = st["disposition"] == "EXTERNAL_LINKS"
    cap_bytes = int(cfg.statement_link_chunk_max_bytes if links else cfg.statement_chunk_max_bytes)
    cap_rows = int(cfg.statement_chunk_max_rows) if cfg.statement_chunk_max_rows else None
    row_limit, byte_limit = st.get("row_limit"), st.get("byte_limit")
    columns = [dict(c) for c in result.columns]
    for i, c in enumerate(columns):
        c.setdefault("position", i)
    chunks: List[dict] = []
    cur: List[str] = []
    cur_bytes = 0
    total_rows = 0
    total_bytes = 0
    truncated = False
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    arrow = st["format"] == "ARROW_STREAM"
    cur_values: List[tuple] = []                     # the engine's typed values, for Arrow chunks

    def flush():
        nonlocal cur, cur_bytes, cur_values
        if not cur:
            return
        data = ("[" + ",".join(cur) + "]").encode("utf-8")
        chunks.append({"chunk_index": len(chunks), "row_offset": total_rows - len(cur), "row_count": len(cur),
                       "json": data, "values": cur_values})
        cur, cur_bytes, cur_values = [], 0, []

    for row in result.rows:
        if row_limit is not None and total_rows >= row_limit:
            truncated = True
            break
        text = dumps([_text(v) for v in row])
        size = len(text) + 1
        if byte_limit is not None and total_bytes + size > byte_limit:
            truncated = True
            break
        if cur and (cur_bytes + size > cap_bytes or (cap_rows and len(cur) >= cap_rows)):
            flush()
        cur.append(text)
        if arrow:
            cur_values.append(tuple(row))
        cur_bytes += size
        total_rows += 1
        total_bytes += size
    flush()
    if not links and total_bytes > cfg.statement_inline_limit_bytes:
        st.update(state="FAILED", error={"error_code": "BAD_REQUEST", "message": INLINE_LIMIT_MESSAGE.format(
            limit=int(cfg.statement_inline_limit_bytes))})
        return
    fmt = st["format"]
    for ch in chunks:
        if fmt == "CSV":
            ch["body"] = _csv_bytes(json.loads(ch.pop("json")), columns, header=ch["chunk_index"] == 0)
        elif fmt == "ARROW_STREAM":
            ch["body"] = _arrow_bytes(ch["values"], columns)
            del ch["json"]
        else:
            ch["body"] = ch.pop("json")
        ch.pop("values", None)
        ch["byte_count"] = len(ch["body"])
    st["columns"] = columns
    st["chunks"] = chunks
    st["total_rows"] = total_rows
    st["truncated"] = truncated or bool(getattr(result, "truncated", False))
    st["state"] = "SUCCEEDED"


def _manifest(st: dict) -> dict:
    links = st["disposition"] == "EXTERNAL_LINKS"
    chunks = []
    for ch in st["chunks"]:
        c = {"chunk_index": ch["chunk_index"], "row_offset": ch["row_offset"], "row_count": ch["row_count"]}
        if links:
            c["byte_count"] = ch["byte_count"]
        chunks.append(c)
    m = {"format": st["format"], "schema": {"column_count": len(st["columns"]), "columns": st["columns"]},
         "total_chunk_count": len(chunks), "chunks": chunks, "total_row_count": st["total_rows"],
         "truncated": st["truncated"]}
    if links:
        m["total_byte_count"] = sum(ch["byte_count"] for ch in st["chunks"])
    return m


def _next(st: dict, i: int) -> dict:
    if i + 1 < len(st["chunks"]):
        return {"next_chunk_index": i + 1,
                "next_chunk_internal_link": f"/api/2.0/sql/statements/{st['id']}/result/chunks/{i + 1}"}
    return {}


def _chunk_bytes(state, req, st: dict, i: int) -> bytes:
    """The ResultData of chunk ``i`` as JSON bytes (INLINE data spliced in without re-encoding)."""
    ch = st["chunks"][i]
    head = {"chunk_index": i, "row_offset": ch["row_offset"], "row_count": ch["row_count"]}
    if st["disposition"] == "EXTERNAL_LINKS":
        url, expires = _storage(state).sign(st["id"], i)
        link = dict(head, byte_count=ch["byte_count"], external_link=url, expiration=_iso(expires),
                    http_headers=dict(state.config.statement_link_http_headers), **_next(st, i))
        return json.dumps(dict(head, byte_count=ch["byte_count"], external_links=[link], **_next(st, i))).encode()
    tail = json.dumps(_next(st, i))
    text = json.dumps(head)[:-1] + ',"data_array":'
    return text.encode() + ch["body"] + (("," + tail[1:]) if tail != "{}" else "}").encode()


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --------------------------------------------------------------------------- state machine

def _store(state) -> Dict[str, dict]:
    return state.area("statements", dict)


def _refresh(state, st: dict) -> dict:
    """Apply what time alone changes (SUCCEEDED -> CLOSED). Never runs SQL, never waits."""
    with state.lock:
        if st["state"] == "SUCCEEDED" and \
                state.now() >= st["ended"] + float(state.config.statement_results_lifetime_seconds):
            st["state"] = "CLOSED"
            st["chunks"] = []
    return st


def _finish(state, st: dict, fields: dict) -> None:
    """Set a terminal state unless the statement already ended (a cancel wins the race)."""
    with state.lock:
        if st["state"] in ("PENDING", "RUNNING"):
            st.update(fields)
            st["ended"] = state.now()
    st["done"].set()


def _slot_free(state, wh: dict) -> bool:
    limit = max(1, int(state.config.warehouse_concurrency)) * max(1, int(wh.get("num_clusters") or 1))
    return int(wh.get("_running", 0)) < limit


def _work(state, st: dict) -> None:
    """A statement's worker: wait PENDING for the warehouse and a slot, run RUNNING, then finish."""
    cancel = st["cancel_event"]
    wid = st["warehouse_id"]
    while True:
        with state.lock:
            if st["state"] != "PENDING":
                st["done"].set()
                return
            wh = warehouses(state).get(wid)
            if wh is not None:
                advance_warehouse(state, wh)
            if wh is None or wh["state"] in ("DELETING", "DELETED"):
                st.update(state="FAILED", ended=state.now(), sql_state=None,
                          error={"error_code": "NOT_FOUND", "message": f"Warehouse {wid} was deleted."})
                st["done"].set()
                return
            if wh["state"] in ("STOPPED", "STOPPING"):
                start_warehouse(state, wh)
            elif wh["state"] == "RUNNING" and _slot_free(state, wh):
                wh["_running"] = int(wh.get("_running", 0)) + 1
                st["state"] = "RUNNING"
                st["started"] = state.now()
                timeout = wh.get("statement_timeout") or None
                break
        if cancel.wait(_POLL):
            st["done"].set()
            return
    try:
        _run(state, st, timeout)
    except Exception as exc:  # noqa: BLE001 - an emulator bug must still end the statement
        _finish(state, st, {"state": "FAILED", "sql_state": "XX000", "error": {
            "error_code": "INTERNAL_ERROR", "message": f"[INTERNAL_ERROR] Emulator error: {exc!r}"}})
    finally:
        with state.lock:
            wh["_running"] = max(0, int(wh.get("_running", 1)) - 1)
        st["done"].set()


def _run(state, st: dict, timeout) -> None:
    c = state.config
    key = _cache_key(st)
    cache = state.area("sql_result_cache", dict)
    hit = cache.get(key) if c.sql_result_cache_seconds else None
    if hit is not None and hit[0] > state.now():
        _finish(state, st, dict(hit[1]))
        return
    try:
        result = _engine(state).execute(st["statement"], st["parameters"], st.get("catalog"), st.get("schema"),
                                        row_limit=st.get("row_limit"), cancel_event=st["cancel_event"],
                                        timeout=float(timeout) if timeout else None, principal=st["principal"])
        done = {"disposition": st["disposition"], "format": st["format"], "row_limit": st.get("row_limit"),
                "byte_limit": st.get("byte_limit")}
        _build_result(state, done, result)
    except Exception as exc:  # noqa: BLE001 - SqlError and anything the engine raises
        code, message, sql_state = _sql_error_fields(exc)
        done = {"state": "FAILED", "error": {"error_code": code, "message": message}, "sql_state": sql_state}
    fields = {k: done[k] for k in ("state", "error", "sql_state", "columns", "chunks", "total_rows", "truncated")
              if k in done}
    if c.sql_result_cache_seconds and fields["state"] == "SUCCEEDED":
        cache[key] = (state.now() + float(c.sql_result_cache_seconds), fields)
    _finish(state, st, fields)


def _cache_key(st: dict) -> str:
    return json.dumps([st["warehouse_id"], st["statement"], st["parameters"], st.get("catalog"), st.get("schema"),
                       st["disposition"], st["format"], st.get("row_limit"), st.get("byte_limit"),
                       getattr(st["principal"], "user_name", None)], sort_keys=True)


def _lookup(state, sid: str) -> dict:
    with state.lock:
        st = _store(state).get(sid)
        if st is not None and st.get("ended") is not None and st["state"] in TERMINAL and \
                state.now() >= st["ended"] + float(state.config.statement_purge_after_seconds):
            _store(state).pop(sid, None)
            st = None
    if st is None:
        raise ApiError(404, "NOT_FOUND", f"The statement {sid} was not found; it may have been removed.")
    return _refresh(state, st)


def _response(state, req, st: dict) -> bytes:
    with state.lock:
        snap = {k: st.get(k) for k in ("id", "state", "error", "sql_state", "columns", "chunks", "total_rows",
                                       "truncated", "disposition", "format")}
    status: dict = {"state": snap["state"]}
    if snap["state"] == "FAILED":
        status["error"] = snap["error"]
        if snap.get("sql_state"):
            status["sql_state"] = snap["sql_state"]
    doc = {"statement_id": snap["id"], "status": status}
    if snap["state"] != "SUCCEEDED":
        return json.dumps(doc).encode()
    doc["manifest"] = _manifest(snap)
    if not snap["chunks"]:
        doc["result"] = {"row_count": 0, "row_offset": 0, "chunk_index": 0}
        return json.dumps(doc).encode()
    return json.dumps(doc)[:-1].encode() + b',"result":' + _chunk_bytes(state, req, snap, 0) + b"}"


def _send(state, body: bytes):
    shape(state, len(body))
    return 200, body, {"Content-Type": "application/json"}


def _cancel(state, st: dict) -> bool:
    with state.lock:
        if st["state"] in ("PENDING", "RUNNING"):
            st.update(state="CANCELED", ended=state.now())
            st["cancel_event"].set()
            state.applied["statements/cancel"] += 1
            cancelled = True
        else:
            cancelled = False
    if cancelled:
        st["done"].set()
    return cancelled


# --------------------------------------------------------------------------- submitting

_WAIT = re.compile(r"^(\d+)s$")


def _new_id() -> str:
    sid = uuid.uuid4().hex
    return f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:32]}"


def submit_statement(state, *, statement: str, warehouse_id: str, principal=None, parameters=None,
                     catalog: Optional[str] = None, schema: Optional[str] = None, disposition: str = "INLINE",
                     format: str = "JSON_ARRAY", row_limit: Optional[int] = None,
                     byte_limit: Optional[int] = None, start: bool = True) -> dict:
    """Start a statement on a warehouse as ``principal`` (a state.Principal; None = the engine's
    default user) and return its record (``record["id"]`` is the statement_id; ``record["done"]``
    a threading.Event set when it ends). Raises ApiError 404 for an unknown warehouse. A stopped
    warehouse is started; the statement waits PENDING. ``start=False``: the caller starts the
    worker with ``_start`` (the API answers a ``0s`` wait before the worker runs)."""
    with state.lock:
        wh = warehouses(state).get(warehouse_id)
        if wh is None or advance_warehouse(state, wh)["state"] == "DELETED":
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {warehouse_id} does not exist.")
        st = {"id": _new_id(), "warehouse_id": warehouse_id, "statement": statement, "parameters": parameters or [],
              "catalog": catalog, "schema": schema, "disposition": disposition, "format": format,
              "row_limit": row_limit, "byte_limit": byte_limit, "principal": principal, "state": "PENDING",
              "created": state.now(), "started": None, "ended": None, "chunks": [],
              "cancel_event": threading.Event(), "done": threading.Event()}
        if wh["state"] in ("STOPPED", "STOPPING"):
            start_warehouse(state, wh)
        _store(state)[st["id"]] = st
        state.applied["statements/execute"] += 1
    if start:
        _start(state, st)
    return st


def _start(state, st: dict) -> None:
    threading.Thread(target=_work, args=(state, st), name=f"emu-statement-{st['id'][:8]}", daemon=True).start()


def statement_response(state, statement_id: str, req=None) -> dict:
    """The StatementResponse document of a statement (as ``GET /statements/{id}`` answers it)."""
    return json.loads(_response(state, req, _lookup(state, statement_id)))


# --------------------------------------------------------------------------- routes

@route("POST", API)
def execute(req):
    body = req.body
    statement = body.get("statement")
    if not isinstance(statement, str) or not statement.strip():
        raise invalid_parameter("statement is required and must be a non-empty string")
    if len(statement.encode("utf-8")) > 16 * 1024 * 1024:
        raise invalid_parameter("statement is larger than 16 MiB")
    wid = body.get("warehouse_id")
    if not isinstance(wid, str) or not wid:
        raise invalid_parameter("warehouse_id is required")
    raw_wait = body.get("wait_timeout", "10s")
    m = _WAIT.match(raw_wait) if isinstance(raw_wait, str) else None
    wait = int(m.group(1)) if m else -1
    if wait != 0 and not 5 <= wait <= 50:
        raise invalid_parameter(f"wait_timeout must be 0s or between 5s and 50s, got {raw_wait!r}")
    on_wait = body.get("on_wait_timeout", "CONTINUE")
    if on_wait not in ("CONTINUE", "CANCEL"):
        raise invalid_parameter(f"on_wait_timeout must be CONTINUE or CANCEL, got {on_wait!r}")
    disposition = body.get("disposition", "INLINE")
    fmt = body.get("format", "JSON_ARRAY")
    if disposition not in ("INLINE", "EXTERNAL_LINKS"):
        raise invalid_parameter(f"disposition must be INLINE or EXTERNAL_LINKS, got {disposition!r}")
    if fmt not in ("JSON_ARRAY", "ARROW_STREAM", "CSV"):
        raise invalid_parameter(f"format must be JSON_ARRAY, ARROW_STREAM or CSV, got {fmt!r}")
    if fmt != "JSON_ARRAY" and disposition != "EXTERNAL_LINKS":
        raise invalid_parameter(f"The {fmt} format is only supported with disposition EXTERNAL_LINKS")
    if fmt == "ARROW_STREAM":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise invalid_parameter("ARROW_STREAM is not available in this emulator (pyarrow is not installed)") from None
    limits = {}
    for name in ("row_limit", "byte_limit"):
        if body.get(name) is not None:
            v = body[name]
            if isinstance(v, str) and v.isdigit():
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise invalid_parameter(f"{name} must be a non-negative integer")
            limits[name] = v
    tags = body.get("query_tags")          # QueryTag[] (cost attribution; issue 19)
    if tags is not None and (not isinstance(tags, list) or not all(
            isinstance(t, dict) and isinstance(t.get("key"), str) and t["key"]
            and isinstance(t.get("value", ""), str) and set(t) <= {"key", "value"} for t in tags)):
        raise invalid_parameter("query_tags must be a list of {\"key\": string, \"value\": string (optional)}")
    params = body.get("parameters") or []
    if not isinstance(params, list):
        raise invalid_parameter("parameters must be a list of {name, value, type}")
    for p in params:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]:
            raise invalid_parameter("each parameter needs a name")
        if p.get("value") is not None and not isinstance(p["value"], str):
            raise invalid_parameter(f"parameter {p['name']}: value must be a string (or null for NULL)")
        if p.get("type") is not None and not isinstance(p["type"], str):
            raise invalid_parameter(f"parameter {p['name']}: type must be a string")
    for name in ("catalog", "schema"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise invalid_parameter(f"{name} must be a string")
    state = req.state
    st = submit_statement(state, statement=statement, warehouse_id=wid, principal=req.principal, parameters=params,
                          catalog=body.get("catalog") or None, schema=body.get("schema") or None,
                          disposition=disposition, format=fmt, start=False, **limits)
    if wait == 0:                       # asynchronous: answer at once, before the worker runs
        answer = _response(state, req, st)
        _start(state, st)
        return _send(state, answer)
    _start(state, st)
    if not st["done"].wait(wait) and on_wait == "CANCEL":
        _cancel(state, st)
    return _send(state, _response(state, req, _refresh(state, st)))


@route("GET", API + r"/(?P<id>[^/]+)")
def get_statement(req):
    st = _lookup(req.state, req.params["id"])
    return _send(req.state, _response(req.state, req, st))


@route("GET", API + r"/(?P<id>[^/]+)/result/chunks/(?P<index>[^/]+)")
def get_chunk(req):
    st = _lookup(req.state, req.params["id"])
    try:
        i = int(req.params["index"])
    except ValueError:
        raise invalid_parameter(f"Invalid chunk index {req.params['index']!r}") from None
    with req.state.lock:
        snap = {k: st.get(k) for k in ("id", "state", "chunks", "disposition", "format")}
    if snap["state"] != "SUCCEEDED":
        raise invalid_state(f"The statement {snap['id']} is {snap['state']}; results can only be fetched from a "
                            "SUCCEEDED statement" + (" (results expire an hour after success)"
                                                     if snap["state"] == "CLOSED" else ""))
    if not 0 <= i < len(snap["chunks"]):
        raise invalid_parameter(f"Chunk index {i} is out of range: the result has {len(snap['chunks'])} chunk(s)")
    return _send(req.state, _chunk_bytes(req.state, req, snap, i))


@route("POST", API + r"/(?P<id>[^/]+)/cancel")
def cancel(req):
    shape(req.state, 0)
    st = _lookup(req.state, req.params["id"])
    _cancel(req.state, st)
    return {}


# --------------------------------------------------------------------------- storage

class _Storage:
    """The loopback stand-in for presigned cloud storage (S3 / ADLS / GCS)."""

    def __init__(self, state):
        self.state = state
        self.key = secrets.token_bytes(32)
        self.lock = threading.Lock()
        self.auth_attempts = 0          # requests that carried an Authorization header (refused)
        self.expired = 0                # requests with an expired link (refused)
        self.served = 0
        self.requests: List[dict] = []  # {"path", "headers"} of every request
        storage = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                status, body, ctype = storage.handle(self.path, {k: v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # HTTPS like real cloud storage, with the emulator's certificate authority (emulator/tls.py)
        from .tls import authority, serve
        self.scheme = serve(self.server, authority().server_context() if state.config.tls else None)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"emulator-storage-{self.port}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _sig(self, path: str, expires: int) -> str:
        return hmac.new(self.key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, sid: str, index: int) -> str:
        path = f"/results/{sid}/{index}"
        c = self.state.config
        expires = int(self.state.now() + float(c.statement_link_lifetime_seconds) + 0.999)
        with self.lock:
            if c.statement_expire_next_links > 0:
                c.statement_expire_next_links -= 1
                expires = int(self.state.now()) - 60
        return f"{self.scheme}://127.0.0.1:{self.port}{path}?X-Expires={expires}&X-Signature={self._sig(path, expires)}", expires

    @staticmethod
    def _xml(code: str, message: str) -> bytes:
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>").encode()

    def handle(self, raw_path: str, headers: Dict[str, str]):
        split = urllib.parse.urlsplit(raw_path)
        q = urllib.parse.parse_qs(split.query)
        with self.lock:
            self.requests.append({"path": split.path, "headers": dict(headers)})
        lower = {k.lower(): v for k, v in headers.items()}
        if "authorization" in lower:
            with self.lock:
                self.auth_attempts += 1
            return 403, self._xml("InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm "
                                  "query parameter, Signature query string parameter or the Authorization header "
                                  "should be specified"), "application/xml"
        try:
            expires = int(q["X-Expires"][0])
            sig = q["X-Signature"][0]
        except (KeyError, ValueError, IndexError):
            return 403, self._xml("AccessDenied", "Query-string authentication requires the Signature and "
                                  "Expires parameters"), "application/xml"
        if not hmac.compare_digest(sig, self._sig(split.path, expires)):
            return 403, self._xml("SignatureDoesNotMatch", "The request signature we calculated does not match "
                                  "the signature you provided."), "application/xml"
        if self.state.now() > expires:
            with self.lock:
                self.expired += 1
            return 403, self._xml("AccessDenied", "Request has expired"), "application/xml"
        for k, v in dict(self.state.config.statement_link_http_headers).items():
            if lower.get(k.lower()) != v:
                return 403, self._xml("AccessDenied", f"Missing required header {k}"), "application/xml"
        m = re.fullmatch(r"/results/([^/]+)/(\d+)", split.path)
        st = _store(self.state).get(m.group(1)) if m else None
        i = int(m.group(2)) if m else -1
        if st is None or st["state"] != "SUCCEEDED" or not 0 <= i < len(st["chunks"]):
            return 404, self._xml("NoSuchKey", "The specified key does not exist."), "application/xml"
        body = st["chunks"][i]["body"]
        shape(self.state, len(body))
        with self.lock:
            self.served += 1
        ctype = {"CSV": "text/csv", "ARROW_STREAM": "application/vnd.apache.arrow.stream"}.get(st["format"],
                                                                                               "application/json")
        return 200, body, ctype


def _storage(state) -> _Storage:
    return state.area("sql_storage", lambda: _Storage(state))


def storage(state) -> _Storage:
    """The storage server of an emulator (started on first use); tests read its counters."""
    return _storage(state)
