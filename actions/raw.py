"""Raw Request: any Databricks API path, with the workspace's credentials kept on its own hosts.

A relative URL is appended to ``https://<host>/api/``. A full URL is accepted only for the
connection's workspace host or a Databricks accounts host; any other host is refused before a
request is made, so the token can never travel elsewhere.
"""
from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

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
    if any(seg in ("..", ".") for seg in path.split("/")) or "\\" in path or "@" in path or "#" in text:
        raise InputError([{"key": "url", "label": label, "reason": "must not contain '..', '.', '\\', '@' or '#' segments"}])
    return origin + path + query


def raw_request(session, inputs):
    url = _target(session, inputs["url"])
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
    timeout = inputs.get("timeout")
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
    return session.decode(response, method, url)
