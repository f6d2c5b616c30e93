"""Cluster libraries (Libraries API 2.0): install, uninstall, cluster-status.

Each cluster keeps the libraries installed on it. On a RUNNING cluster a library moves PENDING ->
INSTALLING -> INSTALLED (each step ``library_install_seconds``), computed lazily from the time the
cluster came up or the library was added; on a cluster that is not running it waits PENDING.
A library that cannot be found ends FAILED with a message instead: a PyPI package listed in the
``library_missing_packages`` knob, or a jar, wheel or requirements file under ``/Workspace`` that
the workspace (emulator/workspace.py) does not hold. Uninstalling marks a library
UNINSTALL_ON_RESTART; every (re)start of the cluster drops those and installs the others again from
PENDING (a new Spark context). Installing a library that is already there changes nothing, as in
Databricks. Changes are counted in ``state.applied["libraries/install" | "libraries/uninstall"]``.
"""
from __future__ import annotations

from .api import copy_json, invalid_parameter, not_found, route

API = r"/api/2\.0/libraries"
KINDS = ("pypi", "maven", "cran", "jar", "whl", "egg", "requirements")


def _store(state) -> dict:
    return state.area("libraries", dict)       # cluster id -> [entry]


def _cluster(req, cluster_id):
    from .clusters import lookup

    if not isinstance(cluster_id, str) or not cluster_id:
        raise invalid_parameter("Missing required field: cluster_id")
    c = lookup(req.state, cluster_id)
    if c is None:
        raise not_found(req.state.config, f"Cluster {cluster_id} does not exist")
    return c


def _check(libraries) -> list:
    if not isinstance(libraries, list) or not libraries:
        raise invalid_parameter("libraries must be a non-empty list of Library objects")
    out = []
    for lib in libraries:
        kinds = [k for k in KINDS if isinstance(lib, dict) and k in lib]
        if len(kinds) != 1 or len(lib) != 1:
            raise invalid_parameter(f"Each library must have exactly one of {', '.join(KINDS)}: {lib!r}")
        kind = kinds[0]
        value = lib[kind]
        if kind in ("pypi", "cran") and not (isinstance(value, dict) and isinstance(value.get("package"), str)
                                             and value["package"].strip()):
            raise invalid_parameter(f"{kind} library: package is required")
        if kind == "maven" and not (isinstance(value, dict) and isinstance(value.get("coordinates"), str)
                                    and value["coordinates"].count(":") >= 2):
            raise invalid_parameter("maven library: coordinates <group>:<artifact>:<version> are required")
        if kind in ("jar", "whl", "egg", "requirements") and not (isinstance(value, str) and value.strip()):
            raise invalid_parameter(f"{kind} library: a path is required")
        out.append(copy_json(lib))
    return out


def _problem(state, lib: dict):
    """Why this library cannot be installed (the FAILED message), or None."""
    from . import workspace

    if "pypi" in lib:
        name = lib["pypi"]["package"].split(";")[0]
        for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", " "):
            name = name.split(sep)[0]
        if name.strip().lower() in {p.lower() for p in state.config.library_missing_packages}:
            return (f"Library installation attempted on the driver node of cluster and failed. Pip could not find a "
                    f"version that satisfies the requirement: ERROR: No matching distribution found for {name.strip()}")
    for kind in ("jar", "whl", "egg", "requirements"):
        path = lib.get(kind)
        if isinstance(path, str) and path.startswith("/Workspace/"):
            if workspace.resolve(state, path[len("/Workspace"):]) is None:
                return f"Library installation failed: the file {path} does not exist."
    return None


def _statuses(state, c) -> list:
    """The cluster's entries with their current status (caller holds the lock)."""
    entries = _store(state).get(c.id, [])
    running = c.details.get("state") == "RUNNING"
    ctx = c.details.get("spark_context_id") if running else None
    if running:
        kept = []
        for e in entries:
            if e["_ctx"] != ctx:                     # the cluster (re)started: a new installation
                if e["status"] == "UNINSTALL_ON_RESTART":
                    continue
                e["_ctx"] = ctx
                e["_from"] = max(e["_added"], (c.running_since or 0) / 1000.0)
                e["status"] = "PENDING"
            kept.append(e)
        entries[:] = kept
    step = max(0.0, float(state.config.library_install_seconds))
    now = state.now()
    for e in entries:
        if e["status"] == "UNINSTALL_ON_RESTART":
            continue
        if not running:
            e["status"] = "PENDING"
            continue
        waited = now - e["_from"]
        if waited < step:
            e["status"] = "PENDING"
        elif waited < 2 * step:
            e["status"] = "INSTALLING"
        else:
            e["status"] = "FAILED" if e["_problem"] else "INSTALLED"
    return entries


def _public(e: dict) -> dict:
    out = {"library": copy_json(e["library"]), "status": e["status"], "is_library_for_all_clusters": False}
    if e["status"] == "FAILED":
        out["messages"] = [e["_problem"]]
    elif e["status"] == "UNINSTALL_ON_RESTART":
        out["messages"] = ["The library will be uninstalled when the cluster restarts."]
    return out


@route("POST", API + r"/install")
def install(req):
    body = req.body
    with req.state.lock:
        c = _cluster(req, body.get("cluster_id"))
        libs = _check(body.get("libraries"))
        entries = _statuses(req.state, c)
        running = c.details.get("state") == "RUNNING"
        now = req.state.now()
        added = 0
        for lib in libs:
            same = next((e for e in entries if e["library"] == lib), None)
            if same is not None:
                if same["status"] == "UNINSTALL_ON_RESTART":      # installed again: kept
                    same["status"] = "INSTALLED" if not same["_problem"] else "FAILED"
                    added += 1
                continue
            entries.append({"library": lib, "status": "PENDING", "_added": now, "_from": now,
                            "_ctx": c.details.get("spark_context_id") if running else None,
                            "_problem": _problem(req.state, lib)})
            added += 1
        _store(req.state)[c.id] = entries
        if added:
            req.state.applied["libraries/install"] += 1
        return {}


@route("POST", API + r"/uninstall")
def uninstall(req):
    body = req.body
    with req.state.lock:
        c = _cluster(req, body.get("cluster_id"))
        libs = _check(body.get("libraries"))
        entries = _statuses(req.state, c)
        changed = False
        for e in entries:
            if e["library"] in libs and e["status"] != "UNINSTALL_ON_RESTART":
                e["status"] = "UNINSTALL_ON_RESTART"
                changed = True
        if changed:
            req.state.applied["libraries/uninstall"] += 1
        return {}


@route("GET", API + r"/cluster-status")
def cluster_status(req):
    with req.state.lock:
        c = _cluster(req, req.q("cluster_id"))
        out = {"cluster_id": c.id, "library_statuses": [_public(e) for e in _statuses(req.state, c)]}
    if not out["library_statuses"]:
        del out["library_statuses"]
    return out


@route("GET", API + r"/all-cluster-statuses")
def all_statuses(req):
    from .clusters import lookup

    with req.state.lock:
        found = []
        for cid in list(_store(req.state)):
            c = lookup(req.state, cid)
            if c is not None:
                found.append({"cluster_id": cid, "library_statuses": [_public(e) for e in _statuses(req.state, c)]})
    return {"statuses": found}
