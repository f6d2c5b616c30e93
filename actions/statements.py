"""SQL Statement Execution API 2.0: execute a statement and fetch its whole result; get a
statement, one result chunk; cancel.

Waiting: the server-side wait first (``wait_timeout`` up to 50 s, ``on_wait_timeout`` CONTINUE),
then polling ``GET /statements/{id}`` with backoff (session.wait) to the step's wall-clock
deadline. FAILED, CANCELED and CLOSED become ``operation_failed`` with the SQL state.

Results go through the runtime's result streaming (``connector/results.py``): every chunk in
parallel and in order, each checked against the manifest, converted in memory or written to a
file beside its target and renamed when complete. Disposition ``auto`` asks for INLINE and, when
Databricks refuses a result over the 25 MiB inline limit ("Inline byte limit exceeded"), runs the
statement again with EXTERNAL_LINKS (a non-JSON format always uses EXTERNAL_LINKS). External
links are presigned cloud-storage URLs, fetched without any workspace credential.

The Output File is checked before the statement is sent (folder, permissions, an existing folder
or a file that cannot be replaced), so a refused file never follows an applied statement.
"""
from __future__ import annotations

import json
import math
import re
import time
from urllib.parse import quote

from .. import results
from ..errors import ConnectorError, InputError

API = results.STATEMENTS_API
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

def _wire_format(inputs) -> str:
    """The result format asked of Databricks: Format, except that an Arrow or Parquet file is
    always fetched as ARROW_STREAM (its batches are written as they are)."""
    path = inputs.get("output_path")
    if path and results.file_format(path, inputs.get("output_format")) in results.ARROW_FILE_FORMATS:
        return "ARROW_STREAM"
    return inputs.get("format") or "JSON_ARRAY"


def check_execute_sql_statement(inputs) -> list:
    """Every input Execute SQL could refuse that its schema cannot say (the manifest's ``check``:
    the runner runs it with the schema, before any request)."""
    fmt = _wire_format(inputs)
    disposition = inputs.get("disposition") or "auto"
    output_path = inputs.get("output_path")
    problems = []
    if fmt == "ARROW_STREAM" and not results.have_pyarrow():
        key, label = ("format", "Format") if (inputs.get("format") == "ARROW_STREAM") else ("output_path", "Output File")
        problems.append({"key": key, "label": label, "reason": "ARROW_STREAM (and Arrow or Parquet files) need the "
                         "optional pyarrow package (pip install 'databricks-connector[arrow]'); choose JSON_ARRAY or CSV"})
    if fmt != "JSON_ARRAY" and disposition == "INLINE":
        problems.append({"key": "disposition", "label": "Disposition", "reason": f"INLINE results are JSON_ARRAY only; "
                         f"{fmt} needs EXTERNAL_LINKS (or auto)"})
    if output_path is not None:
        if not inputs.get("wait_for_result", True):
            problems.append({"key": "output_path", "label": "Output File", "reason": "needs Wait for Result: a file can "
                             "only be written once the result exists"})
        else:
            problems.extend(results.check_file(output_path, key="output_path", label="Output File"))
    try:
        _parameters(inputs.get("parameters"))
    except InputError as exc:
        problems.extend(exc.problems)
    return problems


def execute_sql_statement(session, inputs):
    started = time.monotonic()
    deadline = started + float(inputs["timeout_seconds"])
    fmt = _wire_format(inputs)
    disposition = inputs.get("disposition") or "auto"
    params = _parameters(inputs.get("parameters"))
    links = disposition == "EXTERNAL_LINKS" or fmt != "JSON_ARRAY"
    body = {"warehouse_id": inputs["warehouse_id"], "statement": inputs["statement"],
            "disposition": "EXTERNAL_LINKS" if links else "INLINE", "format": fmt}
    for key in ("catalog", "schema", "row_limit", "byte_limit"):
        if inputs.get(key) not in (None, ""):
            body[key] = inputs[key]
    if params:
        body["parameters"] = params
    if inputs.get("query_tags"):
        body["query_tags"] = [{"key": k, **({"value": v} if v not in (None, "") else {})}
                              for k, v in inputs["query_tags"].items()]

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


def _collect(session, doc: dict, inputs: dict) -> dict:
    out = {"statement_id": doc["statement_id"], "status": _status(doc)}
    out.update(results.statement_result(
        session, doc, max_rows=inputs.get("max_rows"), shape=inputs.get("result_shape") or "objects",
        decimals_as=inputs.get("decimals_as") or "string", output_path=inputs.get("output_path"),
        output_format=inputs.get("output_format")))
    return out


def get_statement(session, inputs):
    sid = inputs["statement_id"]
    doc = session.get(_path(sid))
    out = {"statement_id": doc.get("statement_id", sid), "status": _status(doc)}
    if _state(doc) != "SUCCEEDED":
        return out
    doc.setdefault("statement_id", sid)
    out.update(results.first_chunk(session, doc, shape=inputs.get("result_shape") or "objects",
                                   decimals_as=inputs.get("decimals_as") or "string"))
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
    return results.one_chunk(session, sid, manifest, index, shape=inputs.get("result_shape") or "objects",
                             decimals_as=inputs.get("decimals_as") or "string")


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
