"""Benchmark: fetch a large SQL result from the emulator, four ways.

    python bench/bench_sql.py            # 1,000,000 rows x 5 columns (and 100,000 for the memory check)
    python bench/bench_sql.py --quick    # 200,000 / 20,000 rows

Variants, each in a fresh subprocess (time measured inside it around the fetch, peak memory from
the child's own VmHWM):
  action-inline  execute_sql_statement returning every row (Result Shape: arrays)
  action-file    execute_sql_statement writing every row to a JSON Lines file (Output File)
  loop           a plain sequential `requests` loop: POST the statement, then GET each chunk in turn
  sdk            the official databricks-sdk's execute_statement + get_statement_result_chunk_n loop
                 (only when databricks-sdk is importable)
once with the emulator's network unshaped and once shaped to 30 ms per request and 50 MB/s per
connection (the emulator Config's sql_shape_latency_seconds / sql_shape_bandwidth_bytes_per_second).

The emulator runs in its own process with its query result cache on, so every variant fetches the
same ready result (the SQL engine's own time is not what is measured) and INLINE's 25 MiB limit
raised so the plain loop can read the whole result through the chunk endpoint.
Prints figures only; it is not a test.

Peak memory is the child's VmHWM (ru_maxrss would include the parent's RSS at fork), so it includes the interpreter and imports (~45-60 MiB)
and glibc's allocator behaviour: with several download threads its dynamic mmap threshold keeps
some freed chunk buffers in per-thread arenas, which moves the file variant's 1M/100k ratio by a
few percent between runs (MALLOC_MMAP_THRESHOLD_=131072 pins it near 1.09x).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STATEMENT = ("SELECT id, id * 2 AS twice, 'name-' || id AS name, id % 7 = 0 AS flag, "
             "CAST(id AS DOUBLE) / 4 AS quarter FROM range({n})")


# --------------------------------------------------------------------------- child side

def _child(args) -> None:
    import resource

    conn = json.loads(args.conn)
    n = args.rows
    statement = STATEMENT.format(n=n)
    if args.variant.startswith("action"):
        from databricks_connector.runner import Connector

        connector = Connector()
        connector.run("list_sql_warehouses", conn, {})          # load the manifest, open the connection
    started = time.perf_counter()
    if args.variant.startswith("action"):
        inputs = {"warehouse_id": args.warehouse, "statement": statement, "result_shape": "arrays",
                  "disposition": "INLINE", "timeout_seconds": 600}
        if args.variant == "action-file":
            fd, path = tempfile.mkstemp(suffix=".jsonl")
            os.close(fd)
            inputs["output_path"] = path
        out = connector.run("execute_sql_statement", conn, inputs)
        rows = out["row_count"]
        if args.variant == "action-file":
            os.unlink(path)
        else:
            assert len(out["rows"]) == n and out["rows"][-1][0] == n - 1
    elif args.variant == "loop":
        import requests

        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {conn['token']}"
        base = conn["host"] + "/api/2.0/sql/statements"
        doc = s.post(base, json={"warehouse_id": args.warehouse, "statement": statement, "wait_timeout": "50s"}).json()
        while doc["status"]["state"] in ("PENDING", "RUNNING"):
            time.sleep(0.5)
            doc = s.get(f"{base}/{doc['statement_id']}").json()
        assert doc["status"]["state"] == "SUCCEEDED", doc["status"]
        data = list(doc["result"].get("data_array") or [])
        nxt = doc["result"].get("next_chunk_index")
        while nxt is not None:
            chunk = s.get(f"{base}/{doc['statement_id']}/result/chunks/{nxt}").json()
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
    assert rows == n, (rows, n)
    peak = _peak_mib()
    print(json.dumps({"variant": args.variant, "rows": rows, "seconds": seconds, "peak_mib": peak}))


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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux -> MiB


# --------------------------------------------------------------------------- emulator side

def _serve(args) -> None:
    """The emulator in its own process (so the variants are forked from a small parent and their
    ru_maxrss is their own); SQL settings arrive as JSON lines on stdin."""
    from databricks_connector.emulator import Emulator
    from databricks_connector.emulator.warehouses import warehouses

    with Emulator() as emu:
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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _run_child(variant, conn, warehouse, rows) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", variant, "--conn", json.dumps(conn),
                           "--warehouse", warehouse, "--rows", str(rows)], capture_output=True, text=True, env=_env(),
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{proc.stderr[-3000:]}\n{proc.stdout[-1000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _have_sdk() -> bool:
    try:
        import databricks.sdk  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="200,000 rows (and 20,000 for the memory check)")
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
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=_env())
    try:
        hello = json.loads(server.stdout.readline())
        conn, wid = hello["conn"], hello["warehouse"]

        def settings(**values):
            server.stdin.write(json.dumps(values) + "\n")
            server.stdin.flush()
            server.stdout.readline()

        for n in (big, small):                       # warm the result cache: the engine runs once per size
            t = time.perf_counter()
            _run_child("loop", conn, wid, n)
            print(f"# prepared {n:,} rows in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        variants = ["action-inline", "action-file", "loop"] + (["sdk"] if _have_sdk() else [])
        results = {}
        for shaped in (False, True):
            settings(sql_shape_latency_seconds=0.03 if shaped else 0.0,
                     sql_shape_bandwidth_bytes_per_second=50e6 if shaped else 0.0)
            label = "shaped (30 ms/request, 50 MB/s/connection)" if shaped else "unshaped"
            print(f"\n== {big:,} rows x 5 columns, {label}")
            for v in variants:
                r = _run_child(v, conn, wid, big)
                results[(shaped, v)] = r
                print(f"  {v:14s} {r['seconds']:7.2f} s   peak {r['peak_mib']:7.1f} MiB", flush=True)
            if not _have_sdk():
                print("  sdk            (skipped: databricks-sdk is not installed)")
        settings(sql_shape_latency_seconds=0.0, sql_shape_bandwidth_bytes_per_second=0.0)
        small_file = _run_child("action-file", conn, wid, small)
        print(f"\n== to a file: {small:,} rows peak {small_file['peak_mib']:.1f} MiB; "
              f"{big:,} rows peak {results[(False, 'action-file')]['peak_mib']:.1f} MiB")
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    loop_u, act_u = results[(False, "loop")]["seconds"], results[(False, "action-inline")]["seconds"]
    loop_s, act_s = results[(True, "loop")]["seconds"], results[(True, "action-inline")]["seconds"]
    mem_ratio = results[(False, "action-file")]["peak_mib"] / small_file["peak_mib"]
    print("\n== ratios (targets)")
    print(f"  shaped:   loop / action-inline = {loop_s / act_s:5.2f}x   (target >= 1.5x faster)")
    print(f"  unshaped: action-inline / loop = {act_u / loop_u:5.2f}x   (target <= 1.15x the loop's time)")
    print(f"  file peak memory {big:,} / {small:,} rows = {mem_ratio:5.2f}x   (target <= 1.2x)")
    if "sdk" in variants:
        print(f"  shaped:   sdk / action-inline = {results[(True, 'sdk')]['seconds'] / act_s:5.2f}x")
        print(f"  unshaped: sdk / action-inline = {results[(False, 'sdk')]['seconds'] / act_u:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
