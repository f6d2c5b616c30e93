"""Command Execution API 1.2: execution contexts and commands on an all-purpose cluster.

Wire names here are camelCase (clusterId, contextId, commandId) and statuses Title-case."""
from __future__ import annotations

import html
import re

from ..errors import ConnectorError

API = "/api/1.2"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_TAGS = re.compile(r"</?(?:span|div|pre|code|b|i|u|em|strong|p|br|a|font)(?:\s[^<>]*)?/?>", re.I)
_CAUSE_IN_MESSAGE = 4000


# --------------------------------------------------------------------------- contexts

def create_execution_context(session, inputs):
    cluster_id = inputs["cluster_id"]
    created = session.post(f"{API}/contexts/create", {"clusterId": cluster_id, "language": inputs.get("language", "python")}, require=("id",))
    context_id = created["id"]
    out = {**created, "context_id": context_id, "cluster_id": cluster_id}
    if inputs.get("wait_for_state"):
        out["status"] = wait_for_context(session, cluster_id, context_id, inputs)["status"]
    return out


def destroy_execution_context(session, inputs):
    body = {"clusterId": inputs["cluster_id"], "contextId": inputs["context_id"]}
    session.post(f"{API}/contexts/destroy", body)   # not re-sent: a second destroy answers "does not exist"
    return {"id": inputs["context_id"], "context_id": inputs["context_id"], "cluster_id": inputs["cluster_id"],
            "destroyed": True}


def wait_for_context(session, cluster_id, context_id, inputs) -> dict:
    def poll():
        st = session.get(f"{API}/contexts/status", {"clusterId": cluster_id, "contextId": context_id})
        status = st.get("status", "Unknown")
        if status == "Running":
            return True, st, status
        if status == "Error":
            raise ConnectorError("operation_failed", f"Execution context {context_id} on cluster {cluster_id} is in Error.",
                                 hint="Check the cluster (it may have restarted or terminated) and create a new context.",
                                 details={"cluster_id": cluster_id, "context_id": context_id, "status": st})
        return False, st, status

    return session.wait(poll, what=f"execution context {context_id} to be Running",
                        timeout=inputs.get("timeout_seconds", 1200), interval=inputs.get("poll_interval_seconds", 5))


# --------------------------------------------------------------------------- commands

def run_command(session, inputs):
    """Run a command in a context. Without an Execution Context ID a context is created for the
    command's language first (and returned in the output, so later steps can reuse it)."""
    cluster_id, context_id = inputs["cluster_id"], inputs.get("context_id")
    waiting = inputs.get("wait_for_result")
    if not context_id:
        context_id = create_execution_context(session, {**inputs, "wait_for_state": False})["id"]
        wait_for_context(session, cluster_id, context_id, inputs)
    elif waiting:
        wait_for_context(session, cluster_id, context_id, inputs)
    body = {"clusterId": cluster_id, "contextId": context_id, "language": inputs.get("language", "python"),
            "command": inputs["command"]}
    # Not idempotent: re-sending would run the code twice.
    created = session.post(f"{API}/commands/execute", body, require=("id",))
    command_id = created["id"]
    if not waiting:
        return {**created, "command_id": command_id, "cluster_id": cluster_id, "context_id": context_id}
    ids = {"clusterId": cluster_id, "contextId": context_id, "commandId": command_id}

    def poll():
        st = _status(session, ids)
        status = st.get("status", "Unknown")
        if status == "Finished":
            return True, st, status
        if status in ("Cancelled", "Error"):
            raise _failed(st, ids)
        return False, st, status

    def cancel():
        try:
            session.post(f"{API}/commands/cancel", ids, idempotent=True)
            return "The command was cancelled."
        except ConnectorError as exc:
            return f"Cancelling the command failed too: {exc.message}"

    final = session.wait(poll, what=f"command {command_id} to finish", timeout=inputs.get("timeout_seconds", 1200),
                         interval=inputs.get("poll_interval_seconds", 5), on_timeout=cancel)
    return {**final, "command_id": command_id, "cluster_id": cluster_id, "context_id": context_id}


def get_command_status(session, inputs):
    ids = {"clusterId": inputs["cluster_id"], "contextId": inputs["context_id"], "commandId": inputs["command_id"]}
    st = _status(session, ids)
    if st.get("status") == "Error":
        raise _failed(st, ids)
    return st


def cancel_command(session, inputs):
    ids = {"clusterId": inputs["cluster_id"], "contextId": inputs["context_id"], "commandId": inputs["command_id"]}
    session.post(f"{API}/commands/cancel", ids, idempotent=True)   # cancelling twice is harmless
    return {"id": inputs["command_id"], "command_id": inputs["command_id"], "cluster_id": inputs["cluster_id"],
            "context_id": inputs["context_id"], "cancel_requested": True}


def _status(session, ids) -> dict:
    """commands/status; a finished command whose result is an error becomes operation_failed."""
    st = session.get(f"{API}/commands/status", ids)
    results = st.get("results") or {}
    if st.get("status") == "Finished" and results.get("resultType") == "error":
        raise _failed(st, ids)
    return st


def _clean(text, markup: bool = False) -> str:
    """Text without ANSI escape codes (and, for a summary, without its HTML markup)."""
    text = _ANSI.sub("", str(text or ""))
    if markup:
        text = html.unescape(_TAGS.sub("", text))
    return text.strip()


def _failed(st: dict, ids: dict) -> ConnectorError:
    results = st.get("results") or {}
    status = st.get("status")
    summary = _clean(results.get("summary"), markup=True)
    cause = _clean(results.get("cause"))
    command_id = ids["commandId"]
    if status == "Cancelled" or status == "Cancelling":
        message = f"Command {command_id} was cancelled."
    elif results.get("resultType") == "error":
        message = f"Command {command_id} failed: {summary or 'error'}"
        if cause and cause != summary:
            shown = cause if len(cause) <= _CAUSE_IN_MESSAGE else "..." + cause[-_CAUSE_IN_MESSAGE:]
            message += f"\n{shown}"
    else:
        message = f"Command {command_id} ended in status {status}" + (f": {summary}" if summary else ".")
    return ConnectorError("operation_failed", message,
                          hint="Fix the command (see its error summary and cause) and run it again.",
                          details={"cluster_id": ids["clusterId"], "context_id": ids["contextId"],
                                   "command_id": command_id, "status": status,
                                   "summary": results.get("summary"), "cause": results.get("cause"),
                                   "results": results or None})
