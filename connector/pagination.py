"""Pagination, one mechanism: follow the page token, stop on a repeated token, honour a cap, end
by the step's deadline, and say when the result was truncated. A token may be a string
(``next_page_token``) or a whole request body (the cluster events API returns the next page's
body as ``next_page``). Every page must be an object whose ``items`` is a list of objects (each
holding the keys in ``require``); anything else is a classified ``server_error``. A server that
keeps answering with a new token ends the step with a classified ``timeout`` at the deadline."""
from __future__ import annotations

import json
import time

from .errors import ConnectorError


def _shape(what: str, page_no: int, problem: str) -> ConnectorError:
    return ConnectorError("server_error", f"Page {page_no} of {what} {problem}",
                          hint="The list answer does not have Databricks' shape (a proxy, or a changed API); run the step again.")


def _endless(what: str, pages: int, items: int) -> ConnectorError:
    return ConnectorError("timeout", f"Listing {what} did not end before the step's deadline: {pages} pages and "
                          f"{items} items so far, and the server still gave a next page",
                          hint="Set Max Items to cap the list, or raise the step's timeout.",
                          details={"pages": pages, "items": items})


def paginate(fetch_page, *, items: str, next_token, max_items: int | None = None, deadline: float | None = None,
             require=(), what: str | None = None):
    """``fetch_page(token) -> page``; ``next_token(page) -> str | None``. Returns (items, truncated)."""
    what = what or items
    out: list = []
    seen: set = set()
    token = None
    pages = 0
    while True:
        if deadline is not None and pages and time.monotonic() >= deadline:
            raise _endless(what, pages, len(out))
        try:
            page = fetch_page(token)
        except ConnectorError as exc:
            if exc.type != "timeout" or deadline is None or not pages or time.monotonic() < deadline - 0.05:
                raise
            raise _endless(what, pages, len(out)) from None     # the page in flight met the deadline
        pages += 1
        if not isinstance(page, dict):
            raise _shape(what, pages, f"is {type(page).__name__}, not an object")
        batch = page.get(items)
        if batch is None:
            batch = []
        elif not isinstance(batch, list):
            raise _shape(what, pages, f"has '{items}' as {type(batch).__name__}, not a list")
        for item in batch:
            if not isinstance(item, dict):
                raise _shape(what, pages, f"has an item of '{items}' that is {type(item).__name__}, not an object")
            for key in require:
                value = item.get(key)
                if value is None or value == "" or isinstance(value, bool):
                    raise _shape(what, pages, f"has an item of '{items}' without {key}")
        out.extend(batch)
        nxt = next_token(page)
        if max_items is not None and len(out) >= max_items:
            truncated = len(out) > max_items or bool(nxt)
            return out[:max_items], truncated
        if not nxt:
            return out, False
        marker = nxt if isinstance(nxt, str) else json.dumps(nxt, sort_keys=True, default=str)
        if marker in seen:
            return out, False
        seen.add(marker)
        token = nxt
