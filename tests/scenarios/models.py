"""Scenarios of the Unity Catalog models area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

from . import picker_scenario, scenario

MISSING = "main.default.no_such_model"


def model(emulator, connector, conn, *, versions: int = 0, alias: str | None = None) -> str:
    """A registered model in main.default with READY versions (registered as MLflow's client does)."""
    from databricks_connector.emulator import models as emu_models

    name = f"scn_{uuid.uuid4().hex[:10]}"
    full = connector.run("create_registered_model", conn, {"catalog_name": "main", "schema_name": "default",
                                                           "name": name})["full_name"]
    emulator.config.update({"model_version_ready_seconds": 0})
    for _ in range(versions):
        emu_models.seed_version(emulator.state, full, source=f"dbfs:/scenario/{name}")
    if alias:
        connector.run("set_model_alias", conn, {"full_name": full, "alias": alias, "version": versions})
    return full


def _missing(emulator, connector, conn):
    return {"full_name": MISSING}


@scenario("list_registered_models", check=lambda out, inputs, conn: out.get("count") == len(out["registered_models"]))
def _list_registered_models(emulator, connector, conn):
    model(emulator, connector, conn)
    return {"catalog_name": "main", "schema_name": "default", "max_items": 5}


@scenario("get_registered_model", failing=_missing,
          check=lambda out, inputs, conn: out.get("full_name") == inputs["full_name"])
def _get_registered_model(emulator, connector, conn):
    return {"full_name": model(emulator, connector, conn, versions=1, alias="champion")}


@scenario("create_registered_model", changes_state=True, applied=("models/create",),
          failing=lambda e, c, conn: {"catalog_name": "no_such_catalog", "schema_name": "default", "name": "m"},
          check=lambda out, inputs, conn: out.get("full_name") == f"main.default.{inputs['name']}")
def _create_registered_model(emulator, connector, conn):
    return {"catalog_name": "main", "schema_name": "default", "name": f"scn_{uuid.uuid4().hex[:10]}",
            "comment": "a scenario's model"}


@scenario("delete_registered_model", changes_state=True, applied=("models/delete",), failing=_missing,
          check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_registered_model(emulator, connector, conn):
    return {"full_name": model(emulator, connector, conn, versions=1)}


@scenario("list_model_versions", failing=_missing,
          check=lambda out, inputs, conn: [v["version"] for v in out.get("model_versions", [])] == [2, 1])
def _list_model_versions(emulator, connector, conn):
    return {"full_name": model(emulator, connector, conn, versions=2)}


@scenario("get_model_version", failing=lambda e, c, conn: {"full_name": MISSING, "version": 1},
          check=lambda out, inputs, conn: out.get("version") == inputs["version"])
def _get_model_version(emulator, connector, conn):
    return {"full_name": model(emulator, connector, conn, versions=1), "version": 1}


@scenario("get_model_version_by_alias", failing=lambda e, c, conn: {"full_name": MISSING, "alias": "champion"},
          check=lambda out, inputs, conn: out.get("version") == 2)
def _get_model_version_by_alias(emulator, connector, conn):
    return {"full_name": model(emulator, connector, conn, versions=2, alias="champion"), "alias": "champion"}


@scenario("set_model_alias", changes_state=True, applied=("models/aliases/set",), retry_safe="natural",
          failing=lambda e, c, conn: {"full_name": MISSING, "alias": "champion", "version": 1},
          check=lambda out, inputs, conn: out.get("version_num") == inputs["version"])
def _set_model_alias(emulator, connector, conn):
    return {"full_name": model(emulator, connector, conn, versions=2), "alias": "champion", "version": 2}


@scenario("delete_model_alias", changes_state=True, applied=("models/aliases/delete",),
          failing=lambda e, c, conn: {"full_name": MISSING, "alias": "champion"},
          check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_model_alias(emulator, connector, conn):
    return {"full_name": model(emulator, connector, conn, versions=1, alias="challenger"), "alias": "challenger"}


@picker_scenario("select_model_version")
def _select_model_version(emulator, connector, conn):
    return {"full_name": model(emulator, connector, conn, versions=2, alias="champion")}


# --------------------------------------------------------------------------- the workspace model registry

def legacy_model(emulator, versions: int = 2) -> str:
    """A workspace-registry model with versions, seeded in the emulator (no request: scenarios are
    also prepared inside fault windows)."""
    from databricks_connector.emulator import models as emu_models

    return emu_models.add_legacy_model(emulator.state, f"scn-{uuid.uuid4().hex[:10]}", versions)


@scenario("search_registered_models", check=lambda out, inputs, conn: out.get("count") == 1)
def _search_registered_models(emulator, connector, conn):
    return {"filter": f"name = '{legacy_model(emulator, 1)}'"}


@scenario("get_latest_model_versions", retry_safe="natural",
          main=("POST", r"/api/2\.0/mlflow/registered-models/get-latest-versions"), failing=lambda e, c, conn: {"name": "no-such-model"},
          check=lambda out, inputs, conn: [v["version"] for v in out.get("model_versions", [])] == ["2"])
def _get_latest_model_versions(emulator, connector, conn):
    return {"name": legacy_model(emulator)}


@scenario("transition_model_version_stage", changes_state=True, applied=("registry/versions/stage/update",),
          retry_safe="natural", failing=lambda e, c, conn: {"name": "no-such-model", "version": 1, "stage": "Staging"},
          check=lambda out, inputs, conn: out.get("current_stage") == "Production")
def _transition_model_version_stage(emulator, connector, conn):
    return {"name": legacy_model(emulator), "version": 2, "stage": "Production", "archive_existing_versions": True}
