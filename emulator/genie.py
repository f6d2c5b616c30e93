r"""Genie (contract part 2, §2.8): spaces, conversations, messages that answer with real SQL.

A message moves SUBMITTED -> ASKING_AI -> EXECUTING_QUERY -> COMPLETED, one step every
``genie_step_seconds`` (moved when read, as Databricks' state is seen by polling). Genie's "AI" is
a table: the first pattern of ``genie_questions`` that matches the question gives the SQL (null:
a text-only answer), else ``genie_fallback_sql``. When the message reaches EXECUTING_QUERY its SQL
is submitted to the space's warehouse through the SQL area (``statements.submit_statement``, as
the message's author; a stopped warehouse is started and the message waits PENDING_WAREHOUSE),
and the message completes when the statement ends: COMPLETED with a text attachment and a query
attachment carrying the SQL, its ``statement_id`` and ``query_result_metadata``, or FAILED with
the SQL error. ``genie_fail_next`` fails the next message before any query (one shot). A
completed message becomes QUERY_RESULT_EXPIRED ``genie_result_lifetime_seconds`` after its query
ran; ``.../execute-query`` runs the query again.

``GET .../attachments/{id}/query-result`` answers ``{"statement_response": ...}``, the statement's
own StatementResponse (its further chunks are read from the Statement Execution API).

Genie's statements are its own reads on the user's behalf: they are counted in
``state.applied["genie/query"]``, not in ``statements/execute`` (a user's statement). One space is
seeded on first use of the area ("NYC Taxi Trips", on the RUNNING starter warehouse);
``add_space(state, title, warehouse_id, ...)`` adds more.
"""
from __future__ import annotations

import re
import uuid
from typing import Any, Dict, Optional

from .api import ApiError, Snapshots, copy_json, invalid_parameter, route

API = r"/api/2\.0/genie/spaces"
SPACE = r"/(?P<space>[^/]+)"
CONV = r"/conversations/(?P<conv>[^/]+)"
MSG = r"/messages/(?P<msg>[^/]+)"
ATT = r"/attachments/(?P<att>[^/]+)"
STEPS = ("SUBMITTED", "ASKING_AI", "EXECUTING_QUERY")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "QUERY_RESULT_EXPIRED")
_SNAPSHOTS = Snapshots()


class Store:
    def __init__(self) -> None:
        self.spaces: Dict[str, dict] = {}
        self.conversations: Dict[str, dict] = {}
        self.seeded = False


def _hex() -> str:
    return uuid.uuid4().hex


def store(state) -> Store:
    s = state.area("genie", Store)
    if not s.seeded:
        s.seeded = True
        from .warehouses import warehouses
        running = [w for w in warehouses(state).values() if w.get("name") == "Starter Warehouse"]
        wid = running[0]["id"] if running else next(iter(warehouses(state)))
        _add(state, s, "NYC Taxi Trips", wid, "Questions about the samples.nyctaxi.trips table.")
    return s


def _add(state, s: Store, title: str, warehouse_id: str, description: str = "") -> str:
    sid = _hex()
    s.spaces[sid] = {"space_id": sid, "title": title, "description": description, "warehouse_id": warehouse_id}
    return sid


def add_space(state, title: str, warehouse_id: str, description: str = "") -> str:
    with state.lock:
        return _add(state, store(state), title, warehouse_id, description)


def _space(state, space_id: str) -> dict:
    space = store(state).spaces.get(space_id)
    if space is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Genie space {space_id} does not exist.")
    return space


def _conversation(state, space_id: str, conv_id: str) -> dict:
    _space(state, space_id)
    conv = store(state).conversations.get(conv_id)
    if conv is None or conv["space_id"] != space_id:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Conversation {conv_id} does not exist.")
    return conv


def _message(state, space_id: str, conv_id: str, msg_id: str) -> dict:
    conv = _conversation(state, space_id, conv_id)
    msg = conv["messages"].get(msg_id)
    if msg is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Message {msg_id} does not exist.")
    return msg


def _sql_for(config, question: str):
    for pattern, sql in (config.genie_questions or {}).items():
        try:
            if re.search(pattern, question):
                return sql
        except re.error:
            continue
    return config.genie_fallback_sql


def _new_message(state, conv: dict, content: str, principal) -> dict:
    now = state.now()
    mid = _hex()
    fail = bool(state.config.genie_fail_next)
    if fail:
        state.config.genie_fail_next = False
    msg = {"message_id": mid, "id": mid, "space_id": conv["space_id"], "conversation_id": conv["conversation_id"],
           "content": content, "status": "SUBMITTED", "created_timestamp": int(now * 1000),
           "last_updated_timestamp": int(now * 1000), "user_id": int(getattr(principal, "id", 0) or 0),
           "_principal": principal, "_since": now, "_sql": _sql_for(state.config, content), "_fail": fail,
           "_statement": None, "_ran": None, "attachments": []}
    conv["messages"][mid] = msg
    conv["last_updated_timestamp"] = msg["created_timestamp"]
    return msg


def _submit(state, msg: dict) -> None:
    from . import statements
    space = _space(state, msg["space_id"])
    rec = statements.submit_statement(state, statement=msg["_sql"], warehouse_id=space["warehouse_id"],
                                      principal=msg["_principal"])
    state.applied["statements/execute"] -= 1           # Genie's own read, not a user's statement
    state.applied["genie/query"] += 1
    msg["_statement"] = rec["id"]


def _finish(state, msg: dict, status: str, now: float) -> None:
    msg["status"] = status
    msg["_since"] = now
    msg["last_updated_timestamp"] = int(now * 1000)


def advance(state, msg: dict) -> dict:
    """Move the message as far as time (and its statement) allow (caller holds the state lock)."""
    step = float(state.config.genie_step_seconds)
    now = state.now()
    while True:
        status = msg["status"]
        if status == "COMPLETED" and msg["_ran"] is not None and msg.get("_statement") and \
                now >= msg["_ran"] + float(state.config.genie_result_lifetime_seconds):
            _finish(state, msg, "QUERY_RESULT_EXPIRED", msg["_ran"] + float(state.config.genie_result_lifetime_seconds))
            return msg
        if status in TERMINAL:
            return msg
        if now < msg["_since"] + step:
            return msg
        at = msg["_since"] + step
        if status == "SUBMITTED":
            if msg["_fail"]:
                msg["error"] = {"error": "Genie could not answer this question (the emulator's genie_fail_next).",
                                "type": "GENERIC_CHAT_COMPLETION_EXCEPTION"}
                _finish(state, msg, "FAILED", at)
                return msg
            _finish(state, msg, "ASKING_AI", at)
        elif status == "ASKING_AI":
            if msg["_sql"] is None:
                msg["attachments"] = [{"attachment_id": _hex(), "text": {
                    "id": _hex(), "content": "Hello! Ask me a question about the data in this space."}}]
                _finish(state, msg, "COMPLETED", at)
                return msg
            _submit(state, msg)
            _finish(state, msg, "EXECUTING_QUERY", at)
        elif status in ("EXECUTING_QUERY", "PENDING_WAREHOUSE"):
            from .statements import statement_response
            doc = statement_response(state, msg["_statement"])
            st = (doc.get("status") or {}).get("state")
            if st in ("PENDING", "RUNNING"):
                want = "PENDING_WAREHOUSE" if st == "PENDING" else "EXECUTING_QUERY"
                if want != status:
                    msg["status"] = want
                return msg
            if st == "SUCCEEDED":
                rows = (doc.get("manifest") or {}).get("total_row_count", 0)
                msg["attachments"] = [
                    {"attachment_id": _hex(), "query": {
                        "id": _hex(), "title": "Answer", "query": msg["_sql"], "statement_id": msg["_statement"],
                        "description": f"The query for: {msg['content']}",
                        "query_result_metadata": {"row_count": rows, "is_truncated": False},
                        "last_updated_timestamp": int(now * 1000)}},
                    {"attachment_id": _hex(), "text": {"id": _hex(), "content": (
                        f"I ran a query to answer \"{msg['content']}\"; it returned {rows} row"
                        f"{'' if rows == 1 else 's'}.")}}]
                msg["_ran"] = now
                _finish(state, msg, "COMPLETED", max(at, now))
            else:
                error = (doc.get("status") or {}).get("error") or {}
                msg["error"] = {"error": error.get("message") or f"The query ended {st}.",
                                "type": "SQL_EXECUTION_EXCEPTION"}
                msg["attachments"] = [{"attachment_id": _hex(), "query": {
                    "id": _hex(), "query": msg["_sql"], "statement_id": msg["_statement"]}}]
                _finish(state, msg, "FAILED", max(at, now))
            return msg
        else:
            return msg


def public_message(state, msg: dict) -> dict:
    advance(state, msg)
    out = {k: copy_json(v) for k, v in msg.items() if not k.startswith("_")}
    if not out.get("attachments"):
        out.pop("attachments", None)
    return out


def _conv_doc(conv: dict) -> dict:
    return {k: conv[k] for k in ("conversation_id", "id", "space_id", "title", "created_timestamp",
                                 "last_updated_timestamp", "user_id")}


def _content(req) -> str:
    content = req.body.get("content")
    if not isinstance(content, str) or not content.strip():
        raise invalid_parameter("content is required: the question to ask")
    return content


# --------------------------------------------------------------------------- routes

@route("GET", API)
def list_spaces(req):
    size = req.q_int("page_size", 0) or 100

    def build():
        with req.state.lock:
            return [dict(s) for _, s in sorted(store(req.state).spaces.items(), key=lambda kv: kv[1]["title"])]

    page, nxt, _ = _SNAPSHOTS.page(req.q("page_token"), build, size, "spaces")
    out: Dict[str, Any] = {"spaces": page}
    if nxt:
        out["next_page_token"] = nxt
    return out


@route("GET", API + SPACE)
def get_space(req):
    with req.state.lock:
        return dict(_space(req.state, req.params["space"]))


@route("POST", API + SPACE + r"/start-conversation")
def start_conversation(req):
    content = _content(req)
    st = req.state
    with st.lock:
        _space(st, req.params["space"])
        cid = _hex()
        now = st.now_ms()
        conv = {"conversation_id": cid, "id": cid, "space_id": req.params["space"], "title": content[:100],
                "created_timestamp": now, "last_updated_timestamp": now,
                "user_id": int(getattr(req.principal, "id", 0) or 0), "messages": {}}
        store(st).conversations[cid] = conv
        msg = _new_message(st, conv, content, req.principal)
        st.applied["genie/start-conversation"] += 1
        return {"conversation_id": cid, "message_id": msg["message_id"], "conversation": _conv_doc(conv),
                "message": public_message(st, msg)}


@route("POST", API + SPACE + CONV + r"/messages")
def create_message(req):
    content = _content(req)
    st = req.state
    with st.lock:
        conv = _conversation(st, req.params["space"], req.params["conv"])
        busy = [m for m in conv["messages"].values() if advance(st, m)["status"] not in TERMINAL]
        if busy:
            raise ApiError(400, "INVALID_STATE", "The conversation is still answering message "
                                                 f"{busy[0]['message_id']}; wait for it before asking again.")
        msg = _new_message(st, conv, content, req.principal)
        st.applied["genie/messages/create"] += 1
        return public_message(st, msg)


@route("GET", API + SPACE + CONV + MSG)
def get_message(req):
    with req.state.lock:
        return public_message(req.state, _message(req.state, req.params["space"], req.params["conv"],
                                                  req.params["msg"]))


def _query_attachment(msg: dict, att_id: str) -> dict:
    for a in msg.get("attachments") or []:
        if a["attachment_id"] == att_id:
            if "query" not in a:
                raise invalid_parameter(f"Attachment {att_id} is not a query attachment.")
            return a
    raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Attachment {att_id} does not exist.")


@route("GET", API + SPACE + CONV + MSG + ATT + r"/query-result")
def query_result(req):
    st = req.state
    with st.lock:
        msg = advance(st, _message(st, req.params["space"], req.params["conv"], req.params["msg"]))
        _query_attachment(msg, req.params["att"])
        if msg["status"] == "QUERY_RESULT_EXPIRED":
            raise ApiError(400, "BAD_REQUEST", "The query result has expired; run the query again "
                                               "(execute-query).")
        if msg["status"] != "COMPLETED":
            raise ApiError(400, "INVALID_STATE", f"The message is {msg['status']}; its query result is not ready.")
        sid = msg["_statement"]
    from .statements import statement_response
    return {"statement_response": statement_response(st, sid, req)}


@route("POST", API + SPACE + CONV + MSG + ATT + r"/execute-query")
def execute_query(req):
    st = req.state
    with st.lock:
        msg = advance(st, _message(st, req.params["space"], req.params["conv"], req.params["msg"]))
        _query_attachment(msg, req.params["att"])
        if msg["status"] not in ("COMPLETED", "QUERY_RESULT_EXPIRED"):
            raise ApiError(400, "INVALID_STATE", f"The message is {msg['status']}; its query cannot run again yet.")
        _submit(st, msg)
        msg["_ran"] = None
        msg["attachments"] = []
        _finish(st, msg, "EXECUTING_QUERY", st.now() - float(st.config.genie_step_seconds))
        st.applied["genie/execute-query"] += 1
        sid = msg["_statement"]
    from .statements import statement_response
    return {"statement_response": statement_response(st, sid, req)}
