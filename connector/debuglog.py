"""The Debug Request log and progress lines: stderr only, every secret redacted.

Redaction works two ways: by name (Authorization and cookie headers; JSON and form fields
named like tokens, secrets and passwords) and by value (every secret value the connection
knows, including OAuth access tokens it fetched), so a secret echoed in an unexpected place
is still masked.
"""
from __future__ import annotations

import json
import re
import sys

MASK = "****"
SECRET_HEADERS = {"authorization", "cookie", "set-cookie", "x-databricks-azure-sp-management-token",
                  "x-databricks-gcp-sa-access-token", "proxy-authorization"}
_SECRET_NAME = re.compile(r"(token|secret|password|passwd|credential|api[_-]?key|private[_-]?key|authorization)", re.I)
_FORM_SECRET = re.compile(r"((?:^|&)[^=&]*(?:token|secret|password)[^=&]*=)[^&]*", re.I)
_BEARER = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)
TRUNCATE = 2000


class Redactor:
    def __init__(self, secret_source=None):
        self._source = secret_source  # callable -> iterable of secret strings

    def values(self) -> list[str]:
        if not self._source:
            return []
        return sorted((v for v in self._source() if isinstance(v, str) and len(v) >= 4), key=len, reverse=True)

    def text(self, text: str) -> str:
        if not text:
            return text
        for value in self.values():
            text = text.replace(value, MASK)
        return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)

    def headers(self, headers) -> dict:
        return {k: (MASK if k.lower() in SECRET_HEADERS else self.text(str(v))) for k, v in (headers or {}).items()}

    def body(self, body, limit: int = TRUNCATE) -> str:
        if body is None or body == b"" or body == "":
            return ""
        if isinstance(body, (bytes, bytearray)):
            body = bytes(body[: limit * 2]).decode("utf-8", "replace")
        elif not isinstance(body, str):
            body = repr(body)
        try:
            text = json.dumps(_mask_json(json.loads(body)))
        except ValueError:
            text = _FORM_SECRET.sub(lambda m: m.group(1) + MASK, body)
        text = self.text(text)
        return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def _mask_json(doc):
    if isinstance(doc, dict):
        return {k: (MASK if _SECRET_NAME.search(str(k)) and isinstance(v, (str, int)) and v != "" else _mask_json(v))
                for k, v in doc.items()}
    if isinstance(doc, list):
        return [_mask_json(v) for v in doc]
    return doc


def emit(line: str) -> None:
    """One line to stderr (looked up at call time, so captured streams work)."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
