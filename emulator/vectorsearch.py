r"""Vector search (contract part 2, §2.12, and the SDK's VectorSearchIndexesAPI): endpoints,
indexes, real nearest-neighbour queries over stored vectors.

* Endpoints: one is seeded ONLINE (``vs-endpoint``); ``GET /api/2.0/vector-search/endpoints[/{name}]``.
* Indexes: ``POST /api/2.0/vector-search/indexes`` (DIRECT_ACCESS with ``embedding_vector_columns``
  or ``embedding_source_columns``; DELTA_SYNC with a ``source_table`` read from the SQL engine on
  ``/sync``), get, delete, list (``endpoint_name`` required, paged).
* Data: ``/upsert-data`` (``inputs_json``, DIRECT_ACCESS only; a row without its primary key or with
  a vector of the wrong dimension is a failed key, PARTIAL_SUCCESS), ``DELETE /delete-data?primary_keys=``.
* Query: ``/query`` with ``query_vector`` or ``query_text`` (embedded with the serving area's
  deterministic embedding, the same as its embeddings endpoint), ``columns``, ``num_results``
  (default 10), ``filters_json`` (``{"col": v}``, ``{"col": [v, ...]}``, ``"col NOT"``, ``"col <"``,
  ``"col <="``, ``"col >"``, ``"col >="``); rows are the nearest by cosine similarity, each with a
  trailing ``score``; more than ``vector_search_page_size`` rows page through
  ``/query-next-page`` (``endpoint_name``, ``page_token``).

Applied changes: ``state.applied["vectorsearch/<op>"]`` (an upsert or delete that changes nothing
is not counted).
"""
from __future__ import annotations

import json
import math
import uuid
from typing import Any, Dict, List
from urllib.parse import unquote

from .api import ApiError, copy_json, decode_cursor, encode_cursor, invalid_parameter, route

API = r"/api/2\.0/vector-search"
INDEX = API + r"/indexes/(?P<name>[^/]+)"


class Store:
    def __init__(self) -> None:
        self.endpoints: Dict[str, dict] = {}
        self.indexes: Dict[str, dict] = {}
        self.pages: Dict[str, list] = {}


def store(state) -> Store:
    def make():
        s = Store()
        s.endpoints["vs-endpoint"] = {"name": "vs-endpoint", "id": uuid.uuid4().hex, "endpoint_type": "STANDARD",
                                      "endpoint_status": {"state": "ONLINE"}, "creator": "System user",
                                      "creation_timestamp": state.now_ms(), "num_indexes": 0}
        return s
    return state.area("vectorsearch", make)


def _index(state, raw: str) -> dict:
    name = unquote(raw)
    idx = store(state).indexes.get(name)
    if idx is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Vector index {name} does not exist.")
    return idx


def _vector_column(idx: dict):
    spec = idx.get("direct_access_index_spec") or idx.get("delta_sync_index_spec") or {}
    vec = (spec.get("embedding_vector_columns") or [None])[0]
    src = (spec.get("embedding_source_columns") or [None])[0]
    return vec, src


def _dims(state, idx) -> int:
    vec, _ = _vector_column(idx)
    return int(vec["embedding_dimension"]) if vec else int(state.config.serving_embedding_dimensions)


def public(state, idx: dict) -> dict:
    out = {k: copy_json(v) for k, v in idx.items() if not k.startswith("_")}
    out["status"] = {"ready": True, "indexed_row_count": len(idx["_rows"]), "message": "Index is ready.",
                     "index_url": f"vs-endpoint.vector-search/{idx['name']}"}
    return out


@route("GET", API + r"/endpoints")
def list_endpoints(req):
    with req.state.lock:
        return {"endpoints": [dict(e) for _, e in sorted(store(req.state).endpoints.items())]}


@route("GET", API + r"/endpoints/(?P<name>[^/]+)")
def get_endpoint(req):
    with req.state.lock:
        ep = store(req.state).endpoints.get(unquote(req.params["name"]))
        if ep is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Vector search endpoint {req.params['name']} does not exist.")
        return dict(ep)


@route("POST", API + r"/indexes")
def create_index(req):
    body = copy_json(req.body)
    name, endpoint, pk, kind = body.get("name"), body.get("endpoint_name"), body.get("primary_key"), body.get("index_type")
    if not all(isinstance(v, str) and v for v in (name, endpoint, pk)):
        raise invalid_parameter("name, endpoint_name and primary_key are required")
    if kind not in ("DIRECT_ACCESS", "DELTA_SYNC"):
        raise invalid_parameter("index_type must be DIRECT_ACCESS or DELTA_SYNC")
    spec_key = "direct_access_index_spec" if kind == "DIRECT_ACCESS" else "delta_sync_index_spec"
    spec = body.get(spec_key) or {}
    if not (spec.get("embedding_vector_columns") or spec.get("embedding_source_columns")):
        raise invalid_parameter(f"{spec_key} needs embedding_vector_columns or embedding_source_columns")
    if kind == "DELTA_SYNC" and not spec.get("source_table"):
        raise invalid_parameter("delta_sync_index_spec.source_table is required")
    st = req.state
    with st.lock:
        s = store(st)
        if endpoint not in s.endpoints:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Vector search endpoint {endpoint} does not exist.")
        if name in s.indexes:
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Vector index {name} already exists.")
        idx = {"name": name, "endpoint_name": endpoint, "primary_key": pk, "index_type": kind, spec_key: spec,
               "creator": req.principal.user_name if req.principal else "", "_rows": {}}
        s.indexes[name] = idx
        s.endpoints[endpoint]["num_indexes"] += 1
        st.applied["vectorsearch/indexes/create"] += 1
        return public(st, idx)


@route("GET", API + r"/indexes")
def list_indexes(req):
    endpoint = req.q("endpoint_name")
    if not endpoint:
        raise invalid_parameter("endpoint_name is required")
    size = int(req.config.vector_search_page_size)
    with req.state.lock:
        names = sorted(n for n, i in store(req.state).indexes.items() if i["endpoint_name"] == endpoint)
        items = [{k: store(req.state).indexes[n][k] for k in ("name", "endpoint_name", "primary_key", "index_type",
                                                               "creator")} for n in names]
    token = req.q("page_token")
    offset = int(decode_cursor(token, "indexes")["o"]) if token else 0
    out: Dict[str, Any] = {"vector_indexes": items[offset:offset + size]}
    if offset + size < len(items):
        out["next_page_token"] = encode_cursor("indexes", o=offset + size)
    return out


@route("GET", INDEX)
def get_index(req):
    with req.state.lock:
        return public(req.state, _index(req.state, req.params["name"]))


@route("DELETE", INDEX)
def delete_index(req):
    st = req.state
    with st.lock:
        idx = _index(st, req.params["name"])
        del store(st).indexes[idx["name"]]
        st.applied["vectorsearch/indexes/delete"] += 1
        return {}


def _embed(state, text) -> List[float]:
    from .serving import embed
    return embed(str(text), int(state.config.serving_embedding_dimensions))


def _prepare_row(state, idx: dict, row: dict):
    """(key, stored row) or (key, None) when the row cannot be indexed."""
    key = row.get(idx["primary_key"])
    if key is None:
        return None, None
    vec, src = _vector_column(idx)
    stored = dict(row)
    if vec:
        v = row.get(vec["name"])
        if not isinstance(v, list) or len(v) != int(vec["embedding_dimension"]) or \
                not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return key, None
        stored["_vector"] = [float(x) for x in v]
    else:
        if row.get(src["name"]) is None:
            return key, None
        stored["_vector"] = _embed(state, str(row[src["name"]]))
    return key, stored


@route("POST", INDEX + r"/upsert-data")
def upsert(req):
    raw = req.body.get("inputs_json")
    try:
        rows = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        rows = None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise invalid_parameter("inputs_json must be a JSON array of row objects")
    st = req.state
    with st.lock:
        idx = _index(st, req.params["name"])
        if idx["index_type"] != "DIRECT_ACCESS":
            raise invalid_parameter(f"Index {idx['name']} is a DELTA_SYNC index: its rows come from its source table "
                                    "(sync it); upsert-data is for DIRECT_ACCESS indexes.")
        failed, ok, changed = [], 0, False
        for row in rows:
            key, stored = _prepare_row(st, idx, row)
            if stored is None:
                failed.append(str(key))
                continue
            ok += 1
            if idx["_rows"].get(str(key)) != stored:
                idx["_rows"][str(key)] = stored
                changed = True
        if changed:
            st.applied["vectorsearch/data/update"] += 1
    status = "SUCCESS" if not failed else ("PARTIAL_SUCCESS" if ok else "FAILURE")
    return {"status": status, "result": {"success_row_count": ok, **({"failed_primary_keys": failed} if failed else {})}}


@route("DELETE", INDEX + r"/delete-data")
def delete_data(req):
    keys = req.q_list("primary_keys")
    if not keys:
        raise invalid_parameter("primary_keys is required")
    st = req.state
    with st.lock:
        idx = _index(st, req.params["name"])
        if idx["index_type"] != "DIRECT_ACCESS":
            raise invalid_parameter(f"Index {idx['name']} is a DELTA_SYNC index; delete-data is for DIRECT_ACCESS indexes.")
        removed = [k for k in keys if idx["_rows"].pop(k, None) is not None]
        if removed:
            st.applied["vectorsearch/data/delete"] += 1
    return {"status": "SUCCESS", "result": {"success_row_count": len(keys)}}


@route("POST", INDEX + r"/sync")
def sync(req):
    st = req.state
    with st.lock:
        idx = _index(st, req.params["name"])
        if idx["index_type"] != "DELTA_SYNC":
            raise invalid_parameter(f"Index {idx['name']} is a DIRECT_ACCESS index; only DELTA_SYNC indexes sync.")
        table = idx["delta_sync_index_spec"]["source_table"]
    from .sqlengine import SqlError, engine_for
    try:
        res = engine_for(st).execute(f"SELECT * FROM {table}", principal=req.principal)
    except SqlError as exc:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"The source table {table} cannot be read: {exc.message}") from None
    names = [c["name"] for c in res.columns]
    rows = [dict(zip(names, r)) for r in res.rows]
    with st.lock:
        fresh = {}
        for row in rows:
            key, stored = _prepare_row(st, idx, json.loads(json.dumps(row, default=str)))
            if stored is not None:
                fresh[str(key)] = stored
        idx["_rows"] = fresh
        st.applied["vectorsearch/sync"] += 1
    return {}


# --------------------------------------------------------------------------- query

def _passes(row: dict, filters: dict) -> bool:
    for raw_key, want in filters.items():
        col, _, op = raw_key.strip().partition(" ")
        op = op.strip().upper()
        value = row.get(col)
        wants = want if isinstance(want, list) else [want]
        if op == "":
            if value not in wants:
                return False
        elif op == "NOT":
            if value in wants:
                return False
        elif op in ("<", "<=", ">", ">="):
            try:
                a, b = float(value), float(want)
            except (TypeError, ValueError):
                return False
            if not {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]:
                return False
        elif op == "LIKE":
            if not (isinstance(value, str) and str(want).lower() in value.lower()):
                return False
        else:
            raise invalid_parameter(f"Unsupported filter operator in {raw_key!r}")
    return True


def _cosine(a, b) -> float:
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    if not na or not nb:
        return 0.0
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def _page(req, rows: list, columns: list, cursor_id: str, offset: int) -> dict:
    size = int(req.config.vector_search_page_size)
    page = rows[offset:offset + size]
    out: Dict[str, Any] = {"manifest": {"column_count": len(columns) + 1,
                                        "columns": [{"name": c} for c in columns] + [{"name": "score"}]},
                           "result": {"row_count": len(page), "data_array": page}}
    if offset + size < len(rows):
        out["next_page_token"] = encode_cursor("vsq", s=cursor_id, o=offset + size)
    return out


@route("POST", INDEX + r"/query")
def query(req):
    body = req.body
    columns = body.get("columns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise invalid_parameter("columns is required: the columns to return")
    vector, text = body.get("query_vector"), body.get("query_text")
    if (vector is None) == (text is None) and body.get("query_type", "ANN").upper() != "HYBRID":
        raise invalid_parameter("Give exactly one of query_vector and query_text")
    num = body.get("num_results", 10)
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise invalid_parameter("num_results must be a positive integer")
    filters = {}
    if body.get("filters_json"):
        try:
            filters = json.loads(body["filters_json"])
        except (TypeError, ValueError):
            raise invalid_parameter("filters_json is not valid JSON") from None
        if not isinstance(filters, dict):
            raise invalid_parameter("filters_json must be a JSON object")
    st = req.state
    with st.lock:
        idx = _index(st, req.params["name"])
        dims = _dims(st, idx)
        if vector is not None:
            if not isinstance(vector, list) or len(vector) != dims:
                raise invalid_parameter(f"query_vector must have {dims} numbers (the index's embedding dimension)")
            q = [float(x) for x in vector]
        else:
            if _vector_column(idx)[0] and not _vector_column(idx)[1]:
                raise invalid_parameter(f"Index {idx['name']} has no embedding model: query it with query_vector")
            q = _embed(st, text)
        scored = sorted(((_cosine(q, r["_vector"]), k, r) for k, r in idx["_rows"].items() if _passes(r, filters)),
                        key=lambda t: (-t[0], t[1]))[:num]
        unknown = [c for c in columns if not any(c in r for _, _, r in scored)] if scored else []
        if unknown and idx["_rows"]:
            sample = next(iter(idx["_rows"].values()))
            unknown = [c for c in columns if c not in sample]
            if unknown:
                raise invalid_parameter(f"Unknown column(s) {', '.join(unknown)} in index {idx['name']}")
        rows = [[r.get(c) for c in columns] + [round(score, 6)] for score, _, r in scored]
        cursor_id = uuid.uuid4().hex
        store(st).pages[cursor_id] = (rows, columns)
        if len(store(st).pages) > 64:
            store(st).pages.pop(next(iter(store(st).pages)))
    return _page(req, rows, columns, cursor_id, 0)


@route("POST", INDEX + r"/query-next-page")
def query_next_page(req):
    token = req.body.get("page_token")
    if not isinstance(token, str) or not token:
        raise invalid_parameter("page_token is required")
    data = decode_cursor(token, "vsq")
    with req.state.lock:
        _index(req.state, req.params["name"])
        saved = store(req.state).pages.get(data.get("s"))
    if saved is None:
        raise invalid_parameter(f"Invalid page token: {token}")
    rows, columns = saved
    return _page(req, rows, columns, data["s"], int(data["o"]))


def add_index(state, name: str, *, primary_key: str = "id", dimension: int | None = None, text_column: str | None = None,
              rows: list | None = None, source_table: str | None = None) -> str:
    """An index on the seeded endpoint (tests, the demo): vectors of ``dimension`` in column
    ``embedding``, or texts in ``text_column`` embedded like the embeddings endpoint; DIRECT_ACCESS,
    or DELTA_SYNC from ``source_table`` (empty until synced)."""
    spec = ({"embedding_vector_columns": [{"name": "embedding", "embedding_dimension": dimension}]} if dimension else
            {"embedding_source_columns": [{"name": text_column or "text",
                                           "embedding_model_endpoint_name": "databricks-gte-large-en"}]})
    kind, key = ("DELTA_SYNC", "delta_sync_index_spec") if source_table else ("DIRECT_ACCESS", "direct_access_index_spec")
    if source_table:
        spec.update(source_table=source_table, pipeline_type="TRIGGERED")
    with state.lock:
        s = store(state)
        s.indexes[name] = {"name": name, "endpoint_name": "vs-endpoint", "primary_key": primary_key,
                           "index_type": kind, key: spec, "creator": "System user", "_rows": {}}
        s.endpoints["vs-endpoint"]["num_indexes"] += 1
        for row in rows or []:
            key, stored = _prepare_row(state, s.indexes[name], row)
            if stored is not None:
                s.indexes[name]["_rows"][str(key)] = stored
    return name
