"""Pagination, one mechanism: follow the page token, stop on a repeated token, honour a cap,
and say when the result was truncated. A token may be a string (``next_page_token``) or a whole
request body (the cluster events API returns the next page's body as ``next_page``)."""
from __future__ import annotations

import json


def paginate(fetch_page, *, items: str, next_token, max_items: int | None = None):
    """``fetch_page(token) -> page``; ``next_token(page) -> str | None``. Returns (items, truncated)."""
    out: list = []
    seen: set = set()
    token = None
    while True:
        page = fetch_page(token)
        batch = page.get(items) or []
        out.extend(batch)
        nxt = next_token(page)
        if max_items is not None and len(out) >= max_items:
            truncated = len(out) > max_items or bool(nxt)
            return out[:max_items], truncated
        marker = nxt if isinstance(nxt, str) else json.dumps(nxt, sort_keys=True, default=str)
        if not nxt or marker in seen:
            return out, False
        seen.add(marker)
        token = nxt
