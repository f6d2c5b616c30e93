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
# The reference documentation sits beside the checkout (../shared), or two levels up from a worktree.
REFERENCE = next((p for p in (ROOT.parent / "shared" / "reference" / "000_78f7238b30d15c04.txt",
                              ROOT.parent.parent / "shared" / "reference" / "000_78f7238b30d15c04.txt") if p.is_file()),
                 ROOT.parent / "shared" / "reference" / "000_78f7238b30d15c04.txt")


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
    for section in ("actions", "pickers", "triggers"):
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

    for section in ("actions", "pickers", "triggers"):
        for item in resolved[section]:
            for role in ("handler", "check"):
                if role in item:
                    module, func = item[role].rsplit(".", 1)
                    assert callable(getattr(import_module(f"databricks_connector.actions.{module}"), func)), \
                        (item["key"], role)


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


# Labels changed on purpose since the reference (issue 13: a unit belongs in the label).
RENAMED = {("Raw Request", "Timeout"): "Timeout (ms)"}


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
            name = RENAMED.get((label, name), name)
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


def _header(section: str) -> list[str]:
    line = next(l for l in section.splitlines() if l.startswith("| Input"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_docs_have_the_reference_shape(resolved):
    """The reference's columns (Input | Comments | Default), then Key and Required; output fields;
    the triggers with their events."""
    text = (ROOT / "docs" / "connector.md").read_text()
    for conn in resolved["connections"]:
        section = text.split(f"### {conn['label']}\n", 1)[1].split("\n### ", 1)[0]
        assert _header(section) == ["Input", "Comments", "Default", "Key", "Required"]
        for f in conn["fields"]:
            assert re.search(rf"^\| {re.escape(f['label'])} +\|.*\| `{f['key']}` +\|", section, re.M), f["key"]
    for action in resolved["actions"]:
        section = text.split(f"### {action['label']}\n", 1)[1].split("\n### ", 1)[0]
        assert _header(section) == ["Input", "Comments", "Default", "Key", "Required"], action["key"]
        for inp in action["inputs"]:
            row = next(l for l in section.splitlines() if l.startswith(f"| {inp['label']} "))
            cells = [c.strip() for c in row.strip().strip("|").split("|")]
            assert cells[3] == f"`{inp['key']}`", (action["key"], inp["key"])
            required = inp.get("type") == "connection" or (inp.get("required") and "default" not in inp)
            assert cells[4] == ("yes" if required else ""), (action["key"], inp["key"])
        assert "Output:" in section and "Example output:" in section
        assert "| Field" in section or "](#def-" in section or "**" in section, action["key"]
    triggers = text.split("\n## Triggers\n", 1)[1]
    for trig in resolved["triggers"]:
        section = triggers.split(f"### {trig['label']}\n", 1)[1].split("\n### ", 1)[0]
        assert _header(section) == ["Input", "Comments", "Default", "Key", "Required"]
        assert f"identified by `{trig['dedupe_key']}`" in section and "Example event:" in section
    assert '<a id="def-cluster"></a>' in text and "| `cluster_id`" in text


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


# --------------------------------------------------------------------------- the extended vocabulary

def _problems(tmp_path, edits: dict) -> list[str]:
    """Load a copy of the manifest with some text replaced in some files; its problems."""
    p = copy_manifest(tmp_path)
    for name, (old, new) in edits.items():
        f = tmp_path / name
        text = f.read_text()
        assert old in text, (name, old)
        f.write_text(text.replace(old, new, 1))
    with pytest.raises(M.ManifestError) as err:
        M.load(p, use_cache=False)
    return err.value.problems


def test_unknown_keys_are_refused_with_their_file_and_path(tmp_path):
    problems = _problems(tmp_path, {
        "actions/jobs.yaml": ("    handler: jobs.get_job\n", "    handler: jobs.get_job\n    colour: blue\n"),
        "actions/clusters.yaml": ("        label: States\n", "        label: States\n        widgit: json\n"),
        "connector.yaml": ("  - key: personal_access_token\n", "  - key: personal_access_token\n    testt: x\n"),
    })
    assert any(p.startswith("actions/jobs.yaml: actions/1:") and "colour" in p for p in problems), problems
    assert any(p.startswith("actions/clusters.yaml: actions/1/inputs/1") and "widgit" in p for p in problems), problems
    assert any(p.startswith("connections/0") and "testt" in p for p in problems), problems


def test_every_action_must_declare_output_version_and_annotations(tmp_path):
    problems = _problems(tmp_path, {
        "actions/identity.yaml": ("    version: 1.0.0\n    annotations: {read_only: true, destructive: false, idempotent: true, long_running: false, open_world: false}\n", ""),
        "actions/warehouses.yaml": ("annotations: {read_only: true, destructive: false, idempotent: true, long_running: false, open_world: false}\n    output: {$ref: \"#/$defs/warehouse\"}\n",
                                    "annotations: {read_only: yes, destructive: false}\n    output: {$ref: \"#/$defs/warehouse\"}\n"),
    })
    assert any(p.startswith("actions/identity.yaml: actions/0") and "'version'" in p for p in problems), problems
    assert any(p.startswith("actions/identity.yaml: actions/0") and "'annotations'" in p for p in problems), problems
    assert any(p.startswith("actions/warehouses.yaml: actions/0/annotations") for p in problems), problems


def test_references_hints_and_examples_are_checked(tmp_path):
    problems = _problems(tmp_path, {
        "actions/identity.yaml": ('output: {$ref: "#/$defs/user"}', 'output: {$ref: "#/$defs/usr"}'),
        "actions/clusters.yaml": ("show_if: {wait: true}}\n", "show_if: {wai: true}}\n"),
        "actions/jobs.yaml": ("picker_inputs: {job_id: job_id}", "picker_inputs: {job: job_id}"),
        "connector.yaml": ("    test: get_current_user\n", "    test: who_am_i\n"),
    })
    text = "\n".join(problems)
    assert "actions/identity.yaml: actions/0/output: $ref '#/$defs/usr' names no shared definition" in text, text
    assert any(p.startswith("actions/clusters.yaml: actions/") and "'wai' is not another input" in p
               for p in problems), text
    assert any(p.startswith("actions/jobs.yaml: actions/") and "'job' is not an input of picker 'select_job_task'" in p
               for p in problems), text
    assert "connections/0/test: 'who_am_i' is not an action" in text, text


def test_examples_must_match_their_declared_schema(tmp_path):
    problems = _problems(tmp_path, {
        "actions/warehouses.yaml": ("      - {label: \"Starter Warehouse (RUNNING)\", value: 1234567890abcdef}",
                                    "      - {label: 42, value: 1234567890abcdef}")})
    assert any(p.startswith("actions/warehouses.yaml: pickers/0/example_output/0/label") and "does not match" in p
               for p in problems), problems


def test_rules_must_name_inputs_of_their_action(tmp_path):
    problems = _problems(tmp_path, {"actions/jobs.yaml": ("      - exclusive: [cron_schedule, schedule]\n",
                                                          "      - exclusive: [cron_schedule, schedul]\n")})
    assert any(p.startswith("actions/jobs.yaml: actions/0/rules/0") and "'schedul'" in p for p in problems), problems


def test_the_cache_follows_the_code_that_resolves_the_manifest():
    files = {f.name for f in M._files(ROOT / "connector.yaml")}
    assert {"manifest.py", "manifest.schema.json", "connector.yaml", "jobs.yaml"} <= files


def test_cold_start_actions_keep_the_fast_input_check(resolved):
    """Form hints are annotations: the common reads stay on the fast path (no jsonschema import)."""
    from databricks_connector.inputs import _fast_valid, _plan

    by_key = {a["key"]: a for a in resolved["actions"]}
    for key in ("get_cluster", "get_current_user", "get_statement", "get_sql_warehouse", "get_run"):
        assert _plan(by_key[key]) is not False, key
    assert _fast_valid(by_key["get_statement"], {"statement_id": "s1", "result_shape": "arrays", "decimals_as": "string"})
    assert not _fast_valid(by_key["get_statement"], {"statement_id": "s1", "result_shape": "tables"})
    # cross-field rules (oneOf, together, x-greater-than) stay on the fast path and still refuse
    assert _plan(by_key["create_cluster"]) is not False
    base = {"cluster_name": "c", "spark_version": "13.3.x-scala2.12", "node_type_id": "i3.xlarge"}
    assert _fast_valid(by_key["create_cluster"], {**base, "num_workers": 2})
    assert not _fast_valid(by_key["create_cluster"], {**base, "num_workers": 2, "autoscale_min_workers": 1,
                                                      "autoscale_max_workers": 3})
    assert not _fast_valid(by_key["create_cluster"], {**base, "autoscale_min_workers": 1})
    assert _fast_valid(by_key["create_cluster"], {**base, "autoscale_min_workers": 1, "autoscale_max_workers": 3})
    assert not _fast_valid(by_key["create_cluster"], {**base, "autoscale_min_workers": 5, "autoscale_max_workers": 3})


def test_no_yaml_flow_mapping_was_split_on_a_comma(raw):
    """`{description: a, b}` in YAML is {description: "a", "b": null}: prose with commas in a flow
    mapping must be quoted. A key with a null value and a space or final punctuation in it is the
    sign of such a split anywhere in the manifest."""
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if v is None and isinstance(k, str) and (" " in k or k.endswith((".", ")", ","))):
                    found.append(f"{path}/{k}")
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(raw, "")
    assert not found, f"quote these values in the manifest: {found}"
