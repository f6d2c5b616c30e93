"""Seeding helpers of the Unity Catalog, files, workspace, secrets and permissions scenarios: plain
HTTP to the emulator's own API (never its internals), as the connection's PAT user."""
from __future__ import annotations

import uuid
from urllib.parse import quote

import requests


def api(emulator, method: str, path: str, body=None, *, data=None, ok=(200, 201, 204)):
    conn = emulator.connections()["personal_access_token"]
    r = requests.request(method, emulator.url + path, json=body, data=data, timeout=30,
                         headers={"Authorization": f"Bearer {emulator.pat}"}, verify=conn.get("ca_bundle") or True)
    assert r.status_code in ok, f"{method} {path}: {r.status_code} {r.text[:300]}"
    return r.json() if r.content and "json" in r.headers.get("Content-Type", "") else None


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def new_schema(emulator, catalog: str = "main") -> str:
    schema = name("scn")
    api(emulator, "POST", "/api/2.1/unity-catalog/schemas", {"catalog_name": catalog, "name": schema})
    return schema


def new_catalog(emulator) -> str:
    cat = name("cat")
    api(emulator, "POST", "/api/2.1/unity-catalog/catalogs", {"name": cat})
    return cat


def new_volume(emulator, catalog: str = "main", schema: str | None = None) -> tuple:
    schema = schema or new_schema(emulator, catalog)
    vol = name("vol")
    api(emulator, "POST", "/api/2.1/unity-catalog/volumes", {"catalog_name": catalog, "schema_name": schema, "name": vol})
    return catalog, schema, vol


def sql(emulator, statement: str) -> None:
    """A statement through the SQL engine's own front door (the Statement Execution API)."""
    from . import seed_warehouse
    wid = seed_warehouse(emulator, "RUNNING")
    doc = api(emulator, "POST", "/api/2.0/sql/statements", {"statement": statement, "warehouse_id": wid,
                                                            "wait_timeout": "30s"})
    assert doc["status"]["state"] == "SUCCEEDED", doc


def escaped(path: str) -> str:
    return "/".join(quote(seg, safe="") for seg in path.split("/"))


def put_file(emulator, path: str, data: bytes) -> None:
    api(emulator, "PUT", "/api/2.0/fs/files" + escaped(path) + "?overwrite=true", data=data)
