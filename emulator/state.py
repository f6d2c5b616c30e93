"""Workspace state of the emulator: configuration, clock, principals, credentials,
clusters and per-area storage for other modules. One lock guards it all."""

from __future__ import annotations

import collections
import copy
import dataclasses
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional


# --------------------------------------------------------------------------- config

CLOUDS = ("AWS", "AZURE", "GCP")


def knob(default: Any, doc: str, *, choices: Optional[tuple] = None, minimum: Optional[float] = None) -> Any:
    """A documented field of :class:`Config` (``doc`` is what docs/emulator.md says about it)."""
    meta = {"doc": doc, "choices": choices, "minimum": minimum}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def _env_flag(name: str, default: bool) -> bool:
    import os
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value not in ("0", "false", "no", "off")


@dataclass
class Config:
    """Every behaviour knob of the emulator, in one place. The same names are accepted by
    ``Emulator(**config)``, ``POST /__emulator/config`` (a JSON object) and
    ``databricks-connector emulator --set name=value``; changes apply at once (a duration is read
    when the transition it governs is scheduled). Durations are seconds. docs/emulator.md lists
    them all (a test keeps it complete)."""

    # -- the workspace
    cloud: str = knob("AWS", "Cloud of the workspace: AWS, AZURE or GCP. Decides the node-type catalogue, the "
                             "zones and the cloud attributes a cluster gets by default, and what "
                             "/.well-known/databricks-config reports.", choices=CLOUDS)
    not_found_style: str = knob("legacy400", "How clusters/get, jobs/get and runs/get say an id does not exist: "
                                             "legacy400 (400 INVALID_PARAMETER_VALUE, what Databricks sends) or "
                                             "404 (404 RESOURCE_DOES_NOT_EXIST).", choices=("legacy400", "404"))
    token_lifetime: float = knob(3600, "Lifetime of an OAuth access token issued by the token endpoint.", minimum=0)

    # -- clusters
    cluster_start_seconds: float = knob(3.0, "PENDING -> RUNNING (create, start, a job cluster).", minimum=0)
    cluster_restart_seconds: float = knob(2.0, "RESTARTING -> RUNNING (restart, edit of a running cluster).",
                                          minimum=0)
    cluster_resize_seconds: float = knob(1.0, "RESIZING -> RUNNING.", minimum=0)
    cluster_terminate_seconds: float = knob(1.0, "TERMINATING -> TERMINATED.", minimum=0)
    cluster_launch_failure: Optional[str] = knob(None, "One shot: the next cluster launch (create, start, a job's "
                                                       "start of a cluster) fails with this termination code, e.g. "
                                                       "CLOUD_PROVIDER_LAUNCH_FAILURE; then it clears itself.")
    cluster_launch_failure_type: str = knob("CLOUD_FAILURE", "Termination type of that failure when the code does "
                                                             "not imply one.")
    list_page_size: int = knob(100, "clusters/list (2.1): the largest page_size honoured (Databricks: 100).",
                               minimum=1)
    list_default_page_size: int = knob(20, "clusters/list (2.1): the page size when none is asked for.",
                                       minimum=1)
    events_page_size: int = knob(50, "clusters/events: default page size (at most 500).", minimum=1)
    validate_spark_version: bool = knob(True, "Refuse a spark_version that is not in clusters/spark-versions.")
    cluster_max_workers: int = knob(1000, "The most workers a cluster may ask for (num_workers, autoscale "
                                    "max_workers); more is a 400 INVALID_PARAMETER_VALUE, as a workspace's size "
                                    "limit refuses it.", minimum=0)

    # -- command execution (API 1.2)
    context_start_seconds: float = knob(0.3, "Execution context: Pending -> Running.", minimum=0)
    command_queue_seconds: float = knob(0.1, "Command: Queued -> Running.", minimum=0)

    # -- jobs and runs
    jobs_pending_seconds: float = knob(0.2, "A task's PENDING time once its cluster runs (execution context "
                                            "set-up); a job cluster or a stopped cluster adds its start time.",
                                       minimum=0)
    jobs_task_seconds: float = knob(0.5, "The shortest RUNNING time of a task; a task whose code runs longer "
                                         "runs as long as its code.", minimum=0)
    jobs_cancel_seconds: float = knob(1.0, "TERMINATING time of a cancelled or timed-out run (its clean-up; "
                                           "reported as cleanup_duration).", minimum=0)
    jobs_python_timeout: float = knob(3600.0, "Safety cap on the run time of one task's Python (notebook, script, "
                                              "wheel); the task fails when its code runs longer.", minimum=0)
    jobs_array_page_size: int = knob(100, "jobs/get and runs/get (2.2): elements per page of the paged arrays "
                                          "(tasks, job_clusters, parameters, ...).", minimum=1)
    jobs_list_max_limit: int = knob(100, "jobs/list: the largest limit accepted (1..this).", minimum=1)
    jobs_runs_list_max_limit: int = knob(25, "runs/list: the largest limit accepted (0 means this).", minimum=1)
    jobs_page_cap: int = knob(100, "jobs/list: the most jobs on one page, whatever the limit (set it low to see "
                                   "many pages).", minimum=1)
    jobs_runs_page_cap: int = knob(25, "runs/list: the most runs on one page, whatever the limit.", minimum=1)

    # -- SQL warehouses, statements and the SQL engine (emulator/warehouses.py, statements.py, sqlengine/)
    warehouse_start_seconds: float = knob(3.0, "SQL warehouse STARTING -> RUNNING (also when a statement starts it).",
                                          minimum=0)
    warehouse_stop_seconds: float = knob(1.0, "SQL warehouse STOPPING -> STOPPED.", minimum=0)
    warehouse_delete_seconds: float = knob(1.0, "SQL warehouse DELETING -> DELETED.", minimum=0)
    warehouse_page_size: int = knob(25, "sql/warehouses list: the server's cap and default page_size.", minimum=1)
    warehouse_concurrency: int = knob(10, "Statements RUNNING at once per warehouse cluster; more wait PENDING.",
                                      minimum=1)
    statement_chunk_max_rows: Optional[int] = knob(None, "Rows per result chunk (None: the byte limits decide).")
    statement_chunk_max_bytes: int = knob(2 * 1024 * 1024, "JSON bytes per INLINE result chunk.", minimum=1)
    statement_link_chunk_max_bytes: int = knob(8 * 1024 * 1024, "Bytes per EXTERNAL_LINKS result chunk.", minimum=1)
    statement_inline_limit_bytes: int = knob(25 * 1024 * 1024, "INLINE results larger than this fail, as Databricks' "
                                                                "25 MiB limit.", minimum=1)
    statement_results_lifetime_seconds: float = knob(3600.0, "A SUCCEEDED statement becomes CLOSED after this.",
                                                     minimum=0)
    statement_purge_after_seconds: float = knob(12 * 3600.0, "A terminal statement is purged (404) after this.",
                                                minimum=0)
    statement_link_lifetime_seconds: float = knob(900.0, "Presigned EXTERNAL_LINKS expire after this.", minimum=0)
    statement_expire_next_links: int = knob(0, "Test hook: the next N external links are minted already expired.",
                                            minimum=0)
    statement_link_http_headers: Dict[str, str] = knob({}, "Headers the storage server requires on link GETs "
                                                           "(returned in each link's http_headers).")
    sql_delays: Dict[str, float] = knob({}, "{regex: seconds}: statements matching a pattern take at least that long "
                                            "(RUNNING, cancellable).")
    sql_result_cache_seconds: float = knob(0.0, "Identical statements reuse a result this long (0 = off).", minimum=0)
    sql_shape_latency_seconds: float = knob(0.0, "Network shaping of SQL requests: added latency per request.",
                                            minimum=0)
    sql_shape_bandwidth_bytes_per_second: float = knob(0.0, "Network shaping of SQL responses: transfer rate "
                                                            "(0 = unlimited).", minimum=0)
    sql_threads: int = knob(2, "DuckDB worker threads of the SQL engine (read when the engine starts).", minimum=1)

    # -- pipelines, libraries, apps (emulator/pipelines.py, libraries.py, apps.py; docs/emulator-ops.md)
    pipeline_step_seconds: float = knob(0.5, "Pipeline update: time in each state before RUNNING (QUEUED, CREATED, "
                                             "WAITING_FOR_RESOURCES, INITIALIZING, SETTING_UP_TABLES).", minimum=0)
    pipeline_run_seconds: float = knob(2.0, "Pipeline update: RUNNING -> COMPLETED of a triggered pipeline (a "
                                            "continuous one runs until stopped).", minimum=0)
    pipeline_stop_seconds: float = knob(0.5, "Pipeline update: STOPPING -> CANCELED after a stop.", minimum=0)
    pipeline_page_cap: int = knob(100, "pipelines lists (pipelines, updates, events): the most items on one page, "
                                       "whatever max_results (set it low to see many pages).", minimum=1)
    pipeline_events_page_size: int = knob(25, "pipelines/{id}/events: the page size when max_results is not given.",
                                          minimum=1)
    library_install_seconds: float = knob(1.0, "Cluster library: PENDING -> INSTALLING and INSTALLING -> INSTALLED "
                                               "(each) on a running cluster.", minimum=0)
    library_missing_packages: List[str] = knob(["nonexistent-package"], "PyPI packages that do not exist: "
                                                                         "installing one ends FAILED.")
    app_start_seconds: float = knob(1.0, "App compute STARTING -> ACTIVE (create, start).", minimum=0)
    app_stop_seconds: float = knob(0.5, "App compute STOPPING -> STOPPED.", minimum=0)
    app_deploy_seconds: float = knob(1.0, "App deployment IN_PROGRESS -> SUCCEEDED (or FAILED).", minimum=0)
    # -- ML: MLflow tracking, models, serving, Genie (emulator/mlflow.py, models.py, serving.py, genie.py;
    #    docs/emulator-ml.md)
    mlflow_page_size: int = knob(1000, "MLflow experiments/search and runs/search: the most items on one page, "
                                       "whatever max_results asks (set it low to see many pages).", minimum=1)
    models_page_size: int = knob(100, "Unity Catalog models and model versions lists: the most items on one page.",
                                 minimum=1)
    model_version_ready_seconds: float = knob(0.5, "A finalized model version: PENDING_REGISTRATION -> READY.",
                                              minimum=0)
    model_version_fail_next: bool = knob(False, "One shot: the next finalized model version ends "
                                                "FAILED_REGISTRATION instead of READY; then it clears itself.")
    serving_update_seconds: float = knob(2.0, "A serving endpoint's config update (create, update config): "
                                              "config_update IN_PROGRESS -> NOT_UPDATING (and ready READY).", minimum=0)
    serving_update_fail_next: bool = knob(False, "One shot: the next config update ends UPDATE_FAILED (the endpoint "
                                                 "keeps its previous config); then it clears itself.")
    serving_embedding_dimensions: int = knob(16, "Length of the deterministic embeddings an embeddings endpoint "
                                                 "answers (a hashed bag of words: similar texts are near).", minimum=2)
    serving_chat_template: str = knob("You asked: {question}", "What a chat or completions endpoint answers; "
                                      "{question} is the last user message (or the prompt), {model} the served "
                                      "entity.")
    genie_step_seconds: float = knob(0.3, "Each step of a Genie message: SUBMITTED -> ASKING_AI -> EXECUTING_QUERY "
                                          "-> COMPLETED (the query also takes as long as its SQL runs).", minimum=0)
    genie_questions: Dict[str, Optional[str]] = knob(
        {r"(?i)how many trips": "SELECT count(*) AS trips FROM samples.nyctaxi.trips",
         r"(?i)(longest|top).*trips?": "SELECT trip_distance, fare_amount, pickup_zip, dropoff_zip FROM "
                                       "samples.nyctaxi.trips ORDER BY trip_distance DESC LIMIT 5",
         r"(?i)^(hi|hello|thanks?)\b": None},
        "{regex: SQL or null}: the SQL Genie writes for a question matching a pattern (the first match, in order); "
        "null answers with text only. A question matching none gets genie_fallback_sql.")
    genie_fallback_sql: str = knob("SELECT * FROM samples.nyctaxi.trips LIMIT 10", "The SQL of a question no "
                                   "pattern of genie_questions matches.")
    genie_fail_next: bool = knob(False, "One shot: the next Genie message ends FAILED (a MessageError) before any "
                                        "query; then it clears itself.")
    vector_search_page_size: int = knob(1000, "Vector search: the most rows of a query on one page (more page "
                                               "through query-next-page), and of an index list.", minimum=1)
    genie_result_lifetime_seconds: float = knob(3600.0, "A COMPLETED Genie message becomes QUERY_RESULT_EXPIRED "
                                                        "this long after its query ran (execute-query runs it "
                                                        "again).", minimum=0)


    # -- TLS and sign-in (emulator/tls.py, oauth.py, entra.py, federation.py)
    tls: bool = field(default_factory=lambda: _env_flag("DATABRICKS_EMULATOR_TLS", True), metadata={
        "doc": "Serve HTTPS with the process's own certificate authority (read at start-up); the environment "
               "variable DATABRICKS_EMULATOR_TLS=0 makes plain http the default of every emulator of a process "
               "(tests: pytest --emulator-http).", "choices": None, "minimum": None})
    user_token_lifetime: float = knob(3600, "Lifetime of a user-login (authorization code) access token.", minimum=0)
    refresh_token_lifetime: float = knob(90 * 86400, "How long a refresh token stays valid.", minimum=0)
    rotate_refresh_tokens: bool = knob(True, "A refresh answers a new refresh token and retires the old one.")
    authorization_code_lifetime: float = knob(60, "How long an authorization code can be exchanged.", minimum=0)
    oauth_auto_consent: bool = knob(False, "Test only: /oidc/v1/authorize consents at once (no consent page).")
    oauth_consent_user: str = knob("emulator-user@example.com", "Who signs in on the authorize page.")
    entra_token_lifetime: float = knob(3599, "Lifetime of a Microsoft Entra ID access token.", minimum=0)
    federation_token_lifetime: float = knob(3600, "Lifetime of a token from a workload identity federation "
                                                  "exchange.", minimum=0)
    federation_issuer: str = knob("https://oidc.emulator.test", "The OIDC issuer federation policies trust.")
    oidc_token_lifetime: float = knob(300, "Lifetime of the OIDC tokens the emulator mints as that issuer (for "
                                           "tests).", minimum=0)

    def update(self, values: Dict[str, Any]) -> None:
        """Apply ``values`` at once, or none of them: every unknown name and bad value is reported
        in one :class:`ConfigError`."""
        if not isinstance(values, dict):
            raise ConfigError(["the configuration must be an object of name: value"])
        fields = {f.name: f for f in dataclasses.fields(self)}
        problems = []
        clean = {}
        for name, value in values.items():
            f = fields.get(name)
            if f is None:
                problems.append(f"unknown config field {name!r}")
                continue
            try:
                clean[name] = _coerce(f, value, getattr(self, name))
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise ConfigError(problems)
        for name, value in clean.items():
            setattr(self, name, value)

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def describe(cls) -> list:
        """[{name, default, doc, choices}] of every knob, in declaration order."""
        out = []
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            out.append({"name": f.name, "default": default, "doc": f.metadata.get("doc", ""),
                        "choices": f.metadata.get("choices")})
        return out


class ConfigError(KeyError, ValueError):
    """Bad configuration: ``problems`` names every unknown field and bad value."""

    def __init__(self, problems: list) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    def __str__(self) -> str:
        return "; ".join(self.problems)


_TYPES = {"float": (float,), "int": (int,), "bool": (bool,), "str": (str,)}


def _coerce(f, value: Any, current: Any) -> Any:
    """Check ``value`` against the field's declared type (annotation text), choices and minimum."""
    ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    optional = ann.startswith("Optional[")
    base = ann[len("Optional["):-1] if optional else ann
    if value is None:
        if optional:
            return None
        raise ValueError("must not be null")
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, got {value!r}")
        value = float(value)
    elif base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ValueError(f"must be an integer, got {value!r}")
    elif base == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
    elif base == "str":
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
    elif base.startswith(("Dict", "dict")):
        if not isinstance(value, dict):
            raise ValueError(f"must be an object, got {value!r}")
        value = copy.deepcopy(value)
    elif base.startswith(("List", "list")):
        if not isinstance(value, list):
            raise ValueError(f"must be an array, got {value!r}")
        value = copy.deepcopy(value)
    choices = f.metadata.get("choices") if f.metadata else None
    if choices and value not in choices:
        raise ValueError(f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    minimum = f.metadata.get("minimum") if f.metadata else None
    if minimum is not None and isinstance(value, (int, float)) and value < minimum:
        raise ValueError(f"must be at least {minimum:g}, got {value!r}")
    return value


# --------------------------------------------------------------------------- clock

class Clock:
    """Wall clock plus an adjustable offset, so tests can jump forward in time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


# --------------------------------------------------------------------------- principals

@dataclass
class Principal:
    kind: str            # "user" | "service_principal"
    id: str              # SCIM id (numeric string)
    user_name: str       # email, or application id (UUID) of a service principal
    display_name: str
    given_name: str = ""
    family_name: str = ""
    groups: list = field(default_factory=lambda: ["users", "admins"])


def _scim_id() -> str:
    return str(secrets.randbelow(9 * 10 ** 15) + 10 ** 15)


# --------------------------------------------------------------------------- state

class WorkspaceState:
    def __init__(self, config: Optional[Config] = None) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.config = config or Config()
        self.workspace_id = str(secrets.randbelow(9 * 10 ** 15) + 10 ** 15)
        self.account_id = str(uuid.uuid4())
        self.users: Dict[str, Principal] = {}              # user_name -> Principal
        self.pats: Dict[str, str] = {}                     # token -> user_name
        self.service_principals: Dict[str, dict] = {}      # client_id -> {"secret", "principal"}
        self.oauth_tokens: Dict[str, dict] = {}            # access token -> {"principal", "expires", "scopes"}
        self.token_fetches = 0
        self.clusters: Dict[str, Any] = {}                 # cluster_id -> clusters.Cluster
        self.applied: collections.Counter = collections.Counter()
        self.areas: Dict[str, Any] = {}
        self._closers: list = []

    # -- time
    def now(self) -> float:
        return self.clock.now()

    def now_ms(self) -> int:
        return self.clock.now_ms()

    # -- shutdown: worker processes and engines started by area modules
    def on_close(self, fn: Callable[[], Any]) -> None:
        with self.lock:
            self._closers.append(fn)

    def close(self) -> None:
        with self.lock:
            closers, self._closers = self._closers, []
            engines = [v for v in self.areas.values() if callable(getattr(v, "close", None))]
        for fn in closers + [e.close for e in engines]:
            try:
                fn()
            except Exception:  # noqa: BLE001 - shutting down: best effort
                pass

    # -- per-area storage for other modules
    def area(self, name: str, factory: Callable[[], Any] = dict) -> Any:
        """Storage owned by one area module, created on first use: ``state.area("jobs")``."""
        with self.lock:
            if name not in self.areas:
                self.areas[name] = factory()
            return self.areas[name]

    # -- credentials
    def add_user(self, user_name: str, display_name: Optional[str] = None) -> Principal:
        with self.lock:
            p = self.users.get(user_name)
            if p is None:
                local = user_name.split("@")[0]
                parts = [s.capitalize() for s in local.replace(".", "-").split("-") if s]
                given = parts[0] if parts else local
                family = " ".join(parts[1:]) if len(parts) > 1 else "User"
                p = Principal("user", _scim_id(), user_name,
                              display_name or f"{given} {family}", given, family)
                self.users[user_name] = p
            return p

    def add_pat(self, user: str = "emulator-user@example.com", token: Optional[str] = None) -> str:
        with self.lock:
            self.add_user(user)
            token = token or ("dapi" + secrets.token_hex(16))
            self.pats[token] = user
            return token

    def revoke_pat(self, token: str) -> None:
        with self.lock:
            self.pats.pop(token, None)

    def add_service_principal(self, display_name: str = "emulator-service-principal",
                              client_id: Optional[str] = None,
                              client_secret: Optional[str] = None):
        with self.lock:
            cid = client_id or str(uuid.uuid4())
            secret = client_secret or ("dose" + secrets.token_hex(16))
            p = Principal("service_principal", _scim_id(), cid, display_name, groups=["users", "admins"])
            self.service_principals[cid] = {"secret": secret, "principal": p}
            return cid, secret

    def issue_oauth_token(self, token: str, client_id: str, expires_in: float, scopes) -> None:
        with self.lock:
            sp = self.service_principals[client_id]
            self.oauth_tokens[token] = {"principal": sp["principal"], "expires": self.now() + float(expires_in),
                                        "scopes": list(scopes or [])}
            self.token_fetches += 1

    def expire_oauth_tokens(self) -> None:
        """Test hook: every issued OAuth token becomes invalid now."""
        with self.lock:
            for t in self.oauth_tokens.values():
                t["expires"] = self.now() - 1

    def principal_for_token(self, token: str) -> Optional[Principal]:
        with self.lock:
            user = self.pats.get(token)
            if user is not None:
                return self.users[user]
            t = self.oauth_tokens.get(token)
            if t is not None and t["expires"] > self.now():
                return t["principal"]
            return None

    # -- clusters (logic lives in clusters.py)
    def add_cluster(self, **fields) -> str:
        """Seed a cluster in any state; returns its cluster_id. See clusters.seed_cluster."""
        from .clusters import seed_cluster
        return seed_cluster(self, **fields)

    def get_cluster(self, cluster_id: str) -> Optional[dict]:
        """The current ClusterDetails (with spec) after applying due transitions, or None."""
        from .clusters import snapshot
        return snapshot(self, cluster_id)

    def reset_counters(self) -> None:
        with self.lock:
            self.applied.clear()
            self.token_fetches = 0
