"""The official Databricks SDK as a client of the emulator, and the check of every raw answer
against the SDK's dataclass for it.

``Recorder`` observes the SDK's own ``ApiClient.do`` (the SDK still sends every request over
loopback HTTP(S) with its own retries, auth and waiters): it keeps each JSON answer the SDK
parsed, with the method and path that produced it. ``Recorder.check()`` then holds every answer
recorded since the last check against the SDK model the SDK itself parses it with (``ANSWERS``):

* round trip: ``Model.from_dict(raw).as_dict()`` must keep every field and value of ``raw``
  (a field the SDK drops is an unknown field name, or an enum value not among the SDK's);
* JSON types: every value must have the JSON type of the model's annotation (a string where the
  SDK expects an integer, a number where it expects a string, ...);
* an answer of an endpoint without a model in ``ANSWERS`` is itself a failure, so nothing the SDK
  drives escapes the check.
"""
from __future__ import annotations

import dataclasses
import enum
import re
import typing
import urllib.parse
from typing import Any, List, Tuple

from databricks.sdk.service import compute, iam, jobs, sql, workspace

# values the SDK's as_dict leaves out by design (an empty list or map); "" is kept for a string,
# so a dropped "" is an enum value the SDK does not know
EMPTY = (None, [], {})

# (method, path regex) -> the SDK model of the JSON answer (None: the SDK reads nothing of it,
# e.g. a cancel or a delete; it only has to be a JSON object).
ANSWERS: List[Tuple[str, str, Any]] = [
    # identity
    ("GET", r"/api/2\.0/preview/scim/v2/Me", iam.User),
    # clusters
    ("POST", r"/api/2\.1/clusters/create", compute.CreateClusterResponse),
    ("GET", r"/api/2\.1/clusters/get", compute.ClusterDetails),
    ("GET", r"/api/2\.1/clusters/list", compute.ListClustersResponse),
    ("POST", r"/api/2\.1/clusters/events", compute.GetEventsResponse),
    ("GET", r"/api/2\.1/clusters/list-node-types", compute.ListNodeTypesResponse),
    ("GET", r"/api/2\.1/clusters/spark-versions", compute.GetSparkVersionsResponse),
    ("GET", r"/api/2\.1/clusters/list-zones", compute.ListAvailableZonesResponse),
    ("POST", r"/api/2\.1/clusters/(edit|update|resize|start|restart|delete|permanent-delete|pin|unpin)", None),
    # command execution
    ("POST", r"/api/1\.2/contexts/create", compute.Created),
    ("GET", r"/api/1\.2/contexts/status", compute.ContextStatusResponse),
    ("POST", r"/api/1\.2/contexts/destroy", None),
    ("POST", r"/api/1\.2/commands/execute", compute.Created),
    ("GET", r"/api/1\.2/commands/status", compute.CommandStatusResponse),
    ("POST", r"/api/1\.2/commands/cancel", None),
    # SQL warehouses and statements
    ("GET", r"/api/2\.0/sql/warehouses", sql.ListWarehousesResponse),
    ("POST", r"/api/2\.0/sql/warehouses", sql.CreateWarehouseResponse),
    ("POST", r"/api/2\.0/sql/warehouses/[^/]+/edit", None),
    ("DELETE", r"/api/2\.0/sql/warehouses/[^/]+", None),
    ("GET", r"/api/2\.0/sql/warehouses/[^/]+", sql.GetWarehouseResponse),
    ("POST", r"/api/2\.0/sql/warehouses/[^/]+/(start|stop)", None),
    ("POST", r"/api/2\.0/sql/statements/?", sql.StatementResponse),
    ("GET", r"/api/2\.0/sql/statements/[^/]+", sql.StatementResponse),
    ("GET", r"/api/2\.0/sql/statements/[^/]+/result/chunks/\d+", sql.ResultData),
    ("POST", r"/api/2\.0/sql/statements/[^/]+/cancel", None),
    # jobs
    ("POST", r"/api/2\.2/jobs/create", jobs.CreateResponse),
    ("GET", r"/api/2\.2/jobs/get", jobs.Job),
    ("GET", r"/api/2\.2/jobs/list", jobs.ListJobsResponse),
    ("POST", r"/api/2\.2/jobs/(update|reset|delete)", None),
    ("POST", r"/api/2\.2/jobs/run-now", jobs.RunNowResponse),
    ("POST", r"/api/2\.2/jobs/runs/submit", jobs.SubmitRunResponse),
    ("GET", r"/api/2\.2/jobs/runs/get", jobs.Run),
    ("GET", r"/api/2\.2/jobs/runs/get-output", jobs.RunOutput),
    ("GET", r"/api/2\.2/jobs/runs/list", jobs.ListRunsResponse),
    ("GET", r"/api/2\.2/jobs/runs/export", jobs.ExportRunOutput),
    ("POST", r"/api/2\.2/jobs/runs/repair", jobs.RepairRunResponse),
    ("POST", r"/api/2\.2/jobs/runs/(cancel|cancel-all|delete)", None),
    # workspace
    ("GET", r"/api/2\.0/workspace/list", workspace.ListResponse),
    ("GET", r"/api/2\.0/workspace/get-status", workspace.ObjectInfo),
    ("GET", r"/api/2\.0/workspace/export", workspace.ExportResponse),
    ("POST", r"/api/2\.0/workspace/(mkdirs|import|delete)", None),
    # permissions (the per-object APIs' models)
    ("GET|PUT|PATCH", r"/api/2\.0/permissions/clusters/[^/]+", compute.ClusterPermissions),
    ("GET", r"/api/2\.0/permissions/clusters/[^/]+/permissionLevels", compute.GetClusterPermissionLevelsResponse),
    ("GET|PUT|PATCH", r"/api/2\.0/permissions/jobs/[^/]+", jobs.JobPermissions),
    ("GET", r"/api/2\.0/permissions/jobs/[^/]+/permissionLevels", jobs.GetJobPermissionLevelsResponse),
    ("GET|PUT|PATCH", r"/api/2\.0/permissions/(sql/)?warehouses/[^/]+", sql.WarehousePermissions),
    ("GET", r"/api/2\.0/permissions/(sql/)?warehouses/[^/]+/permissionLevels",
     sql.GetWarehousePermissionLevelsResponse),
    ("GET|PUT|PATCH", r"/api/2\.0/permissions/(notebooks|directories|files)/[^/]+",
     workspace.WorkspaceObjectPermissions),
    ("GET", r"/api/2\.0/permissions/(notebooks|directories|files)/[^/]+/permissionLevels",
     workspace.GetWorkspaceObjectPermissionLevelsResponse),
]


def workspace_client(emu, **auth):
    """A WorkspaceClient of the emulator (a personal access token unless ``auth`` is given),
    with a ``recorder`` whose ``check()`` holds its answers against the SDK's models."""
    from databricks.sdk import WorkspaceClient

    w = WorkspaceClient(host=emu.url, **(auth or dict(token=emu.pat, auth_type="pat")))
    w.recorder = Recorder(w)
    return w


def model_for(method: str, path: str):
    """(found, model) for an answer of ``method path``."""
    for methods, pattern, model in ANSWERS:
        if method in methods.split("|") and re.fullmatch(pattern, path):
            return True, model
    return False, None


class Recorder:
    """Keeps the JSON answers the SDK's ApiClient parses (installed on one WorkspaceClient)."""

    def __init__(self, client) -> None:
        self.answers: List[dict] = []
        self.checked = 0
        api = client.api_client
        inner = api.do

        def do(method, path=None, url=None, query=None, headers=None, body=None, raw=False, **kw):
            res = inner(method, path=path, url=url, query=query, headers=headers, body=body, raw=raw, **kw)
            if not raw:
                where = path if path is not None else urllib.parse.urlsplit(url).path
                self.answers.append({"method": method, "path": where, "query": query, "body": body,
                                     "answer": res})
            return res

        api.do = do

    def paths(self) -> List[str]:
        return [f"{a['method']} {a['path']}" for a in self.answers]

    def check(self) -> int:
        """Every answer recorded since the last check against its SDK model; returns how many
        were checked, raises AssertionError naming every divergence."""
        todo, self.checked = self.answers[self.checked:], len(self.answers)
        problems: List[str] = []
        for a in todo:
            problems += [f"{a['method']} {a['path']}: {p}" for p in divergences(a["method"], a["path"], a["answer"])]
        assert not problems, "the SDK's models disagree with the emulator:\n" + "\n".join(dict.fromkeys(problems))
        return len(todo)


def divergences(method: str, path: str, raw: Any) -> List[str]:
    found, model = model_for(method, path)
    if not found:
        return ["no SDK model mapped for this answer (add it to ANSWERS)"]
    if not isinstance(raw, dict):
        return [f"answer is {type(raw).__name__}, not a JSON object"]
    if model is None:
        return []
    try:
        back = model.from_dict(raw).as_dict()
    except Exception as e:  # noqa: BLE001 - a shape the SDK cannot even parse
        return [f"{model.__name__}.from_dict fails: {type(e).__name__}: {e}"]
    problems: List[str] = []
    _round_trip(raw, back, model.__name__, problems)
    _types(raw, model, model.__name__, problems)
    return problems


def _round_trip(raw: Any, back: Any, where: str, out: List[str]) -> None:
    if isinstance(raw, dict):
        if not isinstance(back, dict):
            out.append(f"{where}: object became {back!r}")
            return
        for k, v in raw.items():
            if k not in back:
                if v not in EMPTY:
                    out.append(f"{where}.{k}: dropped by the SDK (unknown field name, or a value not "
                               f"among the SDK's enum values): {_short(v)}")
                continue
            _round_trip(v, back[k], f"{where}.{k}", out)
    elif isinstance(raw, list):
        if not isinstance(back, list) or len(back) != len(raw):
            out.append(f"{where}: list {_short(raw)} became {_short(back)} (values unknown to the SDK dropped)")
            return
        for i, (r, b) in enumerate(zip(raw, back)):
            _round_trip(r, b, f"{where}[{i}]", out)
    elif raw != back or type(raw) is not type(back) and not (_num(raw) and _num(back)):
        out.append(f"{where}: {raw!r} became {back!r}")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 120 else s[:117] + "..."


def _unwrap(t: Any) -> Any:
    if typing.get_origin(t) is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return t


_HINTS: dict = {}


def _fields(model) -> dict:
    if model not in _HINTS:
        _HINTS[model] = typing.get_type_hints(model)
    return _HINTS[model]


def _types(raw: Any, t: Any, where: str, out: List[str]) -> None:
    """The JSON type of every value against the SDK model's annotation."""
    t = _unwrap(t)
    if raw is None or t is Any:
        return
    origin = typing.get_origin(t)
    if dataclasses.is_dataclass(t):
        if not isinstance(raw, dict):
            out.append(f"{where}: {type(raw).__name__} where the SDK expects an object ({t.__name__})")
            return
        hints = _fields(t)
        for k, v in raw.items():
            name = k.lstrip("$")
            if name not in hints:  # API 1.2 is camelCase on the wire
                name = re.sub(r"([A-Z])", r"_\1", name).lower()
            if name in hints:
                _types(v, hints[name], f"{where}.{k}", out)
    elif isinstance(t, type) and issubclass(t, enum.Enum):
        if not isinstance(raw, str):
            out.append(f"{where}: {raw!r} where the SDK expects a string of {t.__name__}")
    elif origin in (list, List):
        if not isinstance(raw, list):
            out.append(f"{where}: {type(raw).__name__} where the SDK expects an array")
            return
        (item,) = typing.get_args(t) or (Any,)
        for i, v in enumerate(raw):
            _types(v, item, f"{where}[{i}]", out)
    elif origin in (dict, typing.Dict):
        if not isinstance(raw, dict):
            out.append(f"{where}: {type(raw).__name__} where the SDK expects an object")
            return
        args = typing.get_args(t)
        for k, v in raw.items():
            _types(v, args[1] if len(args) == 2 else Any, f"{where}.{k}", out)
    elif t is bool:
        if not isinstance(raw, bool):
            out.append(f"{where}: {raw!r} where the SDK expects a boolean")
    elif t is int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            out.append(f"{where}: {raw!r} where the SDK expects an integer")
    elif t is float:
        if not _num(raw):
            out.append(f"{where}: {raw!r} where the SDK expects a number")
    elif t is str:
        if not isinstance(raw, str):
            out.append(f"{where}: {raw!r} where the SDK expects a string")


__all__ = ["Recorder", "workspace_client", "divergences", "model_for", "ANSWERS"]
