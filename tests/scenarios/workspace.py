"""Scenarios of the workspace area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import uuid

import base64

from . import scenario
from ._uc import api

SOURCE = "# Databricks notebook source\nprint('hello')\n"


def _notebook(emulator) -> str:
    path = f"/Shared/scn/{uuid.uuid4().hex[:8]}/nb"
    api(emulator, "POST", "/api/2.0/workspace/mkdirs", {"path": path.rsplit("/", 1)[0]})
    api(emulator, "POST", "/api/2.0/workspace/import", {"path": path, "format": "SOURCE", "language": "PYTHON",
                                                        "content": base64.b64encode(b"print('hello')").decode()})
    return path


def _missing(emulator, connector, conn):
    return {"path": "/Shared/no/such/object"}


@scenario("list_workspace_folder", failing=_missing, check=lambda out, inputs, conn: out["count"] == 1
          and out["objects"][0]["object_type"] == "NOTEBOOK")
def _list_workspace_folder(emulator, connector, conn):
    return {"path": _notebook(emulator).rsplit("/", 1)[0]}


@scenario("get_workspace_object_status", failing=_missing,
          check=lambda out, inputs, conn: out.get("path") == inputs["path"] and out.get("language") == "PYTHON")
def _get_workspace_object_status(emulator, connector, conn):
    return {"path": _notebook(emulator)}


@scenario("import_notebook", changes_state=True, applied=("workspace/import", "workspace/update"), retry_safe="natural",
          failing=lambda e, c, k: {"path": "/Shared/no/such/folder/nb", "content": "print(1)", "language": "PYTHON"},
          check=lambda out, inputs, conn: out.get("object_type") == "NOTEBOOK" and out.get("path") == inputs["path"])
def _import_notebook(emulator, connector, conn):
    return {"path": _notebook(emulator), "content": "print('imported')", "language": "PYTHON", "overwrite": True}


@scenario("export_notebook", failing=_missing,
          check=lambda out, inputs, conn: "print('hello')" in out.get("content", ""))
def _export_notebook(emulator, connector, conn):
    return {"path": _notebook(emulator)}


@scenario("create_workspace_folder", changes_state=True, applied=("workspace/mkdirs",), retry_safe="natural",
          failing=lambda e, c, k: {"path": "/Shared/a/../b"},
          check=lambda out, inputs, conn: out.get("object_type") == "DIRECTORY")
def _create_workspace_folder(emulator, connector, conn):
    return {"path": f"/Shared/folders/{uuid.uuid4().hex[:8]}/inner"}


@scenario("delete_workspace_object", changes_state=True, applied=("workspace/delete",),
          failing=_missing, check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_workspace_object(emulator, connector, conn):
    return {"path": _notebook(emulator)}
