"""A tampering proxy over loopback: it stands in front of the emulator (or any upstream), forwards
every request, and lets a test rewrite the answers that match a rule — drop rows or ``data_array``
from a result chunk, answer another chunk, cut a body in the middle, hang. Presigned links in the
answers are rewritten to pass through the proxy too, so downloads from cloud storage can be
tampered with the same way (``path`` is then ``/__link__`` + the link's own path).

    proxy = TamperProxy(emulator.url, ca_bundle=...)
    proxy.on(r"/result/chunks/2$", lambda a: a.edit(lambda d: d.pop("data_array")), times=1)
    connector.run("execute_sql_statement", proxy.connection(pat), {...})

Nothing here patches the client: the connector talks real HTTP to the proxy, which talks real
HTTP to the emulator.
"""
from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import requests

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "accept-encoding", "te", "upgrade",
        "proxy-authorization", "proxy-connection"}


class Answer:
    """One answer on its way back; a rule may change any of it."""

    def __init__(self, method, path, query, status, headers, body):
        self.method, self.path, self.query = method, path, query
        self.status, self.headers, self.body = status, headers, body
        self.cut = None          # send only this many body bytes, then drop the connection (Content-Length stays full)
        self.short = None        # send only this many body bytes with no Content-Length, then close (looks complete)
        self.delay = 0.0         # seconds to wait before answering

    @property
    def json(self):
        return json.loads(self.body)

    @json.setter
    def json(self, value):
        self.body = json.dumps(value).encode()

    def edit(self, fn):
        """Change the JSON body in place: ``fn(doc)``."""
        doc = self.json
        fn(doc)
        self.json = doc


class TamperProxy:
    def __init__(self, upstream: str, *, ca_bundle: str | None = None):
        self.upstream = upstream.rstrip("/")
        self.verify = ca_bundle or True
        self.rules: list = []
        self.rewrites: list = []
        self.log: list = []
        self.lock = threading.Lock()
        self._http = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # -- the test's side
    def on(self, pattern: str, fn, *, times: int | None = None, method: str | None = "GET"):
        """Apply ``fn(answer)`` to answers whose path matches ``pattern`` (``times`` answers, or all)."""
        with self.lock:
            self.rules.append({"re": re.compile(pattern), "fn": fn, "left": times, "method": method, "hits": 0})
        return self.rules[-1]

    def rewrite(self, pattern: str, replacement: str):
        """Forward requests whose path (and query) match ``pattern`` to ``re.sub(pattern, replacement)``
        instead, e.g. another API version of the same endpoint."""
        with self.lock:
            self.rewrites.append((re.compile(pattern), replacement))

    def clear(self):
        with self.lock:
            self.rules.clear()
            self.rewrites.clear()

    def requests(self, pattern: str = ".", method: str | None = None) -> list:
        with self.lock:
            return [(m, p) for m, p in self.log if re.search(pattern, p) and (method is None or m == method)]

    def connection(self, conn: dict) -> dict:
        return dict(conn, host=self.url)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the wire side
    def _session(self) -> requests.Session:
        s = getattr(self._http, "s", None)
        if s is None:
            s = self._http.s = requests.Session()
            s.trust_env = False
        return s

    def _handle(self, h: BaseHTTPRequestHandler):
        length = int(h.headers.get("Content-Length") or 0)
        data = h.rfile.read(length) if length else None
        path, _, query = h.path.partition("?")
        with self.lock:
            self.log.append((h.command, path))
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
        if path.startswith("/__link__/"):
            target = base64.urlsafe_b64decode(path[len("/__link__/"):].encode()).decode()
            path = "/__link__" + urlsplit(target).path
        else:
            forwarded = h.path
            with self.lock:
                for rx, repl in self.rewrites:
                    forwarded = rx.sub(repl, forwarded)
            target = self.upstream + forwarded
        try:
            r = self._session().request(h.command, target, data=data, headers=headers, allow_redirects=False,
                                        verify=self.verify, timeout=60)
            status, body = r.status_code, r.content
            out_headers = {k: v for k, v in r.headers.items() if k.lower() not in _HOP}
        except requests.RequestException as exc:
            status, body, out_headers = 502, str(exc).encode(), {"Content-Type": "text/plain"}
        if "json" in out_headers.get("Content-Type", "") and b"external_link" in body:
            body = self._rewrite_links(body)
        answer = Answer(h.command, path, query, status, out_headers, body)
        with self.lock:
            rules = [r for r in self.rules if r["re"].search(path) and (r["method"] in (None, h.command))
                     and (r["left"] is None or r["left"] > 0)]
            for rule in rules:
                if rule["left"] is not None:
                    rule["left"] -= 1
                rule["hits"] += 1
        for rule in rules:
            rule["fn"](answer)
        if answer.delay:
            time.sleep(answer.delay)
        self._send(h, answer)

    def _rewrite_links(self, body: bytes) -> bytes:
        doc = json.loads(body)

        def walk(x):
            if isinstance(x, dict):
                for k, v in x.items():
                    if k == "external_link" and isinstance(v, str) and urlsplit(v).scheme in ("http", "https"):
                        x[k] = f"{self.url}/__link__/" + base64.urlsafe_b64encode(v.encode()).decode()
                    else:
                        walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)

        walk(doc)
        return json.dumps(doc).encode()

    @staticmethod
    def _send(h, a: Answer):
        body = a.body or b""
        h.send_response(a.status)
        for k, v in a.headers.items():
            h.send_header(k, v)
        if a.short is not None:
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body[:a.short])
            h.wfile.flush()
            h.close_connection = True
            return
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if a.cut is not None:
            h.wfile.write(body[:a.cut])
            h.wfile.flush()
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            h.close_connection = True
            return
        h.wfile.write(body)
