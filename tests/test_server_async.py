"""Long operations without sticky workers: 202 Accepted + Location + Retry-After, then GET on the
operation until 200, across server processes (one issues the token, another - started after the
first one stopped - answers it), with nothing started twice. Uses the runner's resumable form
(``Connector.run(..., budget=)`` raising ``errors.Pending``, ``Connector.resume``)."""
from __future__ import annotations

import base64
import json
import time
import zlib

import pytest

pytest.importorskip("starlette")

from tests.scenarios import seed_cluster  # noqa: E402
from tests.server_harness import ServerProcess, ca_args  # noqa: E402

SECRET = {"DBC_TEST_TOKEN_SECRET": "a-shared-operation-secret-0123456789"}
START = r"/api/2\.[01]/clusters/start"


def _inputs(cluster_id):
    return {"cluster_id": cluster_id, "wait_for_state": True, "timeout_seconds": 300, "poll_interval_seconds": 0.2}


def _payload(token: str) -> str:
    body = token.split(".")[1]
    return zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))).decode()


def _follow(server, location, conn, limit=300):
    """GET the operation until it is not 202 (bounded by a count of polls, not by time)."""
    seen = 0
    for _ in range(limit):
        r = server.get(location.split(server.url, 1)[-1] if location.startswith("http") else location, conn=conn)
        if r.status_code != 202:
            return r, seen
        seen += 1
        assert int(r.headers["Retry-After"]) >= 1
        location = r.headers["Location"]
        time.sleep(0.2)
    raise AssertionError("the operation never finished")


def test_prefer_respond_async_and_any_process_answers(emulator, pat):
    emulator.config.cluster_start_seconds = 6
    cid = seed_cluster(emulator, "TERMINATED")
    starts = emulator.count("POST", START)
    args = ["--token-secret-env", "DBC_TEST_TOKEN_SECRET", "--poll-budget", "1", *ca_args(emulator)]
    with ServerProcess(*args, env=SECRET) as second:
        with ServerProcess(*args, env=SECRET) as first:
            r = first.post("/actions/start_terminated_cluster", _inputs(cid), conn=pat,
                           headers={"Prefer": "respond-async"})
            assert r.status_code == 202, r.text
            assert r.headers["Preference-Applied"] == "respond-async"
            location = r.headers["Location"]
            assert location.startswith(first.url + "/operations/op1.")
            assert int(r.headers["Retry-After"]) >= 1
            doc = r.json()
            assert doc["status"] == "running" and doc["action"] == "start_terminated_cluster"
            assert location.endswith(doc["operation"])
            text = _payload(doc["operation"])
            assert pat["token"] not in text and cid in text      # the started id travels; the credential never
            # another process, running at the same time, answers the first one's token
            token = location.rsplit("/", 1)[1]
            polled = second.get(f"/operations/{token}", conn=pat)
            assert polled.status_code == 202, polled.text
            assert polled.headers["Location"].startswith(second.url + "/operations/op1.")
        # the first process is gone; a new one with the same secret carries on with the latest token
        with ServerProcess(*args, env=SECRET) as restarted:
            latest = polled.headers["Location"].rsplit("/", 1)[1]
            done, running = _follow(restarted, f"/operations/{latest}", pat)
            assert done.status_code == 200, done.text
            assert done.json()["cluster_id"] == cid and done.json()["state"] == "RUNNING"
    assert emulator.count("POST", START) - starts == 1           # started once, whichever process answered


def test_a_wait_past_the_sync_budget_becomes_an_operation(emulator, pat):
    emulator.config.cluster_start_seconds = 4
    cid = seed_cluster(emulator, "TERMINATED")
    with ServerProcess("--sync-budget", "1", "--poll-budget", "1", *ca_args(emulator)) as s:
        r = s.post("/actions/start_terminated_cluster", _inputs(cid), conn=pat)
        assert r.status_code == 202, r.text
        assert "Preference-Applied" not in r.headers
        done, _ = _follow(s, r.headers["Location"], pat)
        assert done.status_code == 200 and done.json()["state"] == "RUNNING"


def test_tokens_are_bound_to_the_caller_signed_and_the_secret_matters(emulator, pat, sp):
    emulator.config.cluster_start_seconds = 30
    cid = seed_cluster(emulator, "TERMINATED")
    args = ["--token-secret-env", "DBC_TEST_TOKEN_SECRET", *ca_args(emulator)]
    with ServerProcess(*args, env=SECRET) as s:
        r = s.post("/actions/start_terminated_cluster", _inputs(cid), conn=pat, headers={"Prefer": "respond-async"})
        assert r.status_code == 202, r.text
        token = r.json()["operation"]
        other_caller = s.get(f"/operations/{token}", conn=sp)
        assert other_caller.status_code == 404
        prefix, body, mac = token.split(".")
        flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
        assert s.get(f"/operations/{prefix}.{flipped}.{mac}", conn=pat).status_code == 404
        assert s.get("/operations/not-a-token", conn=pat).status_code == 404
    with ServerProcess(*ca_args(emulator), env={"DBC_TEST_TOKEN_SECRET": "another-secret-entirely-0123456789"}) as s2:
        assert s2.get(f"/operations/{token}", conn=pat).status_code == 404
    emulator.config.cluster_start_seconds = 0.3


def test_mcp_long_calls_continue_with_get_operation(emulator, pat):
    import asyncio

    httpx2 = pytest.importorskip("httpx2")
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    emulator.config.cluster_start_seconds = 4
    cid = seed_cluster(emulator, "TERMINATED")
    with ServerProcess("--sync-budget", "1", "--poll-budget", "1", *ca_args(emulator)) as s:
        async def main():
            async with httpx2.AsyncClient(headers=s.headers(pat), timeout=120) as http:
                async with Client(streamable_http_client(s.url + "/mcp", http_client=http)) as client:
                    first = await client.call_tool("start_terminated_cluster", _inputs(cid))
                    assert first.is_error
                    doc = json.loads(first.content[0].text)
                    assert doc["status"] == "running"
                    token = doc["operation"]
                    for _ in range(200):
                        result = await client.call_tool("get_operation", {"operation": token})
                        if not result.is_error:
                            return result
                        doc = json.loads(result.content[0].text)
                        assert doc.get("status") == "running", doc
                        token = doc["operation"]
                        await asyncio.sleep(0.2)
                    raise AssertionError("never finished")

        result = asyncio.run(main())
        assert json.loads(result.content[0].text)["state"] == "RUNNING"
