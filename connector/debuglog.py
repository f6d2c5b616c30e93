"""The Debug Request log and progress lines: stderr only, every secret redacted.

Redaction works three ways, and always before anything is cut to length:

* by name: Authorization, cookie and storage-key headers (SSE-C customer keys, Azure and GCS
  encryption keys, session tokens); JSON fields, form fields, query parameters and ``name: value``
  text named like tokens, secrets, passwords, credentials or signatures (``access_token``,
  ``refresh_token``, ``id_token``, ``X-Amz-Signature``, ``X-Amz-Security-Token``,
  ``X-Amz-Credential``, ``X-Goog-Signature``, Azure SAS ``sig``);
* by value: every secret the connection knows (the PAT, the client secret, every OAuth token it
  fetched), also percent-encoded (any case, ``+`` for a space) and as the base64
  ``client_id:client_secret`` of a Basic header (with or without the word ``Basic``), so a secret
  echoed in an unexpected place is still masked;
* by shape: ``Bearer``/``Basic`` credentials and JSON Web Tokens.

``Redactor.error`` applies it to every string of a ``ConnectorError``: message, hint,
``error_code`` and ``details`` (recursively).
"""
from __future__ import annotations

import base64
import json
import re
import sys
from urllib.parse import quote

MASK = "****"
SECRET_HEADERS = {"authorization", "cookie", "set-cookie", "x-databricks-azure-sp-management-token",
                  "x-databricks-gcp-sa-access-token", "proxy-authorization", "x-amz-security-token",
                  "x-amz-server-side-encryption-customer-key", "x-amz-server-side-encryption-customer-key-md5",
                  "x-amz-copy-source-server-side-encryption-customer-key",
                  "x-amz-copy-source-server-side-encryption-customer-key-md5",
                  "x-ms-encryption-key", "x-ms-encryption-key-sha256", "x-goog-encryption-key",
                  "x-goog-encryption-key-sha256", "x-goog-copy-source-encryption-key"}
_NAMES = r"token|secret|password|passwd|credential|api[_-]?key|private[_-]?key|authorization|signature|" \
         r"customer[_-]?key|encryption[_-]?key"
_SECRET_NAME = re.compile(rf"({_NAMES})|^sig$", re.I)
# key=value in forms, query strings and links (also inside JSON strings). Every pattern here is
# anchored at a delimiter and bounded, so redaction stays linear on a megabyte of text.
_PARAM_SECRET = re.compile(rf"((?:^|(?<=[?&;\s\"'/]))(?:[^=&?#\s\"'<>/]{{0,64}}?(?:{_NAMES})[^=&?#\s\"'<>/]{{0,64}}|sig)=)"
                           r"[^&#\s\"'<>]*", re.I)
# "name": "value" or name: value in text that is not JSON (a cut or broken body, an error message);
# not a URL's last path segment ("POST .../oidc/v1/token: TLS verification failed")
_QUOTED_SECRET = re.compile(rf"((?<![\w./-])[\"']?[\w.-]{{0,64}}?(?:{_NAMES})[\w.-]{{0,64}}[\"']?\s{{0,8}}:\s{{0,8}}[\"']?)"
                            r"([^\"'\s,&}\]]+)", re.I)
_BEARER = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]")
TRUNCATE = 2000
CUT_MARGIN = 8192        # text kept past a cut before redacting: no secret straddles the cut unredacted
JSON_MASKED = 65536      # bodies up to this size are parsed so JSON fields are masked by name


def _encoded_pattern(value: str) -> str:
    """A regex matching ``value`` as typed or with any of its characters percent-encoded (either
    hex case; a space also as ``+``)."""
    out = []
    for ch in value:
        if _UNRESERVED.fullmatch(ch):
            out.append(re.escape(ch))
            continue
        codes = "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        alts = [re.escape(ch), "".join(f"%[{c[1]}{c[1].lower()}][{c[2]}{c[2].lower()}]" for c in
                                       (codes[i:i + 3] for i in range(0, len(codes), 3)))]
        if ch == " ":
            alts.append(r"\+")
        out.append("(?:" + "|".join(alts) + ")")
    return "".join(out)


# Secret inputs of the action call running in this context (Put Secret's value): masked by value
# like the connection's own secrets while the call runs (``call_secrets``).
import contextlib as _contextlib
import contextvars as _contextvars

_CALL_SECRETS: "_contextvars.ContextVar[tuple]" = _contextvars.ContextVar("databricks_call_secrets", default=())


@_contextlib.contextmanager
def call_secrets(values):
    """Mask these values (a call's secret inputs) everywhere the redactor looks, while the block runs."""
    token = _CALL_SECRETS.set(tuple(v for v in values if isinstance(v, str) and v))
    try:
        yield
    finally:
        _CALL_SECRETS.reset(token)


class Redactor:
    def __init__(self, secret_source=None, basic_user=None):
        self._source = secret_source  # callable -> iterable of secret strings
        self._basic_user = basic_user
        self._cache = (None, (), None)

    def values(self) -> list[str]:
        extra = _CALL_SECRETS.get()
        if not self._source and not extra:
            return []
        found = list(self._source()) if self._source else []
        return sorted({v for v in [*found, *extra] if isinstance(v, str) and len(v) >= 4}, key=len, reverse=True)

    def _compiled(self):
        """(plain forms to replace as they are, a regex for the encodable ones), cached per set of
        secrets: a secret of unreserved characters only is found by a plain substring search."""
        values = tuple(self.values())
        if self._cache[0] != values:
            plain, special = [], []
            for v in values:
                (special if any(not _UNRESERVED.fullmatch(ch) for ch in v) else plain).append(v)
                if self._basic_user:   # client_id:client_secret in base64, as sent in a Basic header
                    b64 = base64.b64encode(f"{self._basic_user}:{v}".encode()).decode()
                    plain += [b64, b64.rstrip("=")]
            plain = sorted(set(plain), key=len, reverse=True)
            pattern = re.compile("|".join(_encoded_pattern(v) for v in special)) if special else None
            self._cache = (values, plain, pattern)
        return self._cache[1], self._cache[2]

    def text(self, text: str) -> str:
        if not text or not isinstance(text, str):
            return text
        plain, pattern = self._compiled()
        for value in plain:
            if value in text:
                text = text.replace(value, MASK)
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "earer" in text or "asic" in text or "EARER" in text or "ASIC" in text:
            text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        if "eyJ" in text:
            text = _JWT.sub(MASK, text)
        if "=" in text:
            text = _PARAM_SECRET.sub(lambda m: m.group(1) + MASK, text)
        if ":" in text:
            text = _QUOTED_SECRET.sub(lambda m: m.group(1) + MASK, text)
        return text

    def headers(self, headers) -> dict:
        return {k: (MASK if str(k).lower() in SECRET_HEADERS else self.text(str(v))) for k, v in (headers or {}).items()}

    def body(self, body, limit: int = TRUNCATE) -> str:
        if body is None or body == b"" or body == "":
            return ""
        if isinstance(body, (bytes, bytearray)):
            body = bytes(body[:JSON_MASKED]).decode("utf-8", "replace") if len(body) <= JSON_MASKED else \
                bytes(body[:limit + CUT_MARGIN]).decode("utf-8", "replace")
        elif not isinstance(body, str):
            body = repr(body)
        text = None
        if len(body) <= JSON_MASKED:
            try:
                text = json.dumps(self.doc(json.loads(body)))
            except (ValueError, RecursionError):
                text = None
        if text is None:                 # not JSON, or too big to parse for the log: the text rules apply
            text = body[:limit + CUT_MARGIN]
        text = self.text(text)
        return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"

    def doc(self, doc):
        """A JSON document with secret-named fields masked and every string redacted by value."""
        if isinstance(doc, dict):
            return {k: (MASK if _SECRET_NAME.search(str(k)) and isinstance(v, (str, int)) and not isinstance(v, bool)
                        and v != "" else self.doc(v)) for k, v in doc.items()}
        if isinstance(doc, list):
            return [self.doc(v) for v in doc]
        if isinstance(doc, str):
            return self.text(doc)
        return doc

    def error(self, err):
        """Every string of a ConnectorError redacted: message, hint, error_code, details."""
        err.message = self.text(err.message)
        err.hint = self.text(err.hint)
        if isinstance(err.error_code, str):
            err.error_code = self.text(err.error_code)
        if err.details:
            err.details = self.doc(err.details)
        problems = getattr(err, "problems", None)
        if isinstance(problems, list):
            err.problems = self.doc(problems)
        return err


def emit(line: str) -> None:
    """One line to stderr (looked up at call time, so captured streams work)."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
