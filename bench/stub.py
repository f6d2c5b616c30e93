"""A small independent stub of the endpoints the run-output benchmark calls, run in its own process
(so its CPU is never the client's), on 127.0.0.1, port 0:

    python bench/stub.py --delay 0.02 --tasks 200

* ``GET /api/2.2/jobs/runs/get?run_id=1``: a run with ``--tasks`` tasks, paged by 100 as API 2.2 does;
* ``GET /api/2.2/jobs/runs/get-output?run_id=<task run id>``: that task's output;
* ``GET /api/2.0/preview/scim/v2/Me``: a user (a warm-up call);
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


def build(tasks: int):
    return [{"task_key": f"task_{i:03d}", "run_id": 1000 + i,
             "state": {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""},
             "run_page_url": f"https://example/run/{1000 + i}"} for i in range(tasks)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--tasks", type=int, default=200)
    args = ap.parse_args(argv)
    run_tasks = build(args.tasks)

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
