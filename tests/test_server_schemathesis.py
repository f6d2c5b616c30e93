"""Schemathesis over /openapi.json against a live server and the emulator: every operation, with
inputs generated from the documented schemas (examples, boundary values, random and invalid data);
no answer is a 5xx, and every answer conforms to the document (status declared, content type,
headers, body against its schema)."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("schemathesis")
pytest.importorskip("starlette")

from tests.server_harness import ServerProcess, ca_args  # noqa: E402

# Raw Request's own `timeout` (milliseconds, from 1) makes a generated 2 ms timeout a correct 504
# (the upstream did not answer in time), which is the caller's choice, not a server error: it is
# raised to 30 s so the checks test the server, not that choice.
HOOKS = """
import schemathesis


@schemathesis.hook
def map_case(context, case):
    body = case.body
    if case.operation.path == "/actions/raw_request" and isinstance(body, dict) and isinstance(body.get("timeout"), int):
        body["timeout"] = max(body["timeout"], 30000)
    return case
"""
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance")


def _schemathesis(server, conn, *args) -> subprocess.CompletedProcess:
    import tempfile

    argv = [sys.executable, "-m", "schemathesis.cli", "run", server.url + "/openapi.json", "--checks", CHECKS,
            "--request-timeout", "120", "--no-color", "--workers", "1", "--generation-database", "none",
            "--suppress-health-check", "all", *args]
    for name, value in server.headers(conn).items():
        argv += ["-H", f"{name}: {value}"]
    import os

    with tempfile.TemporaryDirectory(prefix="dbc-schemathesis-") as cwd:      # its report folder goes there
        hooks = os.path.join(cwd, "hooks.py")
        with open(hooks, "w", encoding="utf-8") as fh:
            fh.write(HOOKS)
        return subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=cwd,
                              env=dict(os.environ, SCHEMATHESIS_HOOKS=hooks))


@pytest.fixture(scope="module")
def emulator():
    """An emulator of its own: what schemathesis creates (hundreds of objects) stays out of the
    session's, and its run does not depend on what the tests before it left behind."""
    from databricks_connector.emulator import Emulator
    from tests.conftest import FAST

    with Emulator(**FAST) as emu:
        emu.initial_config = emu.config.as_dict()
        yield emu


@pytest.fixture
def pat(emulator):
    return emulator.connections()["personal_access_token"]


@pytest.fixture(scope="module")
def server(emulator):
    # a short sync budget keeps generated waits short once the runtime can answer 202
    with ServerProcess("--sync-budget", "5", *ca_args(emulator)) as s:
        yield s


def test_every_operation_conforms_and_never_answers_5xx(server, pat):
    run = _schemathesis(server, pat, "--mode", "positive", "--phases", "examples,coverage,fuzzing", "-n", "10",
                        "--seed", "15")
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary + run.stderr[-2000:]
    doc = server.get("/openapi.json").json()
    operations = sum(len(p) for p in doc["paths"].values())
    assert f"Tested: {operations}" in summary, summary         # every operation in the document was exercised


def test_invalid_data_never_answers_5xx_and_conforms(server, pat):
    # (an operation with no body or a free-form one has no invalid form: schemathesis skips it)
    run = _schemathesis(server, pat, "--mode", "negative", "--phases", "fuzzing", "-n", "5", "--seed", "15",
                        "--exclude-operation-id", "test_connection")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
