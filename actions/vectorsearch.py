"""Vector Search API 2.0: indexes, queries (every page through query-next-page), and the data
of Direct Vector Access indexes. Filters go to Databricks as ``filters_json``; rows come back as
objects keyed by column name (the last column is the similarity score)."""
from __future__ import annotations

import json
from urllib.parse import quote

from ..errors import ConnectorError

API = "/api/2.0/vector-search"


def _path(name: str, suffix: str = "") -> str:
    return f"{API}/indexes/{quote(name, safe='')}{suffix}"


def _endpoints(session) -> list:
    found, _ = session.paginate(f"{API}/endpoints", items="endpoints", require=("name",))
    return [e["name"] for e in found]


def _indexes(session, endpoints, max_items=None):
    out, truncated = [], False
    for name in endpoints:
        left = None if max_items is None else max_items - len(out)
        if left is not None and left <= 0:
            truncated = True
            break
        found, cut = session.paginate(f"{API}/indexes", items="vector_indexes", params={"endpoint_name": name},
                                      max_items=left)
        out.extend(found)
        truncated = truncated or cut
    return out, truncated


def list_vector_search_indexes(session, inputs):
    endpoints = [inputs["endpoint_name"]] if inputs.get("endpoint_name") else _endpoints(session)
    found, truncated = _indexes(session, endpoints, inputs.get("max_items"))
    return {"vector_indexes": found, "count": len(found), "truncated": truncated}


def select_vector_search_index(session, inputs):
    found, _ = _indexes(session, _endpoints(session), 1000)
    return [{"label": f"{i['name']} ({i.get('endpoint_name', '?')})", "value": i["name"]} for i in found if i.get("name")]


def get_vector_search_index(session, inputs):
    return session.get(_path(inputs["index_name"]), require=("name",))


def query_vector_search_index(session, inputs):
    name = inputs["index_name"]
    body = {"columns": inputs["columns"], "num_results": inputs.get("num_results") or 10}
    if inputs.get("query_text"):
        body["query_text"] = inputs["query_text"]
    if inputs.get("query_vector"):
        body["query_vector"] = inputs["query_vector"]
    if inputs.get("filters"):
        body["filters_json"] = json.dumps(inputs["filters"])
    for key in ("score_threshold", "query_type"):
        if inputs.get(key) is not None:
            body[key] = inputs[key]
    endpoint = {}
    columns = []

    def page(token):
        if token is None:
            doc = session.post(_path(name, "/query"), body, idempotent=True)
        else:
            if "name" not in endpoint:
                endpoint["name"] = get_vector_search_index(session, {"index_name": name}).get("endpoint_name")
            doc = session.post(_path(name, "/query-next-page"), {"endpoint_name": endpoint["name"],
                                                                  "page_token": token}, idempotent=True)
        cols = [c.get("name") for c in ((doc.get("manifest") or {}).get("columns") or []) if isinstance(c, dict)]
        if cols and not columns:
            columns.extend(cols)
        data = (doc.get("result") or {}).get("data_array") or []
        if not isinstance(data, list) or any(not isinstance(r, list) or len(r) != len(columns) for r in data):
            raise ConnectorError("server_error", "The vector search answer's rows do not match its columns",
                                 hint="Run the step again; the answer did not have Databricks' shape.")
        return {"rows": [dict(zip(columns, r)) for r in data], "next_page_token": doc.get("next_page_token")}

    rows, _ = session.pages(page, items="rows", next_token=lambda p: p.get("next_page_token"), what="vector query")
    return {"index_name": name, "columns": columns, "rows": rows, "row_count": len(rows)}


def _data_result(name: str, doc: dict) -> dict:
    status = doc.get("status") or "SUCCESS"
    result = doc.get("result") or {}
    if status == "FAILURE":
        raise ConnectorError("operation_failed", f"No row could be written to vector search index {name}",
                             details={"index_name": name, "failed_primary_keys": result.get("failed_primary_keys")},
                             hint="Each row needs the index's primary key and a vector of the index's dimension "
                                  "(or the text column it embeds).")
    return {"index_name": name, "status": status, "result": result}


def upsert_vector_search_data(session, inputs):
    name = inputs["index_name"]
    doc = session.post(_path(name, "/upsert-data"), {"inputs_json": json.dumps(inputs["rows"])}, idempotent=True)
    return _data_result(name, doc)


def delete_vector_search_data(session, inputs):
    name = inputs["index_name"]
    doc = session.request("DELETE", _path(name, "/delete-data"), params={"primary_keys": [str(k) for k in
                                                                                         inputs["primary_keys"]]},
                          idempotent=True)
    return _data_result(name, doc)


def sync_vector_search_index(session, inputs):
    name = inputs["index_name"]
    session.post(_path(name, "/sync"), {}, idempotent=True)
    return {"index_name": name, "synced": True}
