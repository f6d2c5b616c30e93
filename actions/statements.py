"""SQL Statement Execution API 2.0: execute a statement and fetch its whole result; get a
statement, one result chunk; cancel.

Waiting: the server-side wait first (``wait_timeout`` up to 50 s, ``on_wait_timeout`` CONTINUE),
then polling ``GET /statements/{id}`` with backoff (session.wait) to the step's wall-clock
deadline. FAILED, CANCELED and CLOSED become ``operation_failed`` with the SQL state.

Results: every chunk, fetched concurrently by a small pool in a bounded window (at most
``MAX_WORKERS`` chunks in flight, returned strictly in order), parsed and converted one chunk at
a time by the caller's thread, so writing to a file keeps memory flat however large the result.
Disposition ``auto`` asks for INLINE and, when Databricks refuses a result over the 25 MiB
inline limit ("Inline byte limit exceeded"), runs the statement again with EXTERNAL_LINKS
(a non-JSON format always uses EXTERNAL_LINKS). External links are presigned cloud-storage
URLs: they are fetched with ``session.storage_get`` (no Authorization header, no workspace
credential) and, when one has expired (403), a fresh one is asked for on the chunk endpoint.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import gc
import threading
import io
import json
import math
import operator
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from ..errors import ConnectorError, InputError

API = "/api/2.0/sql/statements"
MAX_WORKERS = 6          # chunks in flight when rows are returned
FILE_WORKERS = 3         # chunks in flight when rows go to a file (memory stays flat)
FAILED_STATES = ("FAILED", "CANCELED", "CLOSED")
TERMINAL = ("SUCCEEDED",) + FAILED_STATES
_TOO_LARGE = re.compile(r"(?i)inline byte limit|disposition\s*=\s*EXTERNAL_LINKS")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _path(statement_id: str, suffix: str = "") -> str:
    return f"{API}/{quote(statement_id, safe='')}{suffix}"


# --------------------------------------------------------------------------- inputs

def _parameters(value) -> list | None:
    """Named parameters as the API wants them: [{name, value (string; absent = NULL), type?}].

    Accepts [{name, value, type?}], key-value lists ([{key, value}] or ["name=value"]) and objects.
    Non-string values are sent as text with a matching type (BOOLEAN, BIGINT, DOUBLE)."""
    if value is None or value == "" or value == [] or value == {}:
        return None
    label = "SQL Parameters"
    problems = []
    if isinstance(value, dict):
        items = [{"name": k, "value": v} for k, v in value.items()]
    elif isinstance(value, list):
        items = []
        for i, p in enumerate(value):
            if isinstance(p, dict) and ("name" in p or "key" in p):
                items.append({"name": p.get("name", p.get("key")), "value": p.get("value"), "type": p.get("type")})
            elif isinstance(p, str) and "=" in p:
                k, v = p.split("=", 1)
                items.append({"name": k.strip(), "value": v.strip()})
            else:
                problems.append({"key": "parameters", "label": label,
                                 "reason": f"[{i}] must be an object with a name and a value, e.g. {{\"name\": \"id\", \"value\": \"42\"}}"})
    else:
        raise InputError([{"key": "parameters", "label": label, "reason": "must be an array of {name, value} objects"}])
    out, seen = [], set()
    for p in items:
        name = str(p["name"] or "").strip().lstrip(":")
        if not _NAME.match(name):
            problems.append({"key": "parameters", "label": label, "reason": f"parameter name {p['name']!r} is not a valid name"})
            continue
        if name in seen:
            problems.append({"key": "parameters", "label": label, "reason": f"parameter {name!r} is given twice"})
            continue
        seen.add(name)
        v, t = p.get("value"), p.get("type")
        param = {"name": name}
        if isinstance(v, bool):
            v, t = ("true" if v else "false"), t or "BOOLEAN"
        elif isinstance(v, int):
            v, t = str(v), t or "BIGINT"
        elif isinstance(v, float):
            if not math.isfinite(v):
                problems.append({"key": "parameters", "label": label, "reason": f"parameter {name!r} is not a finite number"})
                continue
            v, t = repr(v), t or "DOUBLE"
        elif isinstance(v, (dict, list)):
            problems.append({"key": "parameters", "label": label,
                             "reason": f"parameter {name!r}: complex values (arrays, objects) are not supported; pass text"})
            continue
        if v is not None:
            param["value"] = str(v)
        if t:
            param["type"] = str(t)
        out.append(param)
    if problems:
        raise InputError(problems)
    return out


def _have_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.ipc  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- value conversion

def _ints(col):
    if None not in col:
        return list(map(int, col))
    return [None if v is None else int(v) for v in col]


def _float(v):
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else v            # NaN/Infinity stay text: JSON has no such numbers


def _floats(col):
    if None not in col:
        try:
            out = list(map(float, col))
            if all(map(math.isfinite, out)):
                return out
        except ValueError:
            pass
    return list(map(_float, col))


_BOOL = {"true": True, "false": False, "TRUE": True, "FALSE": False, "True": True, "False": False}


def _bools(col):
    return list(map(_BOOL.get, col, col))          # unknown text (and None) stays as it is


def _timestamps(col):
    return [v.replace(" ", "T", 1) if v is not None and " " in v else v for v in col]


def _complex(col):
    out = []
    for v in col:
        try:
            out.append(json.loads(v) if v is not None else None)
        except ValueError:
            out.append(v)
    return out


def _column_kind(column: dict, decimals_as: str) -> str | None:
    """How a column's text becomes a value: int, float, bool, ts, json, or None (text as sent)."""
    t = (column.get("type_name") or "").upper()
    if t in ("INT", "LONG", "SHORT", "BYTE", "BIGINT", "SMALLINT", "TINYINT", "INTEGER"):
        return "int"
    if t in ("FLOAT", "DOUBLE", "REAL"):
        return "float"
    if t == "BOOLEAN":
        return "bool"
    if t == "DECIMAL":
        if decimals_as != "number":
            return None
        scale = column.get("type_scale")
        if scale is None:
            m = re.search(r",\s*(\d+)\s*\)", column.get("type_text") or "")
            scale = int(m.group(1)) if m else (0 if "(" not in (column.get("type_text") or "(") else None)
        return "int" if scale == 0 else "float"
    if t == "TIMESTAMP":
        return "ts"
    if t in ("ARRAY", "MAP", "STRUCT"):
        return "json"
    return None                                      # STRING, DATE, BINARY, INTERVAL, ...: text as sent


_COLUMN = {"int": _ints, "float": _floats, "bool": _bools, "ts": _timestamps, "json": _complex}
_SCALAR = {"int": "int({v})", "float": "float({v})", "bool": "_bool({v}, {v})",
           "ts": "{v}.replace(' ', 'T', 1)", "json": "_loads({v})"}


class Converter:
    """Turns a chunk of text rows into typed rows.

    Fast path: one generated comprehension per result shape, converting a whole row at once (no
    NULLs, no NaN). A chunk it cannot handle (a NULL raises, a non-finite float is detected) goes
    the null-safe way, column by column, in place."""

    def __init__(self, columns: list, *, shape: str = "objects", decimals_as: str = "string", csv_nulls: bool = False):
        self.columns = columns
        self.names = _unique_names([c.get("name") or f"col_{i}" for i, c in enumerate(columns)])
        self.kinds = [_column_kind(c, decimals_as) for c in columns]
        self.active = [(j, _COLUMN[k]) for j, k in enumerate(self.kinds) if k is not None]
        self.shape = shape
        self.csv_nulls = csv_nulls
        self.float_keys = [(j if shape == "arrays" else self.names[j]) for j, k in enumerate(self.kinds) if k == "float"]
        self._fast = self._compile() if columns else None

    def _compile(self):
        n = len(self.columns)
        vs = [f"v{j}" for j in range(n)]
        exprs = [(_SCALAR[k].format(v=v) if k else v) for v, k in zip(vs, self.kinds)]
        if self.shape == "arrays":
            if not self.active:
                return None
            item = "[" + ", ".join(exprs) + "]"
        else:
            item = "{" + ", ".join(f"{name!r}: {e}" for name, e in zip(self.names, exprs)) + "}"
        target = ", ".join(vs) + ("," if n == 1 else "")
        code = f"def convert(rows):\n    return [{item} for {target} in rows]\n"
        env = {"_bool": _BOOL.get, "_loads": json.loads}
        exec(compile(code, "<sql-row-converter>", "exec"), env)       # noqa: S102 - built from our own templates
        return env["convert"]

    def __call__(self, rows: list) -> list:
        if not rows:
            return []
        if self._fast is not None and not self.csv_nulls:
            try:
                out = self._fast(rows)
                for key in self.float_keys:                 # NaN/Infinity must stay text (JSON has none)
                    if not math.isfinite(sum(map(operator.itemgetter(key), out))):
                        raise ValueError
                return out
            except (TypeError, ValueError, AttributeError):
                pass
        return self._slow(rows)

    def _slow(self, rows: list) -> list:
        """Null-safe conversion of a chunk, in place, column by column; objects or arrays."""
        n = len(self.columns)
        if not isinstance(rows[0], list) or len(rows[0]) != n or len(rows[-1]) != n:
            rows = [(list(r) + [None] * n)[:n] for r in rows]        # defensive: tuples or ragged rows
        if self.csv_nulls:
            rows = [[None if v == "null" else v for v in r] for r in rows]
        for j, conv in self.active:
            for r, v in zip(rows, conv([r[j] for r in rows])):
                r[j] = v
        if self.shape == "arrays":
            return rows
        names = self.names
        return [dict(zip(names, r)) for r in rows]


def _unique_names(names):
    seen, out = {}, []
    for n in names:
        if n in seen:
            seen[n] += 1
            n2 = f"{n}_{seen[n]}"
            while n2 in seen:
                seen[n] += 1
                n2 = f"{n}_{seen[n]}"
            seen[n2] = 1
            out.append(n2)
        else:
            seen[n] = 1
            out.append(n)
    return out


_GC_LOCK = threading.Lock()
_GC_PAUSES = 0
_GC_WAS_ENABLED = False


@contextlib.contextmanager
def _gc_paused():
    """Large results allocate millions of small lists; the cyclic collector would rescan them all
    again and again (half of the conversion time). They hold no cycles, so it is paused while a
    result is assembled; reference counting still frees memory. The pause is counted across
    threads: the collector comes back when the last concurrent result is done, and only if it
    was on before the first one started."""
    global _GC_PAUSES, _GC_WAS_ENABLED
    with _GC_LOCK:
        if _GC_PAUSES == 0:
            _GC_WAS_ENABLED = gc.isenabled()
            gc.disable()
        _GC_PAUSES += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES -= 1
            if _GC_PAUSES == 0 and _GC_WAS_ENABLED:
                gc.enable()


# --------------------------------------------------------------------------- chunks

class ChunkSource:
    """Fetches the raw bytes of result chunks (INLINE chunk endpoint or external links) and
    parses them into text rows."""

    def __init__(self, session, statement_id: str, manifest: dict, first: dict | None):
        self.session = session
        self.sid = statement_id
        self.manifest = manifest or {}
        self.format = self.manifest.get("format") or "JSON_ARRAY"
        self.first = first or {}
        # True/False once known from the first chunk; None (unknown) makes fetch parse each answer.
        self.links = ("external_links" in self.first) if self._has_data(self.first) else (
            True if self.format != "JSON_ARRAY" else None)

    # -- which chunks
    def indexes(self, max_rows: int | None = None) -> list:
        chunks = self.manifest.get("chunks") or []
        total = self.manifest.get("total_chunk_count")
        if total is None:
            total = len(chunks) if chunks else (1 if self.first else 0)
        out = []
        offsets = {c.get("chunk_index", i): c.get("row_offset") for i, c in enumerate(chunks)}
        for i in range(total):
            off = offsets.get(i)
            if max_rows is not None and off is not None and off >= max_rows:
                break
            out.append(i)
        return out

    # -- fetching (worker threads)
    def fetch(self, i: int):
        """(kind, data, i): ('rows', text rows), ('json', bytes of an INLINE chunk document) or
        ('links', [downloaded bytes, ...])."""
        first = self.first
        if i == 0 and first.get("chunk_index", 0) == 0 and self._has_data(first):
            if "data_array" in first:
                return ("rows", first.pop("data_array"), i)        # handed over: not kept alive twice
            return ("links", [self._download(i, link) for link in first.get("external_links") or []], i)
        path = _path(self.sid, f"/result/chunks/{i}")
        if self.links is False:
            return ("json", self.session.response("GET", path).content, i)
        meta = self.session.get(path)
        if "data_array" in meta or "external_links" not in meta:
            return ("rows", meta.get("data_array") or [], i)
        return ("links", [self._download(i, link) for link in meta.get("external_links") or []], i)

    @staticmethod
    def _has_data(meta) -> bool:
        return "data_array" in meta or "external_links" in meta or meta.get("row_count") is not None

    def _download(self, i: int, link: dict, attempts: int = 3) -> bytes:
        for attempt in range(attempts):
            response = self.session.storage_get(link["external_link"], headers=link.get("http_headers") or None)
            if response.status_code == 200:
                return response.content
            text = response.text[:500] if response.content else ""
            low = text.lower()
            expired = response.status_code in (400, 403) and (
                "expired" in low or "not valid in the specified time frame" in low or _past(link.get("expiration")))
            if expired and attempt + 1 < attempts:
                self.session.progress(f"SQL statement {self.sid}: link of chunk {i} expired; asking for a fresh one")
                fresh = self.session.get(_path(self.sid, f"/result/chunks/{i}"))
                links = fresh.get("external_links") or []
                match = [l for l in links if l.get("chunk_index", i) == link.get("chunk_index", i)] or links
                if not match:
                    break
                link = match[0]
                continue
            code = _xml_field(text, "Code")
            message = _xml_field(text, "Message") or (text.strip().splitlines()[0][:200] if text.strip() else "")
            kind = "permission_denied" if response.status_code == 403 else (
                "not_found" if response.status_code == 404 else "server_error" if response.status_code >= 500 else "bad_request")
            raise ConnectorError(kind, f"Downloading result chunk {i} of SQL statement {self.sid} from cloud storage failed: "
                                 f"HTTP {response.status_code}" + (f" {code}" if code else "") + (f": {message}" if message else ""),
                                 status=response.status_code, error_code=code,
                                 hint="The workspace's cloud storage refused the presigned link; check network rules "
                                      "(firewalls, private links) to the storage account, then run the step again.")
        raise ConnectorError("server_error", f"Result chunk {i} of SQL statement {self.sid}: the link kept expiring",
                             hint="Run the step again; if it persists, the clock of this machine may be wrong.")

    # -- parsing (caller's thread)
    def rows(self, fetched) -> list:
        kind, data, index = fetched
        if kind == "rows":
            return data or []
        if kind == "json":
            return json.loads(data).get("data_array") or []
        out = []
        for blob in data:
            out.extend(self._parse_external(blob, index))
        return out

    def _parse_external(self, blob: bytes, index: int) -> list:
        if self.format == "CSV":
            rows = list(csv.reader(io.StringIO(blob.decode("utf-8"))))
            return rows[1:] if index == 0 and rows else rows    # the header row is in the first chunk only
        if self.format == "ARROW_STREAM":
            return _arrow_rows(blob)
        return json.loads(blob) if blob else []


def _arrow_rows(blob: bytes) -> list:
    """Arrow IPC stream -> rows of text values like JSON_ARRAY's, so one converter serves both."""
    import base64
    import datetime as dt
    import decimal

    import pyarrow.ipc

    table = pyarrow.ipc.open_stream(blob).read_all()

    def text(v):
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, decimal.Decimal):
            return format(v, "f")
        if isinstance(v, dt.datetime):
            if v.tzinfo is not None:
                v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return v.isoformat(timespec="milliseconds") + "Z"
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, bytes):
            return base64.b64encode(v).decode()
        if isinstance(v, (list, dict)):
            return json.dumps(v, default=str)
        return repr(v) if isinstance(v, float) else str(v)

    cols = [[text(v) for v in col.to_pylist()] for col in table.columns]
    return [list(r) for r in zip(*cols)] if cols else []


def _xml_field(text: str, name: str) -> str | None:
    m = re.search(rf"<{name}>(.*?)</{name}>", text or "", re.S)
    return m.group(1).strip() if m else None


def _past(expiration) -> bool:
    if not expiration:
        return False
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(str(expiration).replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when <= dt.datetime.now(dt.timezone.utc)


def iter_chunks(source: ChunkSource, indexes: list, workers: int = MAX_WORKERS):
    """Yield (index, text rows) in order; at most ``workers`` chunks are in flight at once."""
    if not indexes:
        return
    if len(indexes) == 1:
        yield indexes[0], source.rows(source.fetch(indexes[0]))
        return
    # Nothing here keeps a chunk alive once it is handed over (the generator's frame would hold
    # the previous chunk while the next one is parsed), so at most one parsed chunk exists.
    pool = ThreadPoolExecutor(max_workers=min(workers, len(indexes)), thread_name_prefix="sql-chunks")
    pending = collections.deque()
    it = iter(indexes)
    try:
        for i in it:
            pending.append((i, pool.submit(source.fetch, i)))
            if len(pending) >= workers:
                break
        while pending:
            i, fut = pending.popleft()
            box = [fut.result()]
            del fut
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(source.fetch, nxt)))
            yield i, source.rows(box.pop())
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- waiting

def _status(doc: dict) -> dict:
    return doc.get("status") or {}


def _state(doc: dict) -> str:
    return _status(doc).get("state") or "UNKNOWN"


def _failure(doc: dict) -> ConnectorError:
    sid = doc.get("statement_id")
    status = _status(doc)
    state = status.get("state")
    error = status.get("error") or {}
    code, message, sql_state = error.get("error_code"), error.get("message"), status.get("sql_state")
    details = {"statement_id": sid, "state": state, "sql_state": sql_state, "error_code": code, "message": message}
    if state == "FAILED":
        text = f"The SQL statement failed: {message or 'no message'}"
        hint = "Fix the SQL statement or its parameters" + (f" (SQLSTATE {sql_state})" if sql_state else "") + " and run the step again."
    elif state == "CANCELED":
        text = f"The SQL statement {sid} was canceled" + (f": {message}" if message else "")
        hint = "Someone or something cancelled it (a user, a warehouse stop, a timeout); run the step again."
    else:
        text = f"The results of SQL statement {sid} are no longer available (CLOSED)"
        hint = "Results are kept for an hour after the statement succeeds; run the statement again."
    return ConnectorError("operation_failed", text, error_code=code, details=details, hint=hint)


def _await(session, doc: dict, *, deadline: float, interval: float, on_timeout: str):
    """Poll until terminal. Returns the final document, or {"statement_id", "status"} when the
    deadline passes and ``on_timeout`` is "return"."""
    sid = doc["statement_id"]
    last = {"doc": doc}
    if _state(doc) in TERMINAL:
        return doc

    def poll():
        d = session.get(_path(sid))
        last["doc"] = d
        state = _state(d)
        return state in TERMINAL, d, state

    def cancel():
        session.post(_path(sid, "/cancel"), {}, idempotent=True)
        return f"The statement {sid} was cancelled."

    if on_timeout == "cancel":      # on timeout and on interrupt, within the step's short cancel budget
        session.on_cancel(f"statement {sid}", cancel)
    try:
        return session.wait(poll, what=f"SQL statement {sid}", timeout=max(0.0, deadline - time.monotonic()),
                            interval=interval, follow_up="get_statement")
    except ConnectorError as err:
        if err.type != "timeout":
            raise
        if on_timeout == "return":
            return {"statement_id": sid, "status": _status(last["doc"]), "timed_out": True}
        cancelled = any(c.get("ok") for c in (err.details or {}).get("cancel", []))
        err.details = dict(err.details or {}, statement_id=sid, cancelled=cancelled)
        if cancelled:                  # (a failed cancel keeps the step's hint: check it and cancel it)
            err.hint = "Raise the timeout, make the query faster, or set On Timeout to return and poll with Get Statement."
        raise


def _submit(session, body: dict, deadline: float) -> dict:
    remaining = deadline - time.monotonic()
    if session.budget_left() is not None:          # a call with a budget (Connector.run(..., budget=)) waits no longer
        remaining = min(remaining, session.budget_left())
    wait = int(min(50, remaining)) if remaining >= 5 else 0
    body = dict(body, wait_timeout=f"{wait}s", on_wait_timeout="CONTINUE")
    # Recorded as what the step started: a resumed step (Connector.resume) does not submit it again.
    return session.start("statement", lambda: session.post(API, body, read_timeout=wait + 30, require=("statement_id",)),
                         ids=lambda d: {"statement_id": d.get("statement_id")}, follow_up="get_statement")


# --------------------------------------------------------------------------- actions

def execute_sql_statement(session, inputs):
    started = time.monotonic()
    deadline = started + float(inputs["timeout_seconds"])
    fmt = inputs.get("format") or "JSON_ARRAY"
    disposition = inputs.get("disposition") or "auto"
    output_path = inputs.get("output_path")
    problems = []
    if fmt == "ARROW_STREAM" and not _have_pyarrow():
        problems.append({"key": "format", "label": "Format", "reason": "ARROW_STREAM needs the optional pyarrow package "
                         "(pip install 'databricks-connector[arrow]'); choose JSON_ARRAY or CSV"})
    if fmt != "JSON_ARRAY" and disposition == "INLINE":
        problems.append({"key": "disposition", "label": "Disposition", "reason": f"INLINE results are JSON_ARRAY only; "
                         f"{fmt} needs EXTERNAL_LINKS (or auto)"})
    if output_path and not inputs.get("wait_for_result", True):
        problems.append({"key": "output_path", "label": "Output File", "reason": "needs Wait for Result: a file can only "
                         "be written once the result exists"})
    try:
        params = _parameters(inputs.get("parameters"))
    except InputError as exc:
        problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
    links = disposition == "EXTERNAL_LINKS" or fmt != "JSON_ARRAY"
    body = {"warehouse_id": inputs["warehouse_id"], "statement": inputs["statement"],
            "disposition": "EXTERNAL_LINKS" if links else "INLINE", "format": fmt}
    for key in ("catalog", "schema", "row_limit", "byte_limit"):
        if inputs.get(key) not in (None, ""):
            body[key] = inputs[key]
    if params:
        body["parameters"] = params

    if not inputs.get("wait_for_result", True):
        doc = session.post(API, dict(body, wait_timeout="0s"), require=("statement_id",))
        return {"statement_id": doc.get("statement_id"), "status": _status(doc)}

    interval = float(inputs.get("poll_interval_seconds") or 1)
    on_timeout = inputs.get("on_timeout") or "cancel"
    doc = _await(session, _submit(session, body, deadline), deadline=deadline, interval=interval, on_timeout=on_timeout)
    if doc.get("timed_out"):
        doc.pop("timed_out")
        return doc
    if _state(doc) == "FAILED" and disposition == "auto" and not links and \
            _TOO_LARGE.search(str((_status(doc).get("error") or {}).get("message", ""))):
        session.progress(f"SQL statement {doc.get('statement_id')}: the result is over the inline limit; "
                         "running it again with EXTERNAL_LINKS")
        body["disposition"] = "EXTERNAL_LINKS"
        doc = _await(session, _submit(session, body, deadline), deadline=deadline, interval=interval, on_timeout=on_timeout)
        if doc.get("timed_out"):
            doc.pop("timed_out")
            return doc
    if _state(doc) != "SUCCEEDED":
        raise _failure(doc)
    return _collect(session, doc, inputs)


def _columns(manifest: dict) -> list:
    return ((manifest or {}).get("schema") or {}).get("columns") or []


def _collect(session, doc: dict, inputs: dict) -> dict:
    sid = doc["statement_id"]
    manifest = doc.get("manifest") or {}
    columns = _columns(manifest)
    max_rows = inputs.get("max_rows")
    source = ChunkSource(session, sid, manifest, doc.get("result"))
    indexes = source.indexes(max_rows)
    total_rows = manifest.get("total_row_count")
    out = {"statement_id": sid, "status": _status(doc),
           "columns": [{"name": c.get("name"), "type_name": c.get("type_name"), "type_text": c.get("type_text")}
                       for c in columns]}
    output_path = inputs.get("output_path")
    if output_path:
        # (the collector stays on here: only one chunk is alive at a time, and cyclic garbage of
        # finished downloads must not pile up while a large result streams through)
        count, size = _write_file(source, indexes, columns, inputs, output_path, max_rows)
        out.update(row_count=count)
    else:
        convert = Converter(columns, shape=inputs.get("result_shape") or "objects",
                            decimals_as=inputs.get("decimals_as") or "string", csv_nulls=source.format == "CSV")
        rows = []
        with _gc_paused():
            for _, chunk in iter_chunks(source, indexes):
                if max_rows is not None and len(rows) + len(chunk) > max_rows:
                    chunk = chunk[:max_rows - len(rows)]
                rows.extend(convert(chunk))
                if max_rows is not None and len(rows) >= max_rows:
                    break
        out.update(rows=rows, row_count=len(rows))
    produced = total_rows if total_rows is not None else out["row_count"]
    out["truncated"] = bool(manifest.get("truncated")) or out["row_count"] < produced
    out["manifest"] = {"total_row_count": total_rows, "total_chunk_count": manifest.get("total_chunk_count"),
                       "truncated": bool(manifest.get("truncated")), "format": manifest.get("format")}
    if manifest.get("total_byte_count") is not None:
        out["manifest"]["total_byte_count"] = manifest["total_byte_count"]
    if output_path:
        out.update(output_path=os.path.abspath(output_path), output_format=inputs.get("output_format") or "jsonl",
                   bytes_written=size)
    return out


def _write_file(source, indexes, columns, inputs, path, max_rows):
    """Stream every chunk to ``path`` (JSON Lines or CSV); written to a temporary file in the same
    folder and moved into place at the end, so a failure leaves no half-written file."""
    fmt = inputs.get("output_format") or "jsonl"
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise InputError([{"key": "output_path", "label": "Output File", "reason": f"the folder {folder} does not exist"}])
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sql-result-", dir=folder)
    except OSError as exc:
        raise InputError([{"key": "output_path", "label": "Output File", "reason": f"cannot write in {folder}: {exc.strerror}"}]) from None
    count = 0
    csv_nulls = source.format == "CSV"
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            if fmt == "csv":
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow([c.get("name") for c in columns])
            else:
                convert = Converter(columns, shape=inputs.get("result_shape") or "objects",
                                    decimals_as=inputs.get("decimals_as") or "string", csv_nulls=csv_nulls)
                encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
            for _, chunk in iter_chunks(source, indexes, workers=FILE_WORKERS):
                if max_rows is not None and count + len(chunk) > max_rows:
                    chunk = chunk[:max_rows - count]
                if fmt == "csv":
                    # Databricks' own text of each value (true/false, ISO dates); NULL is an empty field.
                    if csv_nulls:
                        chunk = [[None if v == "null" else v for v in r] for r in chunk]
                    writer.writerows(chunk)
                else:
                    for k in range(0, len(chunk), 2048):         # bounded intermediate objects
                        fh.write("\n".join(map(encode, convert(chunk[k:k + 2048]))))
                        fh.write("\n")
                count += len(chunk)
                del chunk
                if max_rows is not None and count >= max_rows:
                    break
        size = os.path.getsize(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return count, size


def get_statement(session, inputs):
    sid = inputs["statement_id"]
    doc = session.get(_path(sid))
    out = {"statement_id": doc.get("statement_id", sid), "status": _status(doc)}
    if _state(doc) != "SUCCEEDED":
        return out
    manifest = doc.get("manifest") or {}
    columns = _columns(manifest)
    source = ChunkSource(session, sid, manifest, doc.get("result"))
    convert = Converter(columns, shape=inputs.get("result_shape") or "objects",
                        decimals_as=inputs.get("decimals_as") or "string", csv_nulls=source.format == "CSV")
    first = doc.get("result") or {}
    rows = convert(source.rows(source.fetch(0))) if source.indexes() else []
    out.update(columns=[{"name": c.get("name"), "type_name": c.get("type_name"), "type_text": c.get("type_text")}
                        for c in columns],
               rows=rows, row_count=len(rows),
               manifest={"total_row_count": manifest.get("total_row_count"),
                         "total_chunk_count": manifest.get("total_chunk_count"),
                         "truncated": bool(manifest.get("truncated")), "format": manifest.get("format")})
    nxt = first.get("next_chunk_index")
    if nxt is None and (manifest.get("total_chunk_count") or 0) > 1:
        nxt = 1
    out["next_chunk_index"] = nxt
    return out


def get_statement_result_chunk(session, inputs):
    sid = inputs["statement_id"]
    index = inputs.get("chunk_index") or 0
    doc = session.get(_path(sid))
    if _state(doc) != "SUCCEEDED":
        if _state(doc) in FAILED_STATES:
            raise _failure(doc)
        raise ConnectorError("invalid_state", f"SQL statement {sid} is {_state(doc)}; its result is not ready yet",
                             details={"statement_id": sid, "state": _state(doc)},
                             hint="Wait for the statement to succeed (Get Statement), then fetch its chunks.")
    manifest = doc.get("manifest") or {}
    total = manifest.get("total_chunk_count")
    if total is not None and index >= total:
        raise InputError([{"key": "chunk_index", "label": "Chunk Index",
                           "reason": f"is {index}, but the result has {total} chunk(s) (0 to {max(0, total - 1)})"}])
    columns = _columns(manifest)
    source = ChunkSource(session, sid, manifest, None)
    meta = session.get(_path(sid, f"/result/chunks/{index}"))
    if "external_links" in meta:
        raw = source.rows(("links", [source._download(index, link) for link in meta.get("external_links") or []], index))
    else:
        raw = meta.get("data_array") or []
    convert = Converter(columns, shape=inputs.get("result_shape") or "objects",
                        decimals_as=inputs.get("decimals_as") or "string", csv_nulls=source.format == "CSV")
    rows = convert(raw)
    return {"statement_id": sid, "chunk_index": meta.get("chunk_index", index), "row_offset": meta.get("row_offset"),
            "row_count": len(rows), "columns": [{"name": c.get("name"), "type_name": c.get("type_name"),
                                                 "type_text": c.get("type_text")} for c in columns],
            "rows": rows, "next_chunk_index": meta.get("next_chunk_index")}


def cancel_statement(session, inputs):
    sid = inputs["statement_id"]
    session.post(_path(sid, "/cancel"), {}, idempotent=True)
    doc = session.get(_path(sid))
    return {"statement_id": doc.get("statement_id", sid), "status": _status(doc)}


# --------------------------------------------------------------------------- triggers (polling; see connector/triggers.py)

def _quoted(name: str) -> str:
    return f"`{name}`"                          # the input's pattern refuses backticks


def _trigger_sql(session, inputs, poll, statement, parameters=None, max_rows=None):
    """Run one statement of the trigger to the poll's deadline; its typed rows and column types."""
    timeout = 600 if poll.deadline is None else max(1, int(poll.deadline - time.monotonic() - 1))
    out = execute_sql_statement(session, {
        "warehouse_id": inputs["warehouse_id"], "statement": statement, "parameters": parameters,
        "wait_for_result": True, "timeout_seconds": timeout, "poll_interval_seconds": 0.5, "on_timeout": "cancel",
        "result_shape": "objects", "decimals_as": "string", "format": "JSON_ARRAY", "disposition": "auto",
        "max_rows": max_rows})
    return out.get("rows") or [], {c["name"]: c.get("type_text") for c in out.get("columns") or []}


def new_sql_rows(session, inputs, poll):
    """Each new row of the query fires once. The cursor is the last emitted row's (cursor column,
    unique key) pair; a poll selects the rows after it in that order (keyset pagination), at most
    Max Rows per Poll, so rows are emitted in order and none is skipped or repeated."""
    col, key = inputs["cursor_column"], inputs.get("unique_key")
    base = inputs["query"].strip().rstrip(";").strip()
    order = [col] + ([key] if key else [])
    if poll.first:
        # The query's columns first (no rows), so a cursor or key that is not one of them is an
        # input error, whatever the engine would say of a query that names a missing column.
        _, types = _trigger_sql(session, inputs, poll, f"SELECT * FROM ({base}) AS trigger_rows LIMIT 0")
        _check_columns(types, col, key)
        # Where the stream stands (and the cursor column's type): the last row in the cursor order.
        last, types = _trigger_sql(session, inputs, poll, f"SELECT {', '.join(map(_quoted, order))} FROM ({base}) "
                                   f"AS trigger_rows ORDER BY {', '.join(_quoted(c) + ' DESC' for c in order)} LIMIT 1")
        cursor = {"value": None, "type": types.get(col), "key": None, "key_type": types.get(key) if key else None}
        if inputs.get("start_after") is not None:
            cursor["value"] = inputs["start_after"]
        elif last:
            cursor.update(value=last[0].get(col), key=last[0].get(key) if key else None)
        poll.cursor = cursor
        if inputs.get("start_after") is None:
            return poll.result()
    cursor = poll.cursor
    where, params = "", []
    if cursor.get("value") is not None:
        params.append({"name": "trigger_cursor", "value": str(cursor["value"]), **_typed(cursor.get("type"))})
        where = f"WHERE {_quoted(col)} > :trigger_cursor"
        if key and cursor.get("key") is not None:
            params.append({"name": "trigger_key", "value": str(cursor["key"]), **_typed(cursor.get("key_type"))})
            where = (f"WHERE ({_quoted(col)} > :trigger_cursor OR ({_quoted(col)} = :trigger_cursor "
                     f"AND {_quoted(key)} > :trigger_key))")
    limit = inputs.get("max_rows") or 1000
    rows, types = _trigger_sql(session, inputs, poll, f"SELECT * FROM ({base}) AS trigger_rows {where} ORDER BY "
                               f"{', '.join(_quoted(c) + ' ASC' for c in order)} LIMIT {limit + 1}", params or None)
    _check_columns(types, col, key)
    if len(rows) > limit:
        rows = rows[:limit]
        poll.more = True
    rows = [r for r in rows if r.get(col) is not None]
    if not key:
        values = [json.dumps(r[col], sort_keys=True, default=str) for r in rows]
        if len(set(values)) != len(values):
            raise InputError([{"key": "unique_key", "label": "Unique Key Column",
                               "reason": f"is needed: several rows have the same {col} value; give a column that tells them apart"}])
    emitted = {}
    for row in rows:
        ident = json.dumps([row[col], row.get(key)] if key else [row[col]], default=str)
        poll.emit(ident, {"key": ident, "cursor": row[col], "row": row}, None)
        emitted[ident] = None
        cursor = {"value": row[col], "type": types.get(col), "key": row.get(key) if key else None,
                  "key_type": types.get(key) if key else None}
    poll.cursor = cursor
    # The cursor says what was emitted (rows after it are new); only this poll's keys are kept.
    poll.seen = emitted or poll.seen
    return poll.result()


def _check_columns(types: dict, col: str, key: str | None) -> None:
    problems = []
    if col not in types:
        problems.append({"key": "cursor_column", "label": "Cursor Column",
                         "reason": f"{col!r} is not a column of the query (it has {', '.join(types) or 'no columns'})"})
    if key and key not in types:
        problems.append({"key": "unique_key", "label": "Unique Key Column",
                         "reason": f"{key!r} is not a column of the query (it has {', '.join(types) or 'no columns'})"})
    if problems:
        raise InputError(problems)


def _typed(type_text):
    """The parameter type for a cursor value: the column's own type (text travels as STRING)."""
    if not type_text:
        return {}
    return {"type": type_text}
