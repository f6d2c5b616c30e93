"""Genie API 2.0: spaces, conversations, messages and their query results.

Ask Genie starts a conversation (recorded as what the step started, so a resumed step does not
ask twice), waits with the runtime's one waiting mechanism until the message is COMPLETED, and
reads the query's rows through the runtime's result streaming (``results.statement_result``: the
statement response Genie returns, then every further chunk from the Statement Execution API), as
Execute SQL does. FAILED and CANCELLED become ``operation_failed`` with Genie's error.
"""
from __future__ import annotations

from urllib.parse import quote

from .. import results
from ..errors import ConnectorError

API = "/api/2.0/genie/spaces"
DONE = ("COMPLETED",)
FAILED = ("FAILED", "CANCELLED", "QUERY_RESULT_EXPIRED")


def _q(value: str) -> str:
    return quote(str(value), safe="")


def _conv(space_id, conversation_id, suffix=""):
    return f"{API}/{_q(space_id)}/conversations/{_q(conversation_id)}{suffix}"


def _message_path(space_id, conversation_id, message_id, suffix=""):
    return _conv(space_id, conversation_id, f"/messages/{_q(message_id)}{suffix}")


def list_genie_spaces(session, inputs):
    spaces, truncated = session.paginate(API, items="spaces", max_items=inputs.get("max_items"))
    return {"spaces": spaces, "count": len(spaces), "truncated": truncated}


def select_genie_space(session, inputs):
    spaces, _ = session.paginate(API, items="spaces", max_items=1000, require=("space_id",))
    return [{"label": s.get("title") or s["space_id"], "value": s["space_id"]} for s in spaces]


def get_genie_message(session, inputs):
    return session.get(_message_path(inputs["space_id"], inputs["conversation_id"], inputs["message_id"]),
                       require=("status",))


def _failure(msg: dict) -> ConnectorError:
    status = msg.get("status")
    error = msg.get("error") or {}
    text = error.get("error") if isinstance(error, dict) else str(error)
    details = {"space_id": msg.get("space_id"), "conversation_id": msg.get("conversation_id"),
               "message_id": msg.get("message_id"), "status": status, "error": text,
               "error_type": error.get("type") if isinstance(error, dict) else None}
    if status == "QUERY_RESULT_EXPIRED":
        return ConnectorError("operation_failed", "Genie's query result has expired", details=details,
                              hint="Ask the question again (or re-run the message's query in the Genie space).")
    return ConnectorError("operation_failed", f"Genie could not answer (the message is {status})"
                          + (f": {text}" if text else ""), details=details,
                          hint="Rephrase the question, or check the space's tables and warehouse; then ask again.")


def _wait(session, space_id, conversation_id, message_id, inputs) -> dict:
    path = _message_path(space_id, conversation_id, message_id)

    def poll():
        msg = session.get(path, require=("status",))
        status = msg["status"]
        if status in FAILED:
            raise _failure(msg)
        return status in DONE, msg, status

    return session.wait(poll, what=f"Genie message {message_id}", timeout=inputs["timeout_seconds"],
                        interval=inputs["poll_interval_seconds"],
                        follow_up=("get_genie_message", {"space_id": space_id, "conversation_id": conversation_id,
                                                         "message_id": message_id}))


def _answer(session, msg: dict, inputs) -> dict:
    ids = {k: msg.get(k) for k in ("space_id", "conversation_id", "message_id")}
    texts, query, suggested = [], None, []
    for att in msg.get("attachments") or []:
        if not isinstance(att, dict):
            continue
        if isinstance(att.get("text"), dict) and att["text"].get("content"):
            texts.append(att["text"]["content"])
        if isinstance(att.get("query"), dict) and query is None:
            query = att
        sq = att.get("suggested_questions")
        if isinstance(sq, dict):
            suggested.extend(q for q in sq.get("questions") or [] if isinstance(q, str))
    out = dict(ids, status=msg.get("status"), text="\n\n".join(texts) or None, sql=None, query_description=None,
               attachment_id=None, statement_id=None, columns=[], rows=[], row_count=0, truncated=False,
               truncated_by=None, suggested_questions=suggested, message=msg)
    if query is None:
        return out
    q = query["query"]
    out.update(sql=q.get("query"), query_description=q.get("description"), attachment_id=query.get("attachment_id"),
               statement_id=q.get("statement_id"))
    if query.get("attachment_id"):
        result = _result(session, ids["space_id"], ids["conversation_id"], ids["message_id"], query["attachment_id"],
                         inputs)
        out.update({k: result[k] for k in ("columns", "rows", "row_count", "truncated", "truncated_by")})
        out["statement_id"] = result.get("statement_id") or out["statement_id"]
    return out


def _result(session, space_id, conversation_id, message_id, attachment_id, inputs) -> dict:
    doc = session.get(_message_path(space_id, conversation_id, message_id,
                                    f"/attachments/{_q(attachment_id)}/query-result"),
                      expect=dict)
    statement = doc["statement_response"]
    if not isinstance(statement, dict) or not statement.get("statement_id"):
        raise ConnectorError("server_error", "Genie's query result has no statement_id",
                             hint="Run the step again; the answer did not have Databricks' shape.")
    state = (statement.get("status") or {}).get("state")
    if state != "SUCCEEDED":
        error = (statement.get("status") or {}).get("error") or {}
        raise ConnectorError("operation_failed", f"Genie's query is {state}" + (f": {error.get('message')}"
                                                                                 if error.get("message") else ""),
                             details={"statement_id": statement.get("statement_id"), "state": state},
                             hint="Ask the question again; a CLOSED result has expired.")
    out = {"statement_id": statement["statement_id"], "status": statement.get("status") or {"state": state}}
    out.update(results.statement_result(session, statement, max_rows=inputs.get("max_rows"),
                                        shape=inputs.get("result_shape") or "objects"))
    return out


def _ask(session, inputs, start, *, name: str):
    started = session.start(name, start, ids=lambda d: {"conversation_id": d.get("conversation_id"),
                                                        "message_id": d.get("message_id")},
                            follow_up="get_genie_message")
    space_id = inputs["space_id"]
    cid, mid = started["conversation_id"], started["message_id"]
    if not inputs.get("wait", True):
        msg = started.get("message") if isinstance(started.get("message"), dict) else None
        out = {"space_id": space_id, "conversation_id": cid, "message_id": mid,
               "status": (msg or {}).get("status") or "SUBMITTED"}
        if msg and msg.get("message_id"):
            out["message"] = msg
        return out
    msg = _wait(session, space_id, cid, mid, inputs)
    msg.setdefault("space_id", space_id)
    msg.setdefault("conversation_id", cid)
    msg.setdefault("message_id", mid)
    return _answer(session, msg, inputs)


def ask_genie(session, inputs):
    space_id = inputs["space_id"]

    def start():
        doc = session.post(f"{API}/{_q(space_id)}/start-conversation", {"content": inputs["question"]},
                           require=("conversation_id", "message_id"))
        return doc

    return _ask(session, inputs, start, name="ask")


def ask_genie_follow_up(session, inputs):
    space_id, cid = inputs["space_id"], inputs["conversation_id"]

    def start():
        doc = session.post(_conv(space_id, cid, "/messages"), {"content": inputs["question"]},
                           require=("message_id",))
        return {"conversation_id": doc.get("conversation_id") or cid, "message_id": doc["message_id"], "message": doc}

    return _ask(session, inputs, start, name="ask")


def get_genie_query_result(session, inputs):
    sid, cid, mid = inputs["space_id"], inputs["conversation_id"], inputs["message_id"]
    att = inputs.get("attachment_id")
    if not att:
        msg = get_genie_message(session, inputs)
        att = next((a.get("attachment_id") for a in msg.get("attachments") or []
                    if isinstance(a, dict) and isinstance(a.get("query"), dict) and a.get("attachment_id")), None)
        if att is None:
            raise ConnectorError("not_found", f"Genie message {mid} has no query (status {msg.get('status')})",
                                 details={"message_id": mid, "status": msg.get("status")},
                                 hint="Only a message whose answer ran SQL has a query result; wait until it is "
                                      "COMPLETED (Get Genie Message).")
    return _result(session, sid, cid, mid, att, inputs)
