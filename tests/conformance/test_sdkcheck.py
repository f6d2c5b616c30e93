"""The conformance check itself finds each kind of divergence (else it could not fail)."""
from .sdkcheck import ANSWERS, divergences, model_for


def test_the_check_names_unknown_fields_enum_values_and_json_types():
    raw = {"cluster_id": "c", "state": "HALF_STARTED", "bogus": 1, "num_workers": "3", "spark_conf": {"a": 1},
           "driver": {"host_private_ip": "10.0.0.1", "nope": 2}, "executors": [], "custom_tags": {},
           "data_security_mode": ""}
    found = "\n".join(divergences("GET", "/api/2.1/clusters/get", raw))
    for part in ["ClusterDetails.state", "HALF_STARTED", "ClusterDetails.bogus", "ClusterDetails.driver.nope",
                 "num_workers: '3' where the SDK expects an integer", "spark_conf.a: 1 where the SDK expects a string",
                 "data_security_mode"]:
        assert part in found
    assert "executors" not in found and "custom_tags" not in found  # empty: left out by as_dict by design
    assert divergences("GET", "/api/2.1/clusters/get", {"cluster_id": "c", "state": "RUNNING"}) == []


def test_camel_case_1_2_answers_and_scim_refs_are_typed():
    bad = divergences("GET", "/api/1.2/commands/status",
                      {"id": "x", "status": "Finished", "results": {"resultType": "text", "truncated": "no"}})
    assert bad == ["CommandStatusResponse.results.truncated: 'no' where the SDK expects a boolean"]
    assert divergences("GET", "/api/2.0/preview/scim/v2/Me",
                       {"userName": "u", "groups": [{"value": "1", "$ref": "Groups/1"}]}) == []


def test_repeated_enums_and_unmapped_endpoints():
    found = divergences("GET", "/api/2.0/preview/scim/v2/Me", {"schemas": ["urn:nope"]})
    assert found and "urn:nope" in found[0]
    assert model_for("GET", "/api/2.1/clusters/unknown-endpoint") == (False, None)
    assert divergences("GET", "/api/2.1/clusters/unknown-endpoint", {}) == [
        "no SDK model mapped for this answer (add it to ANSWERS)"]
    assert all(len(row) == 3 for row in ANSWERS)
