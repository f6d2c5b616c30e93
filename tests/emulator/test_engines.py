"""Tests for the emulator's embedded SQL engine and Python execution contexts."""
import datetime as dt
import os
import threading
import time
from decimal import Decimal

import pytest

from databricks_connector.emulator.pyrunner import (PythonContext, run_python_once, run_sql_once,
                                                    sql_command_results)
from databricks_connector.emulator.sqlengine import SqlEngine, SqlError


@pytest.fixture(scope="module")
def eng():
    e = SqlEngine()
    yield e
    e.close()


def one(eng, sql, params=None, **kw):
    r = eng.execute(sql, params, **kw)
    return r.columns, r.rows


# ------------------------------------------------------------------ SQL: parameters & typing


@pytest.mark.parametrize("ptype,value,type_name,type_text,expected", [
    ("STRING", "hello", "STRING", "STRING", "hello"),
    (None, "007", "STRING", "STRING", "007"),
    ("INT", "42", "INT", "INT", 42),
    ("INTEGER", "-7", "INT", "INT", -7),
    ("BIGINT", "9000000000", "LONG", "BIGINT", 9000000000),
    ("LONG", "1", "LONG", "BIGINT", 1),
    ("SMALLINT", "12", "SHORT", "SMALLINT", 12),
    ("TINYINT", "3", "BYTE", "TINYINT", 3),
    ("DOUBLE", "1.25", "DOUBLE", "DOUBLE", 1.25),
    ("FLOAT", "0.5", "FLOAT", "FLOAT", 0.5),
    ("DECIMAL(10,2)", "12.3", "DECIMAL", "DECIMAL(10,2)", Decimal("12.30")),
    ("BOOLEAN", "true", "BOOLEAN", "BOOLEAN", True),
    ("BOOLEAN", "false", "BOOLEAN", "BOOLEAN", False),
    ("DATE", "2024-02-29", "DATE", "DATE", dt.date(2024, 2, 29)),
    ("TIMESTAMP", "2024-01-02 03:04:05.123", "TIMESTAMP", "TIMESTAMP", dt.datetime(2024, 1, 2, 3, 4, 5, 123000)),
    ("TIMESTAMP", "2024-01-02T03:04:05Z", "TIMESTAMP", "TIMESTAMP", dt.datetime(2024, 1, 2, 3, 4, 5)),
])
def test_parameter_types(eng, ptype, value, type_name, type_text, expected):
    p = {"name": "x", "value": value}
    if ptype:
        p["type"] = ptype
    cols, rows = one(eng, "SELECT :x AS v", [p])
    assert cols[0]["name"] == "v"
    assert cols[0]["type_name"] == type_name and cols[0]["type_text"] == type_text
    assert rows == [(expected,)] and type(rows[0][0]) is type(expected)
    if type_name == "DECIMAL":
        assert cols[0]["type_precision"] == 10 and cols[0]["type_scale"] == 2


def test_null_parameter_and_errors(eng):
    cols, rows = one(eng, "SELECT :n AS n", [{"name": "n", "value": None, "type": "INT"}])
    assert cols[0]["type_name"] == "INT" and rows == [(None,)]
    with pytest.raises(SqlError) as ei:
        eng.execute("SELECT :x + 1", [{"name": "y", "value": "1"}])
    assert "[UNBOUND_SQL_PARAMETER] Found the unbound parameter: x" in ei.value.message
    for t, v in (("INT", "abc"), ("DATE", "2024-13-45"), ("BOOLEAN", "maybe"), ("DECIMAL(3,1)", "12345")):
        with pytest.raises(SqlError) as ei:
            eng.execute("SELECT :x", [{"name": "x", "value": v, "type": t}])
        assert "INVALID_PARAMETER_VALUE" in ei.value.message
    # a parameter inside a string literal is not a marker
    assert one(eng, "SELECT ':x' AS s")[1] == [(":x",)]


def test_cast_and_literal_typing(eng):
    cols, rows = one(eng, "SELECT CAST('2024-01-05' AS DATE) d, CAST('2024-01-05 10:11:12' AS TIMESTAMP) ts, "
                          "CAST('1.239' AS DECIMAL(10,2)) m, CAST(1 AS BOOLEAN) b, CAST('5' AS INT) i, "
                          "CAST(7 AS STRING) s, CAST(3 AS DOUBLE) f, '2024-03-01'::date d2, "
                          "1 a, 1.5 c, 'x' e, true t, NULL z, 1/2 h, 10000000000 big, DATE'2020-02-02' dl")
    types = {c["name"]: c["type_text"] for c in cols}
    assert types == {"d": "DATE", "ts": "TIMESTAMP", "m": "DECIMAL(10,2)", "b": "BOOLEAN", "i": "INT",
                     "s": "STRING", "f": "DOUBLE", "d2": "DATE", "a": "INT", "c": "DECIMAL(2,1)", "e": "STRING",
                     "t": "BOOLEAN", "z": "VOID", "h": "DOUBLE", "big": "BIGINT", "dl": "DATE"}
    assert {c["name"]: c["type_name"] for c in cols}["z"] == "NULL"
    assert rows == [(dt.date(2024, 1, 5), dt.datetime(2024, 1, 5, 10, 11, 12), Decimal("1.24"), True, 5, "7",
                     3.0, dt.date(2024, 3, 1), 1, Decimal("1.5"), "x", True, None, 0.5, 10000000000,
                     dt.date(2020, 2, 2))]
    with pytest.raises(SqlError) as ei:
        eng.execute("SELECT CAST('abc' AS INT)")
    assert ei.value.sql_state == "22018"
    assert one(eng, "SELECT try_cast('abc' AS INT) AS v") == (
        [{"name": "v", "position": 0, "type_name": "INT", "type_text": "INT"}], [(None,)])


def test_functions(eng):
    cols, rows = one(eng, "SELECT upper('ab') u, lower('AB') l, concat('a', 1, 'b') c, coalesce(NULL, 3) co, "
                          "CASE WHEN 1 > 0 THEN 'y' ELSE 'n' END cs, length(repeat('ab', 1000)) r, "
                          "current_date() cd, current_timestamp() ct, rand() rn, uuid() id, 2 > 1 gt")
    t = {c["name"]: c["type_text"] for c in cols}
    assert t == {"u": "STRING", "l": "STRING", "c": "STRING", "co": "INT", "cs": "STRING", "r": "INT",
                 "cd": "DATE", "ct": "TIMESTAMP", "rn": "DOUBLE", "id": "STRING", "gt": "BOOLEAN"}
    r = rows[0]
    assert r[:6] == ("AB", "ab", "a1b", 3, "y", 2000)
    assert isinstance(r[6], dt.date) and isinstance(r[7], dt.datetime) and 0 <= r[8] < 1
    assert len(r[9]) == 36 and r[10] is True


def test_range_performance(eng):
    t0 = time.monotonic()
    cols, rows = one(eng, "SELECT count(*) AS n FROM range(1000000)")
    assert rows == [(1000000,)] and cols[0]["type_name"] == "LONG"
    cols, rows = one(eng, "SELECT id FROM range(100000)")
    assert len(rows) == 100000 and rows[-1] == (99999,) and cols[0]["type_name"] == "LONG"
    assert time.monotonic() - t0 < 5
    assert one(eng, "SELECT id FROM range(2, 10, 3)")[1] == [(2,), (5,), (8,)]
    assert one(eng, "SELECT id FROM range(5, 0, -2)")[1] == [(5,), (3,), (1,)]
    assert one(eng, "SELECT sum(id) s FROM range(:n)", [{"name": "n", "value": "5", "type": "INT"}])[1] == [(10,)]


def test_tables_and_dml():
    e = SqlEngine(seed_samples=False)
    try:
        e.execute("CREATE TABLE main.default.t (id INT, name STRING, amount DECIMAL(10,2), d DATE, "
                  "ts TIMESTAMP, ok BOOLEAN) USING DELTA")
        cols, rows = one(e, "INSERT INTO t VALUES (1, '007', 12.5, '2024-01-01', '2024-01-01 10:00:00', true), "
                            "(2, 'b', 3, DATE'2024-02-02', TIMESTAMP'2024-02-02 00:00:01', false)")
        assert [c["name"] for c in cols] == ["num_affected_rows", "num_inserted_rows"] and rows == [(2, 2)]
        cols, rows = one(e, "SELECT * FROM t ORDER BY id", schema="default")
        assert [(c["name"], c["type_text"]) for c in cols] == [
            ("id", "INT"), ("name", "STRING"), ("amount", "DECIMAL(10,2)"), ("d", "DATE"),
            ("ts", "TIMESTAMP"), ("ok", "BOOLEAN")]
        assert rows[0] == (1, "007", Decimal("12.50"), dt.date(2024, 1, 1), dt.datetime(2024, 1, 1, 10), True)
        assert rows[1][5] is False
        assert one(e, "UPDATE main.default.t SET amount = amount + 1 WHERE id = 1")[1] == [(1,)]
        cols, rows = one(e, "SELECT x.id, amount * 2 AS dbl, sum(amount) OVER () AS tot FROM default.t x WHERE ok")
        assert rows == [(1, Decimal("27.00"), Decimal("13.50"))]
        assert cols[1]["type_name"] == "DECIMAL"
        e.execute("CREATE TABLE t2 AS SELECT id, d FROM t")
        assert one(e, "SELECT * FROM t2 WHERE id = 2")[1] == [(2, dt.date(2024, 2, 2))]
        assert one(e, "WITH c AS (SELECT id, ok FROM t) SELECT * FROM c WHERE id = 2")[1] == [(2, False)]
        assert one(e, "INSERT INTO t (id, name) VALUES (:i, :n)", [{"name": "i", "value": "9", "type": "INT"},
                                                                   {"name": "n", "value": "nine"}])[1] == [(1, 1)]
        assert one(e, "SELECT a.name FROM main.default.t a JOIN t2 b ON a.id = b.id WHERE a.id = 1")[1] == [("007",)]
        assert one(e, "DELETE FROM t WHERE id = 2")[1] == [(1,)]
        names = [r[1] for r in e.execute("SHOW TABLES").rows]
        assert names == ["t", "t2"]
        e.execute("DROP TABLE t2")
        e.execute("DROP TABLE IF EXISTS t2")
        with pytest.raises(SqlError) as ei:
            e.execute("CREATE TABLE t (a INT)")
        assert ei.value.sql_state == "42P07"
    finally:
        e.close()


def test_sample_data(eng):
    cols, rows = one(eng, "SELECT * FROM samples.nyctaxi.trips")
    assert [c["name"] for c in cols] == ["tpep_pickup_datetime", "tpep_dropoff_datetime", "trip_distance",
                                         "fare_amount", "pickup_zip", "dropoff_zip"]
    assert [c["type_name"] for c in cols] == ["TIMESTAMP", "TIMESTAMP", "DOUBLE", "DOUBLE", "INT", "INT"]
    assert len(rows) == 200 and isinstance(rows[0][0], dt.datetime)
    assert rows == SqlEngine().execute("SELECT * FROM samples.nyctaxi.trips").rows  # deterministic


@pytest.mark.parametrize("sql,state,cls", [
    ("SELEC 1", "42601", "PARSE_SYNTAX_ERROR"),
    ("SELECT 1 FROM", "42601", "PARSE_SYNTAX_ERROR"),
    ("SELECT 'abc", "42601", "PARSE_SYNTAX_ERROR"),
    ("SELECT * FROM nope", "42P01", "TABLE_OR_VIEW_NOT_FOUND"),
    ("SELECT * FROM main.default.nope", "42P01", "TABLE_OR_VIEW_NOT_FOUND"),
    ("SELECT 1/0", "22012", "DIVIDE_BY_ZERO"),
    ("SELECT id % 0 FROM range(3)", "22012", "DIVIDE_BY_ZERO"),
    ("SELECT nope FROM range(1)", "42703", "UNRESOLVED_COLUMN"),
    ("SELECT nofunc(1)", "42883", "UNRESOLVED_ROUTINE"),
])
def test_errors(eng, sql, state, cls):
    with pytest.raises(SqlError) as ei:
        eng.execute(sql)
    assert ei.value.sql_state == state
    assert ei.value.message.startswith(f"[{cls}") and ei.value.error_code
    if cls == "PARSE_SYNTAX_ERROR":
        assert "Syntax error at or near" in ei.value.message
    if sql.endswith("nope"):
        assert "`nope`" in ei.value.message


def test_concurrent_and_cancel(eng):
    results, errors = [], []

    def work(i):
        try:
            results.append(eng.execute("SELECT count(*) FROM range(:n)",
                                       [{"name": "n", "value": str(1000 * (i + 1)), "type": "INT"}]).rows[0][0])
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results) == [1000 * (i + 1) for i in range(8)]
    ev = threading.Event()
    threading.Timer(0.2, ev.set).start()
    with pytest.raises(SqlError) as ei:
        eng.execute("SELECT count(*) FROM range(100000000000)", cancel_event=ev)
    assert ei.value.error_code == "CANCELLED"
    assert eng.execute("SELECT 1").rows == [(1,)]


def test_sql_command_results_shape(eng):
    r = sql_command_results(eng, "SELECT 1 AS a, CAST(2.5 AS DECIMAL(4,2)) b, DATE'2024-01-01' d, true t, "
                                 "'x' s, CAST('2024-01-01 01:02:03' AS TIMESTAMP) ts, id FROM range(2)")
    assert r["resultType"] == "table" and r["isJsonSchema"] is False and r["truncated"] is False
    assert [(c["name"], c["type"]) for c in r["schema"]] == [
        ("a", "int"), ("b", "decimal(4,2)"), ("d", "date"), ("t", "boolean"), ("s", "string"),
        ("ts", "timestamp"), ("id", "bigint")]
    assert r["data"][1] == [1, "2.50", "2024-01-01", True, "x", "2024-01-01 01:02:03", 1]
    err = run_sql_once(eng, "SELECT * FROM nope")
    assert err["resultType"] == "error" and err["summary"].startswith("[TABLE_OR_VIEW_NOT_FOUND]") and err["cause"]


# ------------------------------------------------------------------ Python contexts


@pytest.fixture
def ctx(eng):
    c = PythonContext(sql_engine=eng)
    yield c
    c.close()


def test_state_persists_and_output(ctx):
    assert ctx.execute("x = 41\nimport math") == {"resultType": "text", "data": ""}
    assert ctx.execute("x + 1") == {"resultType": "text", "data": "42"}
    assert ctx.execute("def f():\n    print('inside', math.floor(2.5))\nf()\nx")["data"] == "inside 2\n41"
    assert ctx.execute("print('a')\nNone")["data"] == "a"
    big = ctx.execute("print('z' * 3_000_000)")
    assert big["resultType"] == "text" and big.get("truncated") is True and len(big["data"]) <= 1 << 20


def test_exception_results(ctx):
    r = ctx.execute("def g():\n    raise ValueError('boom')\ng()")
    assert r["resultType"] == "error" and r["summary"] == "ValueError: boom"
    assert "Traceback" in r["cause"] and "<command-1>" in r["cause"] and "raise ValueError" in r["cause"]
    assert "_pyworker" not in r["cause"]
    r = ctx.execute("def broken(:")
    assert r["resultType"] == "error" and r["summary"].startswith("SyntaxError")
    assert ctx.execute("1 + 1")["data"] == "2"


def test_cancel_while_true(ctx):
    ctx.execute("y = 5")
    cmd = ctx.submit("while True:\n    pass")
    deadline = time.time() + 5
    while cmd.status != "Running" and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert not cmd.done()
    cmd.cancel()
    res = cmd.result(timeout=10)
    assert cmd.status == "Cancelled" and res["resultType"] == "error"
    assert ctx.alive and ctx.execute("y * 2")["data"] == "10"
    # a queued command can be cancelled before it runs
    c1 = ctx.submit("import time; time.sleep(0.5)")
    c2 = ctx.submit("y = 0")
    c2.cancel()
    assert c2.status == "Cancelled"
    assert c1.result(10)["resultType"] == "text"
    assert ctx.execute("y")["data"] == "5"


def test_timeout(ctx):
    r = ctx.execute("import time\nz = 1\ntime.sleep(30)", timeout=0.5)
    assert r["resultType"] == "error" and "CommandTimeout" in r["summary"]
    assert ctx.execute("z")["data"] == "1"


def test_contexts_isolated_and_env_scrubbed(eng):
    os.environ["EMU_SECRET_TEST"] = "x"
    try:
        a, b = PythonContext(), PythonContext()
        try:
            a.execute("v = 'a'")
            assert b.execute("'v' in globals()")["data"] == "False"
            assert a.execute("import os; os.getpid()")["data"] != b.execute("import os; os.getpid()")["data"]
            r = a.execute("import os\nprint(os.environ.get('EMU_SECRET_TEST'), sorted(os.environ))")
            assert r["data"].startswith("None ") and "EMU_SECRET_TEST" not in r["data"]
            assert a.execute("os.getcwd() == os.environ['HOME']")["data"] == "True"
        finally:
            a.close()
            b.close()
        assert not a.alive
    finally:
        del os.environ["EMU_SECRET_TEST"]


def test_spark_sql_bridge_and_run_once(ctx):
    r = ctx.execute("rows = spark.sql('SELECT id, CAST(id AS STRING) s FROM range(3)').collect()\n"
                    "[(r.id, r['s']) for r in rows]")
    assert r["data"] == "[(0, '0'), (1, '1'), (2, '2')]"
    r = ctx.execute("display(spark.sql('SELECT :d AS d', args={'d': 5}))")
    assert r["resultType"] == "table" and r["data"] == [[5]] and r["schema"][0]["type"] == "bigint"
    r = ctx.execute("spark.sql('SELECT * FROM nope')")
    assert r["resultType"] == "error" and "TABLE_OR_VIEW_NOT_FOUND" in r["summary"]
    assert run_python_once("print('once')", timeout=10) == {"resultType": "text", "data": "once"}


# ------------------------------------------------------------------ SQL: Databricks features on DuckDB


def test_complex_types_inline_values_and_aggregates(eng):
    cols, rows = one(eng, "SELECT collect_list(x) AS l, percentile_approx(x, 0.5) AS p, "
                          "regexp_extract('abc123', '([a-z]+)(\\\\d+)', 2) AS r, regexp_extract('abc123', '([a-z]+)') AS r1, "
                          "array(1, 2) AS a, map('k', 'v') AS m, named_struct('x', 1, 'y', 'b') AS s "
                          "FROM VALUES (3), (1), (2) AS t(x)")
    t = {c["name"]: (c["type_name"], c["type_text"]) for c in cols}
    assert t == {"l": ("ARRAY", "ARRAY<INT>"), "p": ("INT", "INT"), "r": ("STRING", "STRING"), "r1": ("STRING", "STRING"),
                 "a": ("ARRAY", "ARRAY<INT>"), "m": ("MAP", "MAP<STRING, STRING>"),
                 "s": ("STRUCT", "STRUCT<x: INT, y: STRING>")}
    assert sorted(rows[0][0]) == [1, 2, 3] and rows[0][1] == 2 and rows[0][2:4] == ("123", "abc")
    assert rows[0][4:] == ([1, 2], {"k": "v"}, {"x": 1, "y": "b"})
    from databricks_connector.emulator.sqlengine import format_value
    assert [format_value(v) for v in rows[0][4:]] == ["[1,2]", '{"k":"v"}', '{"x":1,"y":"b"}']
    assert one(eng, "SELECT x, row_number() OVER (PARTITION BY g ORDER BY x DESC) AS rn FROM VALUES (1, 'a'), "
                    "(2, 'a'), (3, 'b') AS t(x, g) QUALIFY rn = 1 ORDER BY x")[1] == [(2, 1), (3, 1)]
    assert one(eng, "VALUES (1, 'a'), (2, 'b')")[1] == [(1, "a"), (2, "b")]


def test_exact_decimals_and_overflow(eng):
    cols, rows = one(eng, "SELECT CAST(0.1 AS DECIMAL(10,1)) + CAST(0.2 AS DECIMAL(10,1)) AS s, "
                          "CAST(1234567890123456.78 AS DECIMAL(18,2)) AS big, sum(CAST(x AS DECIMAL(10,2))) AS tot "
                          "FROM VALUES (0.1), (0.2) AS t(x)")
    assert rows == [(Decimal("0.3"), Decimal("1234567890123456.78"), Decimal("0.30"))]
    assert cols[1]["type_precision"] == 18 and cols[1]["type_scale"] == 2
    for sql, cls in (("SELECT 9223372036854775807 + 1", "ARITHMETIC_OVERFLOW"),
                     ("SELECT CAST(2147483647 AS INT) * 2", "ARITHMETIC_OVERFLOW"),
                     ("SELECT sum(x) FROM VALUES (9223372036854775807), (1) AS t(x)", "ARITHMETIC_OVERFLOW"),
                     ("SELECT CAST(300 AS TINYINT)", "CAST_OVERFLOW"),
                     ("SELECT CAST('12345' AS DECIMAL(3,1))", "NUMERIC_VALUE_OUT_OF_RANGE")):
        with pytest.raises(SqlError) as ei:
            eng.execute(sql)
        assert ei.value.sql_state == "22003" and ei.value.message.startswith(f"[{cls}"), sql
    assert one(eng, "SELECT try_divide(1, 0) AS t, 7 div 2 AS d")[1] == [(None, 3)]


def test_merge_insert_overwrite_and_three_level_names():
    e = SqlEngine(seed_samples=False)
    try:
        e.execute("CREATE CATALOG sales")
        e.execute("CREATE SCHEMA sales.bronze COMMENT 'raw'")
        e.execute("CREATE TABLE sales.bronze.target (id INT, v STRING)")
        e.execute("INSERT INTO sales.bronze.target VALUES (1, 'a'), (2, 'b')")
        e.execute("CREATE TABLE sales.bronze.src AS SELECT * FROM VALUES (2, 'B'), (3, 'C') AS s(id, v)")
        cols, rows = one(e, "MERGE INTO target t USING src s ON t.id = s.id WHEN MATCHED THEN UPDATE SET * "
                            "WHEN NOT MATCHED THEN INSERT *", catalog="sales", schema="bronze")
        assert [c["name"] for c in cols] == ["num_affected_rows", "num_updated_rows", "num_deleted_rows",
                                             "num_inserted_rows"] and rows == [(2, 1, 0, 1)]
        assert one(e, "SELECT * FROM sales.bronze.target ORDER BY id")[1] == [(1, "a"), (2, "B"), (3, "C")]
        assert one(e, "INSERT OVERWRITE sales.bronze.target SELECT 9, 'z'")[1] == [(1, 1)]
        assert one(e, "USE CATALOG sales; USE SCHEMA bronze; SELECT current_catalog(), current_schema(), * "
                      "FROM target")[1] == [("sales", "bronze", 9, "z")]
        assert [r[0] for r in one(e, "SHOW CATALOGS")[1]] == ["hive_metastore", "main", "sales"]
        assert one(e, "SHOW SCHEMAS IN sales")[1] == [("bronze",), ("default",)]
        with pytest.raises(SqlError) as ei:
            e.execute("DROP SCHEMA sales.bronze")
        assert ei.value.message.startswith("[SCHEMA_NOT_EMPTY]")
        e.execute("DROP CATALOG sales CASCADE")
        with pytest.raises(SqlError) as ei:
            e.execute("SELECT * FROM sales.bronze.target")
        assert ei.value.sql_state == "42P01" and "`sales`.`bronze`.`target`" in ei.value.message
    finally:
        e.close()


def test_current_user_is_the_principal(eng):
    from databricks_connector.emulator.state import Principal

    sp = Principal("service_principal", "1", "6f1b1c38-6d4c-4c6e-9b4a-1d2a3b4c5d6e", "robot")
    assert one(eng, "SELECT current_user() AS u", principal=sp)[1] == [(sp.user_name,)]
    assert eng.session("someone@example.com").execute("SELECT current_user()").rows == [("someone@example.com",)]
    assert one(eng, "SELECT current_user()")[1] == [("emulator-user@example.com",)]


def test_sleep_and_configured_delays_are_interrupted_by_cancel(eng):
    ev = threading.Event()
    threading.Timer(0.3, ev.set).start()
    t = time.monotonic()
    with pytest.raises(SqlError) as ei:
        eng.execute("SELECT sleep(30) AS s", cancel_event=ev)
    assert ei.value.error_code == "CANCELLED" and time.monotonic() - t < 20
    assert one(eng, "SELECT sleep(0.05) AS s")[1] == [(Decimal("0.05"),)]
    with pytest.raises(SqlError) as ei:
        eng.execute("SELECT sleep(30)", timeout=0.3)
    assert ei.value.error_code == "DEADLINE_EXCEEDED"
    with pytest.raises(SqlError) as ei:
        eng.execute("SELECT sleep(id) FROM range(2)")
    assert "constant" in ei.value.message

    class Cfg:
        sql_delays = {"slow_marker": 30}

    e = SqlEngine(seed_samples=False, config=Cfg())
    try:
        ev = threading.Event()
        threading.Timer(0.3, ev.set).start()
        with pytest.raises(SqlError) as ei:
            e.execute("SELECT 'slow_marker' AS x", cancel_event=ev)
        assert ei.value.error_code == "CANCELLED"
        assert e.execute("SELECT 'fast' AS x").rows == [("fast",)]
    finally:
        e.close()


# ------------------------------------------------------------------ the interface for other areas


def test_catalog_interface_and_sql_see_the_same_objects():
    e = SqlEngine(seed_samples=False)
    try:
        assert [c["name"] for c in e.catalogs()] == ["hive_metastore", "main"]
        e.create_catalog("uc", comment="made by the API", owner="owner@example.com")
        e.create_schema("uc", "gold")
        info = e.create_table("uc.gold.orders", [
            {"name": "id", "type_text": "BIGINT", "nullable": False, "comment": "key"},
            {"name": "amount", "type_text": "DECIMAL(10,2)"}, {"name": "tags", "type_text": "ARRAY<STRING>"},
            {"name": "at", "type_text": "TIMESTAMP_NTZ"}], comment="orders", owner="owner@example.com")
        assert info["full_name"] == "uc.gold.orders" and info["table_type"] == "MANAGED"
        assert info["owner"] == "owner@example.com" and info["comment"] == "orders"
        assert [(c["name"], c["type_name"], c["type_text"], c["nullable"]) for c in info["columns"]] == [
            ("id", "LONG", "BIGINT", False), ("amount", "DECIMAL", "DECIMAL(10,2)", True),
            ("tags", "ARRAY", "ARRAY<STRING>", True), ("at", "TIMESTAMP_NTZ", "TIMESTAMP_NTZ", True)]
        assert info["columns"][0]["comment"] == "key" and info["columns"][1]["type_scale"] == 2
        # visible to SQL at once
        e.execute("INSERT INTO uc.gold.orders VALUES (1, 9.99, array('a'), TIMESTAMP_NTZ'2024-01-01 00:00:00')")
        cols, rows = one(e, "SELECT * FROM uc.gold.orders")
        assert rows == [(1, Decimal("9.99"), ["a"], dt.datetime(2024, 1, 1))] and cols[3]["type_text"] == "TIMESTAMP_NTZ"
        # tables made by SQL appear with Databricks-typed columns
        e.execute("CREATE TABLE uc.gold.daily (day DATE, total DECIMAL(12,2) COMMENT 'sum', n BIGINT) COMMENT 'per day'",
                  principal="writer@example.com")
        e.execute("CREATE VIEW uc.gold.big AS SELECT * FROM uc.gold.orders WHERE amount > 5")
        tables = {t["name"]: t for t in e.tables("uc", "gold")}
        assert sorted(tables) == ["big", "daily", "orders"]
        daily = tables["daily"]
        assert daily["owner"] == "writer@example.com" and daily["comment"] == "per day"
        assert [(c["name"], c["type_text"], c["comment"]) for c in daily["columns"]] == [
            ("day", "DATE", None), ("total", "DECIMAL(12,2)", "sum"), ("n", "BIGINT", None)]
        assert tables["big"]["table_type"] == "VIEW" and "data_source_format" not in tables["big"]
        # dropped by the API: gone for SQL
        e.drop_table("uc.gold.orders")
        assert e.table("uc.gold.orders") is None
        with pytest.raises(SqlError) as ei:
            e.execute("SELECT * FROM uc.gold.orders")
        assert ei.value.error_class == "TABLE_OR_VIEW_NOT_FOUND"
        with pytest.raises(SqlError) as ei:
            e.create_table("uc.nope.t", [{"name": "a", "type_text": "INT"}])
        assert ei.value.error_class == "SCHEMA_NOT_FOUND"
        with pytest.raises(SqlError) as ei:
            e.create_catalog("uc")
        assert ei.value.error_class == "CATALOG_ALREADY_EXISTS"
        with pytest.raises(SqlError) as ei:
            e.tables("nope", "default")
        assert ei.value.error_class == "NO_SUCH_CATALOG_EXCEPTION"
        e.drop_schema("uc", "gold", cascade=True)
        assert [s["name"] for s in e.schemas("uc")] == ["default"]
        e.drop_catalog("uc")
        assert "uc" not in [c["name"] for c in e.catalogs()]
    finally:
        e.close()


def test_permission_hook_and_statement_handlers():
    e = SqlEngine(seed_samples=False)
    calls, grants = [], []
    try:
        e.execute("CREATE TABLE main.default.secret (x INT)")
        e.execute("INSERT INTO main.default.secret VALUES (1)")

        def authorize(principal, privilege, securable_type, full_name):
            calls.append((principal, privilege, securable_type, full_name))
            return not (principal == "reader@example.com" and privilege != "SELECT") and \
                not (principal == "nobody@example.com")

        e.authorize = authorize
        assert e.execute("SELECT * FROM secret", principal="reader@example.com").rows == [(1,)]
        assert ("reader@example.com", "SELECT", "TABLE", "main.default.secret") in calls
        with pytest.raises(SqlError) as ei:
            e.execute("SELECT s.x FROM main.default.secret s", principal="nobody@example.com")
        err = ei.value
        assert err.error_class == "INSUFFICIENT_PERMISSIONS" and err.sql_state == "42501"
        assert "User does not have SELECT on Table 'main.default.secret'" in err.message
        for sql, priv in (("INSERT INTO secret VALUES (2)", "MODIFY"), ("DELETE FROM secret", "MODIFY"),
                          ("CREATE TABLE t2 (a INT)", "CREATE_TABLE"), ("DROP TABLE secret", "MANAGE"),
                          ("CREATE SCHEMA s2", "CREATE_SCHEMA"), ("CREATE CATALOG c2", "CREATE_CATALOG")):
            with pytest.raises(SqlError) as ei:
                e.execute(sql, principal="reader@example.com")
            assert ei.value.error_class == "INSUFFICIENT_PERMISSIONS" and priv.replace("_", " ") in ei.value.message, sql
        assert e.execute("SELECT count(*) FROM secret").rows == [(1,)]              # nothing was changed
        e.statement_handlers["GRANT"] = lambda principal, text: grants.append((principal, text))
        e.execute("GRANT SELECT ON TABLE main.default.secret TO `reader@example.com`", principal="admin@example.com")
        assert grants and grants[0][0] == "admin@example.com" and "GRANT SELECT" in grants[0][1]
        e.authorize = None
        assert e.execute("DROP TABLE secret", principal="reader@example.com").statement_type == "DROP"
    finally:
        e.close()


def test_engine_for_is_shared_and_closed_with_the_state():
    from databricks_connector.emulator.sqlengine import engine_for, session_for
    from databricks_connector.emulator.state import WorkspaceState

    st = WorkspaceState()
    lazy = session_for(st, "lazy@example.com")
    assert "sql_engine" not in st.areas                       # nothing started until a statement runs
    assert lazy.execute("SELECT current_user()").rows == [("lazy@example.com",)]
    assert engine_for(st) is engine_for(st) is st.areas["sql_engine"]
    st.close()
    with pytest.raises(SqlError):
        engine_for(st).execute("SELECT 1")


def test_the_connector_and_an_idle_emulator_never_import_the_engine():
    import subprocess
    import sys

    code = ("import sys, databricks_connector, databricks_connector.runner, databricks_connector.cli\n"
            "assert 'duckdb' not in sys.modules and 'sqlglot' not in sys.modules, 'connector'\n"
            "from databricks_connector.emulator import Emulator\n"
            "with Emulator() as emu:\n"
            "    import requests\n"
            "    r = requests.get(emu.url + '/api/2.0/sql/warehouses', headers={'Authorization': 'Bearer ' + emu.pat},\n"
            "                     verify=emu.connections()['personal_access_token'].get('ca_bundle') or True)\n"
            "    assert r.status_code == 200\n"
            "assert 'duckdb' not in sys.modules and 'sqlglot' not in sys.modules, 'emulator'\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_sql_commands_run_as_the_caller_and_cancel_interrupts_them(emu, api):
    emu.config.update({"context_start_seconds": 0.0, "command_queue_seconds": 0.0})
    cid = emu.state.add_cluster(cluster_name="sql-cmds", state="RUNNING")
    ctx = api.post("/api/1.2/contexts/create", {"clusterId": cid, "language": "sql"}).json()["id"]

    def run(command):
        return api.post("/api/1.2/commands/execute", {"clusterId": cid, "contextId": ctx, "language": "sql",
                                                      "command": command}).json()["id"]

    def status(cmd):
        return api.get("/api/1.2/commands/status", clusterId=cid, contextId=ctx, commandId=cmd).json()

    def until(cmd, states, polls=400):
        for _ in range(polls):
            doc = status(cmd)
            if doc["status"] in states:
                return doc
            time.sleep(0.05)
        raise AssertionError(doc)

    done = until(run("SELECT current_user() AS u, CAST(1.5 AS DECIMAL(3,1)) AS d, array(1, 2) AS a"), ("Finished",))
    assert done["results"]["resultType"] == "table"
    assert done["results"]["data"] == [["emulator-user@example.com", "1.5", [1, 2]]]
    assert [c["type"] for c in done["results"]["schema"]] == ["string", "decimal(3,1)", "array<int>"]
    slow = run("SELECT sleep(30) AS s")
    until(slow, ("Running",))
    api.post("/api/1.2/commands/cancel", {"clusterId": cid, "contextId": ctx, "commandId": slow})
    # without a real interrupt the command would stay Cancelling for the 30 s of its query
    assert until(slow, ("Cancelled",), polls=200)["status"] == "Cancelled"
    assert until(run("SELECT 1 AS one"), ("Finished",))["results"]["data"] == [[1]]


def test_sql_knobs_are_settable_from_the_command_line_emulator():
    import json as _json
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-m", "databricks_connector.emulator", "--port", "0",
                             "--set", 'sql_delays={"FROM samples": 30}', "--set", "warehouse_concurrency=3",
                             "--set", "statement_chunk_max_rows=100"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        info = _json.loads(proc.stdout.readline())
        cfg = info["config"]
        assert cfg["sql_delays"] == {"FROM samples": 30} and cfg["warehouse_concurrency"] == 3
        assert cfg["statement_chunk_max_rows"] == 100
        import requests
        h = {"Authorization": f"Bearer {info['pat']}"}
        ca = info.get("ca_bundle") or True                     # the emulator serves HTTPS with its own CA
        wid = requests.get(info["url"] + "/api/2.0/sql/warehouses", headers=h, timeout=30,
                           verify=ca).json()["warehouses"][0]["id"]
        doc = requests.post(info["url"] + "/api/2.0/sql/statements", headers=h, timeout=60, verify=ca, json={
            "warehouse_id": wid, "statement": "SELECT count(*) FROM samples.nyctaxi.trips", "wait_timeout": "5s",
            "on_wait_timeout": "CANCEL"}).json()
        assert doc["status"]["state"] == "CANCELED"          # the configured delay made it slow
    finally:
        proc.terminate()
        proc.wait(timeout=30)
