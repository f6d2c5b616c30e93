"""Scenarios of the volume files area (see tests/scenarios/__init__.py for the registry)."""
from __future__ import annotations

import base64

from . import scenario
from ._uc import api, escaped, new_volume, put_file

CONTENT = b"id,amount\n1,5.00\n2,7.25\n"


def _volume_path(emulator) -> str:
    cat, sch, vol = new_volume(emulator)
    return f"/Volumes/{cat}/{sch}/{vol}"


_SHARED: dict = {}


def _shared_volume(emulator) -> str:
    """One volume per emulator for the scenarios that only need somewhere to write."""
    key = emulator.url
    if key not in _SHARED:
        _SHARED[key] = _volume_path(emulator)
    return _SHARED[key]


def _seeded_file(emulator, name: str = "orders.csv") -> str:
    import uuid
    path = f"{_shared_volume(emulator)}/{uuid.uuid4().hex[:8]}/{name}"
    put_file(emulator, path, CONTENT)
    return path


def _missing_file(emulator, connector, conn):
    return {"file_path": f"{_shared_volume(emulator)}/no/such/file.csv"}


def _missing_dir(emulator, connector, conn):
    return {"directory_path": f"{_shared_volume(emulator)}/no/such/dir"}


@scenario("upload_file", main=("PUT", r"/api/2\.0/fs/files/Volumes/.+"), changes_state=True, applied=("files/upload", "files/update"), retry_safe="natural",
          failing=lambda e, c, k: {"file_path": "/Volumes/main/default/no_such_volume_x/f.txt", "content": "x"},
          check=lambda out, inputs, conn: out.get("size") == len(inputs["content"].encode()))
def _upload_file(emulator, connector, conn):
    import uuid
    path = f"{_shared_volume(emulator)}/up/{uuid.uuid4().hex[:8]}.csv"
    put_file(emulator, path, b"an older version\n")          # the upload replaces it (overwrite)
    return {"file_path": path, "content": CONTENT.decode()}


@scenario("download_file", main=("GET", r"/api/2\.0/fs/files/Volumes/.+"), failing=_missing_file,
          check=lambda out, inputs, conn: out.get("content") == CONTENT.decode() and out.get("size") == len(CONTENT))
def _download_file(emulator, connector, conn):
    return {"file_path": _seeded_file(emulator)}


@scenario("get_file_metadata", main=("GET", r"/api/2\.0/fs/files/Volumes/.+"), failing=_missing_file, check=lambda out, inputs, conn: out.get("size") == len(CONTENT))
def _get_file_metadata(emulator, connector, conn):
    return {"file_path": _seeded_file(emulator)}


@scenario("list_directory", main=("GET", r"/api/2\.0/fs/directories/Volumes/.+"), failing=_missing_dir,
          check=lambda out, inputs, conn: [e["name"] for e in out["contents"]] == ["orders.csv"])
def _list_directory(emulator, connector, conn):
    return {"directory_path": _seeded_file(emulator).rsplit("/", 1)[0]}


@scenario("create_directory", main=("PUT", r"/api/2\.0/fs/directories/Volumes/.+"), changes_state=True, applied=("files/create_directory",), retry_safe="natural",
          failing=lambda e, c, k: {"directory_path": "/Volumes/main/default/no_such_volume_x/d"},
          check=lambda out, inputs, conn: out.get("created") is True)
def _create_directory(emulator, connector, conn):
    import uuid
    return {"directory_path": f"{_shared_volume(emulator)}/dirs/{uuid.uuid4().hex[:8]}/inner"}


@scenario("delete_file", main=("DELETE", r"/api/2\.0/fs/files/Volumes/.+"), changes_state=True, applied=("files/files/delete",),
          failing=_missing_file, check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_file(emulator, connector, conn):
    return {"file_path": _seeded_file(emulator)}


@scenario("delete_directory", main=("DELETE", r"/api/2\.0/fs/directories/Volumes/.+"), changes_state=True, applied=("files/directories/delete",),
          failing=_missing_dir, check=lambda out, inputs, conn: out.get("deleted") is True)
def _delete_directory(emulator, connector, conn):
    import uuid
    path = f"{_shared_volume(emulator)}/empty/{uuid.uuid4().hex[:8]}"
    api(emulator, "PUT", "/api/2.0/fs/directories" + escaped(path))
    return {"directory_path": path}


__all__ = ["CONTENT", "base64"]
