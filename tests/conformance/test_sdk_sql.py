"""The official SDK drives SQL warehouses and the Statement Execution API on the emulator."""
import os
import time
from datetime import timedelta

import pytest
import requests
from databricks.sdk.errors import NotFound
from databricks.sdk.service import sql

WAIT = timedelta(seconds=60)
CA = os.environ.get("REQUESTS_CA_BUNDLE") or True
ACTIVE = (sql.StatementState.PENDING, sql.StatementState.RUNNING)


def poll(get, active, *, deadline=60.0, pause=0.05):
    """What a user of the SDK writes (it has no statement waiter): GET until the state leaves
    ``active``; the deadline is a wide safety net, not a measurement."""
    end = time.monotonic() + deadline
    while True:
        res = get()
        if res.status.state not in active:
            return res
        assert time.monotonic() < end, f"still {res.status.state} after {deadline} s"
        time.sleep(pause)


@pytest.fixture(scope="module")
def warehouse(w):
    listed = list(w.warehouses.list())
    assert listed and all(wh.id and wh.name and wh.state for wh in listed)
    return listed[0]


def test_warehouse_stop_start_with_the_sdk_waiters(w, warehouse):
    got = w.warehouses.get(warehouse.id)
    assert (got.id, got.name) == (warehouse.id, warehouse.name)
    assert got.odbc_params and got.odbc_params.path and got.jdbc_url
    stopped = w.warehouses.stop(warehouse.id).result(timeout=WAIT)
    assert stopped.state == sql.State.STOPPED
    started = w.warehouses.start(warehouse.id).result(timeout=WAIT)
    assert started.state == sql.State.RUNNING and started.health
    with pytest.raises(NotFound):
        w.warehouses.get("0123456789abcdef")
    assert w.recorder.check() >= 4


def test_statement_inline_wait_and_typed_result(w, warehouse):
    res = w.statement_execution.execute_statement(
        statement="SELECT 1 AS one, 'x' AS s, CAST(2.5 AS DOUBLE) AS d, :p AS p", warehouse_id=warehouse.id,
        parameters=[sql.StatementParameterListItem(name="p", value="7", type="INT")], wait_timeout="10s")
    assert res.status.state == sql.StatementState.SUCCEEDED
    cols = res.manifest.schema.columns
    assert [c.name for c in cols] == ["one", "s", "d", "p"]
    assert cols[0].type_name == sql.ColumnInfoTypeName.INT and cols[2].type_name == sql.ColumnInfoTypeName.DOUBLE
    assert res.result.data_array == [["1", "x", "2.5", "7"]]
    assert res.manifest.format == sql.Format.JSON_ARRAY and res.manifest.total_row_count == 1
    cut = w.statement_execution.execute_statement(statement="SELECT * FROM range(10)", warehouse_id=warehouse.id,
                                                  row_limit=3, wait_timeout="10s")
    assert cut.manifest.truncated and len(cut.result.data_array) == 3
    failed = w.statement_execution.execute_statement(statement="SELECT * FROM no_such_table",
                                                     warehouse_id=warehouse.id, wait_timeout="10s")
    assert failed.status.state == sql.StatementState.FAILED and failed.status.error.message
    assert failed.status.error.error_code is not None
    assert w.recorder.check() == 3


def test_statement_poll_and_chunks(w, knobs, warehouse):
    knobs({"statement_chunk_max_rows": 40})
    res = w.statement_execution.execute_statement(
        statement="SELECT id, id * 2 AS twice FROM range(100) ORDER BY id", warehouse_id=warehouse.id,
        wait_timeout="0s")
    assert res.status.state in (sql.StatementState.PENDING, sql.StatementState.RUNNING, sql.StatementState.SUCCEEDED)
    res = poll(lambda: w.statement_execution.get_statement(res.statement_id), ACTIVE)
    assert res.status.state == sql.StatementState.SUCCEEDED
    m = res.manifest
    assert (m.total_row_count, m.total_chunk_count) == (100, 3)
    assert [c.row_count for c in m.chunks] == [40, 40, 20]
    rows = list(res.result.data_array)
    chunk = res.result
    while chunk.next_chunk_index is not None:
        chunk = w.statement_execution.get_statement_result_chunk_n(res.statement_id, chunk.next_chunk_index)
        assert chunk.chunk_index == len(rows) // 40
        rows += chunk.data_array
    assert rows == [[str(i), str(2 * i)] for i in range(100)]
    assert w.recorder.check() >= 3


def test_statement_external_links(w, knobs, warehouse):
    knobs({"statement_chunk_max_rows": 30})
    res = w.statement_execution.execute_statement(
        statement="SELECT id FROM range(50) ORDER BY id", warehouse_id=warehouse.id, wait_timeout="10s",
        disposition=sql.Disposition.EXTERNAL_LINKS, format=sql.Format.JSON_ARRAY)
    assert res.status.state == sql.StatementState.SUCCEEDED and res.manifest.total_chunk_count == 2
    links = list(res.result.external_links)
    while links[-1].next_chunk_index is not None:
        links += w.statement_execution.get_statement_result_chunk_n(res.statement_id,
                                                                    links[-1].next_chunk_index).external_links
    rows = []
    for link in links:
        assert link.expiration and link.external_link.startswith("http")
        # presigned: no Databricks credentials on the request
        got = requests.get(link.external_link, headers=link.http_headers or {}, timeout=10, verify=CA)
        got.raise_for_status()
        rows += got.json()
    assert rows == [[str(i)] for i in range(50)]
    with pytest.raises(NotFound):
        w.statement_execution.get_statement("01ef0000-0000-0000-0000-000000000000")
    assert w.recorder.check() >= 2


def test_warehouse_create_edit_delete_and_pages(w):
    made = w.warehouses.create(name="sdk-wh", cluster_size="2X-Small", max_num_clusters=1,
                               auto_stop_mins=10).result(timeout=WAIT)
    every = [wh.id for wh in w.warehouses.list()]
    assert made.id in every and [wh.id for wh in w.warehouses.list(page_size=1)] == every
    assert len([a for a in w.recorder.answers if a["path"] == "/api/2.0/sql/warehouses"
                and (a["query"] or {}).get("page_size") == 1]) >= len(every)
    assert made.state == sql.State.RUNNING and made.cluster_size == "2X-Small"
    w.warehouses.edit(made.id, name="sdk-wh-2", cluster_size="Small", max_num_clusters=2).result(timeout=WAIT)
    assert w.warehouses.get(made.id).name == "sdk-wh-2"
    w.warehouses.delete(made.id)
    assert w.recorder.check() >= 4


def test_statement_cancel(w, warehouse):
    res = w.statement_execution.execute_statement(statement="SELECT sleep(30) AS slept",
                                                  warehouse_id=warehouse.id, wait_timeout="0s")
    w.statement_execution.cancel_execution(res.statement_id)
    final = poll(lambda: w.statement_execution.get_statement(res.statement_id), ACTIVE)
    assert final.status.state == sql.StatementState.CANCELED
    assert w.recorder.check() >= 3
