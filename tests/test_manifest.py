"""Contract tests over connector.yaml: meta-schema, references, reference labels, spec, docs."""
import copy
import json
import re
from pathlib import Path

import pytest

from databricks_connector import manifest as M
from databricks_connector.inputs import compile_schema
from databricks_connector.runner import Connector

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "000_78f7238b30d15c04.txt"


MANIFEST_FILES = [ROOT / "connector.yaml", *sorted((ROOT / "actions").glob("*.yaml"))]


@pytest.fixture(scope="module")
def raw():
    """connector.yaml with every area file's sections merged in (what the meta-schema checks)."""
    return M.read(ROOT / "connector.yaml")[0]


def copy_manifest(tmp_path):
    """The manifest's files in a new folder, laid out as in the checkout; returns connector.yaml's path."""
    (tmp_path / "actions").mkdir()
    for f in MANIFEST_FILES:
        target = tmp_path / f.relative_to(ROOT)
        target.write_text(f.read_text())
    return tmp_path / "connector.yaml"


@pytest.fixture(scope="module")
def resolved():
    return M.load(ROOT / "connector.yaml", use_cache=False)


def test_manifest_passes_its_meta_schema(raw):
    assert M.check(raw) == []


def test_meta_schema_reports_every_problem_with_its_path(raw):
    bad = copy.deepcopy(raw)
    bad["connector"].pop("icon")
    bad["actions"][0]["inputs"].append("no_such_shared_input")
    bad["actions"][1]["label"] = 42
    problems = M.check(bad)
    assert any(p.startswith("connector:") and "icon" in p for p in problems)
    assert any(p.startswith("actions/1/label") for p in problems)
    bad = copy.deepcopy(raw)
    bad["actions"][0]["inputs"].append("no_such_shared_input")
    bad["actions"][1]["key"] = bad["actions"][0]["key"]
    problems = M.check(bad)
    assert any("unknown shared input 'no_such_shared_input'" in p and p.startswith("actions/0/inputs/") for p in problems)
    assert any("duplicate key" in p for p in problems)


def test_load_refuses_an_invalid_manifest(tmp_path):
    p = tmp_path / "connector.yaml"
    p.write_text("connector: {key: x}\nconnections: []\nactions: []\n")
    with pytest.raises(M.ManifestError) as err:
        M.load(p, use_cache=False)
    assert "connector" in str(err.value) and "connections" in str(err.value)


def test_icon_exists_and_is_a_png(raw):
    icon = ROOT / raw["connector"]["icon"]
    assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_area_file_is_named_and_each_item_knows_its_area(raw, resolved):
    assert {f.stem for f in MANIFEST_FILES[1:]} == set(raw["areas"])
    for section in ("actions", "pickers"):
        for item in resolved[section]:
            assert item["area"] in raw["areas"], item["key"]
            assert item["handler"].split(".")[0] == item["area"], item["key"]


def test_a_problem_in_an_area_file_names_that_file(tmp_path):
    p = copy_manifest(tmp_path)
    clusters = tmp_path / "actions" / "clusters.yaml"
    clusters.write_text(clusters.read_text().replace("label: Get Cluster\n", "label: 42\n", 1))
    with pytest.raises(M.ManifestError) as err:
        M.load(p, use_cache=False)
    assert any(x.startswith("actions/clusters.yaml: actions/") and "label" in x for x in err.value.problems), err.value.problems
    (tmp_path / "actions" / "jobs.yaml").unlink()
    with pytest.raises(M.ManifestError) as err:
        M.load(p, use_cache=False)
    assert "jobs.yaml" in str(err.value)


def test_shared_inputs_are_declared_once(raw):
    text = "".join(f.read_text() for f in MANIFEST_FILES)
    assert text.count("label: Debug Request") == 1
    assert text.count("label: Cluster ID") == 1
    assert text.count("label: Connection\n") == 1


def test_every_action_has_connection_first_debug_and_an_example(resolved):
    for action in resolved["actions"]:
        keys = [i["key"] for i in action["inputs"]]
        assert keys[0] == "connection", action["key"]
        assert "debug" in keys, action["key"]
        assert "example_output" in action, action["key"]
        debug = next(i for i in action["inputs"] if i["key"] == "debug")
        assert debug["default"] is False and debug["label"] == "Debug Request"


def test_every_handler_exists(resolved):
    from importlib import import_module

    for section in ("actions", "pickers"):
        for item in resolved[section]:
            module, func = item["handler"].rsplit(".", 1)
            assert callable(getattr(import_module(f"databricks_connector.actions.{module}"), func)), item["key"]


def test_compiled_schemas_are_valid_2020_12(resolved):
    from jsonschema import Draft202012Validator

    for action in resolved["actions"] + resolved.get("pickers", []):
        schema = compile_schema(action)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert "connection" not in schema["properties"]


def _reference_tables():
    """{section label: [(input, comments, default)]} parsed from the reference documentation."""
    if not REFERENCE.is_file():
        pytest.skip(f"the reference documentation is not beside the checkout ({REFERENCE})")
    tables, current = {}, None
    for line in REFERENCE.read_text().splitlines():
        m = re.match(r"^### (.+)$", line)
        if m:
            current = m.group(1).strip()
            tables[current] = []
            continue
        if current and line.startswith("| ") and not line.startswith("| Input") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            tables[current].append(tuple(cells[:3]))
    return tables


def test_reference_connections_and_actions_are_reproduced(resolved):
    tables = _reference_tables()
    ours = {c["label"]: c["fields"] for c in resolved["connections"]}
    ours.update({a["label"]: a["inputs"] for a in resolved["actions"]})
    missing = []
    for label, rows in tables.items():
        if label not in ours:
            missing.append(label)
            continue
        by_label = {i["label"]: i for i in ours[label]}
        for name, comments, default in rows:
            assert name in by_label, f"{label}: input {name!r} missing"
            inp = by_label[name]
            assert (inp.get("comments") or "") == comments, f"{label} / {name}: comments differ"
            ours_default = inp.get("default")
            ours_default = "" if ours_default is None else (json.dumps(ours_default) if not isinstance(ours_default, str) else ours_default)
            assert ours_default == default, f"{label} / {name}: default {ours_default!r} != {default!r}"
    # Actions still to come are listed by the issues; what exists must match exactly.
    implemented = set(ours) & set(tables)
    assert {"Databricks Personal Access Token", "Databricks Workspace Service Principal",
            "Get Cluster", "List Clusters", "Get Current User"} <= implemented


def test_reference_descriptions_are_reproduced(resolved):
    if not REFERENCE.is_file():
        pytest.skip(f"the reference documentation is not beside the checkout ({REFERENCE})")
    text = REFERENCE.read_text()
    for action in resolved["actions"]:
        m = re.search(rf"^### {re.escape(action['label'])}\n\n(.+)$", text, re.M)
        if m:
            assert action["description"].strip() == m.group(1).strip(), action["key"]


def test_spec_marks_secrets_and_has_schemas():
    spec = Connector().spec()
    conns = {c["key"]: c for c in spec["connections"]}
    assert [f["label"] for f in conns["personal_access_token"]["fields"]] == ["Host", "Personal Access Token", "CA Bundle"]
    assert [f["label"] for f in conns["service_principal"]["fields"]] == [
        "Token URL", "Scopes", "Service Principal Client ID", "Service Principal Client Secret", "CA Bundle"]
    secrets = {f["key"] for c in spec["connections"] for f in c["fields"] if f["secret"]}
    assert secrets == {"token", "client_secret", "access_token", "refresh_token"}
    assert conns["oauth_user"]["oauth2"]["grant_type"] == "authorization_code" and conns["oauth_user"]["oauth2"]["pkce"] == "S256"
    assert conns["service_principal"]["schema"]["properties"]["client_secret"]["writeOnly"] is True
    assert conns["service_principal"]["fields"][0]["default"] == "https://dbc-REPLACE-ME.cloud.databricks.com/oidc/v1/token"
    assert conns["service_principal"]["fields"][1]["default"] == "all-apis"
    for action in spec["actions"]:
        assert action["input_schema"]["type"] == "object"
        assert "handler" not in action


def test_docs_match_the_manifest():
    from databricks_connector.docs import check_docs

    assert check_docs(str(ROOT / "docs")) == [], "run `databricks-connector docs` and commit docs/"


def test_docs_have_the_reference_shape(resolved):
    text = (ROOT / "docs" / "connector.md").read_text()
    for conn in resolved["connections"]:
        assert f"### {conn['label']}" in text
    for action in resolved["actions"]:
        section = text.split(f"### {action['label']}\n", 1)[1].split("\n### ", 1)[0]
        assert "| Input" in section and "| Comments" in section and "| Default" in section
        for inp in action["inputs"]:
            assert f"| {inp['label']}" in section
        assert "Example output:" in section


def test_manifest_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABRICKS_CONNECTOR_CACHE", str(tmp_path / "cache"))
    p = copy_manifest(tmp_path)
    first = M.load(p)
    assert list((tmp_path / "cache").glob("manifest-*.json"))
    assert M.load(p) == first
    area = tmp_path / "actions" / "clusters.yaml"          # an edit of an area file is seen too
    area.write_text(area.read_text().replace("label: Get Cluster\n", "label: Get Cluster Now\n"))
    assert any(a["label"] == "Get Cluster Now" for a in M.load(p)["actions"])


def test_manifest_cache_falls_back_to_the_temp_directory(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.delenv("DATABRICKS_CONNECTOR_CACHE", raising=False)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")                      # the user's cache directory cannot be created
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    p = copy_manifest(tmp_path)
    first = M.load(p)
    assert list((tmp_path / "tmp").glob("databricks-connector-*/manifest-*.json"))
    assert M.load(p) == first
