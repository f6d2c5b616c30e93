"""Benchmark: fetch a large SQL result from the emulator, to memory and to a file, against a plain
requests loop, the official SDK and the loopback byte rate of a single plain GET.

    python bench/bench_sql.py            # 1,000,000 rows x 5 columns (and 100,000 for the memory check)
    python bench/bench_sql.py --quick    # 200,000 / 20,000 rows, fewer rounds
    python bench/bench_sql.py --json-out FILE   # also write every figure and target verdict as JSON

Variants, each in a fresh subprocess (time measured inside it around the fetch, peak memory from
the child's own VmHWM):
  action-inline  execute_sql_statement returning every row (INLINE JSON_ARRAY, Result Shape arrays)
  action-file    the same rows written to a JSON Lines file (Output File)
  action-csv     the same rows written to a CSV file
  arrow-inline   EXTERNAL_LINKS + ARROW_STREAM, rows returned (needs pyarrow)
  arrow-file     EXTERNAL_LINKS + ARROW_STREAM written to an Arrow IPC file (needs pyarrow)
  loop           a plain sequential `requests` loop: POST the statement, then GET each chunk in turn
  sdk            the official databricks-sdk's execute_statement + get_statement_result_chunk_n loop
  get            one plain `requests.get` of the whole result as a single chunk: the loopback byte rate
once with the emulator's network unshaped and once shaped to 30 ms per request and 50 MB/s per
connection (the emulator Config's sql_shape_latency_seconds / sql_shape_bandwidth_bytes_per_second). The memory and
file variants run in interleaved rounds; their ratio is the median of the per-round ratios.

The emulator runs in its own process with its query result cache on, so every variant fetches the
same ready result (the SQL engine's own time is not what is measured) and INLINE's 25 MiB limit
raised so the plain loop can read the whole result through the chunk endpoint. MB/s is the bytes
on the wire (the chunk bodies; for links the downloaded files) per second. Prints figures only; it
is not a test.

Peak memory is the child's VmHWM (ru_maxrss would include the parent's RSS at fork), so it includes
the interpreter and imports (~45-60 MiB) and glibc's allocator behaviour: with several download
threads its dynamic mmap threshold keeps some freed chunk buffers in per-thread arenas, which moves
the file variant's 1M/100k ratio by a few percent between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STATEMENT = ("SELECT id, id * 2 AS twice, 'name-' || id AS name, id % 7 = 0 AS flag, "
             "CAST(id AS DOUBLE) / 4 AS quarter FROM range({n})")
ONE_CHUNK = STATEMENT + " "            # another statement text: its own cache entry, cut into one chunk
TARGETS = {"shaped_speedup": 1.5, "unshaped_vs_loop": 1.15, "file_memory": 1.2, "file_vs_memory": 1.2,
           "arrow_vs_get": 0.5}


# --------------------------------------------------------------------------- child side

def _child(args) -> None:
    conn = json.loads(args.conn)
    n = args.rows
    statement = STATEMENT.format(n=n)
    wire = None
    if args.variant.startswith(("action", "arrow")):
        from databricks_connector.runner import Connector

        connector = Connector()
        connector.run("list_sql_warehouses", conn, {})          # load the manifest, open the connection
    path = None
    cpu0 = time.process_time()
    if args.variant in ("action-file", "action-csv", "arrow-file"):
        fd, path = tempfile.mkstemp(suffix={"action-file": ".jsonl", "action-csv": ".csv"}.get(args.variant, ".arrow"))
        os.close(fd)
    started = time.perf_counter()
    if args.variant.startswith(("action", "arrow")):
        inputs = {"warehouse_id": args.warehouse, "statement": statement, "result_shape": "arrays",
                  "disposition": "INLINE", "timeout_seconds": 600}
        if args.variant.startswith("arrow"):
            inputs.update(disposition="EXTERNAL_LINKS", format="ARROW_STREAM")
        if path:
            inputs["output_path"] = path
        out = connector.run("execute_sql_statement", conn, inputs)
        rows = out["row_count"]
        wire = out["manifest"].get("total_byte_count")
        if not path:
            assert len(out["rows"]) == n and out["rows"][-1][0] == n - 1
    elif args.variant in ("loop", "get"):
        import requests

        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {conn['token']}"
        base = conn["host"] + "/api/2.0/sql/statements"
        text = ONE_CHUNK.format(n=n) if args.variant == "get" else statement
        doc = s.post(base, json={"warehouse_id": args.warehouse, "statement": text, "wait_timeout": "50s"}).json()
        while doc["status"]["state"] in ("PENDING", "RUNNING"):
            time.sleep(0.5)
            doc = s.get(f"{base}/{doc['statement_id']}").json()
        assert doc["status"]["state"] == "SUCCEEDED", doc["status"]
        if args.variant == "get":                              # the byte rate of one plain GET of the whole result
            assert doc["manifest"]["total_chunk_count"] == 1, doc["manifest"]["total_chunk_count"]
            best = None
            for _ in range(3):
                t = time.perf_counter()
                body = s.get(f"{base}/{doc['statement_id']}/result/chunks/0").content
                took = time.perf_counter() - t
                best = took if best is None else min(best, took)
            print(json.dumps({"variant": "get", "rows": n, "seconds": best, "bytes": len(body),
                              "peak_mib": _peak_mib()}))
            return
        wire = len(json.dumps(doc["result"]))
        data = list(doc["result"].get("data_array") or [])
        nxt = doc["result"].get("next_chunk_index")
        while nxt is not None:
            r = s.get(f"{base}/{doc['statement_id']}/result/chunks/{nxt}")
            wire += len(r.content)
            chunk = r.json()
            data.extend(chunk.get("data_array") or [])
            nxt = chunk.get("next_chunk_index")
        rows = len(data)
    elif args.variant == "sdk":
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.service.sql import Disposition, Format

        w = WorkspaceClient(host=conn["host"], token=conn["token"], auth_type="pat")
        resp = w.statement_execution.execute_statement(statement=statement, warehouse_id=args.warehouse,
                                                       wait_timeout="50s", disposition=Disposition.INLINE,
                                                       format=Format.JSON_ARRAY)
        while resp.status.state.value in ("PENDING", "RUNNING"):
            time.sleep(0.5)
            resp = w.statement_execution.get_statement(resp.statement_id)
        data = list(resp.result.data_array or [])
        nxt = resp.result.next_chunk_index
        while nxt is not None:
            chunk = w.statement_execution.get_statement_result_chunk_n(resp.statement_id, nxt)
            data.extend(chunk.data_array or [])
            nxt = chunk.next_chunk_index
        rows = len(data)
    else:
        raise SystemExit(f"unknown variant {args.variant}")
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    if path:
        os.unlink(path)
    assert rows == n, (rows, n)
    print(json.dumps({"variant": args.variant, "rows": rows, "seconds": seconds, "cpu": cpu, "peak_mib": _peak_mib(),
                      "bytes": wire}))


def _peak_mib() -> float:
    """This process's own peak RSS. VmHWM belongs to the process's memory map, which exec starts
    afresh; ru_maxrss would also carry the parent's RSS at fork into the child's figure."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux -> MiB


# --------------------------------------------------------------------------- emulator side

def _serve(args) -> None:
    """The emulator in its own process (so the variants are forked from a small parent and their
    memory is their own); SQL settings arrive as JSON lines on stdin."""
    from databricks_connector.emulator import Emulator
    from databricks_connector.emulator.warehouses import warehouses

    with Emulator(tls=False) as emu:                # plain HTTP on loopback: a handshake costs every client the same
        s = emu.config
        s.update({"sql_result_cache_seconds": 24 * 3600, "statement_inline_limit_bytes": 1 << 40})
        with emu.state.lock:
            wid = next(w["id"] for w in warehouses(emu.state).values() if w["state"] == "RUNNING")
        print(json.dumps({"conn": emu.connections()["personal_access_token"], "warehouse": wid}), flush=True)
        for line in sys.stdin:
            if line.strip():
                s.update(json.loads(line))
                print(json.dumps({"ok": True}), flush=True)


# --------------------------------------------------------------------------- parent side

def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _run_child(variant, conn, warehouse, rows) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", variant, "--conn", json.dumps(conn),
                           "--warehouse", warehouse, "--rows", str(rows)], capture_output=True, text=True, env=_env(),
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{proc.stderr[-3000:]}\n{proc.stdout[-1000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _have(module) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _rate(r, wire=None) -> str:
    b = r.get("bytes") or wire
    mbs = f"{b / r['seconds'] / 1e6:7.1f} MB/s" if b else "      - MB/s"
    return f"{r['rows'] / r['seconds'] / 1e6:5.2f} M rows/s {mbs}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="200,000 rows (and 20,000 for the memory check), 3 rounds")
    p.add_argument("--rounds", type=int, help="interleaved memory/file rounds per network (5; 3 with --quick)")
    p.add_argument("--json-out", help="write every figure and target verdict to this file as JSON")
    p.add_argument("--ratio-only", action="store_true", help="only the memory/file rounds, the plain loop and the memory check")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--conn", help=argparse.SUPPRESS)
    p.add_argument("--warehouse", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.variant = args.child
        _child(args)
        return 0
    if args.serve:
        _serve(args)
        return 0

    big, small = (200_000, 20_000) if args.quick else (1_000_000, 100_000)
    rounds = args.rounds or (3 if args.quick else 5)
    arrow = _have("pyarrow")
    sdk = _have("databricks.sdk")
    t_start = time.monotonic()
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=_env())
    results: dict = {}
    try:
        hello = json.loads(server.stdout.readline())
        conn, wid = hello["conn"], hello["warehouse"]

        def settings(**values):
            server.stdin.write(json.dumps(values) + "\n")
            server.stdin.flush()
            server.stdout.readline()

        def shape(shaped):
            settings(sql_shape_latency_seconds=0.03 if shaped else 0.0,
                     sql_shape_bandwidth_bytes_per_second=50e6 if shaped else 0.0)

        # Warm the result cache: the engine runs once per size and wire format.
        for n in (big, small):
            t = time.perf_counter()
            _run_child("loop", conn, wid, n)
            print(f"# prepared {n:,} rows in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        if arrow:
            _run_child("arrow-inline", conn, wid, big)
        settings(statement_chunk_max_bytes=1 << 40)
        results["get"] = _run_child("get", conn, wid, big)
        settings(statement_chunk_max_bytes=2 * 1024 * 1024)
        get_rate = results["get"]["bytes"] / results["get"]["seconds"]
        print(f"\n== one plain GET of the whole result in one chunk ({results['get']['bytes'] / 1e6:.1f} MB): "
              f"{get_rate / 1e6:.1f} MB/s (best of 3) - the loopback byte rate")

        ratios = {}
        for shaped in (False, True):
            shape(shaped)
            label = "shaped (30 ms/request, 50 MB/s/connection)" if shaped else "unshaped"
            print(f"\n== {big:,} rows x 5 columns, {label}")
            rs, cs = [], []
            for r in range(rounds):
                order = ["action-inline", "action-file"] if r % 2 == 0 else ["action-file", "action-inline"]
                got = {v: _run_child(v, conn, wid, big) for v in order}
                rs.append(got["action-file"]["seconds"] / got["action-inline"]["seconds"])
                cs.append(got["action-file"]["cpu"] / got["action-inline"]["cpu"])
                for v in ("action-inline", "action-file"):
                    results.setdefault((shaped, v), []).append(got[v])
            ratios[shaped] = statistics.median(rs)
            extra = ["action-csv", "loop"] + (["arrow-inline", "arrow-file"] if arrow else []) + (["sdk"] if sdk else [])
            extra = [v for v in extra if v == "loop" or not args.ratio_only]
            for v in extra:
                results[(shaped, v)] = [_run_child(v, conn, wid, big)]
            wire = results[(shaped, "loop")][0]["bytes"]
            for v in ["action-inline", "action-file"] + extra:
                runs = results[(shaped, v)]
                best = min(runs, key=lambda x: x["seconds"])
                med = dict(best, seconds=statistics.median(x["seconds"] for x in runs),
                           cpu=statistics.median(x.get("cpu", 0.0) for x in runs))
                results[(shaped, v)] = med
                print(f"  {v:14s} {med['seconds']:6.2f} s (CPU {med['cpu']:5.2f} s)  "
                      f"{_rate(med, None if v.startswith('arrow') else wire)}"
                      f"   peak {med['peak_mib']:7.1f} MiB" + (f"   ({len(runs)} rounds, median)" if len(runs) > 1 else ""),
                      flush=True)
            if not arrow:
                print("  arrow-*        (skipped: pyarrow is not installed; pip install '.[bench]')")
            if not sdk:
                print("  sdk            (skipped: databricks-sdk is not installed)")
            print(f"  to a file / to memory, median of {rounds} interleaved rounds: {ratios[shaped]:.2f}x "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in rs)}); client CPU {statistics.median(cs):.2f}x")
        shape(False)
        small_file = _run_child("action-file", conn, wid, small)
        print(f"\n== to a file: {small:,} rows peak {small_file['peak_mib']:.1f} MiB; "
              f"{big:,} rows peak {results[(False, 'action-file')]['peak_mib']:.1f} MiB")
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    loop_u, act_u = results[(False, "loop")]["seconds"], results[(False, "action-inline")]["seconds"]
    loop_s, act_s = results[(True, "loop")]["seconds"], results[(True, "action-inline")]["seconds"]
    mem_ratio = results[(False, "action-file")]["peak_mib"] / small_file["peak_mib"]
    verdicts = [
        (f"SQL {big:,} rows, shaped: at least 1.5x faster than a sequential requests loop",
         f"{loop_s / act_s:.2f}x ({act_s:.2f} vs {loop_s:.2f} s)", ">= 1.50x", loop_s / act_s >= TARGETS["shaped_speedup"]),
        (f"SQL {big:,} rows, unshaped: within 1.15x of the requests loop's time",
         f"{act_u / loop_u:.2f}x ({act_u:.2f} vs {loop_u:.2f} s)", "<= 1.15x", act_u / loop_u <= TARGETS["unshaped_vs_loop"]),
        (f"SQL to a file: peak memory for {big:,} rows within 1.2x of {small:,} rows",
         f"{mem_ratio:.2f}x ({results[(False, 'action-file')]['peak_mib']:.1f} vs {small_file['peak_mib']:.1f} MiB)",
         "<= 1.20x", mem_ratio <= TARGETS["file_memory"]),
    ]
    for shaped in (False, True):
        f, m = results[(shaped, "action-file")]["seconds"], results[(shaped, "action-inline")]["seconds"]
        verdicts.append((f"SQL {big:,} rows to a file within 1.2x of to memory, {'shaped' if shaped else 'unshaped'}",
                         f"{ratios[shaped]:.2f}x ({f:.2f} vs {m:.2f} s, medians)", "<= 1.20x",
                         ratios[shaped] <= TARGETS["file_vs_memory"]))
    if arrow and (False, "arrow-file") in results:
        a = results[(False, "arrow-file")]
        rate = a["bytes"] / a["seconds"] if a.get("bytes") else 0.0
        verdicts.append((f"SQL EXTERNAL_LINKS + ARROW_STREAM to an Arrow file: at least half the byte rate of one plain GET",
                         f"{rate / get_rate:.2f}x ({rate / 1e6:.0f} vs {get_rate / 1e6:.0f} MB/s; "
                         f"{a['rows'] / a['seconds'] / 1e6:.2f} M rows/s)", ">= 0.50x",
                         rate / get_rate >= TARGETS["arrow_vs_get"]))
    else:
        verdicts.append(("SQL EXTERNAL_LINKS + ARROW_STREAM to an Arrow file: at least half the byte rate of one plain GET",
                         "not measured (" + ("--ratio-only" if arrow else "pyarrow is not installed") + ")",
                         ">= 0.50x", False))
    print("\n== SQL targets\n")
    for t, m, lim, ok in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {t}: {m} (limit {lim})")
    if sdk and (True, "sdk") in results:
        print(f"\n  shaped:   sdk / action-inline = {results[(True, 'sdk')]['seconds'] / act_s:5.2f}x")
        print(f"  unshaped: sdk / action-inline = {results[(False, 'sdk')]['seconds'] / act_u:5.2f}x")
    print(f"\nbench/bench_sql.py took {time.monotonic() - t_start:.0f} s")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump({"results": {(f"{'shaped' if k[0] else 'unshaped'} {k[1]}" if isinstance(k, tuple) else k): v
                                   for k, v in results.items()},
                       "small_file": small_file, "file_vs_memory": {"unshaped": ratios[False], "shaped": ratios[True]},
                       "targets": [{"target": t, "measured": m, "limit": lim, "pass": ok} for t, m, lim, ok in verdicts]},
                      fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
