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
    created = _create_context(session, cluster_id, inputs.get("language", "python"))
    context_id = created["id"]
    out = {**created, "context_id": context_id, "cluster_id": cluster_id}
    if inputs.get("wait"):
        out["status"] = wait_for_context(session, cluster_id, context_id, inputs)["status"]
    return out


def _create_context(session, cluster_id, language):
    """contexts/create, recorded as what the step started; the cluster's context limit is a state
    the user must change, not a rate limit to wait out."""
    def create():
        try:
            return session.post(f"{API}/contexts/create", {"clusterId": cluster_id, "language": language},
                                require=("id",))
        except ConnectorError as exc:
            if "too many execution contexts" in exc.message.lower():
                raise ConnectorError("invalid_state", exc.message, status=exc.status, error_code=exc.error_code,
                                     details={"cluster_id": cluster_id},
                                     hint="The cluster has as many execution contexts open as it allows (145): destroy "
                                          "unused ones with Destroy Execution Context, restart the cluster (which "
                                          "drops them all), or give Run Command an Execution Context ID to reuse one.") from None
            raise

    return session.start("context", create, ids=lambda r: {"cluster_id": cluster_id, "context_id": r.get("id")})


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
                        timeout=inputs.get("timeout_seconds", 1200), interval=inputs.get("poll_interval_seconds"))


# --------------------------------------------------------------------------- commands

def run_command(session, inputs):
    """Run a command in a context. Without an Execution Context ID a context is created for the
    command's language first. When the step waits for the result, a context it created is
    destroyed once the command has ended (finished, failed, cancelled on timeout or interrupt)
    unless Keep Execution Context is set; otherwise its id is in the output for later steps."""
    cluster_id, context_id = inputs["cluster_id"], inputs.get("context_id")
    waiting = inputs.get("wait")
    owned = False
    if not context_id:
        context_id = _create_context(session, cluster_id, inputs.get("language", "python"))["id"]
        owned = bool(waiting) and not inputs.get("keep_context")
        if owned:
            session.on_cancel(f"execution context {context_id}", lambda: _destroy(session, cluster_id, context_id))
        wait_for_context(session, cluster_id, context_id, inputs)
    elif waiting:
        wait_for_context(session, cluster_id, context_id, inputs)
    body = {"clusterId": cluster_id, "contextId": context_id, "language": inputs.get("language", "python"),
            "command": inputs["command"]}
    # Not idempotent: re-sending would run the code twice.
    created = session.start("command", lambda: session.post(f"{API}/commands/execute", body, require=("id",)),
                            ids=lambda r: {"command_id": r.get("id")}, follow_up="get_command_status")
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
        session.post(f"{API}/commands/cancel", ids, idempotent=True)
        return f"The command {command_id} was cancelled."

    session.on_cancel(f"command {command_id}", cancel)
    try:
        final = session.wait(poll, what=f"command {command_id} to finish", timeout=inputs.get("timeout_seconds", 1200),
                             interval=inputs.get("poll_interval_seconds"))
    except ConnectorError as exc:
        if owned and exc.type == "operation_failed":       # the command ended: its context is not needed
            exc.details = {**(exc.details or {}), "context_destroyed": _destroy(session, cluster_id, context_id, quiet=True)}
        raise
    out = {**final, "command_id": command_id, "cluster_id": cluster_id, "context_id": context_id}
    if owned:
        out["context_destroyed"] = _destroy(session, cluster_id, context_id, quiet=True)
    return out


def _destroy(session, cluster_id, context_id, quiet: bool = False):
    """Destroy a context the step created. ``quiet``: a failure is reported as False, never raised
    (the command's outcome is the step's outcome)."""
    try:
        session.post(f"{API}/contexts/destroy", {"clusterId": cluster_id, "contextId": context_id})
    except ConnectorError:
        if not quiet:
            raise
        return False
    return f"The execution context {context_id} was destroyed." if not quiet else True


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
