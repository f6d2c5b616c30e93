"""Cluster libraries (Libraries API 2.0)."""
from __future__ import annotations

from ..errors import ConnectorError

API = "/api/2.0/libraries"
DONE = ("INSTALLED", "FAILED", "SKIPPED")


def _libraries(inputs) -> list:
    repo = inputs.get("pypi_repo")
    libs = [{"pypi": {"package": p, **({"repo": repo} if repo else {})}} for p in inputs.get("pypi_packages") or []]
    libs += [{"maven": {"coordinates": c}} for c in inputs.get("maven_coordinates") or []]
    libs += [{"jar": p} for p in inputs.get("jars") or []]
    libs += [{"whl": p} for p in inputs.get("wheels") or []]
    if inputs.get("requirements"):
        libs.append({"requirements": inputs["requirements"]})
    libs += list(inputs.get("libraries") or [])
    return libs


def _status(session, cluster_id) -> dict:
    doc = session.get(f"{API}/cluster-status", {"cluster_id": cluster_id})
    statuses = doc.get("library_statuses") or []
    if not isinstance(statuses, list) or not all(isinstance(s, dict) for s in statuses):
        raise ConnectorError("server_error", "libraries/cluster-status answered library_statuses that are not a list of "
                             "objects", hint="The answer does not have the shape of Databricks' answer; run the step again.")
    return {"cluster_id": doc.get("cluster_id") or cluster_id, "library_statuses": statuses}


def get_library_status(session, inputs):
    return _status(session, inputs["cluster_id"])


def install_libraries(session, inputs):
    cid = inputs["cluster_id"]
    libs = _libraries(inputs)
    # installing a library that is already there changes nothing: safe to re-send
    session.start("install", lambda: session.post(f"{API}/install", {"cluster_id": cid, "libraries": libs},
                                                  idempotent=True),
                  ids={"cluster_id": cid}, follow_up="get_library_status")
    if not inputs.get("wait_for_installation"):
        return _status(session, cid)

    def ours(doc):
        return [s for s in doc["library_statuses"] if s.get("library") in libs]

    def poll():
        doc = _status(session, cid)
        mine = ours(doc)
        failed = [s for s in mine if s.get("status") in ("FAILED", "SKIPPED")]
        if failed:
            names = ", ".join(_name(s.get("library")) for s in failed)
            messages = [m for s in failed for m in s.get("messages") or []]
            raise ConnectorError("operation_failed", f"Installing {names} on cluster {cid} failed"
                                 + (f": {messages[0]}" if messages else ""),
                                 hint="Fix the library (name, version, path or repository) and install it again; "
                                      "Get Library Status shows every library's messages.",
                                 details={"cluster_id": cid, "failed": failed, "library_statuses": doc["library_statuses"]})
        states = sorted({s.get("status", "UNKNOWN") for s in mine}) or ["PENDING"]
        done = len(mine) >= len(libs) and all(s.get("status") == "INSTALLED" for s in mine)
        return done, doc, "/".join(states)

    return session.wait(poll, what=f"libraries on cluster {cid} to be INSTALLED", timeout=inputs["timeout_seconds"],
                        interval=inputs["poll_interval_seconds"], follow_up="get_library_status")


def _name(lib) -> str:
    if not isinstance(lib, dict) or not lib:
        return "a library"
    kind, value = next(iter(lib.items()))
    if isinstance(value, dict):
        value = value.get("package") or value.get("coordinates") or value
    return f"{kind} {value}"


def uninstall_libraries(session, inputs):
    cid = inputs["cluster_id"]
    libs = _libraries(inputs)
    session.start("uninstall", lambda: session.post(f"{API}/uninstall", {"cluster_id": cid, "libraries": libs},
                                                    idempotent=True),
                  ids={"cluster_id": cid}, follow_up="get_library_status")
    return _status(session, cid)
