"""Cold start: a fresh process that makes one Get Cluster call with a PAT, then exits.

Variants (each a separate child process, run in a shuffled order every round):
  python          ``python -c pass`` (the interpreter alone; the floor)
  requests        one GET /api/2.1/clusters/get with plain ``requests``
  connector CLI   ``databricks-connector run get_cluster cluster_id=... --connection f.json``
  connector API   ``python -c "import databricks_connector as dc; dc.run('get_cluster', ...)"``
  connector CLI, first run   the CLI with an empty manifest cache (a fresh container)
  databricks-sdk  ``WorkspaceClient(host=..., token=...).clusters.get(id)``

Wall time (spawn to exit), peak memory and CPU are the child's own, taken with ``os.wait4`` by a
small launcher process (bench/_launch.py), so runs never mask each other the way
RUSAGE_CHILDREN maxima do and no child inherits the driver's memory high-water mark.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BENCH, median, percentile, ratio, say, table

LAUNCH = BENCH / "_launch.py"

REQUESTS_CODE = """\
import json, sys, requests
url, token, cid = sys.argv[1:4]
r = requests.get(url + "/api/2.1/clusters/get", params={"cluster_id": cid},
                 headers={"Authorization": "Bearer " + token}, timeout=(10, 60))
r.raise_for_status()
print(json.dumps(r.json(), indent=2))
"""

API_CODE = """\
import json, sys
import databricks_connector as dc
conn = json.loads(sys.argv[1])
print(json.dumps(dc.run("get_cluster", conn, {"cluster_id": sys.argv[2]}), indent=2))
"""

SDK_CODE = """\
import json, sys
from databricks.sdk import WorkspaceClient
w = WorkspaceClient(host=sys.argv[1], token=sys.argv[2])
print(json.dumps(w.clusters.get(sys.argv[3]).as_dict(), indent=2))
"""


def _cli(python: str) -> list:
    script = Path(python).with_name("databricks-connector")
    return [str(script)] if script.exists() else [python, "-m", "databricks_connector"]


def variants(ctx) -> list:
    py, emu, cid = ctx.python, ctx.emu, ctx.cluster_id
    conn = {"type": "personal_access_token", "host": emu.url, "token": emu.pat}
    conn_file = Path(ctx.tmp) / "pat.json"
    conn_file.write_text(json.dumps(conn))
    out = [
        ("python", [py, "-c", "pass"], None, "", False),
        ("requests", [py, "-c", REQUESTS_CODE, emu.url, emu.pat, cid], None, cid, False),
        ("connector CLI", _cli(py) + ["run", "get_cluster", f"cluster_id={cid}", "--connection", str(conn_file)],
         None, cid, False),
        ("connector API", [py, "-c", API_CODE, json.dumps(conn), cid], None, cid, False),
        ("connector CLI, first run", _cli(py) + ["run", "get_cluster", f"cluster_id={cid}", "--connection",
                                                 str(conn_file)], None, cid, True),
    ]
    if ctx.sdk_ok:
        out.append(("databricks-sdk", [py, "-c", SDK_CODE, emu.url, emu.pat, cid], None, cid, False))
    return out


def run_child(cmd, env, expect: str):
    """(wall seconds, peak RSS MB, CPU seconds, ok, error tail) of one child process, measured by
    bench/_launch.py (see there why the driver cannot measure peak RSS itself)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as res:
        subprocess.run([sys.executable, "-S", "-E", str(LAUNCH), res.name] + list(cmd), stdout=out, stderr=err,
                       env=env, stdin=subprocess.DEVNULL)
        m = json.loads(Path(res.name).read_text() or "{}")
        out.seek(0)
        err.seek(0)
        text = out.read().decode("utf-8", "replace")
        ok = m.get("rc") == 0 and expect in text
        tail = "" if ok else (err.read().decode("utf-8", "replace") + text)[-1500:]
    return m.get("wall", 0.0), m.get("rss_kb", 0) / 1024.0, m.get("cpu", 0.0), ok, tail


def run(ctx) -> dict:
    rounds = ctx.cold_rounds
    vs = variants(ctx)
    base_env = ctx.env(cache_dir=os.path.join(ctx.tmp, "manifest-cache"))
    # Warm-up, unmeasured: bytecode caches and the manifest cache exist, as on any worker that
    # has run a step before (the "first run" variant measures the opposite).
    for name, cmd, _, expect, fresh_cache in vs:
        wall, rss, cpu, ok, tail = run_child(cmd, base_env, expect)
        if not ok:
            say(f"  ! {name} failed in warm-up:\n{tail}")
    results = {name: {"wall": [], "rss": [], "cpu": [], "failed": 0, "error": ""} for name, *_ in vs}
    rng = random.Random(12345)
    t_start = time.monotonic()
    for i in range(rounds):
        order = list(vs)
        rng.shuffle(order)
        for name, cmd, _, expect, fresh_cache in order:
            env = base_env
            fresh = None
            if fresh_cache:
                fresh = tempfile.mkdtemp(prefix="dc-bench-cache-", dir=ctx.tmp)
                env = dict(base_env, DATABRICKS_CONNECTOR_CACHE=fresh)
            wall, rss, cpu, ok, tail = run_child(cmd, env, expect)
            if fresh:
                shutil.rmtree(fresh, True)
            r = results[name]
            if ok:
                r["wall"].append(wall)
                r["rss"].append(rss)
                r["cpu"].append(cpu)
            else:
                r["failed"] += 1
                r["error"] = tail
    elapsed = time.monotonic() - t_start

    summary = {}
    for name, r in results.items():
        if not r["wall"]:
            summary[name] = None
            continue
        summary[name] = {"wall_ms": median(r["wall"]) * 1000, "wall_p90_ms": percentile(r["wall"], 90) * 1000,
                         "cpu_ms": median(r["cpu"]) * 1000, "rss_mb": median(r["rss"]), "n": len(r["wall"]),
                         "failed": r["failed"]}
    base = summary.get("requests")
    rows = []
    for name, s in summary.items():
        if s is None:
            rows.append([name, "failed", "", "", "", "", "", ""])
            continue
        rows.append([name, f"{s['wall_ms']:.0f}", f"{s['wall_p90_ms']:.0f}", f"{s['cpu_ms']:.0f}", f"{s['rss_mb']:.1f}",
                     f"{ratio(s['wall_ms'], base['wall_ms']):.2f}x" if base else "",
                     f"{ratio(s['rss_mb'], base['rss_mb']):.2f}x" if base else "",
                     f"{s['n']}" + (f" ({s['failed']} failed)" if s["failed"] else "")])
    say(f"\n## 1. Cold start: one Get Cluster (PAT) in a fresh process "
        f"({rounds} interleaved rounds, {elapsed:.0f} s)\n")
    say(table(["client", "wall p50 ms", "wall p90 ms", "CPU p50 ms", "peak RSS MB", "wall vs requests",
               "RSS vs requests", "runs"], rows))
    for name, r in results.items():
        if r["failed"]:
            say(f"\n  ! {name}: {r['failed']} run(s) failed; last error:\n    " + r["error"].strip().replace("\n", "\n    "))
    if not ctx.sdk_ok:
        say(f"\n  databricks-sdk not measured: {ctx.sdk_why}")
    return summary


def _profile_cmd(ctx, which: str) -> list:
    conn = {"type": "personal_access_token", "host": ctx.emu.url, "token": ctx.emu.pat}
    if which == "cli":
        return ["-m", "databricks_connector", "run", "get_cluster", f"cluster_id={ctx.cluster_id}",
                "--connection", str(Path(ctx.tmp) / "pat.json")]
    script = Path(ctx.tmp) / "cold_api.py"
    script.write_text(API_CODE)
    return [str(script), json.dumps(conn), ctx.cluster_id]


def importtime(ctx, which: str = "api", top: int = 15, fresh_cache: bool = False) -> str:
    """``python -X importtime`` of one cold connector run: the slowest imports (cumulative)."""
    cache = tempfile.mkdtemp(dir=ctx.tmp) if fresh_cache else os.path.join(ctx.tmp, "manifest-cache")
    r = subprocess.run([ctx.python, "-X", "importtime"] + _profile_cmd(ctx, which),
                       env=ctx.env(cache_dir=cache), capture_output=True, text=True)
    rows = []
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (.*)$", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), m.group(3)))
    rows.sort(reverse=True)
    total = sum(own for _, own, _ in rows)
    lines = [f"    all imports: {total / 1000:.1f} ms (sum of self times)"]
    lines += [f"    {cum / 1000:7.1f} ms cumulative {own / 1000:6.1f} ms self  {name.rstrip()}"
              for cum, own, name in rows[:top]]
    return "\n".join(lines)


def cprofile(ctx, which: str = "api", top: int = 15, fresh_cache: bool = False) -> str:
    """cProfile of one cold connector run, sorted by cumulative time."""
    cache = tempfile.mkdtemp(dir=ctx.tmp) if fresh_cache else os.path.join(ctx.tmp, "manifest-cache")
    out = os.path.join(ctx.tmp, f"cold-{which}.prof")
    subprocess.run([ctx.python, "-m", "cProfile", "-o", out] + _profile_cmd(ctx, which),
                   env=ctx.env(cache_dir=cache), capture_output=True, text=True)
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(out, stream=buf).sort_stats("cumulative").print_stats(top)
    body = buf.getvalue().split("ncalls", 1)
    return "    ncalls" + body[1].rstrip().replace("\n", "\n    ") if len(body) == 2 else buf.getvalue()
