"""Scenarios of the vector search area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import scenario

MISSING = "main.default.no_such_index"
DOCS = [{"id": "1", "text": "rotate a personal access token", "category": "auth"},
        {"id": "2", "text": "create a cluster with autoscaling", "category": "compute"},
        {"id": "3", "text": "token rotation for service principals", "category": "auth"}]


def text_index(emulator) -> str:
    from databricks_connector.emulator import vectorsearch as vs

    return vs.add_index(emulator.state, f"main.default.vs_{uuid.uuid4().hex[:10]}", text_column="text", rows=DOCS)


def vector_index(emulator, dimension: int = 3) -> str:
    from databricks_connector.emulator import vectorsearch as vs

    return vs.add_index(emulator.state, f"main.default.vs_{uuid.uuid4().hex[:10]}", dimension=dimension, rows=[
        {"id": "a", "embedding": [1, 0, 0]}, {"id": "b", "embedding": [0.9, 0.1, 0]}, {"id": "c", "embedding": [0, 0, 1]}])


def sync_index(emulator) -> str:
    """A Delta Sync index of the NYC taxi sample (empty until synced), seeded in the emulator (no
    request: scenarios are also prepared inside fault windows)."""
    from databricks_connector.emulator import vectorsearch as vs

    return vs.add_index(emulator.state, f"main.default.vs_{uuid.uuid4().hex[:10]}", primary_key="tpep_pickup_datetime",
                        text_column="pickup_zip", source_table="samples.nyctaxi.trips")


def _missing(emulator, connector, conn):
    return {"index_name": MISSING}


@scenario("list_vector_search_indexes", check=lambda out, inputs, conn: out.get("count") == len(out["vector_indexes"]) >= 1)
def _list(emulator, connector, conn):
    text_index(emulator)
    return {"endpoint_name": "vs-endpoint"}


@scenario("get_vector_search_index", failing=_missing,
          check=lambda out, inputs, conn: out.get("name") == inputs["index_name"])
def _get(emulator, connector, conn):
    return {"index_name": text_index(emulator)}


@scenario("query_vector_search_index", retry_safe="natural",
          main=("POST", r"/api/2\.0/vector-search/indexes/[^/]+/query"),
          failing=lambda e, c, conn: {"index_name": MISSING, "columns": ["id"], "query_text": "token"},
          check=lambda out, inputs, conn: [r["id"] for r in out.get("rows", [])] == ["a", "b"])
def _query(emulator, connector, conn):
    return {"index_name": vector_index(emulator), "columns": ["id"], "query_vector": [1, 0, 0], "num_results": 2}


@scenario("upsert_vector_search_data", changes_state=True, applied=("vectorsearch/data/update",), retry_safe="natural",
          failing=lambda e, c, conn: {"index_name": MISSING, "rows": [{"id": "x"}]},
          check=lambda out, inputs, conn: out.get("status") == "SUCCESS")
def _upsert(emulator, connector, conn):
    return {"index_name": vector_index(emulator), "rows": [{"id": "d", "embedding": [0, 1, 0]}]}


@scenario("delete_vector_search_data", changes_state=True, applied=("vectorsearch/data/delete",), retry_safe="natural",
          failing=lambda e, c, conn: {"index_name": MISSING, "primary_keys": ["a"]},
          check=lambda out, inputs, conn: out.get("status") == "SUCCESS")
def _delete(emulator, connector, conn):
    return {"index_name": vector_index(emulator), "primary_keys": ["a", "c"]}


@scenario("sync_vector_search_index", changes_state=True, applied=("vectorsearch/sync",), retry_safe="natural",
          failing=_missing, check=lambda out, inputs, conn: out.get("synced") is True)
def _sync(emulator, connector, conn):
    return {"index_name": sync_index(emulator)}
