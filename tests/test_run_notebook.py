"""Run Notebook: one step from a notebook and its parameters to the notebook's exit value, over
real HTTP against the emulator, which runs the notebook's Python for real."""
import pytest

from databricks_connector import InputError
from databricks_connector.errors import ConnectorError
from tests import scenarios as S

NB = "/Shared/run-notebook/report"
SOURCE = ("day = dbutils.widgets.get('day')\n"
          "rows = int(dbutils.widgets.get('rows'))\n"
          "dbutils.notebook.exit(f'{rows * 2} rows on {day}')\n")
FAILING = "/Shared/run-notebook/broken"


@pytest.fixture
def notebooks(emulator):
    S.fast_jobs(emulator)
    S.seed_notebook(emulator, NB, SOURCE)
    S.seed_notebook(emulator, FAILING, "raise ValueError('no input table')\n")
    return emulator


def test_the_exit_value_comes_back_on_serverless_and_on_a_cluster(notebooks, connector, conn):
    before = notebooks.state.applied["jobs/runs/submit"]
    out = connector.run("run_notebook", conn, {"notebook_path": NB, "base_parameters": {"day": "2024-01-01", "rows": 21},
                                               "poll_interval_seconds": 0.1})
    assert out["exit_value"] == "42 rows on 2024-01-01"
    assert out["state"]["result_state"] == "SUCCESS" and out["run_page_url"].startswith("http")
    assert notebooks.state.applied["jobs/runs/submit"] == before + 1
    task = out["run"]["tasks"][0]
    assert not any(k in task for k in ("existing_cluster_id", "new_cluster"))      # serverless: no compute field
    cid = S.seed_cluster(notebooks, "RUNNING")
    out = connector.run("run_notebook", conn, {"notebook_path": NB, "cluster_id": cid,
                                               "base_parameters": {"day": "x", "rows": "1"},
                                               "poll_interval_seconds": 0.1})
    assert out["exit_value"] == "2 rows on x" and out["run"]["tasks"][0]["existing_cluster_id"] == cid


def test_a_failing_notebook_fails_the_step_with_its_error(notebooks, connector, pat):
    with pytest.raises(ConnectorError) as exc:
        connector.run("run_notebook", pat, {"notebook_path": FAILING, "poll_interval_seconds": 0.1})
    assert exc.value.type == "operation_failed"
    assert "no input table" in str(exc.value.to_dict())
    assert exc.value.details["started"]["run_id"]                 # the run it started is named


def test_bad_inputs_are_named_before_any_request(notebooks, connector, pat):
    since = len(notebooks.requests)
    with pytest.raises(InputError) as exc:
        connector.run("run_notebook", pat, {"notebook_path": "relative/path", "cluster_id": "0123-456789-abcdefgh",
                                            "new_cluster": {"num_workers": 1}})
    keys = {p["key"] for p in exc.value.problems}
    assert {"notebook_path"} <= keys and keys & {"cluster_id", "new_cluster"}, exc.value.problems
    assert not S.api_requests(notebooks.requests[since:])
