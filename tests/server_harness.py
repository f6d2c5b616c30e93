"""Run ``databricks-connector serve`` as a real process on a free loopback port, for the server tests.

``ServerProcess(*args, env=...)`` starts ``python -m databricks_connector serve --port 0 ...``,
waits for the URL it prints on stderr and for ``GET /healthz``; its stderr goes to a file the
tests read (``.log()``) to check that no secret reached the server's logs.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import requests

API_KEY = "test-api-key-0123456789abcdef"
URL_LINE = re.compile(r"listening on (http://\S+?)[\s(]")


class ServerProcess:
    def __init__(self, *args: str, env: dict | None = None, api_key: str | None = API_KEY, timeout: float = 60.0):
        self.api_key = api_key
        environ = dict(os.environ)
        environ.update(env or {})
        argv = [sys.executable, "-m", "databricks_connector", "serve", "--port", "0", *args]
        if api_key is not None and "--no-auth" not in args and "--api-key-env" not in args:
            environ["DBC_TEST_API_KEY"] = api_key
            argv += ["--api-key-env", "DBC_TEST_API_KEY"]
        self._log = tempfile.NamedTemporaryFile("w+", prefix="dbc-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log, env=environ, text=True)
        self.url = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = URL_LINE.search(self.log())
            if m:
                self.url = m.group(1)
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: {self.log()[-2000:]} {self.proc.stdout.read()}")
            time.sleep(0.05)
        if self.url is None:
            self.stop()
            raise RuntimeError(f"serve did not print its URL in {timeout} s: {self.log()[-2000:]}")
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("serve never answered /healthz")

    def log(self) -> str:
        with open(self._log.name, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def headers(self, conn: dict | None = None, **extra) -> dict:
        """X-API-Key plus the connection's headers (PAT or service principal)."""
        h = {"X-API-Key": self.api_key} if self.api_key else {}
        if conn is not None:
            h.update(connection_headers(conn))
        h.update(extra)
        return h

    def post(self, path: str, body=None, conn=None, headers=None, **kw):
        h = self.headers(conn)
        h.update(headers or {})
        return requests.post(self.url + path, json=body if body is not None else {}, headers=h, timeout=kw.pop("timeout", 120), **kw)

    def get(self, path: str, conn=None, headers=None, **kw):
        h = self.headers(conn)
        h.update(headers or {})
        return requests.get(self.url + path, headers=h, timeout=kw.pop("timeout", 120), **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        try:
            os.unlink(self._log.name)
        except OSError:
            pass


def connection_headers(conn: dict) -> dict:
    if conn["type"] == "personal_access_token":
        return {"X-Databricks-Host": conn["host"], "X-Databricks-Token": conn["token"]}
    h = {"X-Databricks-Token-Url": conn["token_url"], "X-Databricks-Client-Id": conn["client_id"],
         "X-Databricks-Client-Secret": conn["client_secret"]}
    if conn.get("scopes"):
        h["X-Databricks-Scopes"] = conn["scopes"]
    return h


def ca_args(emulator) -> list[str]:
    """``--ca-bundle`` when the emulator serves HTTPS with its own CA (request-supplied
    connections cannot carry a file path, so the server is told which CA to trust)."""
    bundle = next((c.get("ca_bundle") for c in emulator.connections().values() if c.get("ca_bundle")), None)
    return ["--ca-bundle", bundle] if bundle else []
