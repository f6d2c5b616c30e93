"""Small trap helpers for the waiting tests: a TCP proxy on loopback in front of the emulator that
can be switched, in the middle of a step, to stop answering (``hang``) or to refuse connections
(``refuse``). It forwards bytes unchanged until then, so the connector talks real HTTP to the
emulator through it (over TLS end to end when the emulator serves HTTPS). While hanging it
answers TLS itself with a certificate of the emulator's own authority (the one the connection
trusts), so it can read what the client sent. (``tests/traps.py`` from rel-http may grow richer traps; these stay small.)
"""
from __future__ import annotations

import socket
import threading


class Proxy:
    def __init__(self, upstream_url: str):
        self.scheme = upstream_url.split("://", 1)[0]
        host_port = upstream_url.split("://", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.mode = "forward"
        self.seen: list[bytes] = []           # the first bytes of each request received while hanging
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listen = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listen.bind(("127.0.0.1", 0))
        self._listen.listen(64)
        self.port = self._listen.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"trap-proxy-{self.port}")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    # -- switches
    def hang(self) -> None:
        """From now on: accept, read, never answer. Open connections are closed, so the client's
        next request opens a new one and waits."""
        self.mode = "hang"
        self._close_all()

    def refuse(self) -> None:
        """From now on: connections are refused (nothing listens), open ones are closed."""
        self.mode = "refuse"
        try:
            self._listen.shutdown(socket.SHUT_RDWR)     # wakes the blocked accept() and stops listening
        except OSError:
            pass
        try:
            self._listen.close()
        except OSError:
            pass
        self._close_all()

    def close(self) -> None:
        self.refuse()

    def hung_requests(self, prefix: bytes) -> int:
        with self._lock:
            return sum(1 for s in self.seen if s.startswith(prefix))

    # -- plumbing
    def _close_all(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _track(self, *socks) -> None:
        with self._lock:
            self._socks.extend(socks)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listen.accept()
            except OSError:
                return
            if self.mode == "refuse":
                client.close()
                return
            if self.mode == "hang":
                self._track(client)
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._track(client, upstream)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _swallow(self, client) -> None:
        if self.scheme == "https":
            from databricks_connector.emulator import tls

            try:
                client = tls.authority().server_context().wrap_socket(client, server_side=True)
            except OSError:
                return
            self._track(client)
        first = True
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                return
            if not data:
                return
            if first:
                with self._lock:
                    self.seen.append(data[:200])
                first = False

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
