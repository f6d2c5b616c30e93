"""Emulator SQL overheads: start-up, the SQL engine's first use, and the per-statement cost over
real HTTP (execute with a server-side wait, execute + poll, 1.2-free engine calls).

    python bench/emulator_sql.py [--statements 200]

Prints one JSON object of figures (milliseconds). Needs the [emulator] extra.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _child_startup() -> dict:
    """A fresh interpreter: import + start the emulator, then the first SQL statement."""
    code = (
        "import time, json\n"
        "t0 = time.perf_counter()\n"
        "from databricks_connector.emulator import Emulator\n"
        "emu = Emulator().start()\n"
        "t1 = time.perf_counter()\n"
        "import requests\n"
        "h = {'Authorization': 'Bearer ' + emu.pat}\n"
        "wid = requests.get(emu.url + '/api/2.0/sql/warehouses', headers=h).json()['warehouses'][0]['id']\n"
        "t2 = time.perf_counter()\n"
        "r = requests.post(emu.url + '/api/2.0/sql/statements', headers=h, json={'warehouse_id': wid,\n"
        "                  'statement': 'SELECT 1', 'wait_timeout': '30s'}).json()\n"
        "t3 = time.perf_counter()\n"
        "assert r['status']['state'] == 'SUCCEEDED', r\n"
        "emu.stop()\n"
        "print(json.dumps({'emulator_start_ms': (t1 - t0) * 1e3, 'first_statement_ms': (t3 - t2) * 1e3}))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ms(samples):
    samples = sorted(samples)
    return {"median": round(statistics.median(samples) * 1e3, 2),
            "p90": round(samples[int(len(samples) * 0.9) - 1] * 1e3, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--statements", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3, help="fresh interpreters for the start-up figures")
    args = ap.parse_args()

    starts = [_child_startup() for _ in range(args.runs)]
    figures = {"emulator_start_ms": round(statistics.median(s["emulator_start_ms"] for s in starts), 1),
               "first_statement_ms (engine created)": round(statistics.median(s["first_statement_ms"]
                                                                                for s in starts), 1)}

    import requests

    from databricks_connector.emulator import Emulator

    with Emulator() as emu:
        h = {"Authorization": f"Bearer {emu.pat}"}
        s = requests.Session()
        s.headers.update(h)
        wid = s.get(emu.url + "/api/2.0/sql/warehouses").json()["warehouses"][0]["id"]
        api = emu.url + "/api/2.0/sql/statements"
        s.post(api, json={"warehouse_id": wid, "statement": "SELECT 1", "wait_timeout": "30s"})
        sync, poll, engine = [], [], []
        for i in range(args.statements):
            t = time.perf_counter()
            doc = s.post(api, json={"warehouse_id": wid, "statement": f"SELECT {i} AS i, 'x' AS s",
                                    "wait_timeout": "10s"}).json()
            sync.append(time.perf_counter() - t)
            assert doc["status"]["state"] == "SUCCEEDED"
        for i in range(args.statements):
            t = time.perf_counter()
            doc = s.post(api, json={"warehouse_id": wid, "statement": f"SELECT {i} AS i", "wait_timeout": "0s"}).json()
            while doc["status"]["state"] in ("PENDING", "RUNNING"):
                doc = s.get(f"{api}/{doc['statement_id']}").json()
            poll.append(time.perf_counter() - t)
        repeated = []
        for i in range(args.statements):
            t = time.perf_counter()
            doc = s.post(api, json={"warehouse_id": wid, "statement": "SELECT 1 AS one", "wait_timeout": "10s"}).json()
            repeated.append(time.perf_counter() - t)
        from databricks_connector.emulator.sqlengine import engine_for
        eng = engine_for(emu.state)
        for i in range(args.statements):
            t = time.perf_counter()
            eng.execute("SELECT :i AS i, upper('x') AS s FROM range(3)",
                        [{"name": "i", "value": str(i), "type": "INT"}])
            engine.append(time.perf_counter() - t)
        t = time.perf_counter()
        doc = s.post(api, json={"warehouse_id": wid, "wait_timeout": "50s",
                                "statement": "SELECT id, 'r' || id AS name FROM range(100000)"}).json()
        big = time.perf_counter() - t
    figures.update({"statement_wait_10s_ms (distinct texts)": _ms(sync),
                    "statement_wait_10s_ms (the same text)": _ms(repeated), "statement_0s_then_poll_ms": _ms(poll),
                    "engine_execute_ms (parse, transpile, DuckDB)": _ms(engine),
                    "statement_100k_rows_inline_ms": round(big * 1e3, 1),
                    "statements": args.statements})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
