r"""Routing primitives shared by every area module of the emulator.

An area module (clusters.py, identity.py, ...) registers its handlers with the
``route`` decorator; the server imports every module of this package (names not
starting with ``_``) at start-up and dispatches on the collected ``ROUTES``.

A handler receives a :class:`Request` and returns one of
  * ``body``                         -> 200 with a JSON body (dict or list)
  * ``(status, body)``
  * ``(status, body, extra_headers)``
where ``body`` is a dict/list (sent as JSON), ``None`` (sent as ``{}``), ``str`` or
``bytes`` (sent as-is; set Content-Type in extra_headers). Errors are raised as
:class:`HttpError` subclasses: :class:`ApiError` (Databricks shape),
:class:`LegacyError` (API 1.2 shape), :class:`ScimError` (RFC 7644 shape).

Adding an area: create ``emulator/<area>.py`` (no registration list to edit)::

    from .api import ApiError, not_found, route

    @route("GET", r"/api/2\.0/sql/warehouses/(?P<id>[^/]+)")
    def get_warehouse(req):
        store = req.state.area("warehouses")          # dict owned by this module
        with req.state.lock:
            wh = store.get(req.params["id"])
            if wh is None:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {req.params['id']} does not exist.")
            return dict(wh)                           # 200 + JSON
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Pattern, Tuple

__all__ = [
    "ROUTES", "Route", "route", "Request", "HttpError", "ApiError", "LegacyError",
    "ScimError", "not_found", "invalid_state", "invalid_parameter", "encode_page_token",
    "decode_page_token", "page_envelope", "parse_bool", "copy_json", "json_response", "Snapshots",
    "encode_cursor", "decode_cursor",
]


# --------------------------------------------------------------------------- routing

@dataclass
class Route:
    method: str
    pattern: Pattern[str]
    handler: Callable[["Request"], Any]
    auth: bool = True          # require a valid bearer token
    parse_json: bool = True    # parse the body as JSON (400 MALFORMED_REQUEST if it is not)
    stream_body: bool = False  # leave the body unread: the handler reads ``req.body_stream`` (uploads)


ROUTES: List[Route] = []


def route(method: str, pattern: str, *, auth: Optional[bool] = None, parse_json: bool = True,
          stream_body: bool = False):
    """Register ``handler`` for ``method`` and a path regex (matched with fullmatch).

    ``auth`` defaults to True for paths under ``/api/`` and False otherwise.
    Regex groups become ``req.params`` (named groups) / ``req.groups`` (all groups).
    """
    compiled = re.compile(pattern)
    needs_auth = pattern.lstrip("^").startswith("/api") if auth is None else auth

    def deco(fn):
        ROUTES.append(Route(method.upper(), compiled, fn, needs_auth, parse_json and not stream_body, stream_body))
        return fn

    return deco


def find_route(method: str, path: str):
    """Return (route, match) for the first matching route, or (None, path_matched_any)."""
    path_hit = False
    for r in ROUTES:
        m = r.pattern.fullmatch(path)
        if m:
            if r.method == method:
                return r, m
            path_hit = True
    return None, path_hit


# --------------------------------------------------------------------------- errors

class HttpError(Exception):
    """An error answer with an arbitrary JSON body."""

    def __init__(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class ApiError(HttpError):
    """Databricks error body ``{"error_code": ..., "message": ...}`` (optional ``details``)."""

    def __init__(self, status: int, error_code: Any, message: str,
                 headers: Optional[Dict[str, str]] = None, details: Optional[list] = None):
        body = {"error_code": error_code, "message": message}
        if details:
            body["details"] = details
        super().__init__(status, body, headers)
        self.error_code = error_code
        self.message = message


class LegacyError(HttpError):
    """API 1.2 error body ``{"error": "..."}``."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(status, {"error": message}, headers)
        self.message = message


class ScimError(HttpError):
    """SCIM (RFC 7644) error body."""

    def __init__(self, status: int, detail: str, scim_type: Optional[str] = None,
                 headers: Optional[Dict[str, str]] = None):
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "detail": detail, "status": str(status)}
        if scim_type:
            body["scimType"] = scim_type
        super().__init__(status, body, headers)


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def invalid_state(message: str) -> ApiError:
    return ApiError(400, "INVALID_STATE", message)


def not_found(config, message: str) -> ApiError:
    """Not-found in the style chosen by ``config.not_found_style``.

    "legacy400" (default): 400 INVALID_PARAMETER_VALUE (what clusters/jobs/runs get really do);
    "404": 404 RESOURCE_DOES_NOT_EXIST.
    """
    if getattr(config, "not_found_style", "legacy400") == "404":
        return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


# --------------------------------------------------------------------------- helpers

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_bool(value: Any, name: str = "value") -> bool:
    if isinstance(value, bool):
        return value
    s = str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise invalid_parameter(f"Invalid boolean value for {name}: {value!r}")


def encode_page_token(offset: int, kind: str = "p") -> str:
    raw = json.dumps({"k": kind, "o": int(offset)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_envelope(key: str, items: list, offset: int, limit: int, total: int) -> dict:
    """The list answer of the jobs APIs: items (omitted when empty), has_more and page tokens."""
    out: dict = {"has_more": offset + limit < total}
    if items:
        out[key] = items
    if out["has_more"]:
        out["next_page_token"] = encode_page_token(offset + limit, key)
    if offset > 0:
        out["prev_page_token"] = encode_page_token(max(0, offset - limit), key)
    return out


def decode_page_token(token: str, kind: str = "p") -> int:
    try:
        pad = "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(token + pad))
        if data.get("k") != kind:
            raise ValueError
        off = int(data["o"])
        if off < 0:
            raise ValueError
        return off
    except Exception:
        raise invalid_parameter(f"Invalid page token: {token}") from None


def encode_cursor(kind: str, **fields: Any) -> str:
    """An opaque page token holding a position (keyset paging: the last key a page showed)."""
    raw = json.dumps(dict(fields, k=kind), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, kind: str) -> dict:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(data, dict) or data.get("k") != kind:
            raise ValueError
        return data
    except Exception:
        raise invalid_parameter(f"Invalid page token: {token}") from None


def copy_json(value: Any) -> Any:
    """A copy of a JSON-shaped value (dicts, lists, scalars): several times faster than deepcopy."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def json_response(obj: Any, status: int = 200):
    """A handler answer serialised now (under whatever lock the caller holds), so live objects can
    be listed without copying them first."""
    return status, json.dumps(obj, separators=(",", ":")).encode("utf-8"), {"Content-Type": "application/json"}


class Snapshots:
    """Listings paged over the order they had when their first page was read: the first page builds
    the ordered items once, every later page is a slice, so a listing of n items costs O(n) in all
    (not O(n) per page) and items that change between pages are neither repeated nor skipped.
    The most recent ``keep`` listings are kept; an older token answers 400 like any bad token."""

    def __init__(self, keep: int = 64) -> None:
        self._lists: "collections.OrderedDict[str, list]" = collections.OrderedDict()
        self._ids = itertools.count(1)
        self._keep = keep
        self._lock = threading.Lock()

    def page(self, token: Optional[str], build: Callable[[], list], size: int, kind: str):
        """(items of the page, next token or None, previous token or None)."""
        with self._lock:
            if token:
                snap, _, rest = token.partition(".")
                offset = decode_page_token(rest, kind)
                items = self._lists.get(snap)
                if items is None:
                    raise invalid_parameter(f"Invalid page token: {token}")
                self._lists.move_to_end(snap)
            else:
                items = None
        if items is None:
            items = build()
            offset = 0
            with self._lock:
                snap = f"s{next(self._ids)}"
                self._lists[snap] = items
                while len(self._lists) > self._keep:
                    self._lists.popitem(last=False)
        page = items[offset:offset + size]
        nxt = f"{snap}.{encode_page_token(offset + size, kind)}" if offset + size < len(items) else None
        prev = f"{snap}.{encode_page_token(max(0, offset - size), kind)}" if offset > 0 else None
        return page, nxt, prev


# --------------------------------------------------------------------------- request

class BodyStream:
    """A request body read by its handler in pieces (a ``stream_body`` route: uploads), so a large
    body never sits in memory. ``length`` is the Content-Length (None when the body is chunked)."""

    def __init__(self, rfile, length: Optional[int], chunked: bool = False) -> None:
        self._rfile = rfile
        self.length = length
        self.remaining = length if length is not None else 0
        self._chunked = chunked
        self._chunk_left = 0
        self.done = not chunked and not length

    def read(self, n: int = 1 << 20) -> bytes:
        if self.done:
            return b""
        if not self._chunked:
            data = self._rfile.read(min(n, self.remaining))
            self.remaining -= len(data)
            if not data or not self.remaining:
                self.done = True
            return data
        if not self._chunk_left:
            size = int(self._rfile.readline().strip().split(b";")[0] or b"0", 16)
            if size == 0:
                self._rfile.readline()
                self.done = True
                return b""
            self._chunk_left = size
        data = self._rfile.read(min(n, self._chunk_left))
        self._chunk_left -= len(data)
        if not self._chunk_left:
            self._rfile.readline()
        if not data:
            self.done = True
        return data


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    raw: bytes
    json: Any = None
    params: Dict[str, str] = field(default_factory=dict)
    groups: Tuple[str, ...] = ()
    principal: Any = None      # identity.Principal of the caller (None on unauthenticated routes)
    state: Any = None          # state.WorkspaceState
    base_url: str = ""         # "http://127.0.0.1:<port>" as the client addressed us
    body_stream: Any = None    # a stream_body route's body: BodyStream (read(n), length, remaining)

    @property
    def config(self):
        return self.state.config

    @property
    def body(self) -> dict:
        """The JSON body as a dict ({} when absent); 400 if the body is JSON but not an object."""
        if self.json is None:
            return {}
        if not isinstance(self.json, dict):
            raise ApiError(400, "MALFORMED_REQUEST",
                           "Invalid JSON given in the body of the request - expected a map")
        return self.json

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        lname = name.lower()
        for k, v in self.headers.items():
            if k.lower() == lname:
                return v
        return default

    def q(self, name: str, default: Optional[str] = None) -> Optional[str]:
        vals = self.query.get(name)
        return vals[0] if vals else default

    def q_list(self, name: str) -> List[str]:
        return list(self.query.get(name, []))

    def q_bool(self, name: str, default: Optional[bool] = None) -> Optional[bool]:
        v = self.q(name)
        if v is None or v == "":
            return default
        return parse_bool(v, name)

    def q_int(self, name: str, default: Optional[int] = None) -> Optional[int]:
        v = self.q(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise invalid_parameter(f"Invalid integer value for {name}: {v!r}") from None

    def param(self, name: str, default: Any = None) -> Any:
        """A parameter from the query string, else from the JSON body (old clients send
        GET parameters as a JSON body)."""
        v = self.q(name)
        if v is not None:
            return v
        if isinstance(self.json, dict) and name in self.json:
            return self.json[name]
        return default
