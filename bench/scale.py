"""Scale: run outputs of a 200-task run at 20 ms per round trip, 50,000-item lists, 64 threads.

Run outputs (``run_outputs``): Get Run Output of a run with 200 tasks against bench/stub.py (its
own process) answering every request after 20 ms. The connector fetches each task's output with
bounded concurrency, in order; the figure beside it is a plain sequential requests loop doing the
same requests (what the connector did before: one task after another). Target: 200 tasks in 1 s.

Lists (``run_lists``): bench/emulator_lists.py (50,000 clusters, jobs, runs and cluster events
seeded in the emulator's own process, each list read through the connector). Target: a
50,000-item list through the connector in 3 s (the emulator's paging must be linear in its size).

Pool (``run_pool``): bench/pool.py, 64 threads on one connection against a requests.Session with a
64-connection pool. Target: at least 1.0x its calls per second and no "pool is full" warnings.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import BENCH, say, table

TASKS, DELAY, ITEMS = 200, 0.02, 50_000
TARGETS = {"outputs_seconds": 1.0, "list_seconds": 3.0}


class Stub:
    def __init__(self, python, env, *args):
        self.proc = subprocess.Popen([python, str(BENCH / "stub.py"), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the stub did not start: {self.proc.stderr.read()[-2000:]}")
        info = json.loads(line)
        self.url, self.token = info["url"], info["token"]

    def conn(self):
        return {"type": "personal_access_token", "host": self.url, "token": self.token}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_OUTPUTS_CHILD = """\
import json, sys, time
import databricks_connector as dc
conn, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
dc.run("get_run_output", conn, {"run_id": 1})                 # warm: manifest, connection pool
times = []
for _ in range(rounds):
    t = time.perf_counter()
    out = dc.run("get_run_output", conn, {"run_id": 1})
    times.append(time.perf_counter() - t)
keys = list(out["tasks"])
assert out["task_count"] == len(keys) and keys == sorted(keys), keys[:5]
assert all(v["result"]["notebook_output"]["result"] == f"result of {v['task_run_id']}" for v in out["tasks"].values())
print(json.dumps({"times": times, "tasks": len(keys)}))
"""

_LOOP_CHILD = """\
import json, sys, time, requests
url, token = sys.argv[1], sys.argv[2]
s = requests.Session(); s.headers["Authorization"] = "Bearer " + token
t = time.perf_counter()
tasks, page = [], None
while True:
    run = s.get(url + "/api/2.2/jobs/runs/get", params={"run_id": 1, **({"page_token": page} if page else {})}).json()
    tasks += run.get("tasks") or []
    page = run.get("next_page_token")
    if not page:
        break
outs = {t["task_key"]: s.get(url + "/api/2.2/jobs/runs/get-output", params={"run_id": t["run_id"]}).json()
        for t in tasks}
print(json.dumps({"seconds": time.perf_counter() - t, "tasks": len(outs)}))
"""




def _child(ctx, code, *args, timeout=600) -> dict:
    r = subprocess.run([ctx.python, "-c", code, *args], capture_output=True, text=True, env=ctx.env(), timeout=timeout)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_outputs(ctx) -> dict:
    rounds = 3 if ctx.quick else 7
    stub = Stub(ctx.python, ctx.env(), "--delay", str(DELAY), "--tasks", str(TASKS))
    try:
        conn = stub.conn()
        got = _child(ctx, _OUTPUTS_CHILD, json.dumps(conn), str(rounds))
        loop = _child(ctx, _LOOP_CHILD, stub.url, stub.token)
    finally:
        stub.stop()
    med = statistics.median(got["times"])
    say(f"\n## Run outputs: Get Run Output of a {TASKS}-task run, every request answered after {DELAY * 1000:.0f} ms "
        f"(bench/stub.py)\n")
    say(table(["client", "how", "wall s", "requests"],
              [["connector", f"get_run_output, median of {rounds} warm calls (bounded concurrency, in order)",
                f"{med:.2f}", f"{TASKS + 2}"],
               ["requests", "sequential loop: runs/get pages, then get-output per task", f"{loop['seconds']:.2f}",
                f"{TASKS + 2}"]]))
    return {"connector_seconds": med, "connector_times": got["times"], "loop_seconds": loop["seconds"], "tasks": TASKS}


# --------------------------------------------------------------------------- lists and the pool

def _script(ctx, name, *args, timeout):
    """Run bench/<name> (its own emulator, the same package under test) and return its stdout."""
    cmd = [ctx.python, str(BENCH / name), *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=ctx.env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"did not finish in {timeout} s"
    if r.returncode:
        return None, (r.stderr.strip().splitlines() or ["exit code %d" % r.returncode])[-1][:200]
    return r.stdout, ""


def run_lists(ctx) -> dict:
    """bench/emulator_lists.py (the emulator's 50,000-item lists, seeded in its own process):
    every list with its figure and verdict."""
    n = ITEMS
    out, why = _script(ctx, "emulator_lists.py", "--n", str(n), timeout=900)
    say(f"\n## Lists: {n:,} items of each kind through the connector (bench/emulator_lists.py)\n")
    if out is None:
        say(f"  not measured: {why}")
        return {"items": n, "lists": [], "error": why}
    lists = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and ("PASS" in cells[-1] or "FAIL" in cells[-1]):
            lists.append({"label": cells[0], "items": cells[1], "seconds": cells[2], "floor": cells[5],
                          "pass": "PASS" in cells[-1]})
        if line.startswith("|") or line.startswith("emulator CPU") or "lists within" in line:
            say(line)
    return {"items": n, "lists": lists}


def run_pool(ctx) -> dict:
    """bench/pool.py: 64 threads on one connection against a requests.Session with a 64-connection pool."""
    out, why = _script(ctx, "pool.py", *(["--rounds", "2", "--calls", "1600"] if ctx.quick else []), timeout=900)
    say("\n## Threads without pool starvation (bench/pool.py)\n")
    if out is None:
        say(f"  not measured: {why}")
        return {"target": None, "error": why}
    target = None
    for line in out.splitlines():
        if line.startswith(("#", "|", "  TCP")):
            say(line)
        if "target:" in line:
            say(line)
            target = line.split("target:", 1)[1].strip()
    return {"target": target}


def evaluate(outputs, lists, pool=None) -> list:
    verdicts = []
    if outputs is not None:
        s = outputs["connector_seconds"]
        verdicts.append((f"run outputs: {outputs['tasks']} tasks at {DELAY * 1000:.0f} ms per round trip <= 1 s",
                         f"{s:.2f} s (sequential loop {outputs['loop_seconds']:.2f} s)", "1.00 s",
                         s <= TARGETS["outputs_seconds"]))
    if lists is not None:
        if not lists["lists"]:
            verdicts.append((f"emulator lists: {lists['items']:,} items through the connector <= 3 s",
                             f"not measured ({lists.get('error', 'no figures')})", "3.00 s", False))
        for item in lists["lists"]:
            verdicts.append((f"{item['label']}: {item['items']} items from the emulator through the connector <= 3 s",
                             f"{item['seconds']} s (plain requests over the same pages {item['floor']})", "3.00 s",
                             item["pass"]))
    if pool is not None:
        t = pool.get("target")
        label = "64 threads on one connection: >= 1.0x a 64-connection requests.Session, no pool-full warnings"
        if t is None:
            verdicts.append((label, f"not measured ({pool.get('error', 'no target line')})", ">= 1.00x", False))
        else:
            verdicts.append((label, t.split(":", 1)[-1].strip(), ">= 1.00x", t.split(":", 1)[-1].strip().startswith("PASS")))
    return verdicts


if __name__ == "__main__":
    sys.exit("run it through bench/run.py --only outputs --only lists")
