"""Scale: run outputs of a 200-task run at 20 ms per round trip, and 50,000-item lists.

Run outputs (``run_outputs``): Get Run Output of a run with 200 tasks against bench/stub.py (its
own process) answering every request after 20 ms. The connector fetches each task's output with
bounded concurrency, in order; the figure beside it is a plain sequential requests loop doing the
same requests (what the connector did before: one task after another). Target: 200 tasks in 1 s.

Lists (``run_lists``): List Clusters and List Runs of 50,000 items each, through the connector,
against the emulator (its own process, seeded through its state) and, for reference, against the
stub paging server (pages built once: the floor of the client's own cost). Target: a 50,000-item
list through the connector in 3 s against the emulator, whose paging must be linear in its size
(the emulator side is ``emu-work``'s; this only measures it).
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


LIST_TIMEOUT = 90          # seconds: a list that takes longer has failed its 3 s target anyway


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


# --------------------------------------------------------------------------- lists

_SEED = """\
import json, sys, types
from databricks_connector.emulator import Emulator
n = int(sys.argv[1])
with Emulator() as emu:
    st = emu.state
    for i in range(n):
        st.add_cluster(cluster_name=f"bench-{i}", state="TERMINATED", transitions=False, is_pinned=True)
    note = ""
    hook = getattr(st, "add_run", None)
    try:
        if hook is not None:
            for i in range(n):
                hook(run_name=f"bench-{i}")
        else:                                 # no seeding hook yet: the emulator's own run constructor
            from databricks_connector.emulator import jobs as J
            req = types.SimpleNamespace(state=st, base_url=emu.url, principal=None)
            with st.lock:
                for i in range(n):
                    J._create_run(req, job=None, settings={"name": f"bench-{i}", "tasks": []}, body={},
                                  run_type="SUBMIT_RUN", kind="jobs/runs/submit")
    except Exception as exc:  # noqa: BLE001 - reported, the clusters are still measured
        note = f"runs not seeded: {type(exc).__name__}: {exc}"
    print(json.dumps({"conn": emu.connections()["personal_access_token"], "note": note}), flush=True)
    sys.stdin.read()
"""

_LIST_CHILD = """\
import json, sys, time
import databricks_connector as dc
conn, action = json.loads(sys.argv[1]), sys.argv[2]
dc.run("get_current_user", conn, {})                              # warm: manifest, connection
t = time.perf_counter()
out = dc.run(action, conn, {})
print(json.dumps({"seconds": time.perf_counter() - t, "count": out["count"], "truncated": out["truncated"]}))
"""


def run_lists(ctx) -> dict:
    n = 5_000 if ctx.quick else ITEMS
    t0 = time.monotonic()
    seed = subprocess.Popen([ctx.python, "-c", _SEED, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ctx.env())
    out: dict = {"items": n}
    rows = []
    try:
        line = seed.stdout.readline()
        if not line:
            raise RuntimeError(f"the seeded emulator did not start: {seed.stderr.read()[-2000:]}")
        info = json.loads(line)
        seeded = time.monotonic() - t0
        for action, key in (("list_clusters", "clusters"), ("list_runs", "runs")):
            if key == "runs" and info["note"]:
                out[key] = None
                rows.append([action, "emulator", "not measured", "", info["note"]])
                continue
            try:
                r = _child(ctx, _LIST_CHILD, json.dumps(info["conn"]), action, timeout=LIST_TIMEOUT)
            except subprocess.TimeoutExpired:
                out[key] = float(LIST_TIMEOUT)
                out[f"{key}_stopped"] = True
                rows.append([action, "emulator", f"> {LIST_TIMEOUT}", "", f"stopped after {LIST_TIMEOUT} s"])
                continue
            except RuntimeError as exc:
                out[key] = None
                rows.append([action, "emulator", "failed", "", str(exc).strip().splitlines()[-1][:120]])
                continue
            out[key] = r["seconds"]
            rows.append([action, "emulator", f"{r['seconds']:.2f}", str(r["count"]), ""])
    finally:
        seed.stdin.close()
        seed.wait(timeout=60)
    stub = Stub(ctx.python, ctx.env(), "--items", str(n))
    try:
        for action, key in (("list_clusters", "clusters"), ("list_runs", "runs")):
            r = _child(ctx, _LIST_CHILD, json.dumps(stub.conn()), action, "stub")
            out[f"stub_{key}"] = r["seconds"]
            rows.append([action, "stub paging server", f"{r['seconds']:.2f}", str(r["count"]), "the client's own floor"])
    finally:
        stub.stop()
    say(f"\n## Lists: {n:,} clusters and {n:,} runs through the connector (one call each; seeding took {seeded:.0f} s)\n")
    say(table(["action", "server", "wall s", "items", "note"], rows))
    return out


def evaluate(outputs, lists) -> list:
    verdicts = []
    if outputs is not None:
        s = outputs["connector_seconds"]
        verdicts.append((f"run outputs: {outputs['tasks']} tasks at {DELAY * 1000:.0f} ms per round trip <= 1 s",
                         f"{s:.2f} s (sequential loop {outputs['loop_seconds']:.2f} s)", "1.00 s",
                         s <= TARGETS["outputs_seconds"]))
    if lists is not None:
        for key, label in (("clusters", "List Clusters"), ("runs", "List Runs")):
            s = lists.get(key)
            shown = "not measured" if s is None else (f"> {s:.0f} s (stopped)" if lists.get(f"{key}_stopped") else f"{s:.2f} s")
            verdicts.append((f"{label}: {lists['items']:,} items from the emulator through the connector <= 3 s",
                             shown if s is None else
                             f"{shown} (stub paging server {lists.get('stub_' + key, float('nan')):.2f} s)",
                             "3.00 s", s is not None and s <= TARGETS["list_seconds"] and lists["items"] >= ITEMS))
    return verdicts


if __name__ == "__main__":
    sys.exit("run it through bench/run.py --only outputs --only lists")
