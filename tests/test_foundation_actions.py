"""The first actions end to end over real HTTP, with both connection types."""
import pytest

from databricks_connector import ConnectorError


def _cluster(emulator, **fields):
    return emulator.state.add_cluster(**{"cluster_name": "seeded", "spark_version": "13.3.x-scala2.12",
                                         "node_type_id": "i3.xlarge", "num_workers": 1, **fields})


def test_get_current_user(emulator, conn, connector):
    me = connector.run("get_current_user", conn)
    expected = conn["client_id"] if conn["type"] == "service_principal" else "emulator-user@example.com"
    assert me["userName"] == expected and me["active"] is True and "id" in me
    req = emulator.requests[-1]
    assert req["method"] == "GET" and req["path"] == "/api/2.0/preview/scim/v2/Me"


def test_get_cluster(emulator, conn, connector):
    cid = _cluster(emulator, state="RUNNING")
    out = connector.run("get_cluster", conn, {"cluster_id": cid})
    assert out["cluster_id"] == cid and out["state"] == "RUNNING" and out["cluster_name"] == "seeded"
    req = emulator.requests[-1]
    assert req["method"] == "GET" and req["path"] == "/api/2.1/clusters/get" and req["query"] == {"cluster_id": [cid]}


def test_get_unknown_cluster_is_not_found(emulator, conn, connector):
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_cluster", conn, {"cluster_id": "0000-000000-missing0"})
    err = exc.value
    assert err.type == "not_found" and err.status == 400 and err.error_code == "INVALID_PARAMETER_VALUE"
    assert "does not exist" in err.message


def test_get_cluster_requires_an_id(emulator, conn, connector):
    before = len(emulator.requests)
    with pytest.raises(ConnectorError) as exc:
        connector.run("get_cluster", conn, {})
    assert exc.value.type == "invalid_input" and "Cluster ID" in exc.value.message
    assert len(emulator.requests) == before


def test_list_clusters_follows_every_page(emulator, conn, connector):
    ids = {_cluster(emulator, cluster_name=f"many-{i}") for i in range(9)}
    emulator.config.list_page_size = 2
    before = emulator.count("GET", "/api/2.1/clusters/list")
    out = connector.run("list_clusters", conn)
    got = {c["cluster_id"] for c in out["clusters"]}
    assert ids <= got and out["count"] == len(out["clusters"]) and out["truncated"] is False
    assert emulator.count("GET", "/api/2.1/clusters/list") - before >= 5
    assert len(got) == len(out["clusters"])  # no duplicates across pages


def test_list_clusters_cap_and_truncation_flag(emulator, conn, connector):
    for i in range(5):
        _cluster(emulator, cluster_name=f"cap-{i}")
    emulator.config.list_page_size = 2
    out = connector.run("list_clusters", conn, {"max_items": "3"})
    assert out["count"] == 3 and out["truncated"] is True


def test_list_clusters_state_filter(emulator, conn, connector):
    running = _cluster(emulator, state="RUNNING")
    out = connector.run("list_clusters", conn, {"states": '["RUNNING"]'})
    assert running in {c["cluster_id"] for c in out["clusters"]}
    assert {c["state"] for c in out["clusters"]} == {"RUNNING"}
    assert emulator.requests[-1]["query"]["filter_by.cluster_states"] == ["RUNNING"]
