"""Result streaming (connector/results.py) over real HTTP: a tampering proxy on loopback in front of
the emulator drops rows or ``data_array`` from a chunk, answers another chunk, cuts a body in the
middle or hangs, and the step either gets every row (a bad chunk is fetched again) or fails with a
classified error, with no partial result and no file left behind. Also: result files (format from
the extension, the umask, atomic replacement, checks before the statement runs), the meaning of
``truncated``, and the ordered, bounded fetch mechanism itself."""
import _thread
import csv
import json
import os
import stat
import threading
import time

import pytest

from databricks_connector.errors import ConnectorError, InputError
from tests import scenarios as S
from tests.tamper import TamperProxy

API = "/api/2.0/sql/statements"
STMT = "SELECT id, 'r' || id AS name FROM range({n})"


@pytest.fixture
def sql(emulator):
    """Results cut into chunks of 10 rows (the emulator's knob; the conftest restores the Config)."""
    s = S.sql_settings(emulator)
    s.update({"statement_chunk_max_rows": 10})
    return s


@pytest.fixture(scope="module")
def wid(emulator):
    return S.seed_warehouse(emulator, "RUNNING")


@pytest.fixture
def proxy(emulator):
    with TamperProxy(emulator.url, ca_bundle=emulator.connections()["personal_access_token"].get("ca_bundle")) as p:
        yield p


@pytest.fixture
def via(proxy, pat):
    return proxy.connection(pat)


def run(connector, conn, **inputs):
    inputs.setdefault("poll_interval_seconds", 0.1)
    return connector.run("execute_sql_statement", conn, inputs)


def chunk(n):
    return rf"{API}/[^/]+/result/chunks/{n}$"


def listing(folder):
    return sorted(os.listdir(folder))


def drop_rows(first, last):
    """Remove rows first..last (absolute row numbers, chunks of 10) from the answer."""
    def fn(a):
        def edit(d):
            off = d.get("row_offset", 0)
            d["data_array"] = [r for k, r in enumerate(d["data_array"]) if not first <= off + k <= last]
        a.edit(edit)
    return fn


def drop_data(a):
    a.edit(lambda d: d.pop("data_array", None))


# --------------------------------------------------------------------------- chunks checked against the manifest

def test_a_chunk_without_data_array_is_fetched_again_and_every_row_arrives(connector, via, proxy, sql, wid):
    rule = proxy.on(chunk(2), drop_data, times=1)
    out = run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), result_shape="arrays")
    assert rule["hits"] == 1
    assert [r[0] for r in out["rows"]] == list(range(50)) and out["row_count"] == 50
    assert out["truncated"] is False and out["truncated_by"] is None
    assert len(proxy.requests(chunk(2))) == 2                      # the bad answer, then the good one


@pytest.mark.parametrize("tamper,why", [
    (drop_data, "no data_array"),
    (drop_rows(20, 29), "holds 0 rows"),
    (drop_rows(25, 25), "holds 9 rows"),
])
def test_a_chunk_that_stays_wrong_fails_the_step_with_a_classified_error(connector, via, proxy, sql, wid, tamper, why):
    proxy.on(chunk(2), tamper)
    with pytest.raises(ConnectorError) as err:
        run(connector, via, warehouse_id=wid, statement=STMT.format(n=50))
    e = err.value
    assert e.type == "server_error" and why in e.message and "chunk 2" in e.message
    assert e.details["chunk_index"] == 2 and e.details["statement_id"]
    assert e.details["expected"] == {"row_offset": 20, "row_count": 10}
    assert len(proxy.requests(chunk(2))) == 2                      # fetched once more before failing
    assert e.hint


def test_rows_missing_from_a_chunk_never_make_a_complete_looking_file(connector, via, proxy, sql, wid, tmp_path):
    """The report's case: rows 20-29 of 50 missing, yet the file looked complete (truncated: true)."""
    proxy.on(chunk(2), drop_rows(20, 29))
    target = tmp_path / "rows.jsonl"
    with pytest.raises(ConnectorError) as err:
        run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), output_path=str(target))
    assert err.value.type == "server_error"
    assert listing(tmp_path) == []                                 # no target, no part file


@pytest.mark.parametrize("edit,why", [
    (lambda d: d.update(chunk_index=3), "not chunk 2"),
    (lambda d: d.update(row_offset=30), "starts at row 30"),
    (lambda d: d.update(row_count=9, data_array=d["data_array"][:9]), "says 9 rows"),
    (lambda d: d.update(next_chunk_index=4), "next chunk is 4"),
    (lambda d: d["data_array"][3].append("extra"), "does not have 2 values"),
    (lambda d: d["data_array"].__setitem__(3, "not a row"), "not an array of values"),
])
def test_a_chunk_that_contradicts_the_manifest_is_refused(connector, via, proxy, sql, wid, edit, why):
    proxy.on(chunk(2), lambda a: a.edit(edit))
    with pytest.raises(ConnectorError) as err:
        run(connector, via, warehouse_id=wid, statement=STMT.format(n=50))
    assert err.value.type == "server_error" and why in err.value.message, err.value.message


def test_another_chunks_answer_is_refused(connector, via, proxy, emulator, sql, wid):
    """The proxy answers chunk 3's (well-formed) body when chunk 2 is asked for."""
    bodies = {}
    proxy.on(chunk(3), lambda a: bodies.setdefault(3, a.body))

    def swap(a):
        while 3 not in bodies:
            time.sleep(0.01)
        a.body = bodies[3]
    proxy.on(chunk(2), swap)
    with pytest.raises(ConnectorError) as err:
        run(connector, via, warehouse_id=wid, statement=STMT.format(n=50))
    assert err.value.type == "server_error" and "not chunk 2" in err.value.message


def test_the_last_chunk_claiming_more_chunks_is_refused(connector, via, proxy, sql, wid):
    proxy.on(chunk(4), lambda a: a.edit(lambda d: d.update(next_chunk_index=5)))
    with pytest.raises(ConnectorError) as err:
        run(connector, via, warehouse_id=wid, statement=STMT.format(n=50))
    assert "the manifest has 5 chunk(s)" in err.value.message


def test_the_first_chunk_in_the_statement_answer_is_checked_too(connector, via, proxy, sql, wid):
    """Chunk 0 travels in the statement's own answer; a short one is fetched again from the chunk endpoint."""
    def short_first(a):
        def edit(d):
            if d.get("result", {}).get("data_array"):
                d["result"]["data_array"] = d["result"]["data_array"][:5]
        a.edit(edit)
    proxy.on(rf"{API}$", short_first, method="POST")
    proxy.on(rf"{API}/[^/]+$", short_first)
    out = run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), result_shape="arrays")
    assert [r[0] for r in out["rows"]] == list(range(50))
    assert len(proxy.requests(chunk(0))) == 1


def test_a_body_cut_in_the_middle_is_fetched_again(connector, via, proxy, sql, wid):
    """Content-Length says more than arrives (the connection drops): the GET is repeated."""
    def cut(a):
        a.cut = len(a.body) // 2
    proxy.on(chunk(1), cut, times=1)
    out = run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), result_shape="arrays")
    assert [r[0] for r in out["rows"]] == list(range(50))
    assert len(proxy.requests(chunk(1))) == 2


def test_a_body_that_ends_early_without_a_length_is_not_taken_for_a_chunk(connector, via, proxy, sql, wid):
    """No Content-Length and the connection closes early: the body looks complete to HTTP, but it
    is not a whole chunk. Fetched again, then a classified error."""
    def short(a):
        a.short = len(a.body) - 7
    proxy.on(chunk(1), short, times=1)
    out = run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), result_shape="arrays")
    assert [r[0] for r in out["rows"]] == list(range(50))
    proxy.clear()
    proxy.on(chunk(1), short)
    with pytest.raises(ConnectorError) as err:
        run(connector, via, warehouse_id=wid, statement=STMT.format(n=50))
    assert err.value.type == "server_error" and "not valid JSON" in err.value.message


@pytest.mark.parametrize("fmt", ["JSON_ARRAY", "CSV"])
def test_a_download_with_rows_missing_is_refused(connector, via, proxy, sql, wid, fmt):
    """EXTERNAL_LINKS: the downloaded file of chunk 2 loses its last three rows on the way."""
    def lose(a):
        if fmt == "CSV":
            a.body = "".join(a.body.decode().splitlines(True)[:-3]).encode()
        else:
            a.body = json.dumps(json.loads(a.body)[:-3]).encode()
    rule = proxy.on(r"^/__link__/.*/2$", lose)
    with pytest.raises(ConnectorError) as err:
        run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), disposition="EXTERNAL_LINKS", format=fmt)
    assert err.value.type == "server_error" and "holds 7 rows" in err.value.message, err.value.message
    assert rule["hits"] == 2                                       # downloaded again before failing


def test_a_download_cut_short_is_fetched_again(connector, via, proxy, sql, wid):
    proxy.on(r"^/__link__/.*/3$", lambda a: setattr(a, "short", len(a.body) // 2), times=1)
    out = run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), disposition="EXTERNAL_LINKS",
              result_shape="arrays")
    assert [r[0] for r in out["rows"]] == list(range(50))


def test_get_statement_and_result_chunk_check_their_chunk(connector, via, proxy, pat, sql, wid):
    out = run(connector, pat, warehouse_id=wid, statement=STMT.format(n=50))
    sid = out["statement_id"]
    proxy.on(chunk(3), drop_rows(30, 32))
    with pytest.raises(ConnectorError) as err:
        connector.run("get_statement_result_chunk", via, {"statement_id": sid, "chunk_index": 3})
    assert err.value.type == "server_error" and "holds 7 rows" in err.value.message
    proxy.clear()
    proxy.on(chunk(3), drop_data, times=1)
    got = connector.run("get_statement_result_chunk", via, {"statement_id": sid, "chunk_index": 3})
    assert [r["id"] for r in got["rows"]] == list(range(30, 40)) and got["row_offset"] == 30
    assert got["next_chunk_index"] == 4
    first = connector.run("get_statement", via, {"statement_id": sid})
    assert [r["id"] for r in first["rows"]] == list(range(10)) and first["next_chunk_index"] == 1


# --------------------------------------------------------------------------- truncated means one thing

def test_truncated_says_who_cut_the_result(connector, pat, sql, wid):
    whole = run(connector, pat, warehouse_id=wid, statement=STMT.format(n=50), max_rows=50)
    assert whole["row_count"] == 50 and whole["truncated"] is False and whole["truncated_by"] is None
    capped = run(connector, pat, warehouse_id=wid, statement=STMT.format(n=50), max_rows=25)
    assert capped["row_count"] == 25 and capped["truncated"] is True and capped["truncated_by"] == "max_rows"
    at_edge = run(connector, pat, warehouse_id=wid, statement=STMT.format(n=50), max_rows=30)
    assert at_edge["row_count"] == 30 and at_edge["truncated_by"] == "max_rows"
    server = run(connector, pat, warehouse_id=wid, statement=STMT.format(n=50), row_limit=15)
    assert server["row_count"] == 15 and server["truncated"] is True and server["truncated_by"] == "server"
    assert server["manifest"]["truncated"] is True
    empty = run(connector, pat, warehouse_id=wid, statement="SELECT id FROM range(0)")
    assert empty["row_count"] == 0 and empty["rows"] == [] and empty["truncated"] is False


# --------------------------------------------------------------------------- result files

@pytest.mark.parametrize("name,fmt", [("rows.csv", "csv"), ("ROWS.CSV", "csv"), ("rows.jsonl", "jsonl"),
                                      ("rows.ndjson", "jsonl"), ("rows.json", "json"), ("rows.out", "jsonl")])
def test_the_file_format_follows_the_extension(connector, pat, sql, wid, tmp_path, name, fmt):
    target = tmp_path / name
    out = run(connector, pat, warehouse_id=wid, statement=STMT.format(n=25), output_path=str(target))
    assert out["output_format"] == fmt and out["row_count"] == 25 and out["bytes_written"] == target.stat().st_size
    text = target.read_text()
    if fmt == "csv":
        rows = list(csv.reader(text.splitlines()))
        assert rows[0] == ["id", "name"] and rows[1:] == [[str(i), f"r{i}"] for i in range(25)]
    elif fmt == "json":
        assert json.loads(text) == [{"id": i, "name": f"r{i}"} for i in range(25)]
    else:
        assert [json.loads(line) for line in text.splitlines()] == [{"id": i, "name": f"r{i}"} for i in range(25)]
    assert listing(tmp_path) == [name]


def test_a_format_given_wins_over_the_extension(connector, pat, sql, wid, tmp_path):
    target = tmp_path / "rows.csv"
    out = run(connector, pat, warehouse_id=wid, statement=STMT.format(n=3), output_path=str(target), output_format="jsonl")
    assert out["output_format"] == "jsonl" and json.loads(target.read_text().splitlines()[0]) == {"id": 0, "name": "r0"}
    empty = tmp_path / "none.json"
    run(connector, pat, warehouse_id=wid, statement="SELECT id FROM range(0)", output_path=str(empty))
    assert json.loads(empty.read_text()) == []


@pytest.mark.parametrize("name", ["rows.arrow", "rows.parquet"])
def test_an_arrow_or_parquet_file_holds_every_row(connector, pat, emulator, sql, wid, tmp_path, name):
    pa = pytest.importorskip("pyarrow")
    before = len(emulator.requests)
    target = tmp_path / name
    out = run(connector, pat, warehouse_id=wid, statement=STMT.format(n=50), output_path=str(target))
    assert out["output_format"] == name.split(".")[1] and out["row_count"] == 50
    assert out["bytes_written"] == target.stat().st_size
    body = _posts(emulator, before)[0]["json"]
    assert body["format"] == "ARROW_STREAM" and body["disposition"] == "EXTERNAL_LINKS"
    if name.endswith(".arrow"):
        import pyarrow.ipc

        table = pyarrow.ipc.open_stream(target.read_bytes()).read_all()
    else:
        import pyarrow.parquet

        table = pyarrow.parquet.read_table(target)
    assert table.column("id").to_pylist() == list(range(50))
    assert table.column("name").to_pylist() == [f"r{i}" for i in range(50)]
    assert listing(tmp_path) == [name]


def test_an_arrow_chunk_with_rows_missing_is_refused(connector, via, proxy, sql, wid, tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.ipc

    def lose(a):
        table = pyarrow.ipc.open_stream(a.body).read_all().slice(0, 7)
        sink = pa.BufferOutputStream()
        with pyarrow.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        a.body = sink.getvalue().to_pybytes()
    proxy.on(r"^/__link__/.*/2$", lose)
    for target in (tmp_path / "rows.arrow", None):
        with pytest.raises(ConnectorError) as err:
            run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), format="ARROW_STREAM",
                **({"output_path": str(target)} if target else {}))
        assert err.value.type == "server_error" and "holds 7 rows" in err.value.message
    assert listing(tmp_path) == []


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_users_umask(connector, pat, sql, wid, tmp_path, mask):
    old = os.umask(mask)
    try:
        target = tmp_path / "rows.jsonl"
        run(connector, pat, warehouse_id=wid, statement=STMT.format(n=3), output_path=str(target))
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask


def test_a_replaced_file_keeps_its_mode_and_is_replaced_whole(connector, pat, sql, wid, tmp_path):
    target = tmp_path / "rows.jsonl"
    target.write_text("old\n" * 1000)
    os.chmod(target, 0o640)
    out = run(connector, pat, warehouse_id=wid, statement=STMT.format(n=3), output_path=str(target))
    assert out["row_count"] == 3 and len(target.read_text().splitlines()) == 3
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_failure_midway_leaves_the_old_file_untouched(connector, via, proxy, sql, wid, tmp_path):
    target = tmp_path / "rows.csv"
    target.write_text("the previous result\n")
    proxy.on(chunk(4), drop_data)
    with pytest.raises(ConnectorError):
        run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), output_path=str(target))
    assert target.read_text() == "the previous result\n" and listing(tmp_path) == ["rows.csv"]


def test_an_interrupt_while_writing_leaves_no_file(connector, via, proxy, sql, wid, tmp_path):
    """KeyboardInterrupt (Ctrl-C) arrives while chunk 3 is on its way: neither the target nor a part file stays."""
    def interrupt(a):
        _thread.interrupt_main()
        a.delay = 2.0
    proxy.on(chunk(3), interrupt, times=1)
    target = tmp_path / "rows.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run(connector, via, warehouse_id=wid, statement=STMT.format(n=50), output_path=str(target))
    assert listing(tmp_path) == []


def test_sigint_to_the_cli_while_writing_leaves_no_file(emulator, proxy, pat, sql, wid, tmp_path):
    import signal
    import subprocess
    import sys

    arrived = threading.Event()

    def hang(a):
        arrived.set()
        a.delay = 20.0
    proxy.on(chunk(2), hang)
    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(proxy.connection(pat)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-m", "databricks_connector", "run", "execute_sql_statement",
                             f"warehouse_id={wid}", f"statement={STMT.format(n=50)}", "poll_interval_seconds=0.1",
                             "--output", str(out_dir / "rows.csv"), "--connection", str(conn_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert arrived.wait(60), "the CLI never asked for chunk 2"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert listing(out_dir) == []


def _posts(emulator, since):
    return [r for r in emulator.requests[since:] if r["method"] == "POST" and r["path"] == API]


def _bad_targets(tmp_path):
    folder_target = tmp_path / "a-folder"
    folder_target.mkdir()
    out = {"missing folder": (str(tmp_path / "no" / "such" / "rows.csv"), "does not exist"),
           "an existing folder": (str(folder_target), "is an existing folder"),
           "a folder separator at the end": (str(tmp_path / "x") + "/", "folder separator"),
           "a device": ("/dev/null", "not a regular file")}
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        os.chmod(locked, 0o500)
        out["an unwritable folder"] = (str(locked / "rows.csv"), "cannot write in")
        ro = tmp_path / "read-only.csv"
        ro.write_text("keep me")
        os.chmod(ro, 0o444)
        out["a read-only file"] = (str(ro), "read-only")
    else:
        out["an unwritable folder"] = ("/proc/rows.csv", "cannot write in")
    return out


def test_the_output_file_is_checked_before_the_statement_runs(connector, pat, emulator, sql, wid, tmp_path):
    """An INSERT-like statement must not run when its file will be refused: the natural retry would apply it twice."""
    for case, (path, why) in _bad_targets(tmp_path).items():
        before = len(emulator.requests)
        applied = S.applied(emulator, ["statements/execute"])
        with pytest.raises(InputError) as err:
            run(connector, pat, warehouse_id=wid, statement="SELECT 1 AS one", output_path=path)
        problems = err.value.problems
        assert [p["key"] for p in problems] == ["output_path"], case
        assert why in problems[0]["reason"], (case, problems)
        assert not _posts(emulator, before), f"{case}: the statement was sent"
        assert S.applied(emulator, ["statements/execute"]) == applied, case


def test_every_bad_input_is_named_together_with_the_file(connector, pat, emulator, wid, tmp_path):
    before = len(emulator.requests)
    with pytest.raises(InputError) as err:
        run(connector, pat, warehouse_id=wid, statement="SELECT 1", format="CSV", disposition="INLINE",
            parameters=[{"name": "bad name", "value": "1"}], output_path=str(tmp_path / "no" / "x.csv"))
    assert {p["key"] for p in err.value.problems} == {"disposition", "parameters", "output_path"}
    assert not _posts(emulator, before)


def test_the_cli_refuses_a_bad_output_before_any_request(emulator, pat, wid, tmp_path):
    import subprocess
    import sys

    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(pat))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    before = len(emulator.requests)
    proc = subprocess.run([sys.executable, "-m", "databricks_connector", "run", "execute_sql_statement",
                           f"warehouse_id={wid}", "statement=SELECT 1", "--output", str(tmp_path),
                           "--connection", str(conn_file)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    err = json.loads(proc.stdout)["error"]
    assert err["type"] == "invalid_input" and "Output File" in err["message"]
    assert not _posts(emulator, before)


# --------------------------------------------------------------------------- the mechanism itself

def test_ordered_keeps_order_bounds_concurrency_and_stops_on_the_first_error():
    from databricks_connector.results import ordered

    lock = threading.Lock()
    live = {"now": 0, "max": 0, "calls": 0}

    def fetch(i):
        with lock:
            live["now"] += 1
            live["calls"] += 1
            live["max"] = max(live["max"], live["now"])
        time.sleep(0.002 * (i % 3))          # finish out of order
        with lock:
            live["now"] -= 1
        if i == 37:
            raise ValueError("item 37")
        return i * i

    got = [(i, v) for i, v in ordered(fetch, range(30), workers=4)]
    assert got == [(i, i * i) for i in range(30)] and live["max"] <= 4
    live.update(calls=0)
    seen = []
    with pytest.raises(ValueError, match="item 37"):
        for i, v in ordered(fetch, range(200), workers=4):
            seen.append(i)
    assert seen == list(range(37)) and live["calls"] < 200


def test_the_line_encoder_writes_what_the_standard_encoder_writes():
    from hypothesis import given, settings, strategies as st

    from databricks_connector.results import Converter, LineEncoder

    cols = [{"name": "i", "type_name": "INT"}, {"name": "f", "type_name": "DOUBLE"}, {"name": "b", "type_name": "BOOLEAN"},
            {"name": "t", "type_name": "TIMESTAMP"}, {"name": "j", "type_name": "ARRAY"},
            {"name": "d", "type_name": "DECIMAL", "type_text": "DECIMAL(10,2)", "type_scale": 2},
            {"name": 'we"ird {name}\n', "type_name": "STRING"}, {"name": "i", "type_name": "STRING"}]
    text = st.one_of(st.none(), st.text(max_size=8))
    value = {"i": st.one_of(st.none(), st.integers(-2**70, 2**70).map(str), text),
             "f": st.one_of(st.none(), st.floats().map(repr), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400"]), text),
             "b": st.one_of(st.none(), st.sampled_from(["true", "false", "TRUE", "False", "yes"])),
             "t": st.one_of(st.none(), st.sampled_from(["2024-01-01 10:00:00", "2024-01-01T00:00:00.000Z"]), text),
             "j": st.one_of(st.none(), st.sampled_from(["[1,2]", '{"a": null}', "[", '"x"']), text),
             "d": st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str))}
    row = st.tuples(value["i"], value["f"], value["b"], value["t"], value["j"], value["d"], text, text).map(list)

    @settings(max_examples=300, deadline=None)
    @given(rows=st.lists(row, min_size=1, max_size=6), shape=st.sampled_from(["objects", "arrays"]),
           decimals=st.sampled_from(["string", "number"]))
    def check(rows, shape, decimals):
        convert = Converter(cols, shape=shape, decimals_as=decimals)
        lines = LineEncoder(convert)([list(r) for r in rows])
        standard = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in convert([list(r) for r in rows])]
        assert lines == standard

    check()


def test_the_cli_writes_the_format_of_the_extension_with_the_umask(emulator, pat, sql, wid, tmp_path):
    """#13: `--output rows.csv` with no Output Format writes CSV; the file gets the user's umask."""
    import subprocess
    import sys

    conn_file = tmp_path / "conn.json"
    conn_file.write_text(json.dumps(pat))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    target = tmp_path / "rows.csv"
    proc = subprocess.run([sys.executable, "-m", "databricks_connector", "run", "execute_sql_statement",
                           f"warehouse_id={wid}", f"statement={STMT.format(n=30)}", "--output", str(target),
                           "--connection", str(conn_file)], capture_output=True, text=True, env=env, timeout=120,
                          preexec_fn=lambda: os.umask(0o027))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["output_format"] == "csv" and out["row_count"] == 30 and out["output_path"] == str(target)
    rows = list(csv.reader(target.read_text().splitlines()))
    assert rows[0] == ["id", "name"] and len(rows) == 31
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_converters_and_encoders_are_generated_once_per_result_shape():
    from databricks_connector.results import Converter, LineEncoder

    cols = [{"name": "n", "type_name": "LONG"}, {"name": "s", "type_name": "STRING"}]
    a, b = Converter(cols, shape="arrays"), Converter(list(cols), shape="arrays")
    assert a._fast is b._fast                                   # one compiled function for the process
    assert Converter(cols, shape="objects")._fast is not a._fast
    assert LineEncoder(a)([["1", "x"]]) == ['[1,"x"]'] and LineEncoder(b)([["2", None]]) == ["[2,null]"]


def test_numbers_are_written_as_they_came_only_when_that_is_exactly_their_json():
    """The file path writes Databricks' own text of a number only when it equals what json.dumps
    writes for the converted value; random texts (and random floats' reprs) prove the checks."""
    from hypothesis import given, settings, strategies as st

    from databricks_connector.results import _canonical_ints, _json_floats, _json_ints, _line_float, _repr_floats

    texts = st.text(alphabet="0123456789.-+e ", min_size=1, max_size=18)
    floats = st.floats(allow_nan=False, allow_infinity=False).map(repr)
    ints = st.integers(-10**20, 10**20).map(str)

    @settings(max_examples=500, deadline=None)
    @given(values=st.lists(st.one_of(texts, floats, ints), min_size=1, max_size=6).map(tuple))
    def check(values):
        if _repr_floats(values):
            assert all(repr(float(v)) == v for v in values), values
        if _canonical_ints("\n".join(values), len(values)):
            assert all(str(int(v)) == v for v in values), values
        try:
            want = [_line_float(v) for v in values]
        except ValueError:
            want = None
        if want is not None:
            assert list(_json_floats(values)) == want
        try:
            want = [str(int(v)) for v in values]
        except ValueError:
            want = None
        if want is not None:
            assert [str(v) for v in _json_ints(values)] == want

    check()
