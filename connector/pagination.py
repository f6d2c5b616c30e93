"""Pagination, one mechanism: follow the page token, stop on a repeated token, honour a cap,
and say when the result was truncated."""
from __future__ import annotations


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
        if not nxt or nxt in seen:
            return out, False
        seen.add(nxt)
        token = nxt
