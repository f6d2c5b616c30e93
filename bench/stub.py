"""A small independent stub of the few Databricks endpoints the scale benchmarks call, run in its
own process (so its CPU is never the client's), on 127.0.0.1, port 0:

    python bench/stub.py --delay 0.02 --tasks 200 --items 50000

* ``GET /api/2.2/jobs/runs/get?run_id=1``: a run with ``--tasks`` tasks, paged by 100 as API 2.2 does;
* ``GET /api/2.2/jobs/runs/get-output?run_id=<task run id>``: that task's output;
* ``GET /api/2.1/clusters/list`` and ``GET /api/2.2/jobs/runs/list``: ``--items`` clusters / runs,
  paged by ``page_size`` / ``limit`` with page tokens (pages built once, served in O(page));
* every answer waits ``--delay`` seconds first (the round trip of a shaped network).

The first output line is ``{"url": ..., "token": ...}``. It answers any bearer token. Not a test
double of the emulator: it is the floor a client can reach against a server that costs nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

J = "/api/2.2/jobs"


def build(tasks: int, items: int):
    run_tasks = [{"task_key": f"task_{i:03d}", "run_id": 1000 + i,
                  "state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""},
                  "run_page_url": f"https://example/run/{1000 + i}"} for i in range(tasks)]
    clusters = [{"cluster_id": f"0101-000000-{i:08d}", "cluster_name": f"c{i}", "state": "TERMINATED",
                 "spark_version": "13.3.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 1}
                for i in range(items)]
    runs = [{"run_id": 10_000_000 + i, "job_id": 7, "run_name": f"r{i}", "run_type": "SUBMIT_RUN",
             "state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""},
             "start_time": 1_700_000_000_000 - i} for i in range(items)]
    return run_tasks, clusters, runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--items", type=int, default=0)
    args = ap.parse_args(argv)
    run_tasks, clusters, runs = build(args.tasks, args.items)
    pages: dict = {}

    def page(kind, items, size, token):
        key = (kind, size)
        if key not in pages:
            pages[key] = [json.dumps(items[k:k + size]) for k in range(0, len(items), size)] or ["[]"]
        n = int(token or 0)
        body = '{"%s": %s' % (kind, pages[key][n])
        if n + 1 < len(pages[key]):
            body += ', "next_page_token": "%d", "has_more": true' % (n + 1)
        return (body + "}").encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            if args.delay:
                time.sleep(args.delay)
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == J + "/runs/get":
                n = int(q.get("page_token") or 0)
                doc = {"run_id": 1, "job_id": 7, "run_page_url": "https://example/run/1",
                       "state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""},
                       "tasks": run_tasks[n * 100:(n + 1) * 100]}
                if (n + 1) * 100 < len(run_tasks):
                    doc["next_page_token"] = str(n + 1)
                body = json.dumps(doc).encode()
            elif url.path == J + "/runs/get-output":
                rid = int(q["run_id"])
                body = json.dumps({"metadata": {"run_id": rid, "state": {"life_cycle_state": "TERMINATED",
                                                                          "result_state": "SUCCESS"}},
                                   "notebook_output": {"result": f"result of {rid}", "truncated": False}}).encode()
            elif url.path == "/api/2.0/preview/scim/v2/Me":
                body = b'{"id": "1", "userName": "stub@example.com", "active": true}'
            elif url.path == "/api/2.1/clusters/list":
                body = page("clusters", clusters, int(q.get("page_size") or 100), q.get("page_token"))
            elif url.path == J + "/runs/list":
                body = page("runs", runs, int(q.get("limit") or 25), q.get("page_token"))
            else:
                body = b'{"error_code": "ENDPOINT_NOT_FOUND", "message": "no such endpoint in the stub"}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    server.RequestHandlerClass.disable_nagle_algorithm = True
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}", "token": "dapi-stub-token"}), flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
