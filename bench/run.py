"""Performance benchmarks of the connector against plain ``requests`` and the official
``databricks-sdk``, all over loopback against the workspace emulator (run in its own process).

    python bench/run.py            # full run, about 8-10 minutes (the SQL section is half of it)
    python bench/run.py --quick    # a shorter run, about 3 minutes
    python bench/run.py --strict   # exit 1 when a target fails

Run it with an interpreter that has the connector's runtime dependencies and, for the SDK
comparison, ``databricks-sdk`` (``pip install '.[bench]'``). By default it measures the working
tree of the checkout it sits in (an overlay makes ``import databricks_connector`` load it);
``--installed`` measures the installed package instead. It prints figures and PASS/FAIL per
target; it is not a test and never fails a build (exit code 0 unless it could not run;
``--strict`` exits 1 when a target fails). See docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (BENCH, CHECKOUT, EmulatorProcess, child_env, have_module, machine,  # noqa: E402
                     overlay, ratio, say, table)

TARGETS = {"cold_vs_requests": 1.5, "cold_api_vs_requests": 1.15, "cold_group_vs_requests": 1.15, "cold_vs_sdk": 1 / 5,
           "warm_vs_session": 1.15, "rss_vs_requests": 1.3}


class Ctx:
    def __init__(self, args):
        self.quick = args.quick
        self.python = sys.executable
        self.tmp = tempfile.mkdtemp(prefix="dc-bench-")
        self.pythonpath = None if args.installed else overlay(CHECKOUT)
        if self.pythonpath:
            sys.path.insert(0, self.pythonpath)
        self.cold_rounds = args.rounds or (5 if args.quick else 15)
        self.warm_calls = args.calls or (400 if args.quick else 2000)
        self.oauth_calls = args.oauth_calls or (320 if args.quick else 1000)
        self.threads = 16
        self.start_seconds = args.start_seconds or (5.0 if args.quick else 20.0)
        self.sdk_ok, self.sdk_why = have_module(self.python, self.env(), "databricks.sdk")
        if not self.sdk_ok:
            self.sdk_why = f"cannot import databricks.sdk ({self.sdk_why}); pip install '.[bench]'"
        self.emu = None
        self.cluster_id = None

    def env(self, cache_dir=None) -> dict:
        return child_env(self.pythonpath, cache_dir)


def evaluate(cold, warm, oauth, outputs=None, lists=None, sql=None, pool=None) -> list:
    """[(target, measured, limit, passed)]"""
    out = []
    req = (cold or {}).get("requests")
    sdk = (cold or {}).get("databricks-sdk")
    for variant in ("connector CLI", "connector API") if cold else ():
        limit = TARGETS["cold_vs_requests" if variant == "connector CLI" else "cold_api_vs_requests"]
        s = cold.get(variant)
        if not (s and req):
            out.append((f"cold start, {variant}: wall <= {limit:.2f}x requests", "not measured", "", False))
            continue
        r = s.get("vs_requests", ratio(s["wall_ms"], req["wall_ms"]))
        out.append((f"cold start, {variant}: wall <= {limit:.2f}x requests", f"{r:.2f}x ({s['wall_ms']:.0f} vs "
                    f"{req['wall_ms']:.0f} ms)", f"{limit:.2f}x", r <= limit))
        if sdk:
            r = ratio(s["wall_ms"], sdk["wall_ms"])
            out.append((f"cold start, {variant}: wall <= 1/5 of databricks-sdk", f"{r:.2f}x = 1/{1 / r:.1f} "
                        f"({s['wall_ms']:.0f} vs {sdk['wall_ms']:.0f} ms)", "0.20x", r <= TARGETS["cold_vs_sdk"]))
        else:
            out.append((f"cold start, {variant}: wall <= 1/5 of databricks-sdk", "SDK not measured", "0.20x", False))
        r = ratio(s["rss_mb"], req["rss_mb"])
        out.append((f"cold start, {variant}: peak RSS <= 1.3x requests", f"{r:.2f}x ({s['rss_mb']:.1f} vs "
                    f"{req['rss_mb']:.1f} MB)", "1.30x", r <= TARGETS["rss_vs_requests"]))
    if warm:
        for mode, key, label in (("sequential", "cpu_p50_us", "client CPU p50"),
                                 ("threaded", "proc_per_call_us", "process CPU per call")):
            s, b = warm[mode]["connector"], warm[mode]["requests"]
            r = ratio(s[key], b[key])
            out.append((f"warm, {mode}: {label} <= 1.15x requests.Session", f"{r:.2f}x ({s[key]:.0f} vs "
                        f"{b[key]:.0f} us)", "1.15x", r <= TARGETS["warm_vs_session"]))
    for name, s in (cold or {}).items():
        if not name.startswith("connector: "):
            continue
        group, action = name[len("connector: "):].rsplit(" (", 1)
        base = cold.get(f"requests: {group}")
        label = f"cold start, {group} ({action.rstrip(')')}): wall <= 1.15x requests sending the same requests"
        if not (s and base):
            out.append((label, "not measured", "1.15x", False))
            continue
        r = s.get("vs_requests", ratio(s["wall_ms"], base["wall_ms"]))
        out.append((label, f"{r:.2f}x ({s['wall_ms']:.0f} vs {base['wall_ms']:.0f} ms)", "1.15x",
                    r <= TARGETS["cold_group_vs_requests"]))
    if oauth:
        n = oauth["sp_calls"]
        out.append((f"OAuth: token fetches for {n} calls on 16 threads == 1", str(oauth["token_fetches"]), "1",
                    oauth["token_fetches"] == 1))
    import scale

    out += scale.evaluate(outputs, lists, pool)
    for t in sql or []:
        out.append((t["target"], t["measured"], t["limit"], t["pass"]))
    return out


def run_sql_bench(ctx) -> list:
    """Runs bench/bench_sql.py (its own emulator) and returns its target verdicts."""
    script = BENCH / "bench_sql.py"
    out = Path(ctx.tmp) / "sql.json"
    cmd = [ctx.python, str(script), "--json-out", str(out)] + (["--quick"] if ctx.quick else [])
    say(f"\n## 5. Large SQL results: {' '.join(cmd[1:2] + cmd[4:])}\n")
    try:
        r = subprocess.run(cmd, env=ctx.env(), timeout=1500 if not ctx.quick else 400)
        if r.returncode:
            say(f"  bench/bench_sql.py exited with {r.returncode}")
    except subprocess.TimeoutExpired:
        say("  bench/bench_sql.py did not finish in time; stopped.")
    if not out.exists():
        return [{"target": "SQL benchmark", "measured": "did not run", "limit": "", "pass": False}]
    return json.loads(out.read_text())["targets"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and calls, 5-second cluster start")
    ap.add_argument("--installed", action="store_true", help="measure the installed package, not the checkout")
    ap.add_argument("--only", action="append", choices=["cold", "warm", "oauth", "wait", "pool", "outputs", "lists",
                                                        "sql"],
                    help="run only these sections (repeatable)")
    ap.add_argument("--profile", action="store_true", help="print the profiles even when every target passes")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    ap.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    ap.add_argument("--rounds", type=int, help="cold-start rounds per variant (15; 5 with --quick)")
    ap.add_argument("--calls", type=int, help="warm calls per client (2000; 400 with --quick)")
    ap.add_argument("--oauth-calls", type=int, help="OAuth calls per connection (1000; 320 with --quick)")
    ap.add_argument("--start-seconds", type=float, help="cluster start time for the waiting bench (20; 5 with --quick)")
    args = ap.parse_args(argv)
    only = set(args.only or ["cold", "warm", "oauth", "wait", "pool", "outputs", "lists", "sql"])

    t0 = time.monotonic()
    ctx = Ctx(args)
    import databricks_connector as dc  # the package under test, from the overlay unless --installed

    say("# databricks-connector benchmarks" + (" (--quick)" if args.quick else ""))
    say(f"\n{machine()}; package under test: {Path(dc.__file__).resolve().parent} "
        f"(version {dc.__version__}){' via overlay ' + ctx.pythonpath if ctx.pythonpath else ''}")
    from importlib.metadata import PackageNotFoundError, version

    def ver(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    say(f"requests {ver('requests')}, databricks-sdk {ver('databricks-sdk')}"
        + ("" if ctx.sdk_ok else f" (not measured: {ctx.sdk_why})"))
    ctx.emu = EmulatorProcess(ctx.python, ctx.env(), "cluster_start_seconds=0.2", "tls=false")
    ctx.cluster_id = ctx.emu.create_cluster("bench")
    ctx.emu.wait_running(ctx.cluster_id)
    say(f"emulator {ctx.emu.url} in process {ctx.emu.pid}; cluster {ctx.cluster_id} RUNNING")

    import cold
    import scale
    import wait
    import warm

    results = {}
    if "cold" in only:
        results["cold"] = cold.run(ctx)
    if "warm" in only:
        results["warm"] = warm.run_warm(ctx)
    if "oauth" in only:
        results["oauth"] = warm.run_oauth(ctx)
    if "wait" in only:
        results["wait"] = wait.run(ctx)
    if "pool" in only:
        results["pool"] = scale.run_pool(ctx)
    if "outputs" in only:
        results["outputs"] = scale.run_outputs(ctx)
    if "lists" in only:
        results["lists"] = scale.run_lists(ctx)
    if "sql" in only:
        results["sql"] = run_sql_bench(ctx)

    verdicts = evaluate(results.get("cold"), results.get("warm"), results.get("oauth"), results.get("outputs"),
                        results.get("lists"), results.get("sql"), results.get("pool"))
    if verdicts:
        say("\n## Targets (each measured in this run)\n")
        say(table(["target", "measured", "limit", "result"],
                  [[t, m, lim, "PASS" if ok else "FAIL"] for t, m, lim, ok in verdicts]))
    failed = [t for t, _, _, ok in verdicts if not ok]
    cold_failed = any(t.startswith("cold") for t in failed)
    warm_failed = any(t.startswith("warm") for t in failed)
    if "cold" in only and (cold_failed or args.profile):
        say("\n## Profile: where a cold connector run spends its time\n")
        say("  python -X importtime, connector API (manifest cache warm):\n" + cold.importtime(ctx, "api"))
        say("\n  python -X importtime, connector CLI (manifest cache warm):\n" + cold.importtime(ctx, "cli"))
        say("\n  cProfile, connector CLI (manifest cache warm), by cumulative time:\n" + cold.cprofile(ctx, "cli"))
        say("\n  python -X importtime, connector CLI, first run (empty manifest cache):\n"
            + cold.importtime(ctx, "cli", top=10, fresh_cache=True))
    if "warm" in only and (warm_failed or args.profile):
        say("\n## Profile: warm connector calls (cProfile)\n" + warm.profile_warm(ctx))
    ctx.emu.stop()
    say(f"\nTotal time {time.monotonic() - t0:.0f} s. {len(verdicts) - len(failed)}/{len(verdicts)} targets pass.")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "targets": [
            {"target": t, "measured": m, "limit": lim, "pass": ok} for t, m, lim, ok in verdicts]},
            indent=2, default=str))
    return 1 if (args.strict and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
