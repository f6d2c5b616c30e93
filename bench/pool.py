"""Threads without pool starvation: 64 threads on one connection, the connector against a
``requests.Session`` with a 64-connection pool. Prints figures; it is not a test.

    python bench/pool.py                 # 64 threads, 4 interleaved rounds of 3,200 calls per client
    python bench/pool.py --threads 128

Both clients do Get Cluster against the emulator (its own process). The figure is calls per
second over each round (all threads released at once), the median over the interleaved rounds,
and the ratio connector / requests (target >= 1.0), plus the "Connection pool is full" warnings
urllib3 logged for each client (target 0) and the TCP connections the client holds open at the
end of the run (it keeps at most one per thread).
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CHECKOUT, EmulatorProcess, child_env, median, overlay, say, table  # noqa: E402


class _Count(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.full = 0

    def emit(self, record):
        if "pool is full" in record.getMessage():
            self.full += 1


def open_to(port: int) -> int:
    n = 0
    for table_ in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table_) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[2].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            return -1
    return n


def burst(fn, threads: int, per_thread: int) -> float:
    barrier = threading.Barrier(threads + 1)
    errors = []

    def work():
        barrier.wait()
        try:
            for _ in range(per_thread):
                fn()
        except Exception as exc:  # noqa: BLE001 - reported
            errors.append(exc)

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} calls failed: {errors[0]!r}")
    return threads * per_thread / wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=64)
    p.add_argument("--calls", type=int, default=3200, help="calls per client per round")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--installed", action="store_true")
    args = p.parse_args(argv)
    pythonpath = None if args.installed else overlay(CHECKOUT)
    if pythonpath:
        sys.path.insert(0, pythonpath)
    import requests
    import requests.adapters

    import databricks_connector as dc

    emu = EmulatorProcess(sys.executable, child_env(pythonpath))
    cid = emu.create_cluster("pool")
    conn = {"type": "personal_access_token", "host": emu.url, "token": emu.pat}
    s = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=64)
    s.mount("http://", adapter)
    url = emu.url + "/api/2.1/clusters/get"
    headers = {"Authorization": f"Bearer {emu.pat}"}

    def plain():
        r = s.get(url, params={"cluster_id": cid}, headers=headers, timeout=(10, 60))
        r.raise_for_status()
        return r.json()

    def connector():
        return dc.run("get_cluster", conn, {"cluster_id": cid})

    clients = {"connector": connector, "requests.Session (64-connection pool)": plain}
    counters = {}
    log = logging.getLogger("urllib3.connectionpool")
    per_thread = max(1, args.calls // args.threads)
    rates = {k: [] for k in clients}
    for name, fn in clients.items():              # warm-up: each pool opens its connections
        counters[name] = _Count()
        burst(fn, args.threads, 3)
    for r in range(args.rounds):
        names = list(clients)
        rot = r % len(names)
        for name in names[rot:] + names[:rot]:
            log.addHandler(counters[name])
            try:
                rates[name].append(burst(clients[name], args.threads, per_thread))
            finally:
                log.removeHandler(counters[name])
    base = median(rates["requests.Session (64-connection pool)"])
    rows = []
    for name in clients:
        m = median(rates[name])
        rows.append([name, f"{m:.0f}", f"{m / base:.2f}x", counters[name].full])
    say(f"# {args.threads} threads on one connection: Get Cluster, {args.rounds} interleaved rounds of "
        f"{per_thread * args.threads} calls per client\n")
    say(table(["client", "calls/s (median of rounds)", "vs requests.Session", "'pool is full' warnings"], rows))
    say(f"\n  TCP connections open to the emulator at the end (both clients): {open_to(int(emu.url.rsplit(':', 1)[1]))}")
    ratio = median(rates["connector"]) / base
    ok = ratio >= 1.0 and counters["connector"].full == 0
    say(f"  target: connector >= 1.0x requests.Session with a 64-connection pool and no 'pool is full' warnings: "
        f"{'PASS' if ok else 'FAIL'} ({ratio:.2f}x, {counters['connector'].full} warnings)")
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
