"""Shared plumbing of the benchmarks: the emulator process, the package under test, statistics
and tables. Nothing here is timed."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CHECKOUT = BENCH.parent
SPARK_VERSION = "12.2.x-scala2.12"
NODE_TYPE = "i3.xlarge"


# --------------------------------------------------------------------------- the package under test

def overlay(checkout: Path) -> str:
    """A directory that makes ``import databricks_connector`` load a checkout's working tree (the
    wheel's folder mapping, done with symlinks), so the figures are those of the code on disk
    rather than of an older installed copy."""
    root = Path(tempfile.mkdtemp(prefix="dc-bench-tree-"))
    pkg = root / "databricks_connector"
    pkg.mkdir()
    for f in (checkout / "connector").iterdir():
        if f.name != "__pycache__":
            (pkg / f.name).symlink_to(f)
    for sub in ("actions", "connections", "emulator", "assets"):
        if (checkout / sub).exists():
            (pkg / sub).symlink_to(checkout / sub)
    (pkg / "connector.yaml").symlink_to(checkout / "connector.yaml")
    atexit.register(shutil.rmtree, root, True)
    return str(root)


def child_env(pythonpath: str | None, cache_dir: str | None = None) -> dict:
    """The environment of every measured child: no Databricks configuration leaking in from the
    machine (DATABRICKS_* variables, ~/.databrickscfg), the same PYTHONPATH for every variant."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "PYTHON"))}
    env["DATABRICKS_CONFIG_FILE"] = os.devnull
    # Plain HTTP on loopback, as every figure before the emulator spoke TLS: a handshake costs every
    # client the same, so the ratios are the connector's own cost.
    env["DATABRICKS_EMULATOR_TLS"] = "0"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    if cache_dir:
        env["DATABRICKS_CONNECTOR_CACHE"] = cache_dir
    return env


# --------------------------------------------------------------------------- the emulator process

_EMULATOR = """\
import sys
from databricks_connector.emulator import __main__ as m
sys.exit(m.main(sys.argv[1:]))
"""


class EmulatorProcess:
    """The emulator (``databricks_connector.emulator`` main, --port 0) in its own process, so its
    CPU is never counted as the client's."""

    def __init__(self, python: str, env: dict, *settings: str):
        cmd = [python, "-c", _EMULATOR, "--port", "0"]
        for s in settings:
            cmd += ["--set", s]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            raise RuntimeError(f"the emulator did not start: {err.strip()[-2000:]}")
        self.info = json.loads(line)
        self.url = self.info["url"]
        self.pat = self.info["pat"]
        self.pid = self.proc.pid
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_seconds(self) -> float:
        """CPU the emulator process has used so far (from /proc, Linux only)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    # -- HTTP helpers (urllib, so that the driver's own imports stay out of the way)
    def call(self, method: str, path: str, body=None, auth: bool = True) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.pat}")
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw else {}

    def config(self, **values) -> dict:
        return self.call("POST", "/__emulator/config", values, auth=False)

    def reset(self) -> None:
        self.call("POST", "/__emulator/reset", {}, auth=False)

    def token_fetches(self) -> int:
        return self.call("GET", "/__emulator/requests?since=1000000000", auth=False)["token_fetches"]

    def requests_log(self) -> list:
        return self.call("GET", "/__emulator/requests", auth=False)["requests"]

    def create_cluster(self, name: str = "bench") -> str:
        body = {"cluster_name": name, "spark_version": SPARK_VERSION, "node_type_id": NODE_TYPE, "num_workers": 1}
        return self.call("POST", "/api/2.1/clusters/create", body)["cluster_id"]

    def cluster_state(self, cluster_id: str) -> str:
        return self.call("GET", f"/api/2.1/clusters/get?cluster_id={cluster_id}")["state"]

    def wait_running(self, cluster_id: str, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while self.cluster_state(cluster_id) != "RUNNING":
            if time.monotonic() > end:
                raise RuntimeError(f"cluster {cluster_id} did not start")
            time.sleep(0.2)


# --------------------------------------------------------------------------- statistics and tables

def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def median(values) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def table(headers, rows) -> str:
    """A Markdown table (pastes straight into docs/performance.md)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
           "| " + " | ".join("-" * w for w in widths) + " |"]
    for r in cells[1:]:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    return "\n".join(out)


def say(text: str = "") -> None:
    print(text, flush=True)


def have_module(python: str, env: dict, module: str) -> tuple[bool, str]:
    r = subprocess.run([python, "-c", f"import {module}"], env=env, capture_output=True, text=True)
    return r.returncode == 0, (r.stderr.strip().splitlines() or [""])[-1]


def python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                          capture_output=True, text=True).stdout.strip()


def machine() -> str:
    cores = os.cpu_count()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return f"{cores} cores, load average {load:.2f} at start, Python {sys.version.split()[0]}"
