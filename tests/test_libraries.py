"""Cluster libraries over real HTTP against the emulator: install and wait (INSTALLED, FAILED),
install twice, uninstall on restart, a cluster that is not running, and inputs refused before any
request."""
import json

import pytest

from databricks_connector.errors import ConnectorError

from .scenarios import seed_cluster

API = "/api/2.0/libraries"


@pytest.fixture(autouse=True)
def fast(emulator):
    emulator.config.update({"library_install_seconds": 0.1, "cluster_start_seconds": 0.2,
                            "cluster_restart_seconds": 0.2, "cluster_terminate_seconds": 0.1})


def _by_status(out):
    return {json.dumps(s["library"], sort_keys=True): s["status"] for s in out["library_statuses"]}


def test_install_waits_until_installed_and_twice_changes_nothing(connector, conn, emulator):
    cid = seed_cluster(emulator, "RUNNING")
    inputs = {"cluster_id": cid, "pypi_packages": ["pandas==2.2.2"], "pypi_repo": "https://index.example.com/simple",
              "maven_coordinates": ["com.databricks:spark-xml_2.12:0.18.0"], "jars": ["/Volumes/main/libs/a.jar"]}
    since = len(emulator.requests)
    out = connector.run("install_libraries", conn, {**inputs, "wait_for_installation": True,
                                                    "poll_interval_seconds": 0.1, "timeout_seconds": 60})
    (post,) = [json.loads(r["raw"]) for r in emulator.requests[since:] if r["path"] == f"{API}/install"]
    assert post["libraries"] == [{"pypi": {"package": "pandas==2.2.2", "repo": "https://index.example.com/simple"}},
                                 {"maven": {"coordinates": "com.databricks:spark-xml_2.12:0.18.0"}},
                                 {"jar": "/Volumes/main/libs/a.jar"}]
    assert set(_by_status(out).values()) == {"INSTALLED"} and len(out["library_statuses"]) == 3
    before = emulator.state.applied["libraries/install"]
    again = connector.run("install_libraries", conn, inputs)
    assert emulator.state.applied["libraries/install"] == before and len(again["library_statuses"]) == 3


def test_a_missing_package_fails_the_wait_with_its_message(connector, pat, emulator):
    cid = seed_cluster(emulator, "RUNNING")
    with pytest.raises(ConnectorError) as err:
        connector.run("install_libraries", pat, {"cluster_id": cid, "pypi_packages": ["nonexistent-package==9", "six"],
                                                 "wait_for_installation": True, "poll_interval_seconds": 0.1})
    e = err.value
    assert e.type == "operation_failed" and "nonexistent-package" in e.message and "No matching distribution" in e.message
    assert e.details["started"] == {"cluster_id": cid}
    status = connector.run("get_library_status", pat, {"cluster_id": cid})
    failed = [s for s in status["library_statuses"] if s["status"] == "FAILED"]
    assert len(failed) == 1 and failed[0]["messages"]


def test_uninstall_takes_effect_on_restart_and_the_rest_is_installed_again(connector, pat, emulator):
    cid = seed_cluster(emulator, "RUNNING")
    connector.run("install_libraries", pat, {"cluster_id": cid, "pypi_packages": ["keep", "drop"],
                                             "wait_for_installation": True, "poll_interval_seconds": 0.1})
    out = connector.run("uninstall_libraries", pat, {"cluster_id": cid, "pypi_packages": ["drop"]})
    assert _by_status(out)[json.dumps({"pypi": {"package": "drop"}})] == "UNINSTALL_ON_RESTART"
    connector.run("restart_cluster", pat, {"cluster_id": cid, "wait_for_state": True, "poll_interval_seconds": 0.1})
    after = connector.run("get_library_status", pat, {"cluster_id": cid})
    assert [s["library"] for s in after["library_statuses"]] == [{"pypi": {"package": "keep"}}]
    out = connector.run("install_libraries", pat, {"cluster_id": cid, "pypi_packages": ["keep"],
                                                   "wait_for_installation": True, "poll_interval_seconds": 0.1})
    assert _by_status(out) == {json.dumps({"pypi": {"package": "keep"}}): "INSTALLED"}


def test_a_stopped_cluster_keeps_libraries_pending(connector, pat, emulator):
    cid = seed_cluster(emulator, "TERMINATED")
    out = connector.run("install_libraries", pat, {"cluster_id": cid, "wheels": ["/Volumes/main/libs/x.whl"]})
    assert [s["status"] for s in out["library_statuses"]] == ["PENDING"]
    with pytest.raises(ConnectorError) as err:
        connector.run("install_libraries", pat, {"cluster_id": cid, "wheels": ["/Volumes/main/libs/x.whl"],
                                                 "wait_for_installation": True, "timeout_seconds": 1,
                                                 "poll_interval_seconds": 0.2})
    assert err.value.type == "timeout" and "PENDING" in err.value.message


def test_no_library_or_a_bad_one_is_refused_before_any_request(connector, pat, emulator):
    since = len(emulator.requests)
    with pytest.raises(ConnectorError) as err:
        connector.run("install_libraries", pat, {"cluster_id": "0123-456789-abcdefgh"})
    assert err.value.type == "invalid_input" and "PyPI Packages" in err.value.message
    with pytest.raises(ConnectorError) as err:
        connector.run("install_libraries", pat, {"cluster_id": "0123-456789-abcdefgh", "maven_coordinates": ["nope"],
                                                 "libraries": [{"pypi": {"package": "a"}, "jar": "/b.jar"}]})
    assert "Maven Coordinates" in err.value.message and "Libraries" in err.value.message
    assert not [r for r in emulator.requests[since:] if r["path"].startswith(API)]
