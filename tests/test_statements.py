"""SQL statements over real HTTP against the emulator: parameters, failures, timeouts with
cancel, multi-chunk results, EXTERNAL_LINKS through the loopback storage (no credentials, expired
links refreshed), asynchronous use, a stopped warehouse started by a statement, result files,
and a 100,000-row run through the CLI."""
import csv
import json
import os
import subprocess
import sys
import time

import pytest
import requests

from databricks_connector.emulator.statements import storage
from databricks_connector.emulator.warehouses import warehouses
from databricks_connector.errors import ConnectorError

API = "/api/2.0/sql/statements"


@pytest.fixture(autouse=True)
def sql(emulator):
    """The emulator's one Config (the conftest restores it after each test), fast warehouses."""
    emulator.config.update({"warehouse_start_seconds": 0.3, "warehouse_stop_seconds": 0.3})
    return emulator.config


@pytest.fixture
def wid(emulator):
    with emulator.state.lock:
        return next(w["id"] for w in warehouses(emulator.state).values() if w["name"] == "Starter Warehouse")


def _posts(emulator, since):
    return [r for r in emulator.requests[since:] if r["method"] == "POST" and r["path"] == API]


def run(connector, conn, **inputs):
    return connector.run("execute_sql_statement", conn, inputs)


# --------------------------------------------------------------------------- parameters and types

def test_parameters_of_each_type_and_values_converted(connector, conn, emulator, wid):
    before = len(emulator.requests)
    out = run(connector, conn, warehouse_id=wid, statement=(
        "SELECT :i AS i, :big AS big, :d AS d, :dec AS dec, :b AS b, :dt AS dt, :ts AS ts, :s AS s, :n AS n, "
        ":auto_int AS auto_int, :auto_bool AS auto_bool, :auto_double AS auto_double"),
        parameters=json.dumps([
            {"name": "i", "value": "7", "type": "INT"},
            {"name": "big", "value": "9007199254740993", "type": "BIGINT"},
            {"name": "d", "value": "2.5", "type": "DOUBLE"},
            {"name": "dec", "value": "12345.67", "type": "DECIMAL(10,2)"},
            {"name": "b", "value": "true", "type": "BOOLEAN"},
            {"name": "dt", "value": "2024-02-29", "type": "DATE"},
            {"name": "ts", "value": "2024-02-29 13:14:15", "type": "TIMESTAMP"},
            {"name": "s", "value": "it's"},
            {"name": "n", "value": None, "type": "INT"},
            {"name": "auto_int", "value": 42},
            {"name": "auto_bool", "value": False},
            {"name": "auto_double", "value": 0.25},
        ]))
    row = out["rows"][0]
    assert row["i"] == 7 and row["big"] == 9007199254740993 and row["d"] == 2.5
    assert row["dec"] == "12345.67" and row["b"] is True and row["dt"] == "2024-02-29"
    assert row["ts"].startswith("2024-02-29T13:14:15") and row["s"] == "it's" and row["n"] is None
    assert row["auto_int"] == 42 and row["auto_bool"] is False and row["auto_double"] == 0.25
    types = {c["name"]: c["type_name"] for c in out["columns"]}
    assert types["i"] == "INT" and types["dec"] == "DECIMAL" and types["ts"] == "TIMESTAMP"
    assert out["status"]["state"] == "SUCCEEDED" and out["row_count"] == 1 and out["truncated"] is False
    body = _posts(emulator, before)[0]["json"]
    assert body["warehouse_id"] == wid and body["disposition"] == "INLINE" and body["format"] == "JSON_ARRAY"
    assert body["on_wait_timeout"] == "CONTINUE" and body["wait_timeout"] == "50s"
    params = {p["name"]: p for p in body["parameters"]}
    assert params["n"] == {"name": "n", "type": "INT"}                       # NULL: no value
    assert params["auto_int"] == {"name": "auto_int", "value": "42", "type": "BIGINT"}
    assert params["auto_bool"] == {"name": "auto_bool", "value": "false", "type": "BOOLEAN"}
    assert params["s"] == {"name": "s", "value": "it's"}


def test_parameters_as_key_value_list_or_object(connector, pat, wid):
    out = run(connector, pat, warehouse_id=wid, statement="SELECT :a || :b AS ab",
              parameters=[{"key": "a", "value": "x"}, "b=y"])
    assert out["rows"] == [{"ab": "xy"}]
    out = run(connector, pat, warehouse_id=wid, statement="SELECT :a AS a", parameters={"a": "z"}, result_shape="arrays")
    assert out["rows"] == [["z"]]


def test_decimals_as_numbers_and_array_shape(connector, pat, wid):
    out = run(connector, pat, warehouse_id=wid, statement="SELECT CAST(1.25 AS DECIMAL(5,2)) AS d, CAST(7 AS DECIMAL(5,0)) AS w",
              decimals_as="number", result_shape="arrays")
    assert out["rows"] == [[1.25, 7]]


def test_bad_parameters_are_invalid_input_before_any_request(connector, pat, emulator, wid):
    before = len(emulator.requests)
    with pytest.raises(ConnectorError) as err:
        run(connector, pat, warehouse_id=wid, statement="SELECT 1", parameters=[{"name": "bad name", "value": "1"}, 5])
    assert err.value.type == "invalid_input" and len(err.value.details["inputs"]) == 2
    with pytest.raises(ConnectorError) as err:
        run(connector, pat, warehouse_id=wid, statement="SELECT 1", format="CSV", disposition="INLINE")
    assert err.value.type == "invalid_input" and err.value.details["inputs"][0]["key"] == "disposition"
    assert not _posts(emulator, before)


def test_arrow_without_pyarrow_is_a_clear_invalid_input(pat, wid):
    """In a process where pyarrow cannot be imported (whether or not it is installed here)."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\nsys.modules['pyarrow'] = None\nimport databricks_connector as dc\n"
            "try:\n    dc.run('execute_sql_statement', json.loads(sys.argv[1]), json.loads(sys.argv[2]))\n"
            "except dc.ConnectorError as e:\n    print(json.dumps(e.to_dict()))\n")
    inputs = {"warehouse_id": wid, "statement": "SELECT 1", "format": "ARROW_STREAM"}
    p = subprocess.run([sys.executable, "-c", code, json.dumps(pat), json.dumps(inputs)], capture_output=True,
                       text=True, timeout=120)
    doc = json.loads(p.stdout.strip().splitlines()[-1])
    err = doc.get("error", doc)
    assert err["type"] == "invalid_input" and "pyarrow" in err["message"], p.stdout + p.stderr[-1000:]


def test_arrow_stream_rows_match_json_array(connector, pat, sql, wid):
    pytest.importorskip("pyarrow")
    sql.update({"statement_chunk_max_rows": 4})
    stmt = ("SELECT id, CAST(id AS DECIMAL(10,2)) AS d, DATE'2024-01-01' AS dt, id % 2 = 0 AS b, "
            "CASE WHEN id = 3 THEN NULL ELSE 'x' END AS s, id / 4 AS f FROM range(10)")
    arrow = run(connector, pat, warehouse_id=wid, statement=stmt, format="ARROW_STREAM")
    plain = run(connector, pat, warehouse_id=wid, statement=stmt)
    assert arrow["rows"] == plain["rows"] and arrow["manifest"]["format"] == "ARROW_STREAM"


# --------------------------------------------------------------------------- failures and timeouts

def test_failed_statement_is_classified_with_sql_state(connector, conn, wid):
    with pytest.raises(ConnectorError) as err:
        run(connector, conn, warehouse_id=wid, statement="SELECT 1/0")
    e = err.value
    assert e.type == "operation_failed" and e.error_code == "BAD_REQUEST"
    assert e.details["sql_state"] == "22012" and e.details["state"] == "FAILED"
    assert "DIVIDE_BY_ZERO" in e.message and e.details["statement_id"]
    with pytest.raises(ConnectorError) as err:
        run(connector, conn, warehouse_id=wid, statement="SELEC 1")
    assert err.value.type == "operation_failed" and err.value.details["sql_state"] == "42601"


def test_unknown_warehouse_is_not_found(connector, pat):
    with pytest.raises(ConnectorError) as err:
        run(connector, pat, warehouse_id="0123456789abcdef", statement="SELECT 1")
    assert err.value.type == "not_found" and err.value.status == 404


def test_timeout_cancels_the_statement(connector, conn, emulator, sql, wid):
    cancels = emulator.state.applied["statements/cancel"]
    before = len(emulator.requests)
    with pytest.raises(ConnectorError) as err:
        run(connector, conn, warehouse_id=wid, statement="SELECT sleep(60) AS s", timeout_seconds=1,
            poll_interval_seconds=0.2)
    e = err.value
    sid = e.details["statement_id"]
    assert e.type == "timeout" and sid in e.message and "cancelled" in e.message
    assert _posts(emulator, before)[0]["json"]["wait_timeout"] == "0s"      # under 5 s: no server-side wait
    assert emulator.count("POST", f"{API}/{sid}/cancel") == 1
    assert emulator.state.applied["statements/cancel"] == cancels + 1
    st = connector.run("get_statement", conn, {"statement_id": sid})
    assert st["status"]["state"] == "CANCELED"


def test_timeout_can_return_the_statement_instead(connector, pat, emulator, sql, wid):
    out = run(connector, pat, warehouse_id=wid, statement="SELECT sleep(60) AS s", timeout_seconds=1, on_timeout="return",
              poll_interval_seconds=0.2)
    assert set(out) == {"statement_id", "status"} and out["status"]["state"] in ("PENDING", "RUNNING")
    assert emulator.count("POST", f"{API}/{out['statement_id']}/cancel") == 0
    cancelled = connector.run("cancel_statement", pat, {"statement_id": out["statement_id"]})
    assert cancelled == {"statement_id": out["statement_id"], "status": {"state": "CANCELED"}}


# --------------------------------------------------------------------------- chunks

def test_many_chunks_are_returned_whole_and_in_order(connector, conn, emulator, sql, wid):
    sql.update({"statement_chunk_max_rows": 1000})
    before = len(emulator.requests)
    out = run(connector, conn, warehouse_id=wid, statement="SELECT id, id * 2 AS twice FROM range(10000)",
              result_shape="arrays")
    assert out["row_count"] == 10000 and out["rows"] == [[i, 2 * i] for i in range(10000)]
    assert out["manifest"]["total_chunk_count"] == 10 and out["truncated"] is False
    chunk_gets = [r for r in emulator.requests[before:] if "/result/chunks/" in r["path"]]
    assert sorted(int(r["path"].rsplit("/", 1)[1]) for r in chunk_gets) == list(range(1, 10))   # chunk 0 came inline


def test_max_rows_fetches_only_the_chunks_it_needs(connector, pat, emulator, sql, wid):
    sql.update({"statement_chunk_max_rows": 1000})
    before = len(emulator.requests)
    out = run(connector, pat, warehouse_id=wid, statement="SELECT id FROM range(10000)", max_rows=2500)
    assert out["row_count"] == 2500 and out["rows"][-1] == {"id": 2499} and out["truncated"] is True
    assert len([r for r in emulator.requests[before:] if "/result/chunks/" in r["path"]]) == 2


def test_row_limit_truncates_on_the_server(connector, pat, emulator, wid):
    before = len(emulator.requests)
    out = run(connector, pat, warehouse_id=wid, statement="SELECT id FROM range(100)", row_limit=10)
    assert out["row_count"] == 10 and out["truncated"] is True and out["manifest"]["truncated"] is True
    assert _posts(emulator, before)[0]["json"]["row_limit"] == 10


def test_get_statement_result_chunk(connector, pat, sql, wid):
    sql.update({"statement_chunk_max_rows": 4})
    out = run(connector, pat, warehouse_id=wid, statement="SELECT id FROM range(10)", wait_for_result=False)
    sid = out["statement_id"]
    for _ in range(100):
        if connector.run("get_statement", pat, {"statement_id": sid})["status"]["state"] == "SUCCEEDED":
            break
        time.sleep(0.05)
    chunk = connector.run("get_statement_result_chunk", pat, {"statement_id": sid, "chunk_index": 2})
    assert chunk["rows"] == [{"id": 8}, {"id": 9}] and chunk["row_offset"] == 8 and chunk["next_chunk_index"] is None
    with pytest.raises(ConnectorError) as err:
        connector.run("get_statement_result_chunk", pat, {"statement_id": sid, "chunk_index": 3})
    assert err.value.type == "invalid_input"


# --------------------------------------------------------------------------- EXTERNAL_LINKS

@pytest.mark.parametrize("fmt", ["JSON_ARRAY", "CSV"])
def test_external_links_travel_without_credentials(connector, conn, emulator, sql, wid, fmt):
    sql.update({"statement_chunk_max_rows": 300,
                "statement_link_http_headers": {"x-amz-server-side-encryption-customer-algorithm": "AES256"}})
    store = storage(emulator.state)
    attempts, seen = store.auth_attempts, len(store.requests)
    out = run(connector, conn, warehouse_id=wid, disposition="EXTERNAL_LINKS", format=fmt, result_shape="arrays",
              statement="SELECT id, CASE WHEN id % 3 = 0 THEN NULL ELSE 'v' || id END AS s, id % 2 = 0 AS even FROM range(1000)")
    assert out["row_count"] == 1000 and out["manifest"]["total_chunk_count"] == 4
    assert out["rows"][:4] == [[0, None, True], [1, "v1", False], [2, "v2", True], [3, None, False]]
    assert [r[0] for r in out["rows"]] == list(range(1000))
    downloads = store.requests[seen:]
    assert len(downloads) == 4
    assert all("authorization" not in {k.lower() for k in d["headers"]} for d in downloads)
    assert all(d["headers"].get("x-amz-server-side-encryption-customer-algorithm") == "AES256" for d in downloads)
    assert store.auth_attempts == attempts
    # and the storage really does refuse a workspace credential
    link = requests.get(emulator.url + f"{API}/{out['statement_id']}/result/chunks/1",
                        headers={"Authorization": f"Bearer {emulator.pat}"}).json()["external_links"][0]
    r = requests.get(link["external_link"], headers={"Authorization": f"Bearer {emulator.pat}", **link["http_headers"]})
    assert r.status_code == 403 and store.auth_attempts == attempts + 1


def test_expired_links_are_refreshed(connector, pat, emulator, sql, wid):
    sql.update({"statement_chunk_max_rows": 100, "statement_expire_next_links": 2})
    store = storage(emulator.state)
    expired = store.expired
    before = len(emulator.requests)
    out = run(connector, pat, warehouse_id=wid, statement="SELECT id FROM range(300)", disposition="EXTERNAL_LINKS")
    assert [r["id"] for r in out["rows"]] == list(range(300))
    assert store.expired == expired + 2
    chunk_gets = sorted(int(r["path"].rsplit("/", 1)[1]) for r in emulator.requests[before:] if "/result/chunks/" in r["path"])
    # chunks 1 and 2 fetched once each, plus one fresh link per expired one (which ones expire depends on timing)
    assert len(chunk_gets) == 4 and set(chunk_gets) == {0, 1, 2}


def test_result_over_the_inline_limit_is_fetched_through_links(connector, pat, emulator, sql, wid):
    sql.update({"statement_inline_limit_bytes": 2000})
    before = len(emulator.requests)
    out = run(connector, pat, warehouse_id=wid, statement="SELECT id FROM range(1000)")
    assert out["row_count"] == 1000 and out["rows"][999] == {"id": 999}
    assert [p["json"]["disposition"] for p in _posts(emulator, before)] == ["INLINE", "EXTERNAL_LINKS"]
    with pytest.raises(ConnectorError) as err:
        run(connector, pat, warehouse_id=wid, statement="SELECT id FROM range(1000)", disposition="INLINE")
    assert err.value.type == "operation_failed" and "Inline byte limit" in err.value.message


# --------------------------------------------------------------------------- asynchronous use, warehouses

def test_no_wait_then_get_statement_until_done(connector, conn, emulator, sql, wid):
    sql.update({"sql_delays": {"'done'": 0.5}})          # the knob by statement pattern
    before = len(emulator.requests)
    out = run(connector, conn, warehouse_id=wid, statement="SELECT 'done' AS s", wait_for_result="false")
    assert set(out) == {"statement_id", "status"} and out["status"]["state"] in ("PENDING", "RUNNING")
    assert _posts(emulator, before)[0]["json"]["wait_timeout"] == "0s"
    for _ in range(200):
        st = connector.run("get_statement", conn, {"statement_id": out["statement_id"]})
        if st["status"]["state"] not in ("PENDING", "RUNNING"):
            break
        time.sleep(0.05)
    assert st["status"]["state"] == "SUCCEEDED" and st["rows"] == [{"s": "done"}]
    assert st["manifest"]["total_row_count"] == 1


def test_statement_on_a_stopped_warehouse_starts_it(connector, pat, emulator, sql):
    sql.update({"warehouse_start_seconds": 1.0})
    h = {"Authorization": f"Bearer {emulator.pat}"}
    wid = requests.post(emulator.url + "/api/2.0/sql/warehouses", json={"name": "cold", "cluster_size": "Small"}, headers=h).json()["id"]
    with emulator.state.lock:
        wh = warehouses(emulator.state)[wid]
        wh["state"], wh["_transitions"] = "STOPPED", []
    starts = emulator.state.applied["warehouses/start"]
    out = connector.run("execute_sql_statement", pat, {"warehouse_id": wid, "statement": "SELECT 1 AS one",
                                                      "wait_for_result": False})
    assert out["status"]["state"] == "PENDING"
    assert requests.get(emulator.url + f"/api/2.0/sql/warehouses/{wid}", headers=h).json()["state"] == "STARTING"
    out = run(connector, pat, warehouse_id=wid, statement="SELECT 2 AS two", timeout_seconds=30)
    assert out["rows"] == [{"two": 2}]
    assert requests.get(emulator.url + f"/api/2.0/sql/warehouses/{wid}", headers=h).json()["state"] == "RUNNING"
    assert emulator.state.applied["warehouses/start"] == starts + 1
    assert emulator.count("POST", f"/api/2.0/sql/warehouses/{wid}/start") == 0


# --------------------------------------------------------------------------- files and the CLI

def test_output_file_jsonl_and_csv_hold_every_row(connector, conn, emulator, sql, wid, tmp_path):
    sql.update({"statement_chunk_max_rows": 700})
    stmt = "SELECT id, CASE WHEN id % 2 = 0 THEN 'even' END AS label, id % 5 = 0 AS fifth FROM range(5000)"
    path = tmp_path / "rows.jsonl"
    out = run(connector, conn, warehouse_id=wid, statement=stmt, output_path=str(path))
    assert "rows" not in out and out["row_count"] == 5000 and out["output_path"] == str(path)
    assert out["output_format"] == "jsonl" and out["bytes_written"] == path.stat().st_size
    lines = path.read_text().splitlines()
    assert len(lines) == 5000
    assert json.loads(lines[0]) == {"id": 0, "label": "even", "fifth": True}
    assert json.loads(lines[4999]) == {"id": 4999, "label": None, "fifth": False}
    assert [json.loads(line)["id"] for line in lines] == list(range(5000))

    path = tmp_path / "rows.csv"
    out = run(connector, conn, warehouse_id=wid, statement=stmt, output_path=str(path), output_format="csv",
              disposition="EXTERNAL_LINKS", format="CSV")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "label", "fifth"] and len(rows) == 5001
    assert rows[1] == ["0", "even", "true"] and rows[2] == ["1", "", "false"]
    assert [int(r[0]) for r in rows[1:]] == list(range(5000))
    assert sorted(os.listdir(tmp_path)) == ["rows.csv", "rows.jsonl"]                # no part file left


def test_output_file_needs_an_existing_folder(connector, pat, wid, tmp_path):
    with pytest.raises(ConnectorError) as err:
        run(connector, pat, warehouse_id=wid, statement="SELECT 1", output_path=str(tmp_path / "no" / "x.jsonl"))
    assert err.value.type == "invalid_input"


def test_cli_returns_100000_rows(emulator, wid, tmp_path):
    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(emulator.connections()["personal_access_token"]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-m", "databricks_connector", "run", "execute_sql_statement",
                           f"warehouse_id={wid}", "statement=SELECT id, 'r' || id AS name FROM range(100000)",
                           "result_shape=arrays", "--connection", str(conn_file)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    out = json.loads(proc.stdout)
    assert out["row_count"] == 100000 and len(out["rows"]) == 100000
    assert out["rows"][0] == [0, "r0"] and out["rows"][-1] == [99999, "r99999"]
    assert all(r[0] == i for i, r in enumerate(out["rows"]))

    target = tmp_path / "rows.csv"                                  # --output maps to Output File
    proc = subprocess.run([sys.executable, "-m", "databricks_connector", "run", "execute_sql_statement",
                           f"warehouse_id={wid}", "statement=SELECT id FROM range(1000)", "output_format=csv",
                           "--output", str(target), "--connection", str(conn_file)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["row_count"] == 1000
    assert target.read_text().split() == ["id"] + [str(i) for i in range(1000)]


# --------------------------------------------------------------------------- emulator contract

def test_emulator_statement_contract(emulator, sql, wid):
    h = {"Authorization": f"Bearer {emulator.pat}"}

    def post(**body):
        return requests.post(emulator.url + API, json={"warehouse_id": wid, "statement": "SELECT 1 AS x", **body}, headers=h)

    for bad in ("3s", "51s", "10", "ten"):
        r = post(wait_timeout=bad)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", bad
    assert post(format="CSV").status_code == 400                          # CSV only with EXTERNAL_LINKS
    assert post(statement="").status_code == 400
    r = requests.post(emulator.url + API, json={"warehouse_id": "ffffffffffffffff", "statement": "SELECT 1"}, headers=h)
    assert r.status_code == 404
    doc = post(wait_timeout="5s").json()
    assert doc["status"]["state"] == "SUCCEEDED" and doc["result"]["data_array"] == [["1"]]
    assert doc["manifest"]["schema"]["columns"][0]["type_name"] == "INT"
    sid = doc["statement_id"]
    emulator.state.clock.advance(sql.statement_results_lifetime_seconds + 1)
    try:
        assert requests.get(emulator.url + f"{API}/{sid}", headers=h).json()["status"]["state"] == "CLOSED"
        assert requests.get(emulator.url + f"{API}/{sid}/result/chunks/0", headers=h).status_code == 400
        emulator.state.clock.advance(sql.statement_purge_after_seconds)
        r = requests.get(emulator.url + f"{API}/{sid}", headers=h)
        assert r.status_code == 404
    finally:
        emulator.state.clock.advance(-(sql.statement_results_lifetime_seconds + 1 + sql.statement_purge_after_seconds))


def test_emulator_wait_timeout_with_cancel(emulator, sql, wid):
    h = {"Authorization": f"Bearer {emulator.pat}"}
    t = time.monotonic()
    doc = requests.post(emulator.url + API, json={"warehouse_id": wid, "statement": "SELECT sleep(30)",
                                                  "wait_timeout": "5s", "on_wait_timeout": "CANCEL"},
                        headers=h, timeout=60).json()
    took = time.monotonic() - t
    assert doc["status"]["state"] == "CANCELED" and 4.5 <= took < 25      # answered at the wait, not after the query


def test_converter_handles_nulls_non_finite_and_every_shape():
    from databricks_connector.results import Converter

    cols = [{"name": "i", "type_name": "INT"}, {"name": "f", "type_name": "DOUBLE"}, {"name": "b", "type_name": "BOOLEAN"},
            {"name": "t", "type_name": "TIMESTAMP"}, {"name": "j", "type_name": "ARRAY"},
            {"name": "d", "type_name": "DECIMAL", "type_text": "DECIMAL(10,2)", "type_scale": 2}, {"name": "i", "type_name": "STRING"}]
    clean = [["1", "1.5", "true", "2024-01-01 10:00:00", "[1,2]", "1.25", "x"]]
    messy = [["1", "NaN", "true", None, "[1]", "2.50", None], [None, "2", "false", "2024-01-01T00:00:00.000Z", None, None, "y"]]
    c = Converter(cols, shape="objects", decimals_as="number")
    assert c([list(r) for r in clean]) == [{"i": 1, "f": 1.5, "b": True, "t": "2024-01-01T10:00:00", "j": [1, 2], "d": 1.25, "i_2": "x"}]
    assert c([list(r) for r in messy]) == [
        {"i": 1, "f": "NaN", "b": True, "t": None, "j": [1], "d": 2.5, "i_2": None},
        {"i": None, "f": 2.0, "b": False, "t": "2024-01-01T00:00:00.000Z", "j": None, "d": None, "i_2": "y"}]
    a = Converter(cols, shape="arrays")
    assert a([list(r) for r in messy])[0] == [1, "NaN", True, None, [1], "2.50", None]


# --------------------------------------------------------------------------- asynchronous execution (emulator side)

def _h(emulator):
    return {"Authorization": f"Bearer {emulator.pat}"}


def _post(emulator, wid, statement, **body):
    r = requests.post(emulator.url + API, json={"warehouse_id": wid, "statement": statement, **body},
                      headers=_h(emulator), timeout=90)
    assert r.status_code == 200, r.text
    return r.json()


def _get(emulator, sid):
    r = requests.get(emulator.url + f"{API}/{sid}", headers=_h(emulator), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _until(emulator, sid, states, polls=600):
    """Poll (every 50 ms, at most ``polls`` times) until the statement is in one of ``states``."""
    for _ in range(polls):
        doc = _get(emulator, sid)
        if doc["status"]["state"] in states:
            return doc
        time.sleep(0.05)
    raise AssertionError(f"statement {sid} never reached {states}: {doc['status']}")


def _new_warehouse(emulator, name):
    r = requests.post(emulator.url + "/api/2.0/sql/warehouses", json={"name": f"{name}-{time.time_ns()}",
                                                                      "cluster_size": "Small"}, headers=_h(emulator))
    return r.json()["id"]


def test_wait_zero_answers_pending_and_polls_never_wait(emulator, wid):
    doc = _post(emulator, wid, "SELECT sleep(30) AS s", wait_timeout="0s")
    sid = doc["statement_id"]
    assert doc["status"] == {"state": "PENDING"} and "result" not in doc
    worst = 0.0
    try:
        running = _until(emulator, sid, ("RUNNING",))
        assert "manifest" not in running
        for _ in range(5):                       # a poll while the query runs answers at once
            t = time.monotonic()
            assert _get(emulator, sid)["status"]["state"] == "RUNNING"
            worst = max(worst, time.monotonic() - t)
        assert worst < 5                         # the query itself takes 30 s
    finally:
        requests.post(emulator.url + f"{API}/{sid}/cancel", headers=_h(emulator), timeout=30)
    assert _get(emulator, sid)["status"]["state"] == "CANCELED"
    fast = _post(emulator, wid, "SELECT 1 AS one", wait_timeout="0s")        # even a quick query is async
    assert fast["status"]["state"] == "PENDING"
    assert _until(emulator, fast["statement_id"], ("SUCCEEDED",))["result"]["data_array"] == [["1"]]


def test_wait_timeout_with_continue_returns_the_running_statement(emulator, wid):
    t = time.monotonic()
    doc = _post(emulator, wid, "SELECT sleep(30) AS s", wait_timeout="5s", on_wait_timeout="CONTINUE")
    try:
        assert doc["status"]["state"] == "RUNNING" and 4.5 <= time.monotonic() - t < 25
    finally:
        requests.post(emulator.url + f"{API}/{doc['statement_id']}/cancel", headers=_h(emulator), timeout=30)


def test_cancel_interrupts_a_running_query_for_real(emulator, sql):
    """With one slot per warehouse, the next statement can only run once the cancelled DuckDB query
    has really stopped (counting 10^12 rows would take far longer than this test waits)."""
    sql.update({"warehouse_concurrency": 1})
    wh = _new_warehouse(emulator, "cancel")
    doc = _post(emulator, wh, "SELECT count(*) AS n FROM range(1000000000000)", wait_timeout="0s")
    sid = doc["statement_id"]
    _until(emulator, sid, ("RUNNING",))
    cancels = emulator.state.applied["statements/cancel"]
    r = requests.post(emulator.url + f"{API}/{sid}/cancel", headers=_h(emulator), timeout=30)
    assert r.status_code == 200 and r.json() == {}
    assert _get(emulator, sid)["status"] == {"state": "CANCELED"}
    assert emulator.state.applied["statements/cancel"] == cancels + 1
    nxt = _post(emulator, wh, "SELECT 2 AS two", wait_timeout="50s")
    assert nxt["status"]["state"] == "SUCCEEDED" and nxt["result"]["data_array"] == [["2"]]
    requests.post(emulator.url + f"{API}/{sid}/cancel", headers=_h(emulator), timeout=30)   # no-op when ended
    assert _get(emulator, sid)["status"]["state"] == "CANCELED"


def test_statements_wait_pending_beyond_the_warehouse_concurrency(emulator, sql):
    sql.update({"warehouse_concurrency": 1})
    wh = _new_warehouse(emulator, "queue")
    first = _post(emulator, wh, "SELECT sleep(30) AS s", wait_timeout="0s")["statement_id"]
    _until(emulator, first, ("RUNNING",))
    second = _post(emulator, wh, "SELECT 'queued' AS q", wait_timeout="0s")["statement_id"]
    for _ in range(5):
        assert _get(emulator, second)["status"]["state"] == "PENDING"
        time.sleep(0.1)
    requests.post(emulator.url + f"{API}/{first}/cancel", headers=_h(emulator), timeout=30)
    assert _until(emulator, second, ("SUCCEEDED", "FAILED"))["result"]["data_array"] == [["queued"]]


def test_sql_delays_knob_is_a_config_field(emulator, sql, wid):
    r = requests.post(emulator.url + "/__emulator/config", json={"sql_delays": {r"FROM\s+range\(7\)": 30}},
                      timeout=30)
    assert r.status_code == 200 and r.json()["sql_delays"] == {r"FROM\s+range\(7\)": 30}
    doc = _post(emulator, wid, "SELECT id FROM range(7)", wait_timeout="5s", on_wait_timeout="CANCEL")
    assert doc["status"]["state"] == "CANCELED"
    assert _post(emulator, wid, "SELECT id FROM range(3)", wait_timeout="5s")["status"]["state"] == "SUCCEEDED"
    r = requests.post(emulator.url + "/__emulator/config", json={"sql_delay": {}}, timeout=30)
    assert r.status_code == 400 and "sql_delay" in r.json()["message"]


def test_bad_wait_timeouts_are_refused(emulator, wid):
    for bad in (5, "5", "0", "4s", "60s", "-5s", " 5s", None, "5 s"):
        r = requests.post(emulator.url + API, json={"warehouse_id": wid, "statement": "SELECT 1", "wait_timeout": bad},
                          headers=_h(emulator), timeout=30)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", bad
    for good in ("0s", "5s", "50s"):
        assert _post(emulator, wid, "SELECT 1", wait_timeout=good)["status"]["state"] in ("PENDING", "SUCCEEDED")


def test_current_user_is_the_caller(connector, conn, emulator, wid):
    out = run(connector, conn, warehouse_id=wid, statement="SELECT current_user() AS u, session_user() AS s")
    expected = conn.get("client_id") or "emulator-user@example.com"      # a service principal: its application id
    assert out["rows"] == [{"u": expected, "s": expected}]


def test_typed_manifest_complex_values_and_error_classes_over_http(emulator, wid):
    doc = _post(emulator, wid, "SELECT CAST(12.5 AS DECIMAL(10,2)) AS d, array(1, 2) AS a, map('k', 1.5D) AS m, "
                               "named_struct('x', 1, 'y', 'b') AS s, CAST(0.1 AS DECIMAL(3,1)) + 0.2 AS exact, "
                               "9007199254740993 AS big", wait_timeout="10s")
    cols = {c["name"]: c for c in doc["manifest"]["schema"]["columns"]}
    assert cols["d"]["type_name"] == "DECIMAL" and cols["d"]["type_text"] == "DECIMAL(10,2)"
    assert (cols["d"]["type_precision"], cols["d"]["type_scale"]) == (10, 2)
    assert (cols["a"]["type_name"], cols["a"]["type_text"]) == ("ARRAY", "ARRAY<INT>")
    assert (cols["m"]["type_name"], cols["m"]["type_text"]) == ("MAP", "MAP<STRING, DOUBLE>")
    assert (cols["s"]["type_name"], cols["s"]["type_text"]) == ("STRUCT", "STRUCT<x: INT, y: STRING>")
    assert cols["big"]["type_name"] == "LONG"
    assert doc["result"]["data_array"] == [["12.50", "[1,2]", '{"k":1.5}', '{"x":1,"y":"b"}', "0.3",
                                            "9007199254740993"]]
    for stmt, cls, state in (("SELECT * FROM main.default.no_such_table", "TABLE_OR_VIEW_NOT_FOUND", "42P01"),
                             ("SELECT 9223372036854775807 + 1", "ARITHMETIC_OVERFLOW", "22003"),
                             ("SELECT nope FROM range(1)", "UNRESOLVED_COLUMN", "42703"),
                             ("SELECT FROM WHERE", "PARSE_SYNTAX_ERROR", "42601")):
        st = _post(emulator, wid, stmt, wait_timeout="10s")["status"]
        assert st["state"] == "FAILED" and st["sql_state"] == state, st
        assert st["error"]["message"].startswith(f"[{cls}") and st["error"]["error_code"] == "BAD_REQUEST"


def test_catalog_and_schema_of_the_request_resolve_names(emulator, wid):
    schema = f"s{time.time_ns()}"
    assert _post(emulator, wid, f"CREATE SCHEMA main.{schema}", wait_timeout="10s")["status"]["state"] == "SUCCEEDED"
    assert _post(emulator, wid, "CREATE TABLE t AS SELECT 1 AS x", catalog="main", schema=schema,
                 wait_timeout="10s")["status"]["state"] == "SUCCEEDED"
    doc = _post(emulator, wid, "SELECT x, current_schema() AS s FROM t", schema=schema, wait_timeout="10s")
    assert doc["result"]["data_array"] == [["1", schema]]
    doc = _post(emulator, wid, f"SELECT x, current_schema() AS s FROM main.{schema}.t", wait_timeout="10s")
    assert doc["result"]["data_array"] == [["1", "default"]]
    st = _post(emulator, wid, "SELECT 1", schema="no_such_schema", wait_timeout="10s")["status"]
    assert st["state"] == "FAILED" and st["error"]["message"].startswith("[SCHEMA_NOT_FOUND]")
    _post(emulator, wid, f"DROP SCHEMA main.{schema} CASCADE", wait_timeout="10s")


def test_the_warehouse_statement_timeout_stops_a_long_query(emulator):
    wh = _new_warehouse(emulator, "timeout")
    r = requests.post(emulator.url + f"/api/2.0/sql/warehouses/{wh}/edit", json={"statement_timeout": 1},
                      headers=_h(emulator), timeout=30)
    assert r.status_code == 200, r.text
    doc = _post(emulator, wh, "SELECT sleep(30) AS s", wait_timeout="0s")
    st = _until(emulator, doc["statement_id"], ("FAILED", "SUCCEEDED", "CANCELED"))["status"]
    assert st["state"] == "FAILED" and st["error"]["error_code"] == "DEADLINE_EXCEEDED"
    assert st["error"]["message"].startswith("[QUERY_EXECUTION_TIMEOUT_EXCEEDED]") and st["sql_state"] == "57KD0"


def test_other_areas_submit_statements_like_the_api(emulator, wid):
    """The interface Genie-like areas use: a statement run as a principal, answered as the API does."""
    from databricks_connector.emulator.statements import statement_response, submit_statement

    sp = emulator.state.service_principals[emulator.client_id]["principal"]
    st = submit_statement(emulator.state, statement="SELECT current_user() AS u, :n AS n", warehouse_id=wid,
                          principal=sp, parameters=[{"name": "n", "value": "5", "type": "INT"}])
    assert st["done"].wait(60)
    doc = statement_response(emulator.state, st["id"])
    assert doc["status"]["state"] == "SUCCEEDED" and doc["result"]["data_array"] == [[emulator.client_id, "5"]]
    assert _get(emulator, st["id"]) == doc                                   # the same statement over HTTP
