"""The installed distribution: one import namespace, the manifest and icon inside it, a console script."""
from importlib import metadata

import pytest


def _files():
    try:
        return metadata.files("databricks-connector") or []
    except metadata.PackageNotFoundError:
        pytest.skip("databricks-connector is not installed (running from a development overlay)")


def test_nothing_generic_lands_at_the_top_of_site_packages():
    tops = {str(f).split("/", 1)[0] for f in _files() if not str(f).startswith("..")}
    tops = {t for t in tops if not t.endswith(".dist-info")}
    assert tops == {"databricks_connector"}, tops


def test_manifest_icon_and_emulator_ship_in_the_wheel():
    names = {str(f) for f in _files()}
    for needed in ("databricks_connector/connector.yaml", "databricks_connector/manifest.schema.json",
                   "databricks_connector/assets/databricks.png", "databricks_connector/emulator/server.py",
                   "databricks_connector/actions/clusters.py", "databricks_connector/actions/clusters.yaml",
                   "databricks_connector/connections/pat.py"):
        assert needed in names, needed


def test_console_script_and_dependencies():
    dist = metadata.distribution("databricks-connector")
    scripts = [e for e in dist.entry_points if e.group == "console_scripts"]
    assert [(e.name, e.value) for e in scripts] == [("databricks-connector", "databricks_connector.cli:main")]
    requires = {r.split(">")[0].split("=")[0].split(";")[0].strip().lower() for r in dist.requires or [] if "extra" not in r}
    assert requires == {"requests", "jsonschema", "oauthlib", "requests-oauthlib", "pyyaml"}
