"""Workspace state of the emulator: configuration, clock, principals, credentials,
clusters and per-area storage for other modules. One lock guards it all."""

from __future__ import annotations

import collections
import dataclasses
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional


# --------------------------------------------------------------------------- config

def _env_flag(name: str, default: bool) -> bool:
    import os
    value = os.environ.get(name, "").strip().lower()
    return default if not value else value not in ("0", "false", "no", "off")


@dataclass
class Config:
    """Runtime-mutable behaviour knobs. Tests change these at any time."""
    token_lifetime: float = 3600            # seconds; read when a token is issued
    cluster_start_seconds: float = 3.0      # PENDING -> RUNNING
    cluster_restart_seconds: float = 2.0    # RESTARTING -> RUNNING (restart, edit of a running cluster)
    cluster_resize_seconds: float = 1.0     # RESIZING -> RUNNING
    cluster_terminate_seconds: float = 1.0  # TERMINATING -> TERMINATED
    cluster_launch_failure: Optional[str] = None   # one-shot: next create/start fails with this code
    cluster_launch_failure_type: str = "CLOUD_FAILURE"
    not_found_style: str = "legacy400"      # "legacy400" | "404"
    list_page_size: int = 20                # server cap (and default) for paginated lists
    events_page_size: int = 50              # default page of clusters/events (max 500)
    validate_spark_version: bool = True
    cloud: str = "AWS"                      # reported by /.well-known/databricks-config
    context_start_seconds: float = 0.3      # 1.2 execution context: Pending -> Running
    command_queue_seconds: float = 0.1      # 1.2 command: Queued -> Running
    # TLS and sign-in (conn-tls): emulator/tls.py, oauth.py, entra.py, federation.py
    tls: bool = field(default_factory=lambda: _env_flag("DATABRICKS_EMULATOR_TLS", True))
    # ^ serve HTTPS with the process's own CA (read at start-up); DATABRICKS_EMULATOR_TLS=0 makes
    #   plain http the default of every emulator of a process (tests: pytest --emulator-http)
    user_token_lifetime: float = 3600       # seconds; user-login (authorization code) access tokens
    refresh_token_lifetime: float = 90 * 86400   # seconds a refresh token stays valid
    rotate_refresh_tokens: bool = True      # a refresh answers a new refresh token and retires the old
    authorization_code_lifetime: float = 60  # seconds an authorization code can be exchanged
    oauth_auto_consent: bool = False        # test-only: /oidc/v1/authorize consents at once (no page)
    oauth_consent_user: str = "emulator-user@example.com"   # who signs in on the authorize page
    entra_token_lifetime: float = 3599      # Microsoft Entra ID access tokens (v1 answers a string)
    federation_token_lifetime: float = 3600  # tokens from a workload identity federation exchange
    federation_issuer: str = "https://oidc.emulator.test"   # the OIDC issuer federation policies trust
    oidc_token_lifetime: float = 300        # OIDC tokens the emulator mints as that issuer (for tests)

    def update(self, values: Dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = [k for k in values if k not in names]
        if unknown:
            raise KeyError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        for k, v in values.items():
            setattr(self, k, v)

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


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

    def add_pat(self, user: str = "emulator-user@example.com") -> str:
        with self.lock:
            self.add_user(user)
            token = "dapi" + secrets.token_hex(16)
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
