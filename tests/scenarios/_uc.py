"""Seeding helpers of the Unity Catalog, files, workspace, secrets and permissions scenarios: plain
HTTP to the emulator's own API (never its internals), as the connection's PAT user."""
from __future__ import annotations

import uuid
from urllib.parse import quote

from . import PAT_USER


def api(emulator, method: str, path: str, body=None, *, data=None, ok=(200, 201, 204)):
    """One request answered by the emulator's own handler for it, in this process, as the PAT user.
    Not over HTTP: scenarios are prepared inside fault windows too (an injected fault or a rejected
    token meant for the action must neither meet the seeding nor be used up by it)."""
    from urllib.parse import parse_qs, urlsplit

    from databricks_connector.emulator.api import HttpError, Request, find_route

    split = urlsplit(path)
    route, match = find_route(method, split.path)
    assert route is not None, f"{method} {path}: no such endpoint"
    req = Request(method=method, path=split.path, query=parse_qs(split.query, keep_blank_values=True), headers={},
                  raw=data or b"", json=body, params=match.groupdict(), groups=match.groups(),
                  principal=emulator.state.add_user(PAT_USER), state=emulator.state, base_url=emulator.url)
    try:
        result = route.handler(req)
    except HttpError as exc:
        raise AssertionError(f"{method} {path}: {exc.status} {exc.body}") from None
    status, doc = (result[0], result[1]) if isinstance(result, tuple) else (200, result)
    assert status in ok, f"{method} {path}: {status} {doc}"
    if isinstance(doc, (bytes, str)):
        import json
        try:
            return json.loads(doc) if doc else None
        except ValueError:
            return None
    return doc


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
    """A statement on the workspace's SQL engine (its documented interface), as the PAT user."""
    from databricks_connector.emulator.sqlengine import engine_for
    engine_for(emulator.state).execute(statement, principal=PAT_USER)


def escaped(path: str) -> str:
    return "/".join(quote(seg, safe="") for seg in path.split("/"))


def put_file(emulator, path: str, data: bytes) -> None:
    api(emulator, "PUT", "/api/2.0/fs/files" + escaped(path) + "?overwrite=true", data=data)
