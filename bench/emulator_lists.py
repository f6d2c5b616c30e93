"""How long one list of N items takes through the connector, against the emulator in its own process.

    python bench/emulator_lists.py               # 50,000 clusters, jobs, runs and cluster events
    python bench/emulator_lists.py --n 5000      # a quicker look

The emulator is seeded in its own process (through its Python hooks, not timed), then each list is
read once through the connector's action (List Clusters, List Jobs, List Runs, Get Cluster Events)
and once more, and the better of the two is reported with its page count, items/s and the
emulator's own CPU. The target is ≤3 s for a 50,000-item list (issue #20); a list whose time grew
with the square of its size (pages re-reading everything before them) would take minutes. This
prints figures: it is not a test. ``--strict`` exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CHECKOUT, child_env, machine, overlay, say, table  # noqa: E402

TARGET_SECONDS = 3.0

_SEEDED_EMULATOR = r"""
import json, sys, time
from databricks_connector.emulator import Emulator
from databricks_connector.emulator import jobs as J

n, events = int(sys.argv[1]), int(sys.argv[2])
emu = Emulator(port=0, jobs_pending_seconds=0, jobs_task_seconds=0)
st = emu.state
t0 = time.time()
for i in range(n):
    st.add_cluster(cluster_name=f"bench-{i:06d}", state="RUNNING" if i % 4 else "TERMINATED")
evs = [{"timestamp": 1_700_000_000_000 + i, "type": "RUNNING", "details": {}} for i in range(events)]
event_cluster = st.add_cluster(cluster_name="bench-events", events=evs)
task = [{"task_key": "t", "condition_task": {"op": "EQUAL_TO", "left": "1", "right": "1"}}]
with st.lock:
    store = J.store_of(st)
    settings = J._validate_settings(st, {"name": "bench", "tasks": task, "max_concurrent_runs": 1000}, "2.2")
    jid = None
    for i in range(n):
        s = dict(settings, name=f"bench-job-{i:06d}")
        job = {"job_id": next(store.ids), "creator_user_name": "bench@example.com",
               "run_as_user_name": "bench@example.com", "created_time": st.now_ms(), "settings": s}
        store.add_job(job)
        jid = jid or job["job_id"]
    job = store.jobs[jid]
    for i in range(n):
        J._create_run(st, store, job=job, settings=job["settings"], body={}, run_type="JOB_RUN",
                      kind="jobs/run-now", user="bench@example.com", base_url="http://127.0.0.1")
        if i % 1000 == 999:
            J.tick(st)
    J.tick(st)
emu.start()
print(json.dumps({"url": emu.url, "connections": emu.connections(), "job_id": jid,
                  "event_cluster": event_cluster, "seed_seconds": round(time.time() - t0, 1)}), flush=True)
emu.serve_forever()
"""


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        import os
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _plain_pages(session, url: str, key: str, params: dict) -> int:
    token, pages = None, 0
    while True:
        page = session.get(url, params=dict(params, **({"page_token": token} if token else {})), timeout=60).json()
        pages += 1
        token = page.get("next_page_token")
        if not token:
            return pages


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000, help="items per list (default 50,000)")
    ap.add_argument("--installed", action="store_true", help="measure the installed package, not this checkout")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a list misses the target")
    args = ap.parse_args(argv)
    pythonpath = None if args.installed else overlay(CHECKOUT)
    if pythonpath:
        sys.path.insert(0, pythonpath)
    env = child_env(pythonpath)
    say(f"# Emulator lists through the connector ({machine()})")
    say(f"seeding {args.n:,} clusters, jobs, runs and cluster events in the emulator's process ...")
    proc = subprocess.Popen([sys.executable, "-c", _SEEDED_EMULATOR, str(args.n), str(args.n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the emulator did not start: {proc.stderr.read()[-2000:]}")
        info = json.loads(line)
        say(f"seeded in {info['seed_seconds']} s")
        import requests

        from databricks_connector.runner import Connector

        connector = Connector()
        conn = info["connections"]["personal_access_token"]
        connector.run("get_current_user", conn, {})          # a warm session
        cases = [("List Clusters", "list_clusters", {}, "clusters", "/api/2.1/clusters/list", {"page_size": 100}),
                 ("List Jobs", "list_jobs", {}, "jobs", "/api/2.2/jobs/list", {"limit": 100}),
                 ("List Runs (one job)", "list_runs", {"job_id": info["job_id"]}, "runs", "/api/2.2/jobs/runs/list",
                  {"job_id": info["job_id"], "limit": 25}),
                 ("Get Cluster Events", "get_cluster_events", {"cluster_id": info["event_cluster"]}, "events",
                  "/api/2.1/clusters/events", None)]
        plain = requests.Session()
        plain.headers["Authorization"] = f"Bearer {conn['token']}"
        rows, failed = [], 0
        for label, action, inputs, key, path, params in cases:
            best, floor = None, None
            for _ in range(2):                      # interleaved: connector, plain requests, connector, ...
                cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
                out = connector.run(action, conn, inputs)
                took, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
                if best is None or took < best[0]:
                    best = (took, cpu, out)
                if params is not None:
                    t0 = time.perf_counter()
                    pages = _plain_pages(plain, info["url"] + path, key, params)
                    floor = min(floor or 1e9, time.perf_counter() - t0)
            took, cpu, out = best
            count = out["count"]
            ok = took <= TARGET_SECONDS and count >= args.n
            failed += not ok
            rows.append([label, f"{count:,}", f"{took:.2f}", f"{count / took:,.0f}", f"{cpu:.2f}",
                         f"{floor:.2f} ({pages:,} pages)" if floor else "-",
                         f"≤{TARGET_SECONDS:g} s: {'PASS' if ok else 'FAIL'}"])
        say()
        say(table(["list", "items", "connector s", "items/s", "emulator CPU s", "plain requests s", "target"], rows))
        say("emulator CPU: the emulator process's own time for the connector's listing; plain requests: the same "
            "pages read with a bare requests.Session (the floor of this machine and page size)")
        say()
        say(f"{len(rows) - failed}/{len(rows)} lists within {TARGET_SECONDS:g} s for {args.n:,} items")
        return 1 if failed and args.strict else 0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
