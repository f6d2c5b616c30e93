"""Classified errors: what went wrong, what the user should do, and nothing secret.

Every failure an action can have ends as one ``ConnectorError`` whose ``type`` says what the
user must do about it. The CLI prints ``{"error": err.to_dict()}``; the Python API raises it.
"""
from __future__ import annotations

# type -> default hint. The type names are part of the public output contract.
HINTS = {
    "invalid_input": "Fix the inputs named in the message and run the step again.",
    "bad_request": "Databricks rejected the request; check the inputs against the API reference.",
    "authentication": "Check the connection: the host, and the token or the client id and secret.",
    "permission_denied": "The user or service principal lacks a permission; grant it in the workspace.",
    "not_found": "Check the id: the resource does not exist or was deleted.",
    "invalid_state": "The resource is in a state that does not allow this operation; wait or change its state first.",
    "conflict": "The resource already exists or was changed concurrently; read it again and retry.",
    "rate_limited": "Databricks is throttling requests; run the step again later or lower the request rate.",
    "unavailable": "Databricks is temporarily unavailable; run the step again in a few minutes.",
    "server_error": "Databricks answered with a server error; run the step again, and contact support if it persists.",
    "network": "Could not reach the workspace; check the host name and the network.",
    "timeout": "The operation did not finish in time; raise the timeout or check the resource.",
    "operation_failed": "The operation ran and failed; see the message for its error.",
    "configuration": "Check the connection settings named in the message.",
}


MAX_MESSAGE = 1000  # an API error that echoes a huge input must not become a huge message


class ConnectorError(Exception):
    """One classified failure. ``str()`` is the message; nothing secret is ever put in it."""

    def __init__(self, type: str, message: str, *, hint: str | None = None, status: int | None = None,
                 error_code: str | int | None = None, details: dict | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.type = type
        self.message = message
        self.hint = hint or HINTS.get(type, "")
        self.status = status
        self.error_code = error_code
        self.details = details
        self.retry_after = retry_after

    def __str__(self) -> str:
        # ``message`` may be redacted after construction (a secret the server echoed back), so
        # str(), tracebacks and logging always show the current, redacted text
        return self.message

    def to_dict(self) -> dict:
        out = {"type": self.type, "message": self.message, "hint": self.hint,
               "status": self.status, "error_code": self.error_code}
        if self.details:
            out["details"] = self.details
        return out

    def __repr__(self) -> str:
        return f"ConnectorError(type={self.type!r}, status={self.status!r}, error_code={self.error_code!r}, message={self.message!r})"


class InputError(ConnectorError):
    """Bad inputs: ``problems`` maps each input key to its label and why it is bad."""

    def __init__(self, problems: list[dict]):
        self.problems = problems
        lines = "; ".join(f"{p['label']} ({p['key']}): {p['reason']}" for p in problems)
        n = len(problems)
        super().__init__("invalid_input", f"{n} invalid input{'s' if n != 1 else ''}: {lines}",
                         details={"inputs": problems})


def _status_type(status: int) -> str:
    if status == 400:
        return "bad_request"
    if status == 401:
        return "authentication"
    if status == 403:
        return "permission_denied"
    if status == 404:
        return "not_found"
    if status == 409:
        return "conflict"
    if status == 429:
        return "rate_limited"
    if status == 503:
        return "unavailable"
    if status == 504:
        return "timeout"
    if status >= 500:
        return "server_error"
    return "bad_request"


def classify(status: int, error_code, message: str) -> str:
    """Map an HTTP status and a Databricks error body to one error type (error code wins)."""
    code = error_code if isinstance(error_code, str) else None
    text = message or ""
    if code == "INVALID_STATE":
        return "invalid_state"
    if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
        return "not_found"
    # The legacy clusters/jobs/runs endpoints answer 400 INVALID_PARAMETER_VALUE for unknown ids.
    if status == 400 and code == "INVALID_PARAMETER_VALUE" and ("does not exist" in text or "doesn't exist" in text):
        return "not_found"
    if code in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS", "RESOURCE_CONFLICT", "ABORTED"):
        return "conflict"
    if code in ("REQUEST_LIMIT_EXCEEDED", "TOO_MANY_REQUESTS", "RESOURCE_EXHAUSTED") or "RPC token bucket limit" in text:
        return "rate_limited"
    if code == "TEMPORARILY_UNAVAILABLE":
        return "unavailable"
    if code in ("PERMISSION_DENIED",):
        return "permission_denied"
    if code in ("UNAUTHENTICATED",):
        return "authentication"
    if status == 403 and (error_code == 403 or "Invalid access token" in text):
        return "authentication"
    return _status_type(status)


def from_response(status: int, body: bytes | str | None, content_type: str = "", reason: str = "",
                  retry_after: float | None = None, redactor=None) -> ConnectorError:
    """Build a classified error from any Databricks error answer (JSON, 1.2, SCIM, HTML, text).

    With a ``redactor`` every string of the answer is redacted before anything is cut to length,
    so a secret the server echoed never survives as a prefix."""
    import json

    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else (body or "")
    error_code = None
    message = ""
    details = None
    try:
        doc = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):
        doc = None
    total = 0                                             # the message's length before any cut
    full = {}
    if isinstance(doc, dict):
        full = {k: len(v) for k, v in doc.items() if isinstance(v, str)}
    if redactor is not None:
        if isinstance(doc, (dict, list)):
            doc = redactor.doc(_bounded(doc))
        else:
            text = redactor.text(text[:64 * 1024])
    if isinstance(doc, dict):
        error_code = doc.get("error_code")
        if not isinstance(error_code, (str, int)) or isinstance(error_code, bool):
            error_code = None
        message = doc.get("message") or ""
        total = full.get("message", 0)
        if not message and isinstance(doc.get("error"), str):
            message = doc["error"]                       # API 1.2 shape, also OAuth's "error"
            if doc.get("error_description"):
                error_code = error_code or doc["error"]
                message = f"{doc['error']}: {doc['error_description']}"
        if not message and doc.get("detail"):             # SCIM shape
            message = str(doc["detail"])
            error_code = error_code or f"SCIM_{doc.get('status', status)}"
        if isinstance(doc.get("details"), list):
            details = {"details": _bounded(doc["details"], MAX_MESSAGE)}
    elif text:
        lowered = content_type.lower()
        if "html" in lowered or text.lstrip().startswith("<"):
            message = _html_message(text)
        else:
            lines = text.strip().splitlines()
            first = lines[0][:500] if lines else ""
            if ":" in first and first.split(":", 1)[0].isupper():
                error_code, message = (s.strip() for s in first.split(":", 1))
            else:
                message = first
    if not message:
        message = reason or f"HTTP {status}"
    message = str(message)
    if len(message) > MAX_MESSAGE:
        more = max(len(message), total) - MAX_MESSAGE
        message = message[:MAX_MESSAGE] + f"... ({more} more characters)"
    if isinstance(error_code, str) and len(error_code) > 200:
        error_code = error_code[:200]
    if isinstance(error_code, str) and error_code.isdigit():
        error_code = int(error_code)
    kind = classify(status, error_code, message)
    hint = None
    if kind == "authentication" and status == 403:
        hint = "The token was rejected (invalid or expired): create a new token or check the service principal's secret."
    elif kind == "authentication":
        hint = "No usable credential reached Databricks: check the connection's token or client id and secret."
    return ConnectorError(kind, f"HTTP {status}: {message}", hint=hint, status=status,
                          error_code=error_code, details=details, retry_after=retry_after)


CUT_MARGIN = 8192   # a string is cut this far past its limit before redaction, so no secret straddles the cut


def _bounded(doc, limit: int | None = None):
    """Every string of a JSON document cut: to ``limit`` characters (with a note of what was left
    out), or without a limit to ``MAX_MESSAGE + CUT_MARGIN``, the most redaction ever needs to see."""
    if isinstance(doc, dict):
        return {k: _bounded(v, limit) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_bounded(v, limit) for v in doc]
    if isinstance(doc, str):
        if limit is None:
            return doc[:MAX_MESSAGE + CUT_MARGIN]
        if len(doc) > limit:
            return doc[:limit] + f"... ({len(doc) - limit} more characters)"
    return doc


def _html_message(text: str) -> str:
    import re

    for tag in ("pre", "title", "h1"):
        m = re.search(rf"<{tag}[^>]*>(.*?)</{tag}>", text, re.S | re.I)
        if m and m.group(1).strip():
            return re.sub(r"\s+", " ", m.group(1)).strip()[:300]
    return "the server answered with an HTML page"


# -- the end of a step that is not a plain failure (owned by the waiting mechanism, connector/steps.py)

class Pending(Exception):
    """Not a failure: the step started its work and goes on, but a wait would pass the call's
    ``budget``. ``resume`` (JSON, no secret: the connection travels separately) goes to
    ``Connector.resume(resume, connection, budget=..., progress=...)``, from any process, after
    about ``retry_after`` seconds; ``state`` is the last state seen; ``started`` the ids."""

    def __init__(self, resume: dict, *, retry_after: float, state=None, started: dict | None = None, what: str = ""):
        self.resume = resume
        self.retry_after = max(0.0, float(retry_after))
        self.state = state
        self.started = dict(started or {})
        self.what = what
        super().__init__(f"{what or 'the step'} is still {state}; resume in {self.retry_after:.1f}s")

    def to_dict(self) -> dict:
        return {"pending": True, "state": self.state, "retry_after": round(self.retry_after, 3),
                "started": self.started, "resume": self.resume}

    def __repr__(self) -> str:
        return f"Pending(state={self.state!r}, retry_after={self.retry_after!r}, started={self.started!r})"


class Interrupted(KeyboardInterrupt):
    """A step stopped by Ctrl-C (or SIGTERM in the CLI) after its clean-up: still a
    ``KeyboardInterrupt`` for Python code, carrying the ``interrupted`` ConnectorError in ``error``
    (with ``details.started`` and what was cancelled)."""

    def __init__(self, error: ConnectorError, signal: int | None = None):
        super().__init__(error.message)
        self.error = error
        self.signal = signal

    def to_dict(self) -> dict:
        return self.error.to_dict()
