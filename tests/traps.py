"""Hostile servers for the reliability tests, over real HTTP on loopback (127.0.0.1, port 0).

``Trap`` is a threaded HTTP/1.1 server whose answers each test scripts with rules: a rule
matches a method and a path (a regular expression, full match), fires a number of times, and
answers with an :class:`Answer` (or a function of the request and, when it forwards, of the
upstream's answer). Put in front of the emulator (``Trap(upstream=emulator.url)``) it is a
tampering proxy: it forwards what no rule takes, and a rule with ``forward=True`` lets the
emulator apply the request first, then answers what the rule says (a 503 after the change was
made, a body of the wrong shape, ...). With ``as_proxy=True`` it records requests sent to it as
an HTTP proxy (absolute-form request lines).

Answers can trickle (one byte every ``trickle`` seconds, status line and headers included), be
held until an event is set (or the trap closes), or drop the connection unanswered.
"""
from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

ENVOY_503_TEXT = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
       "transfer-encoding", "upgrade", "content-length", "host"}


@dataclass
class Answer:
    status: int = 200
    body: Any = b""                 # bytes/str as they are; anything else as JSON
    headers: dict = field(default_factory=dict)
    trickle: float = 0.0            # seconds between bytes of the whole response
    hold: Optional[threading.Event] = None
    drop: bool = False

    def payload(self) -> tuple[bytes, dict]:
        headers = dict(self.headers)
        if isinstance(self.body, (bytes, bytearray)):
            data = bytes(self.body)
        elif isinstance(self.body, str):
            data = self.body.encode("utf-8")
        else:
            data = json.dumps(self.body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        return data, headers


def envoy_503() -> Answer:
    """What Envoy answers when the upstream reset after (or before) processing the request."""
    return Answer(503, ENVOY_503_TEXT, {"Content-Type": "text/plain", "server": "envoy"})


def databricks_error(status: int, error_code: str, message: str, **headers) -> Answer:
    return Answer(status, {"error_code": error_code, "message": message}, {k.replace("_", "-"): v for k, v in headers.items()})


def json_answer(doc, status: int = 200) -> Answer:
    """Exactly this JSON text (``null``, a list, a string...), as application/json."""
    return Answer(status, json.dumps(doc).encode(), {"Content-Type": "application/json"})


@dataclass
class Seen:
    method: str
    target: str                     # the request target as sent (absolute-form through a proxy)
    path: str
    query: dict
    headers: dict
    body: bytes
    time: float

    @property
    def json(self):
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class Rule:
    method: Optional[str]
    path: str
    respond: Any                    # Answer, or fn(seen, upstream_answer_or_None) -> Answer
    times: Optional[int] = 1        # None: every time
    forward: bool = False
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return re.fullmatch(self.path, path) is not None


class Trap:
    def __init__(self, upstream: str | None = None, *, ca_bundle: str | None = None, default: Answer | None = None):
        self.upstream = urllib.parse.urlsplit(upstream) if upstream else None
        self.ca_bundle = ca_bundle
        self.default = default
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.closing = threading.Event()
        trap = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, *args):
                pass

            def _any(self):
                trap._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass                                 # a client that went away mid-answer is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    # -- scripting -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, path: str, respond, *, method: str | None = None, times: int | None = 1, forward: bool = False) -> Rule:
        rule = Rule(method, path, respond, times, forward)
        with self._lock:
            self.rules.append(rule)
        return rule

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            seen = list(self.seen)
        return [s for s in seen if (not method or s.method == method.upper())
                and (not path or re.fullmatch(path, s.path))]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.requests(method, path))

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Trap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- serving -------------------------------------------------------------------------
    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path) and (rule.times is None or rule.fired < rule.times):
                    rule.fired += 1
                    return rule
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(h.path)
        seen = Seen(h.command, h.path, split.path or "/", urllib.parse.parse_qs(split.query, keep_blank_values=True),
                    dict(h.headers), body, time.monotonic())
        with self._lock:
            self.seen.append(seen)
        rule = self._take(seen.method, seen.path)
        upstream = None
        if self.upstream is not None and (rule is None or rule.forward):
            upstream = self._forward(h, seen)
        if rule is not None:
            answer = rule.respond(seen, upstream) if callable(rule.respond) else rule.respond
        elif upstream is not None:
            answer = upstream
        else:
            answer = self.default or Answer(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"trap: no rule for "
                                                  f"{seen.method} {seen.path}"})
        self._send(h, answer)

    def _forward(self, h, seen: Seen) -> Answer:
        up = self.upstream
        if up.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca_bundle)
            conn = http.client.HTTPSConnection(up.hostname, up.port, timeout=60, context=ctx)
        else:
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        headers = {k: v for k, v in seen.headers.items() if k.lower() not in HOP}
        headers["Host"] = up.netloc
        try:
            conn.request(seen.method, seen.target, body=seen.body or None, headers=headers)
            r = conn.getresponse()
            data = r.read()
            out = {k: v for k, v in r.getheaders() if k.lower() not in HOP}
            return Answer(r.status, data, out)
        finally:
            conn.close()

    def _send(self, h, answer: Answer) -> None:
        if answer.hold is not None:
            while not answer.hold.wait(0.05):
                if self.closing.is_set():
                    break
        if answer.drop:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        data, headers = answer.payload()
        reason = http.client.responses.get(answer.status, "Unknown")
        head = [f"HTTP/1.1 {answer.status} {reason}"]
        headers.setdefault("Content-Length", str(len(data)))
        head += [f"{k}: {v}" for k, v in headers.items()]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (data if h.command != "HEAD" else b"")
        try:
            if answer.trickle:
                for i in range(len(raw)):
                    if self.closing.is_set():
                        h.close_connection = True
                        return
                    h.wfile.write(raw[i:i + 1])
                    h.wfile.flush()
                    time.sleep(answer.trickle)
            else:
                h.wfile.write(raw)
                h.wfile.flush()
        except OSError:
            h.close_connection = True


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bounded(call: Callable, within: float, on_overrun: Callable | None = None):
    """Run ``call()`` in a thread; (finished, result, error). When it has not finished within
    ``within`` seconds, ``on_overrun()`` (e.g. close the trap) ends it and finished is False."""
    box: dict = {}

    def run():
        try:
            box["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(within)
    finished = not t.is_alive()
    if not finished and on_overrun is not None:
        on_overrun()
        t.join(60)
    return finished, box.get("result"), box.get("error")
