"""Raw Request: any Databricks API path, with the workspace's credentials kept on its own hosts.

A relative URL is appended to ``https://<host>/api/``. A full URL is accepted only for the
connection's workspace host or a Databricks accounts host; any other host is refused before a
request is made, so the token can never travel elsewhere. The path is checked after decoding
its percent-encoding (``%2e%2e`` is ``..``), and headers that steer where or how the request
travels (``Host``, ``Content-Length``, ``Transfer-Encoding``) are refused: the session owns them.
"""
from __future__ import annotations

import base64
import json
import re
from urllib.parse import unquote, urlsplit

from ..connections.hosts import is_account_host, normalize_host
from ..errors import ConnectorError, InputError
from ..session import RetryPolicy


def _target(session, url: str, label: str = "URL") -> str:
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        try:
            origin = normalize_host(f"{parts.scheme}://{parts.netloc}", label)
        except ConnectorError as exc:
            raise InputError([{"key": "url", "label": label, "reason": exc.message.removeprefix(f"{label} ")}]) from None
        hostname = urlsplit(origin).hostname
        if origin != session.host and not (is_account_host(hostname) and origin.startswith("https://")):
            raise InputError([{"key": "url", "label": label,
                               "reason": f"points to {hostname}, which is neither this connection's workspace nor a "
                                         "Databricks accounts host; credentials are never sent elsewhere"}])
        path = parts.path or "/"
        query = f"?{parts.query}" if parts.query else ""
    else:
        rel = text.lstrip("/")
        if rel.startswith("api/"):
            rel = rel[4:]
        path, _, q = ("/api/" + rel).partition("?")
        query = f"?{q}" if q else ""
        origin = session.host
    decoded = _decoded(path)
    if any(seg in ("..", ".") for seg in decoded.split("/")) or "\\" in decoded or "@" in decoded or "#" in text:
        raise InputError([{"key": "url", "label": label, "reason": "must not contain '..', '.', '\\', '@' or '#' segments "
                                                                   "(also percent-encoded, such as %2e%2e)"}])
    if any(ord(c) < 32 or ord(c) == 127 for c in decoded):
        raise InputError([{"key": "url", "label": label, "reason": "must not contain control characters (also percent-encoded)"}])
    return origin + path + query


def _decoded(path: str) -> str:
    """The path with its percent-encoding undone, repeatedly (``%252e`` -> ``%2e`` -> ``.``)."""
    for _ in range(4):
        nxt = unquote(path)
        if nxt == path:
            break
        path = nxt
    return path


# Headers the session owns: where the request goes (Host) and how its body is framed.
_REFUSED_HEADERS = {"host": "Host", "content-length": "Content-Length", "transfer-encoding": "Transfer-Encoding"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_problems(headers) -> list[dict]:
    """Every bad header input, named without its value (a header may hold a credential)."""
    problems = []
    for name, value in (headers or {}).items():
        if not _TOKEN.fullmatch(name):
            problems.append({"key": "headers", "label": "Header", "reason": "has a header name that is not a valid "
                             "HTTP token (letters, digits and !#$%&'*+.^_`|~- only; no spaces, ':' or line breaks)"})
            continue
        if name.lower() in _REFUSED_HEADERS:
            problems.append({"key": "headers", "label": "Header", "reason": f"{_REFUSED_HEADERS[name.lower()]} cannot be "
                             "set: the connection decides where the request goes and how its body is sent"})
            continue
        text = value if isinstance(value, str) else str(value)
        try:
            text.encode("latin-1")
        except UnicodeError:
            problems.append({"key": "headers", "label": "Header", "reason": f"the value of {name} has characters HTTP "
                             "headers cannot carry (only Latin-1)"})
            continue
        if _CONTROL.search(text):
            problems.append({"key": "headers", "label": "Header", "reason": f"the value of {name} has a line break or "
                             "a control character"})
    return problems


def raw_request(session, inputs):
    header_problems = _header_problems(inputs.get("headers"))
    try:
        url = _target(session, inputs["url"])
    except InputError as exc:
        raise InputError(exc.problems + header_problems) from None
    if header_problems:
        raise InputError(header_problems)
    method = inputs["method"].upper()
    data = inputs.get("data")
    body_json = body_data = None
    if data is not None:
        if isinstance(data, str):
            try:
                body_json = json.loads(data)
            except ValueError:
                body_data = data.encode("utf-8")
        else:
            body_json = data
    files = None
    if inputs.get("file_data"):
        names = inputs.get("file_data_file_names") or {}
        unknown = sorted(set(names) - set(inputs["file_data"]))
        if unknown:
            raise InputError([{"key": "file_data_file_names", "label": "File Data File Names",
                               "reason": f"keys {', '.join(unknown)} do not match any File Data key"}])
        files = {k: (names.get(k, k), v.encode("utf-8") if isinstance(v, str) else v) for k, v in inputs["file_data"].items()}
    form = inputs.get("form_data")
    if (files or form) and body_json is not None:
        raise InputError([{"key": "data", "label": "Data", "reason": "cannot be combined with Form Data or File Data"}])
    if files or form:
        body_data = form or None
    policy = None
    retries = inputs.get("max_retry_count") or 0
    if retries > 0:
        policy = RetryPolicy(max_attempts=retries + 1, delay=(inputs.get("retry_delay_ms") or 0) / 1000.0,
                             exponential=bool(inputs.get("use_exponential_backoff")),
                             retry_all_errors=bool(inputs.get("retry_on_all_errors")))
    timeout = inputs.get("timeout_ms")
    deadline_kw = {}
    if timeout:
        import time

        deadline_kw = {"read_timeout": timeout / 1000.0, "deadline": time.monotonic() + timeout / 1000.0 * (retries + 1)}
    response = session.response(method, url, params=inputs.get("query_params") or None, json=body_json,
                                data=body_data, files=files, headers=inputs.get("headers") or None,
                                idempotent=True if retries > 0 else None, policy=policy, **deadline_kw)
    kind = inputs.get("response_type", "json")
    if kind == "binary":
        return {"status": response.status_code, "content_type": response.headers.get("Content-Type", ""),
                "size": len(response.content), "base64": base64.b64encode(response.content).decode("ascii")}
    if kind == "text":
        return {"status": response.status_code, "content_type": response.headers.get("Content-Type", ""),
                "text": response.text}
    return session.decode(response, method, url, expect=None)
