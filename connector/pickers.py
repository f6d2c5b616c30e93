"""Picker options, one mechanism: a search over the labels and a limit, for workspaces with
10,000 jobs. Every picker takes the shared inputs ``search`` (every word of it must appear in
the option's label or value, ignoring case) and ``limit`` (the most options, first ones in the
picker's order).

``from_list`` pages a Databricks list only as far as it needs: each page's items are filtered as
they arrive and paging stops once ``limit`` options matched (or at the step's deadline), so a
search for one job in 10,000 reads pages until it is found, and no search reads one page.
"""
from __future__ import annotations


def _words(search) -> list[str]:
    return str(search or "").casefold().split()


def matches(option: dict, words: list[str]) -> bool:
    text = f"{option.get('label', '')} {option.get('value', '')}".casefold()
    return all(w in text for w in words)


def select(options, inputs: dict) -> list[dict]:
    """Options (already in the picker's order) filtered by Search and cut at Limit."""
    words = _words(inputs.get("search"))
    limit = inputs.get("limit")
    out = []
    for option in options:
        if words and not matches(option, words):
            continue
        out.append(option)
        if limit is not None and len(out) >= limit:
            break
    return out


def from_list(session, path: str, inputs: dict, *, items: str, option, params=None, require=(),
              size_param: str | None = None, max_page: int = 100, token_param: str = "page_token",
              next_key: str = "next_page_token"):
    """The options of a paged GET list: ``option(item) -> {"label", "value"}`` for each item, the
    ones matching Search kept, at most Limit, reading no page past the one that filled it.
    ``size_param`` names the list's page-size parameter (at most ``max_page``): without a search a
    small Limit asks for a small page."""
    words = _words(inputs.get("search"))
    limit = inputs.get("limit")
    base = dict(params or {})
    if size_param:
        base[size_param] = min(max_page, limit) if limit and not words else max_page

    def page(token):
        q = dict(base)
        if token:
            q[token_param] = token
        doc = session.get(path, q)
        if isinstance(doc, dict) and isinstance(doc.get(items), list):
            # options made here; an item of the wrong shape is left for the paging checks to refuse
            kept = []
            for item in doc[items]:
                if isinstance(item, dict) and all(item.get(k) not in (None, "") for k in require):
                    opt = option(item)
                    if words and not matches(opt, words):
                        continue
                    kept.append({"_option": opt, **{k: item[k] for k in require}})
                else:
                    kept.append(item)
            doc = {**doc, items: kept}
        return doc

    found, _ = session.pages(page, items=items, next_token=lambda p: p.get(next_key), max_items=limit,
                             require=require, what=path)
    return [f["_option"] for f in found]
