"""Vector search over real HTTP against the emulator: nearest neighbours by vector and by text
(embedded like the embeddings endpoint), filters, every page of a large query, upserts with
failed keys, deletes, a Delta Sync index synced from its SQL table, and the picker."""
import pytest

from databricks_connector.errors import ConnectorError

from tests.scenarios.vectorsearch import sync_index, text_index, vector_index


def test_query_by_vector_orders_by_similarity_and_reads_every_page(connector, conn, emulator):
    name = vector_index(emulator)
    emulator.config.update({"vector_search_page_size": 1})
    since = len(emulator.requests)
    out = connector.run("query_vector_search_index", conn, {"index_name": name, "columns": ["id"],
                                                            "query_vector": [1, 0, 0], "num_results": 3})
    assert [r["id"] for r in out["rows"]] == ["a", "b", "c"] and out["columns"] == ["id", "score"]
    scores = [r["score"] for r in out["rows"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(1.0)
    pages = [r for r in emulator.requests[since:] if r["path"].endswith("/query-next-page")]
    assert len(pages) == 2
    with pytest.raises(ConnectorError) as err:                 # the index's dimension is 3
        connector.run("query_vector_search_index", conn, {"index_name": name, "columns": ["id"], "query_vector": [1, 0]})
    assert err.value.status == 400


def test_query_by_text_with_filters(connector, conn, emulator):
    name = text_index(emulator)
    out = connector.run("query_vector_search_index", conn, {"index_name": name, "columns": ["id", "category"],
                                                            "query_text": "rotate token", "num_results": 2})
    assert {r["id"] for r in out["rows"]} == {"1", "3"}                 # the two texts about tokens
    only = connector.run("query_vector_search_index", conn, {"index_name": name, "columns": ["id"],
                                                             "query_text": "rotate token", "filters": {"category NOT": "auth"}})
    assert [r["id"] for r in only["rows"]] == ["2"]


def test_upsert_delete_and_failed_keys(connector, conn, emulator):
    name = vector_index(emulator)
    out = connector.run("upsert_vector_search_data", conn, {"index_name": name, "rows": [
        {"id": "d", "embedding": [0, 1, 0]}, {"id": "e", "embedding": [1, 2]}]})
    assert out["status"] == "PARTIAL_SUCCESS" and out["result"]["failed_primary_keys"] == ["e"]
    near = connector.run("query_vector_search_index", conn, {"index_name": name, "columns": ["id"],
                                                             "query_vector": [0, 1, 0], "num_results": 1})
    assert near["rows"][0]["id"] == "d"
    with pytest.raises(ConnectorError) as err:
        connector.run("upsert_vector_search_data", conn, {"index_name": name, "rows": [{"embedding": [0, 0, 1]}]})
    assert err.value.type == "operation_failed"
    connector.run("delete_vector_search_data", conn, {"index_name": name, "primary_keys": ["d", "a"]})
    left = connector.run("get_vector_search_index", conn, {"index_name": name})
    assert left["status"]["indexed_row_count"] == 2


def test_sync_reads_the_source_table_and_listing(connector, pat, emulator):
    name = sync_index(emulator)
    assert connector.run("get_vector_search_index", pat, {"index_name": name})["status"]["indexed_row_count"] == 0
    connector.run("sync_vector_search_index", pat, {"index_name": name})
    assert connector.run("get_vector_search_index", pat, {"index_name": name})["status"]["indexed_row_count"] > 0
    with pytest.raises(ConnectorError) as err:                 # a Delta Sync index takes no upserts
        connector.run("upsert_vector_search_data", pat, {"index_name": name, "rows": [{"x": 1}]})
    assert err.value.status == 400
    listed = connector.run("list_vector_search_indexes", pat, {})
    assert name in {i["name"] for i in listed["vector_indexes"]}
    assert {"label": f"{name} (vs-endpoint)", "value": name} in connector.pick("select_vector_search_index", pat, {})
