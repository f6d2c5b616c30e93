"""Long-lived hosts: 10,000 calls over 200 distinct connections keep file descriptors and memory
flat. Prints figures; it is not a test.

    python bench/sessions.py            # 10,000 calls over 200 connections, three cache settings
    python bench/sessions.py --calls 2000 --connections 100

The emulator runs in its own process (its sockets are not this process's). Each distinct
connection is a tenant: the same workspace and token with a field of its own, so each needs a
session of its own, as a rotated token or another tenant does on a platform host. Calls go round
the connections in order (the worst case for a least-recently-used cache smaller than the set),
visit them at random, or "rotate": each connection is used for 25 calls and then replaced by a new
one, as short-lived tokens are (400 distinct connections over 10,000 calls, whatever
``--connections`` says).

For each cache setting: open file descriptors of this process (``/proc/self/fd``) and its
resident memory (``/proc/self/status`` VmRSS) after every tenth of the calls, the sessions the
cache holds, how many it created and evicted, and the calls per second. ``unbounded`` keeps every
session, as the connector did before the cache was bounded.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CHECKOUT, EmulatorProcess, child_env, overlay, say, table  # noqa: E402


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(emu, label: str, order: str, calls: int, connections: int, **cache) -> dict:
    from databricks_connector.runner import Connector

    connector = Connector(**cache)
    if order == "rotate":
        connections = max(1, calls // 25)
    conns = [{"type": "personal_access_token", "host": emu.url, "token": emu.pat, "tenant": f"t{i}"}
             for i in range(connections)]
    rng = random.Random(7)
    gc.collect()
    start_fds, start_rss = fds(), rss_mb()
    marks = []
    step = max(1, calls // 10)
    t0 = time.perf_counter()
    for n in range(calls):
        if order == "round robin":
            conn = conns[n % connections]
        elif order == "rotate":
            conn = conns[n // 25]
        else:
            conn = conns[rng.randrange(connections)]
        connector.run("get_current_user", conn)
        if (n + 1) % step == 0:
            marks.append((n + 1, fds() - start_fds, rss_mb() - start_rss))
    wall = time.perf_counter() - t0
    stats = connector.sessions.stats()
    connector.close()
    gc.collect()
    after_close = fds() - start_fds
    return {"label": label, "order": order, "marks": marks, "wall": wall, "stats": stats, "after_close": after_close,
            "calls": calls}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=10_000)
    p.add_argument("--connections", type=int, default=200)
    p.add_argument("--installed", action="store_true", help="measure the installed package, not this checkout")
    args = p.parse_args(argv)
    pythonpath = None if args.installed else overlay(CHECKOUT)
    if pythonpath:
        sys.path.insert(0, pythonpath)
    emu = EmulatorProcess(sys.executable, child_env(pythonpath))
    from databricks_connector.runner import MAX_SESSIONS

    say(f"# Sessions over {args.connections} distinct connections, {args.calls} Get Current User calls each run\n")
    settings = [("default (max_sessions=%d)" % MAX_SESSIONS, {}),
                ("max_sessions=%d (all fit)" % (args.connections + 56), {"max_sessions": args.connections + 56}),
                ("unbounded (before)", {"max_sessions": 10 ** 9, "session_idle_seconds": 10 ** 9})]
    results = []
    for label, cache in settings:
        for order in ("round robin", "random", "rotate"):
            results.append(run(emu, label, order, args.calls, args.connections, **cache))
    rows = []
    for r in results:
        last = r["marks"][-1]
        first = r["marks"][0]
        peak_fd = max(m[1] for m in r["marks"])
        rows.append([r["label"], r["order"], f"{r['calls'] / r['wall']:.0f}", f"+{first[1]}", f"+{last[1]}", f"+{peak_fd}",
                     f"{first[2]:+.1f}", f"{last[2]:+.1f}", r["stats"]["sessions"], r["stats"]["created"],
                     r["stats"]["evicted"], f"+{r['after_close']}"])
    say(table(["cache", "order", "calls/s", "fds after 10%", "fds at the end", "fds peak", "RSS MB after 10%",
               "RSS MB at the end", "sessions held", "created", "evicted", "fds after close()"], rows))
    say("\n  fds and RSS are relative to the start of each run; 'after 10%' shows the level reached early on, so a "
        "flat run has the same figure at the end.")
    for order in ("round robin", "rotate"):
        say(f"\n  per tenth of the calls (fds, RSS MB), {order}:")
        for r in results:
            if r["order"] == order:
                say(f"    {r['label']:<28} " + " ".join(f"{m[1]:+d}/{m[2]:+.1f}" for m in r["marks"]))
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
