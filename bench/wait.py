"""Waiting for a cluster to start: how many GET clusters/get requests each waiter sends.

The emulator is told that a cluster takes S seconds to start (``cluster_start_seconds``, 20 s;
5 s with --quick). Two clusters are created at the same moment and waited for in parallel:
  connector  the ``wait_for_cluster_state`` action (poll interval 1 s; the runtime backs off
             from there), or, when the manifest has no such action yet, the runtime's
             ``ActionSession.wait`` polling Get Cluster
  requests   a fixed 1-second poll loop on a ``requests.Session``
Requests are counted from the emulator's request log (``GET /__emulator/requests``), per cluster.
"""
from __future__ import annotations

import threading
import time

from _common import say, table


def _connector_waiter(ctx, cluster_id: str):
    import databricks_connector as dc

    conn = {"type": "personal_access_token", "host": ctx.emu.url, "token": ctx.emu.pat}
    keys = {a["key"]: a for a in dc.Connector().manifest.get("actions", [])}
    if "wait_for_cluster_state" in keys:
        inputs = {"cluster_id": cluster_id, "target_state": "RUNNING", "timeout_seconds": 300,
                  "poll_interval_seconds": 1}
        have = {i["key"] for i in keys["wait_for_cluster_state"]["inputs"]}
        inputs = {k: v for k, v in inputs.items() if k in have}
        return "wait_for_cluster_state action", lambda: dc.run("wait_for_cluster_state", conn, inputs)

    def runtime_wait():
        session = dc.Connector().session(conn).action()

        def poll():
            c = session.get("/api/2.1/clusters/get", {"cluster_id": cluster_id})
            return c.get("state") == "RUNNING", c, c.get("state")

        return session.wait(poll, what="cluster", timeout=300, interval=1)

    return "runtime ActionSession.wait (no wait action in the manifest)", runtime_wait


def _requests_waiter(ctx, cluster_id: str):
    import requests

    s = requests.Session()
    headers = {"Authorization": f"Bearer {ctx.emu.pat}"}

    def loop():
        while True:
            r = s.get(ctx.emu.url + "/api/2.1/clusters/get", params={"cluster_id": cluster_id},
                      headers=headers, timeout=(10, 60))
            r.raise_for_status()
            c = r.json()
            if c["state"] == "RUNNING":
                return c
            time.sleep(1)

    return "fixed 1 s poll loop (requests)", loop


def run(ctx) -> dict:
    emu = ctx.emu
    seconds = ctx.start_seconds
    old = emu.call("GET", "/__emulator/config", auth=False)["cluster_start_seconds"]
    emu.config(cluster_start_seconds=seconds)
    try:
        a, b = emu.create_cluster("bench-wait-connector"), emu.create_cluster("bench-wait-requests")
        created = time.monotonic()
    finally:
        emu.config(cluster_start_seconds=old)
    say(f"\n## 4. Waiting for a cluster that takes {seconds:g} s to start (two clusters created together, "
        f"waited for in parallel)\n")
    waiters = {"connector": (a,) + _connector_waiter(ctx, a), "requests": (b,) + _requests_waiter(ctx, b)}
    done, errors = {}, {}

    def go(name, fn):
        try:
            fn()
            done[name] = time.monotonic()
        except Exception as exc:  # noqa: BLE001
            errors[name] = f"{type(exc).__name__}: {exc}"

    ts = [threading.Thread(target=go, args=(name, w[2])) for name, w in waiters.items()]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    log = emu.requests_log()
    rows, out = [], {}
    for name, (cid, how, _) in waiters.items():
        gets = sum(1 for r in log if r["method"] == "GET" and r["path"].endswith("/clusters/get")
                   and cid in (r.get("query") or {}).get("cluster_id", []))
        took = done[name] - created if name in done else float("nan")
        out[name] = {"gets": gets, "seconds": took, "how": how, "error": errors.get(name)}
        rows.append([name, how, gets, f"{took:.1f}", f"{took - seconds:+.1f}" if name in done else errors[name]])
    say(table(["waiter", "how", "GET clusters/get sent", "returned after s", "late by s"], rows))
    return out
