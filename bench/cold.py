"""Cold start: a fresh process that makes one Get Cluster call with a PAT, then exits; and one
action of every action group next to plain requests sending the same requests.

Variants (each a separate child process, run in a shuffled order every round):
  python          ``python -c pass`` (the interpreter alone; the floor)
  requests        one GET /api/2.1/clusters/get with plain ``requests``
  connector CLI   ``databricks-connector run get_cluster cluster_id=... --connection f.json``
  connector API   ``python -c "import databricks_connector as dc; dc.run('get_cluster', ...)"``
  connector CLI, first run   the CLI with an empty manifest cache (a fresh container)
  databricks-sdk  ``WorkspaceClient(host=..., token=...).clusters.get(id)``
  requests: G / connector: G (action)   for each action group G of the manifest: one action through
                  ``dc.run`` and a plain requests script sending the same requests (group_cases)

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


GROUP_API_CODE = """\
import json, sys
import databricks_connector as dc
conn = json.loads(sys.argv[1])
print(json.dumps(dc.run(sys.argv[2], conn, json.loads(sys.argv[3])), indent=2))
"""

# The same requests the action sends, with plain requests: "$name" takes a field of the previous
# answer, "@uuid" a fresh idempotency token.
GROUP_REQUESTS_CODE = """\
import json, sys, uuid, requests
url, token, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
prev = {}
def fill(v):
    if v == "@uuid":
        return str(uuid.uuid4())
    return prev.get(v[1:]) if isinstance(v, str) and v.startswith("$") else v
for step in plan:
    body = step.get("json")
    r = requests.request(step["method"], url + step["path"], params={k: fill(v) for k, v in (step.get("params") or {}).items()},
                         json={k: fill(v) for k, v in body.items()} if body is not None else None,
                         headers={"Authorization": "Bearer " + token}, timeout=(10, 60))
    r.raise_for_status()
    prev = r.json() if r.content else {}
print(json.dumps(prev, indent=2))
"""


def group_cases(ctx) -> list:
    """One action per action group of the manifest, with the plain requests it sends:
    [(group, action, inputs, plan, expect)]."""
    import databricks_connector as dc

    emu, cid = ctx.emu, ctx.cluster_id
    conn = {"type": "personal_access_token", "host": emu.url, "token": emu.pat}
    ctx_id = dc.run("create_execution_context", conn, {"cluster_id": cid, "wait_for_state": True,
                                                       "poll_interval_seconds": 0.2}, progress=False)["context_id"] \
        if _takes_progress(dc) else dc.run("create_execution_context", conn, {"cluster_id": cid, "wait_for_state": True,
                                                                              "poll_interval_seconds": 0.2})["context_id"]
    cmd_id = emu.call("POST", "/api/1.2/commands/execute", {"clusterId": cid, "contextId": ctx_id, "language": "python",
                                                             "command": "1 + 1"})["id"]
    wid = next(w["id"] for w in emu.call("GET", "/api/2.0/sql/warehouses")["warehouses"] if w["state"] == "RUNNING")
    job_id = emu.call("POST", "/api/2.2/jobs/create", {"name": "bench-cold", "max_concurrent_runs": 1000, "tasks": [
        {"task_key": "t", "existing_cluster_id": cid,
         "notebook_task": {"notebook_path": "/bench/cold", "python_code": "pass"}}]})["job_id"]
    sql = {"warehouse_id": wid, "statement": "SELECT 1 AS one"}
    return [
        ("Identity", "get_current_user", {}, [{"method": "GET", "path": "/api/2.0/preview/scim/v2/Me"}], "userName"),
        ("Clusters", "list_clusters", {}, [{"method": "GET", "path": "/api/2.1/clusters/list",
                                           "params": {"page_size": 100}}], cid),
        ("Commands", "get_command_status", {"cluster_id": cid, "context_id": ctx_id, "command_id": cmd_id},
         [{"method": "GET", "path": "/api/1.2/commands/status",
           "params": {"clusterId": cid, "contextId": ctx_id, "commandId": cmd_id}}], cmd_id),
        ("SQL Warehouses", "list_sql_warehouses", {}, [{"method": "GET", "path": "/api/2.0/sql/warehouses"}], wid),
        ("SQL Statements", "execute_sql_statement", sql,
         [{"method": "POST", "path": "/api/2.0/sql/statements",
           "json": dict(sql, wait_timeout="50s", on_wait_timeout="CONTINUE", disposition="INLINE", format="JSON_ARRAY")}],
         "SUCCEEDED"),
        ("Jobs", "run_job_now", {"job_id": job_id},
         [{"method": "POST", "path": "/api/2.2/jobs/run-now", "json": {"job_id": job_id, "idempotency_token": "@uuid"}},
          {"method": "GET", "path": "/api/2.2/jobs/runs/get", "params": {"run_id": "$run_id"}}], "run_page_url"),
        ("Raw", "raw_request", {"url": "/2.1/clusters/list-node-types", "method": "GET"},
         [{"method": "GET", "path": "/api/2.1/clusters/list-node-types"}], "node_type_id"),
    ]


def _takes_progress(dc) -> bool:
    import inspect

    try:
        return "progress" in inspect.signature(dc.run).parameters
    except (TypeError, ValueError):
        return False


def group_variants(ctx) -> list:
    """(name, cmd, group, expect, fresh_cache) pairs: the connector's Python API and plain requests."""
    py, emu = ctx.python, ctx.emu
    conn = {"type": "personal_access_token", "host": emu.url, "token": emu.pat}
    out = []
    for group, action, inputs, plan, expect in group_cases(ctx):
        out.append((f"requests: {group}", [py, "-c", GROUP_REQUESTS_CODE, emu.url, emu.pat, json.dumps(plan)],
                    group, expect, False))
        out.append((f"connector: {group} ({action})", [py, "-c", GROUP_API_CODE, json.dumps(conn), action,
                                                       json.dumps(inputs)], group, expect, False))
    return out


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
    main, groups = variants(ctx), group_variants(ctx)
    pairs = [groups[k:k + 2] for k in range(0, len(groups), 2)]        # (requests: G, connector: G)
    vs = main + groups
    base_env = ctx.env(cache_dir=os.path.join(ctx.tmp, "manifest-cache"))
    # Warm-up, unmeasured: bytecode caches and the manifest cache exist, as on any worker that
    # has run a step before (the "first run" variant measures the opposite).
    for name, cmd, _, expect, fresh_cache in vs:
        wall, rss, cpu, ok, tail = run_child(cmd, base_env, expect)
        if not ok:
            say(f"  ! {name} failed in warm-up:\n{tail}")
    results = {name: {"wall": [], "rss": [], "cpu": [], "failed": 0, "error": ""} for name, *_ in vs}
    per_round = [dict() for _ in range(rounds)]
    rng = random.Random(12345)
    t_start = time.monotonic()
    for i in range(rounds):
        # A shuffled order every round; each group's two variants run back to back (in a random
        # order), so their per-round ratio compares runs a moment apart.
        units = [[v] for v in main] + [rng.sample(pair, len(pair)) for pair in pairs]
        rng.shuffle(units)
        order = [v for unit in units for v in unit]
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
                per_round[i][name] = wall
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
    def per_round_ratio(a, b):
        """Median over the rounds of a's wall time / b's in the same round."""
        rs = [d[a] / d[b] for d in per_round if a in d and b in d and d[b]]
        return median(rs) if rs else float("nan")

    for name, s in summary.items():
        if s is None:
            continue
        base_name = f"requests: {name[len('connector: '):].rsplit(' (', 1)[0]}" if name.startswith("connector: ") \
            else ("requests" if not name.startswith("requests: ") else None)
        if base_name and summary.get(base_name):
            s["vs_requests"] = per_round_ratio(name, base_name)
    base = summary.get("requests")
    rows = []
    for name, s in summary.items():
        if s is None:
            rows.append([name, "failed", "", "", "", "", "", ""])
            continue
        rows.append([name, f"{s['wall_ms']:.0f}", f"{s['wall_p90_ms']:.0f}", f"{s['cpu_ms']:.0f}", f"{s['rss_mb']:.1f}",
                     f"{s.get('vs_requests', ratio(s['wall_ms'], base['wall_ms'])):.2f}x" if base else "",
                     f"{ratio(s['rss_mb'], base['rss_mb']):.2f}x" if base else "",
                     f"{s['n']}" + (f" ({s['failed']} failed)" if s["failed"] else "")])
    rows = [r for r in rows if not r[0].startswith(("requests: ", "connector: "))]
    say(f"\n## 1. Cold start: one Get Cluster (PAT) in a fresh process "
        f"({rounds} interleaved rounds, {elapsed:.0f} s, every variant below in the same rounds)\n")
    say(table(["client", "wall p50 ms", "wall p90 ms", "CPU p50 ms", "peak RSS MB", "wall vs requests",
               "RSS vs requests", "runs"], rows))
    say("\n  wall vs requests: the median over the rounds of each round's ratio (runs of one round are close in time).")
    say("\n### 1b. Cold start of every action group: the connector's Python API next to plain requests sending the "
        "same requests\n")
    pairs = []
    for name, s in summary.items():
        if name.startswith("connector: "):
            group = name[len("connector: "):].rsplit(" (", 1)[0]
            base = summary.get(f"requests: {group}")
            pairs.append([group, name.rsplit(" (", 1)[1].rstrip(")"),
                          f"{s['wall_ms']:.0f}" if s else "failed", f"{base['wall_ms']:.0f}" if base else "failed",
                          f"{s.get('vs_requests', float('nan')):.2f}x" if s and base else "",
                          f"{ratio(s['cpu_ms'], base['cpu_ms']):.2f}x" if s and base else "",
                          f"{s['rss_mb']:.1f}" if s else "", f"{base['rss_mb']:.1f}" if base else ""])
    say(table(["group", "action", "connector wall p50 ms", "requests wall p50 ms", "wall vs requests",
               "CPU vs requests", "connector RSS MB", "requests RSS MB"], pairs))
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
