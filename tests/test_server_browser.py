"""The playground page in a real headless Chromium (Debian's, driven by Playwright; Playwright
downloads no browser): open the page, fill the forms the schema produces, let a picker fill its
dropdown live, run Get Current User and Execute SQL against the emulator, read the results and an
error with its hint from the page."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

pytest.importorskip("starlette")
playwright_api = pytest.importorskip("playwright.sync_api")

from tests.scenarios import PAT_USER, seed_warehouse  # noqa: E402
from tests.server_harness import API_KEY, ServerProcess, ca_args  # noqa: E402

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                             shutil.which("chromium") or "") if p and os.path.isfile(p)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]

if CHROMIUM is None:
    sys.stderr.write("\n*** test_server_browser: NO CHROMIUM BINARY (apt-get install chromium): the playground's "
                     "browser test is SKIPPED ***\n")
    pytest.skip("no chromium binary on this machine (apt-get install chromium); .ci/run installs it",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(emulator, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pg-connections")
    (folder / "emu.json").write_text(json.dumps(emulator.connections()["personal_access_token"]))
    with ServerProcess("--connections", str(folder), *ca_args(emulator)) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def _run(page, timeout=60_000) -> str:
    page.click("#run")
    page.wait_for_selector("#status[data-state]", timeout=timeout)
    return page.get_attribute("#status", "data-state")


def test_playground_runs_actions_in_a_real_browser(server, browser, emulator, pat, tmp_path):
    wid = seed_warehouse(emulator, "RUNNING", name="Playground Warehouse")
    page = browser.new_page()
    problems = []
    # (an answered 4xx is logged by Chromium as "Failed to load resource"; the page handles those)
    page.on("console", lambda m: problems.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource: the server responded") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    assert "Databricks" in page.text_content("#title")

    # a connection configured on the server, picked by name
    page.fill("#api-key", API_KEY)
    page.dispatch_event("#api-key", "change")
    page.wait_for_selector("#conn-names option", state="attached")
    assert page.input_value("#conn-name") == "emu"
    page.select_option("#action", "get_current_user")
    assert _run(page) == "done", page.text_content("#output")
    assert json.loads(page.text_content("#output"))["userName"] == PAT_USER

    # host and token typed in; the warehouse picker fills its dropdown live
    page.select_option("#conn-mode", "pat")
    page.fill("#host", pat["host"])
    page.fill("#token", pat["token"])
    page.dispatch_event("#token", "change")
    page.select_option("#action", "execute_sql_statement")
    page.wait_for_selector("#in-warehouse_id[data-options]", timeout=30_000)
    options = page.eval_on_selector_all("#options-warehouse_id option", "os => os.map(o => [o.value, o.textContent])")
    assert any(v == wid and "Playground Warehouse" in label for v, label in options), options
    page.fill("#in-warehouse_id", wid)
    page.fill("#in-statement", "SELECT 6 * 7 AS answer")
    page.evaluate("document.getElementById('status').removeAttribute('data-state')")
    assert _run(page) == "done", page.text_content("#output")
    result = json.loads(page.text_content("#output"))
    assert result["rows"] == [{"answer": 42}]

    # an error shows its type, message and hint
    page.select_option("#action", "get_cluster")
    page.fill("#in-cluster_id", "0000-000000-missing0")
    page.evaluate("document.getElementById('status').removeAttribute('data-state')")
    assert _run(page) == "failed"
    assert page.is_visible("#error")
    assert page.text_content("#error .type") == "not_found"
    assert "does not exist" in page.text_content("#error .message")
    assert page.text_content("#error .hint").strip()

    page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
    assert problems == []            # no script error, no CSP violation
    page.close()
