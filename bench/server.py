"""The HTTP server's cost: what ``databricks-connector serve`` adds over calling the Python API,
at 1, 16 and 64 concurrent clients, and the errors under that load.

    python bench/server.py            # about 1-2 minutes
    python bench/server.py --quick    # fewer calls

Everything runs on loopback: the emulator in its own process, the server in its own process
(``python -m databricks_connector serve --port 0``, PAT credentials in headers, an API key), and
the clients here, one thread each:

  python API   ``databricks_connector.run("get_cluster", conn, {...})`` in this process
  HTTP         ``POST /actions/get_cluster`` on a keep-alive ``requests.Session`` per client
  MCP          ``tools/call get_cluster`` (JSON-RPC over Streamable HTTP, stateless, JSON answers)

Per level, the variants run in interleaved rounds so drifting load hits them alike. Latency is per
call (wall clock around it); "added" is the server's median minus the Python API's at the same
concurrency (p99s are shown each: at high concurrency the tails are set by queueing on 2 cores, not
by a fixed cost, so their difference says little). Errors are any answer other than 200 with the cluster's id, or an exception. It needs
the ``server`` extra. It prints figures and is not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CHECKOUT, EmulatorProcess, child_env, machine, overlay, percentile, say, table  # noqa: E402

API_KEY = "bench-api-key-0123456789abcdef"


class ServerProcess:
    def __init__(self, python: str, env: dict, *args: str):
        env = dict(env, DBC_BENCH_KEY=API_KEY)
        self.log = tempfile.NamedTemporaryFile("w+", prefix="dc-bench-serve-", delete=False)
        self.proc = subprocess.Popen([python, "-m", "databricks_connector", "serve", "--port", "0",
                                      "--api-key-env", "DBC_BENCH_KEY", *args],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        end = time.monotonic() + 60
        self.url = None
        while time.monotonic() < end and self.url is None:
            m = re.search(r"listening on (http://\S+?)[\s(]", Path(self.log.name).read_text())
            if m:
                self.url = m.group(1)
            elif self.proc.poll() is not None:
                raise RuntimeError("serve exited: " + Path(self.log.name).read_text()[-2000:])
            time.sleep(0.05)
        if self.url is None:
            raise RuntimeError("serve did not start")

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        os.unlink(self.log.name)


def clients(emu, server, cluster_id):
    import requests

    import databricks_connector as dc

    conn = {"type": "personal_access_token", "host": emu.url, "token": emu.pat}
    headers = {"X-API-Key": API_KEY, "X-Databricks-Host": emu.url, "X-Databricks-Token": emu.pat}
    local = threading.local()

    def session():
        s = getattr(local, "s", None)
        if s is None:
            s = local.s = requests.Session()
        return s

    def python_api():
        return dc.run("get_cluster", conn, {"cluster_id": cluster_id}, progress=False) if _has_progress(dc) \
            else dc.run("get_cluster", conn, {"cluster_id": cluster_id})

    def http():
        r = session().post(server.url + "/actions/get_cluster", json={"cluster_id": cluster_id}, headers=headers,
                           timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}")
        return r.json()

    mcp_headers = {**headers, "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "get_cluster", "arguments": {"cluster_id": cluster_id}}}

    def mcp():
        r = session().post(server.url + "/mcp", json=body, headers=mcp_headers, timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}")
        result = r.json()["result"]
        if result.get("isError"):
            raise RuntimeError(result["content"][0]["text"][:200])
        return result["structuredContent"]

    return {"python API": python_api, "HTTP": http, "MCP": mcp}


def _has_progress(dc) -> bool:
    import inspect

    from databricks_connector.runner import Connector

    return "progress" in inspect.signature(Connector.run).parameters


def run_level(fn, cluster_id, threads: int, calls: int):
    """``calls`` calls spread over ``threads`` threads; (latencies, errors, wall seconds)."""
    latencies, errors = [], []
    lock = threading.Lock()
    per = max(1, calls // threads)
    barrier = threading.Barrier(threads)

    def worker():
        mine, bad = [], []
        barrier.wait()
        for _ in range(per):
            t = time.perf_counter()
            try:
                out = fn()
                if out.get("cluster_id") != cluster_id:
                    bad.append("wrong answer")
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                bad.append(str(exc)[:80])
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    started = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return latencies, errors, time.perf_counter() - started


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--calls", type=int, default=None, help="calls per variant and level (default 1920; quick 640)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--levels", default="1,16,64")
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("--installed", action="store_true", help="measure the installed package, not the checkout")
    args = p.parse_args(argv)
    calls = args.calls or (640 if args.quick else 1920)
    levels = [int(x) for x in args.levels.split(",")]

    pythonpath = None if args.installed else overlay(CHECKOUT)
    if pythonpath:
        sys.path.insert(0, pythonpath)
    env = child_env(pythonpath)
    say(f"# Server benchmark ({machine()})\n")
    emu = EmulatorProcess(sys.executable, env)
    cluster_id = emu.create_cluster("bench-server")
    server = ServerProcess(sys.executable, env, "--threads", str(max(levels)))
    try:
        fns = clients(emu, server, cluster_id)
        for fn in fns.values():                 # warm every path (sessions, pools, imports)
            for _ in range(20):
                fn()
        results = {}
        cpu = {}
        for level in levels:
            per_round = max(level, calls // args.rounds)
            acc = {name: ([], [], 0.0) for name in fns}
            cpu_before = server.cpu_seconds()
            for _ in range(args.rounds):
                for name, fn in fns.items():
                    lat, err, wall = run_level(fn, cluster_id, level, per_round)
                    a = acc[name]
                    acc[name] = (a[0] + lat, a[1] + err, a[2] + wall)
            cpu[level] = server.cpu_seconds() - cpu_before
            results[level] = acc
        rows, out = [], {}
        for level, acc in results.items():
            base = acc["python API"][0]
            b50 = percentile(base, 50) * 1000
            server_calls = len(acc["HTTP"][0]) + len(acc["MCP"][0])
            for name, (lat, err, wall) in acc.items():
                p50, p99 = percentile(lat, 50) * 1000, percentile(lat, 99) * 1000
                added = "" if name == "python API" else f"{p50 - b50:+.2f}"
                rows.append([level, name, len(lat), f"{p50:.2f}", f"{p99:.2f}", added, f"{len(lat) / wall:.0f}",
                             len(err)])
                out[f"{level}/{name}"] = {"calls": len(lat), "p50_ms": p50, "p99_ms": p99, "errors": len(err),
                                          "calls_per_s": len(lat) / wall, "error_samples": sorted(set(err))[:3]}
            out[f"{level}/server_cpu_ms_per_call"] = cpu[level] * 1000 / max(1, server_calls)
        say(table(["clients", "variant", "calls", "p50 ms", "p99 ms", "added p50 ms", "calls/s", "errors"], rows))
        say()
        say(table(["clients", "server CPU per HTTP/MCP call (ms)"],
                  [[lvl, f"{out[f'{lvl}/server_cpu_ms_per_call']:.2f}"] for lvl in levels]))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
    finally:
        server.stop()
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
