"""Warm calls and OAuth, measured in this process (the client) against the emulator running in
another process, so the server's CPU never counts as the client's.

Warm: Get Cluster with a PAT, sequential then on 16 threads, through
  connector       ``databricks_connector.run("get_cluster", conn, {"cluster_id": ...})``
  requests        ``session.get(url, params=..., headers=..., timeout=...)`` + ``.json()`` on one
                  ``requests.Session`` with a 32-connection pool like the connector's (the floor:
                  what any Python client must at least do)
  databricks-sdk  ``WorkspaceClient(host=..., token=...).clusters.get(id)``
Client CPU per call is ``time.thread_time()`` around the call (the calling thread's CPU); the
threaded figures also give total ``time.process_time()`` over the run divided by the calls.
Clients are interleaved in blocks so that drifting machine load hits all of them alike.

OAuth: 1,000 Get Cluster calls over 16 threads with the service-principal connection; the
emulator's token-fetch counter must read 1. Per-call cost is compared with the PAT connection
on the same threads, interleaved.
"""
from __future__ import annotations

import threading
import time

from _common import median, percentile, ratio, say, table


def make_clients(ctx, sdk: bool = True) -> dict:
    import requests
    import requests.adapters

    import databricks_connector as dc

    emu, cid = ctx.emu, ctx.cluster_id
    conn = {"type": "personal_access_token", "host": emu.url, "token": emu.pat}
    clients = {}

    def connector_call():
        return dc.run("get_cluster", conn, {"cluster_id": cid})

    s = requests.Session()
    # The same pool size as the connector's, so that 16 threads do not churn connections (a
    # default Session keeps 10 and reopens the rest): the baseline is the floor, not a strawman.
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=32)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    url = emu.url + "/api/2.1/clusters/get"
    headers = {"Authorization": f"Bearer {emu.pat}"}

    def requests_call():
        r = s.get(url, params={"cluster_id": cid}, headers=headers, timeout=(10, 60))
        r.raise_for_status()
        return r.json()

    clients["connector"] = connector_call
    clients["requests"] = requests_call
    if sdk and ctx.sdk_ok:
        try:
            from databricks.sdk import WorkspaceClient

            w = WorkspaceClient(host=emu.url, token=emu.pat)

            def sdk_call():
                return w.clusters.get(cid)

            sdk_call()
            clients["databricks-sdk"] = sdk_call
        except Exception as exc:  # noqa: BLE001 - report and carry on without the SDK
            ctx.sdk_ok, ctx.sdk_why = False, f"{type(exc).__name__}: {exc}"
    for fn in clients.values():
        fn()
    return clients


def _seq(fn, n, lat, cpu):
    pc, tt = time.perf_counter, time.thread_time
    for _ in range(n):
        t0, c0 = pc(), tt()
        fn()
        cpu.append(tt() - c0)
        lat.append(pc() - t0)


def sequential(ctx, clients: dict, n: int, block: int = 100) -> dict:
    res = {k: {"lat": [], "cpu": [], "emu": 0.0} for k in clients}
    names = list(clients)
    for fn in clients.values():          # warm-up: pools open, caches filled
        for _ in range(30):
            fn()
    t_start = time.monotonic()
    for b in range(max(1, n // block)):
        rot = b % len(names)
        for name in names[rot:] + names[:rot]:
            e0 = ctx.emu.cpu_seconds()
            _seq(clients[name], block, res[name]["lat"], res[name]["cpu"])
            res[name]["emu"] += ctx.emu.cpu_seconds() - e0
    return _summary(res, time.monotonic() - t_start)


def threaded(ctx, clients: dict, n: int, threads: int = 16, rounds: int = 2, warmup: int = 3) -> dict:
    """``warmup`` unmeasured calls per thread first, all threads released at once: each client's
    pool then holds a connection per thread, so the measured rounds open none (the emulator's
    listen backlog is small; a burst of connects can stall one for a second)."""
    res = {k: {"lat": [], "cpu": [], "emu": 0.0, "proc": 0.0, "wall": 0.0, "calls": 0, "rounds": []}
           for k in clients}
    names = list(clients)
    per_thread = max(1, n // (threads * rounds))
    t_start = time.monotonic()
    schedule = [(name, warmup, False) for name in names] if warmup else []
    for r in range(rounds):
        rot = r % len(names)
        schedule += [(name, per_thread, True) for name in names[rot:] + names[:rot]]
    for name, per_thread, measured in schedule:
        if not measured:
            _burst(clients[name], threads, per_thread)
            continue
        out = res[name]
        lats, cpus = [[] for _ in range(threads)], [[] for _ in range(threads)]
        barrier = threading.Barrier(threads + 1)

        def work(i, fn=clients[name]):
            barrier.wait()
            _seq(fn, per_thread, lats[i], cpus[i])

        ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        e0, p0 = ctx.emu.cpu_seconds(), time.process_time()
        barrier.wait()
        w0 = time.perf_counter()
        for t in ts:
            t.join()
        out["wall"] += time.perf_counter() - w0
        proc = time.process_time() - p0
        out["proc"] += proc
        out["rounds"].append(proc / (per_thread * threads))
        out["emu"] += ctx.emu.cpu_seconds() - e0
        out["calls"] += per_thread * threads
        for part in lats:
            out["lat"].extend(part)
        for part in cpus:
            out["cpu"].extend(part)
    return _summary(res, time.monotonic() - t_start)


def _burst(fn, threads: int, calls: int) -> None:
    barrier = threading.Barrier(threads)

    def work():
        barrier.wait()
        for _ in range(calls):
            fn()

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def _summary(res: dict, elapsed: float) -> dict:
    out = {"_elapsed": elapsed}
    for name, r in res.items():
        n = len(r["lat"])
        s = {"n": n, "lat_p50_ms": median(r["lat"]) * 1000, "lat_p99_ms": percentile(r["lat"], 99) * 1000,
             "cpu_p50_us": median(r["cpu"]) * 1e6, "cpu_p99_us": percentile(r["cpu"], 99) * 1e6,
             "cpu_mean_us": sum(r["cpu"]) / n * 1e6, "emu_cpu_us": r["emu"] / n * 1e6}
        if "proc" in r and r.get("calls"):
            # median over the interleaved rounds of (process CPU of the round / its calls): one
            # round disturbed by another process's burst does not decide the figure
            s["proc_per_call_us"] = median(r["rounds"]) * 1e6
            s["proc_total_per_call_us"] = r["proc"] / r["calls"] * 1e6
            s["throughput"] = r["calls"] / r["wall"]
        out[name] = s
    return out


def _rows(summary: dict, base: str = "requests", threaded_cols: bool = False):
    b = summary.get(base)
    rows = []
    for name, s in summary.items():
        if name.startswith("_"):
            continue
        row = [name, s["n"], f"{s['cpu_p50_us']:.0f}", f"{s['cpu_p99_us']:.0f}", f"{s['cpu_mean_us']:.0f}"]
        if threaded_cols:
            row += [f"{s['proc_per_call_us']:.0f}"]
        row += [f"{s['lat_p50_ms']:.2f}", f"{s['lat_p99_ms']:.2f}"]
        if threaded_cols:
            row += [f"{s['throughput']:.0f}"]
        row += [f"{ratio(s['cpu_p50_us'], b['cpu_p50_us']):.2f}x" if b else "",
                f"{ratio(s['lat_p50_ms'], b['lat_p50_ms']):.2f}x" if b else "",
                f"{s['emu_cpu_us']:.0f}"]
        rows.append(row)
    head = ["client", "calls", "CPU p50 us", "CPU p99 us", "CPU mean us"]
    if threaded_cols:
        head += ["process CPU/call us"]
    head += ["wall p50 ms", "wall p99 ms"]
    if threaded_cols:
        head += ["calls/s"]
    head += ["CPU p50 vs requests", "wall p50 vs requests", "emulator CPU/call us"]
    return head, rows


def run_warm(ctx) -> dict:
    clients = make_clients(ctx)
    n = ctx.warm_calls
    seq = sequential(ctx, clients, n)
    say(f"\n## 2a. Warm calls, sequential: {n} Get Cluster calls per client, interleaved in blocks of 100 "
        f"({seq['_elapsed']:.0f} s)\n")
    say(table(*_rows(seq)))
    rounds = 4 if ctx.quick else 8
    thr = threaded(ctx, clients, n, threads=ctx.threads, rounds=rounds)
    say(f"\n## 2b. Warm calls, {ctx.threads} threads: {n} calls per client in {rounds} interleaved rounds "
        f"({thr['_elapsed']:.0f} s)\n")
    say(table(*_rows(thr, threaded_cols=True)))
    say("\n  CPU = the calling thread's CPU per call (time.thread_time); process CPU/call = time.process_time of a "
        "round / its calls, median over the rounds; the emulator's CPU (another process) is shown apart, never counted.")
    if not ctx.sdk_ok:
        say(f"  databricks-sdk not measured: {ctx.sdk_why}")
    return {"sequential": seq, "threaded": thr}


def run_oauth(ctx) -> dict:
    import databricks_connector as dc

    emu, cid = ctx.emu, ctx.cluster_id
    sp = dict(emu.info["connections"]["service_principal"])
    pat = {"type": "personal_access_token", "host": emu.url, "token": emu.pat}
    clients = {"connector, service principal": lambda: dc.run("get_cluster", sp, {"cluster_id": cid}),
               "connector, PAT": lambda: dc.run("get_cluster", pat, {"cluster_id": cid})}
    emu.reset()                       # token-fetch counter to 0; this process has not used `sp` yet
    n = ctx.oauth_calls
    rounds = 4 if ctx.quick else 8
    thr = threaded(ctx, clients, n, threads=ctx.threads, rounds=rounds)
    fetches = emu.token_fetches()
    total_sp = thr["connector, service principal"]["n"] + ctx.threads * 3
    say(f"\n## 3. OAuth: {n} Get Cluster calls per connection over {ctx.threads} threads, {rounds} interleaved rounds, "
        f"starting with no token ({thr['_elapsed']:.0f} s)\n")
    say(table(*_rows(thr, base="connector, PAT", threaded_cols=True)).replace("vs requests", "vs PAT"))
    say(f"\n  token fetches by the connector for all {total_sp} service-principal calls of this section (the first "
        f"{ctx.threads * 3} unmeasured, {ctx.threads} threads released at once with no token): {fetches}")
    out = {"threaded": thr, "token_fetches": fetches, "sp_calls": total_sp}
    if ctx.sdk_ok:
        try:
            from databricks.sdk import WorkspaceClient

            emu.reset()
            w = WorkspaceClient(host=emu.url, client_id=sp["client_id"], client_secret=sp["client_secret"],
                                auth_type="oauth-m2m")
            sdk = threaded(ctx, {"databricks-sdk, service principal": lambda: w.clusters.get(cid)}, n,
                           threads=ctx.threads, rounds=1)
            out["sdk_token_fetches"] = emu.token_fetches()
            s = sdk["databricks-sdk, service principal"]
            say(f"  databricks-sdk (oauth-m2m), {s['n'] + ctx.threads * 3} calls likewise: {out['sdk_token_fetches']} token fetch(es), "
                f"CPU p50 {s['cpu_p50_us']:.0f} us/call, process CPU {s['proc_per_call_us']:.0f} us/call")
        except Exception as exc:  # noqa: BLE001
            say(f"  databricks-sdk with a service principal could not run: {type(exc).__name__}: {exc}")
    return out


def profile_warm(ctx, calls: int = 2000, top: int = 25) -> str:
    """cProfile of warm connector calls: the connector's own functions by cumulative time per
    call (everything below ``session.exchange`` is requests/urllib3/sockets, which the plain
    requests baseline pays too), then the heaviest functions overall by own time."""
    import cProfile
    import pstats

    import databricks_connector as dc

    conn = {"type": "personal_access_token", "host": ctx.emu.url, "token": ctx.emu.pat}
    for _ in range(100):
        dc.run("get_cluster", conn, {"cluster_id": ctx.cluster_id})
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(calls):
        dc.run("get_cluster", conn, {"cluster_id": ctx.cluster_id})
    pr.disable()
    st = pstats.Stats(pr).stats
    lines = [f"    (profiled times, inflated by cProfile; us per call over {calls} calls)",
             "    connector's own functions, cumulative / own:"]
    mine = [(v[3], v[2], k) for k, v in st.items() if "databricks_connector" in k[0]]
    for cum, own, (path, line, fn) in sorted(mine, reverse=True)[:top]:
        where = path.split("databricks_connector/")[-1]
        lines.append(f"    {cum / calls * 1e6:8.1f} {own / calls * 1e6:7.1f}  {where}:{line}({fn})")
    lines.append("    heaviest functions overall, own time:")
    for cum, own, (path, line, fn) in sorted(((v[3], v[2], k) for k, v in st.items()),
                                             key=lambda t: -t[1])[:12]:
        lines.append(f"    {own / calls * 1e6:8.1f}  {path.split('site-packages/')[-1]}:{line}({fn})")
    return "\n".join(lines)
