"""The HTTP server: Starlette routes over the one runner call, MCP at ``/mcp``, a playground at ``/``.

Every route translates its transport to ``Connector.run`` (or ``pick``, ``poll``, ``resume``) and
the runner's answer or classified error back; nothing here knows any single action. The runner
is synchronous, so calls run in worker threads (bounded by ``threads``); the session cache of the
runner keeps one authenticated session per credential across requests.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import hmac
import inspect
import json
import logging
import math
import os
import secrets as _secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from .. import errors as _errors
from ..errors import ConnectorError, InputError
from .credentials import (DEFAULT_ALLOWED, REFRESH_TOKEN_HEADER, AllowedHosts, Credentials, identity,
                          rotated_refresh_token)
from .operations import Signer, TokenRefused, started_ids
from .surface import Surface

log = logging.getLogger("databricks_connector.server")

STATUS = {"invalid_input": 400, "bad_request": 400, "configuration": 401, "authentication": 401,
          "permission_denied": 403, "not_found": 404, "invalid_state": 409, "conflict": 409,
          "operation_failed": 422, "rate_limited": 429, "internal": 500, "server_error": 502, "network": 502,
          "unavailable": 503, "interrupted": 503, "timeout": 504}
SECRET_FIELDS = ("token", "client_secret", "refresh_token", "access_token", "password")
TOKEN_SECRET_ENV = "DATABRICKS_CONNECTOR_TOKEN_SECRET"   # set for --workers children when no --token-secret-env
CONFIG_ENV = "DATABRICKS_CONNECTOR_SERVE_CONFIG"
STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def status_of(err: ConnectorError) -> int:
    return STATUS.get(err.type, 500)


@dataclass
class ServerConfig:
    """Everything ``databricks-connector serve`` takes; JSON-serialisable (passed to workers)."""
    host: str = "127.0.0.1"
    port: int = 8080
    api_key_env: str | None = None
    no_auth: bool = False
    allowed_hosts: list = field(default_factory=lambda: list(DEFAULT_ALLOWED))
    connections_dir: str | None = None
    default_connection: str | None = None
    ca_bundle: str | None = None
    read_only: bool = False
    sync_budget: float = 100.0      # seconds a call may wait before it becomes a 202 operation
    async_budget: float = 1.0       # with Prefer: respond-async
    poll_budget: float = 5.0        # a GET /operations/{token} waits at most this long
    token_secret_env: str | None = None
    token_ttl: float = 86400.0
    public_url: str | None = None
    max_body: int = 20 * 1024 * 1024
    threads: int = 64
    workers: int = 1

    def check(self) -> None:
        """Every problem with the configuration at once, before anything listens."""
        problems = []
        loopback = self.host in LOOPBACK_NAMES or self.host.startswith("127.")
        if self.no_auth and not loopback:
            problems.append("--no-auth is allowed only on a loopback address (127.0.0.1, localhost, ::1)")
        if self.no_auth and self.api_key_env:
            problems.append("--no-auth and --api-key-env exclude each other")
        if not self.no_auth:
            if not self.api_key_env:
                problems.append("the server needs its own key: pass --api-key-env NAME (an environment variable "
                                "holding the key), or --no-auth on a loopback address")
            elif len(os.environ.get(self.api_key_env, "")) < 16:
                problems.append(f"--api-key-env: the environment variable {self.api_key_env} must hold a key of at "
                                "least 16 characters")
        if self.token_secret_env and len(os.environ.get(self.token_secret_env, "")) < 16:
            problems.append(f"--token-secret-env: the environment variable {self.token_secret_env} must hold at least "
                            "16 characters")
        for name, value in (("--sync-budget", self.sync_budget), ("--async-budget", self.async_budget),
                            ("--poll-budget", self.poll_budget)):
            if not (isinstance(value, (int, float)) and 0 < value <= 3600):
                problems.append(f"{name} must be between 0 and 3600 seconds")
        if self.public_url:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                problems.append("--public-url must be an http(s) URL such as https://connector.example.com")
        if self.max_body < 1024:
            problems.append("--max-body must be at least 1024 bytes")
        if self.threads < 1 or self.workers < 1:
            problems.append("--threads and --workers must be at least 1")
        try:
            AllowedHosts(self.allowed_hosts)
        except ConnectorError as exc:
            problems.append(exc.message)
        if self.connections_dir and not os.path.isdir(self.connections_dir):
            problems.append(f"--connections {self.connections_dir} is not a folder")
        if self.default_connection and self.no_auth:
            problems.append("--default-connection needs an API key (it acts for anyone who can reach the server)")
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            problems.append(f"--ca-bundle {self.ca_bundle} is not a file")
        if problems:
            raise ConnectorError("configuration", "databricks-connector serve: " + "; ".join(problems),
                                 hint="Fix the options named above; `databricks-connector serve --help` lists them.")

    def api_key(self) -> str | None:
        return None if self.no_auth else os.environ.get(self.api_key_env or "", "") or None

    def token_secret(self) -> bytes:
        name = self.token_secret_env or TOKEN_SECRET_ENV
        value = os.environ.get(name)
        if value:
            return value.encode()
        # One process only: its tokens die with it. Several workers share one through the environment.
        value = _secrets.token_urlsafe(32)
        os.environ[TOKEN_SECRET_ENV] = value
        return value.encode()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServerConfig":
        return cls(**json.loads(text))


# ----------------------------------------------------------------------------- the runner adapter

class Runtime:
    """The runner as the server calls it. Uses the resumable form (``budget``, ``Pending``,
    ``Connector.resume``) when the runtime has it; until then every call runs to completion."""

    def __init__(self, connector):
        self.connector = connector
        self.Pending = getattr(_errors, "Pending", None)
        params = inspect.signature(connector.run).parameters
        self.has_budget = "budget" in params and self.Pending is not None and hasattr(connector, "resume")
        self.has_progress = "progress" in params
        self.can_poll = hasattr(connector, "poll")

    def _options(self, budget):
        kw = {}
        if self.has_progress:
            kw["progress"] = False
        if self.has_budget and budget is not None:
            kw["budget"] = budget
        return kw

    def run(self, key, conn, inputs, budget=None):
        return self.connector.run(key, conn, inputs, **self._options(budget))

    def resume(self, resume, conn, budget=None):
        return self.connector.resume(resume, conn, **self._options(budget))

    def pick(self, key, conn, inputs):
        return self.connector.pick(key, conn, inputs)

    def poll(self, key, conn, inputs, state):
        return self.connector.poll(key, conn, inputs=inputs, state=state)


def _secret_values(doc: dict, api_key: str | None) -> list[str]:
    out = [v for k, v in doc.items() if k in SECRET_FIELDS and isinstance(v, str) and v]
    if api_key:
        out.append(api_key)
    return out


# ----------------------------------------------------------------------------- responses

def _dumps(doc) -> bytes:
    try:
        return json.dumps(doc, ensure_ascii=False, default=str, allow_nan=False).encode("utf-8")
    except ValueError:      # a non-finite float in an output: JSON has no NaN, so null
        return json.dumps(_finite(doc), ensure_ascii=False, default=str).encode("utf-8")


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _response(doc, status: int = 200, headers: dict | None = None):
    from starlette.responses import Response

    return Response(_dumps(doc), status_code=status, headers=headers, media_type="application/json")


def error_response(err: ConnectorError, extra_headers: dict | None = None):
    status = status_of(err)
    headers = dict(extra_headers or {})
    if status in (429, 503):
        ra = err.retry_after if isinstance(err.retry_after, (int, float)) and err.retry_after > 0 else (30 if status == 429 else 10)
        headers["Retry-After"] = str(max(1, math.ceil(ra)))
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'ApiKey header="X-API-Key"')
    return _response({"error": err.to_dict()}, status, headers)


def _retry_after(seconds) -> int:
    try:
        return max(1, min(3600, math.ceil(float(seconds))))
    except (TypeError, ValueError):
        return 5


def _prefer(header: str | None) -> tuple[bool, float | None]:
    """(respond-async asked, wait=N seconds asked) from an RFC 7240 Prefer header."""
    asynchronous, wait = False, None
    for part in (header or "").split(","):
        token = part.split(";")[0].strip().lower()
        if token == "respond-async":
            asynchronous = True
        elif token.startswith("wait="):
            try:
                wait = max(0.0, float(token[5:]))
            except ValueError:
                pass
    return asynchronous, wait


def _short_path(path: str) -> str:
    if path.startswith("/operations/") and len(path) > 40:
        return f"/operations/{path[12:20]}...{path[-6:]}"
    return path[:200]


# ----------------------------------------------------------------------------- the app

class App:
    def __init__(self, config: ServerConfig, connector=None):
        from ..runner import Connector

        self.config = config
        self.connector = connector or Connector()
        self.runtime = Runtime(self.connector)
        self.surface = Surface(self.connector.spec(), read_only=config.read_only)
        self.credentials = Credentials(AllowedHosts(config.allowed_hosts), config.connections_dir, config.ca_bundle,
                                       default=config.default_connection)
        self.api_key = config.api_key()
        self.signer = Signer(config.token_secret(), ttl=config.token_ttl)
        self._limiter = None
        self._docs: dict = {}
        self.started_at = time.time()

    # -- plumbing ------------------------------------------------------------------------
    async def _thread(self, fn, *args, **kw):
        import anyio

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.config.threads)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kw), limiter=self._limiter)

    def authorize(self, headers) -> None:
        if self.api_key is None:
            return
        given = headers.get("x-api-key")
        if not given:
            auth = headers.get("authorization") or ""
            given = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if not given:
            raise ConnectorError("authentication", "This server requires its API key in the X-API-Key header",
                                 hint="Send X-API-Key with the key the server's operator gave you.")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), self.api_key.encode("utf-8")):
            raise ConnectorError("authentication", "The X-API-Key is not this server's key",
                                 hint="Check the key with the server's operator.")

    def base_url(self, request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    async def body(self, request) -> dict:
        size, chunks = 0, []
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.config.max_body:
                raise _HttpError(413, ConnectorError("invalid_input", f"The request body is over {self.config.max_body} bytes"))
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json" and not ctype.endswith("+json"):
            raise _HttpError(415, ConnectorError("invalid_input", "The request body must be JSON (Content-Type: application/json)"))
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise ConnectorError("invalid_input", f"The request body is not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise ConnectorError("invalid_input", "The request body must be a JSON object of input keys to values",
                                 hint='Send {"input_key": value, ...}.')
        return doc

    def connection(self, headers) -> dict:
        return self.credentials.from_headers(headers)

    def _extra_headers(self, conn: dict) -> dict:
        rotated = rotated_refresh_token(self.connector, conn)
        return {REFRESH_TOKEN_HEADER: rotated} if rotated else {}

    # -- routes --------------------------------------------------------------------------
    async def healthz(self, request):
        return _response({"status": "ok"})

    async def spec(self, request):
        return self._document("spec", None, lambda: self.surface.spec())

    async def openapi(self, request):
        from .openapi import openapi31

        base = self.base_url(request)
        return self._document("3.1", base, lambda: openapi31(self.surface, base, api_key=self.api_key is not None))

    async def swagger(self, request):
        from .openapi import swagger20

        base = self.base_url(request)
        return self._document("2.0", base, lambda: swagger20(self.surface, base, api_key=self.api_key is not None))

    def _document(self, kind, base, build):
        """A generated document, kept per base URL (the Host a caller used); a few at most, so
        made-up Host headers cannot fill the memory."""
        from starlette.responses import Response

        key = (kind, base)
        body = self._docs.get(key)
        if body is None:
            body = _dumps(build())
            if len(self._docs) >= 16:
                self._docs.pop(next(iter(self._docs)))
            self._docs[key] = body
        return Response(body, media_type="application/json")

    async def list_connections(self, request):
        self.authorize(request.headers)
        names = await self._thread(self.credentials.names)
        return _response({"connections": names})

    async def action(self, request):
        self.authorize(request.headers)
        key = request.path_params["key"]
        item = self.surface.actions.get(key)
        if item is None:
            raise ConnectorError("not_found", f"Unknown action {key!r}",
                                 hint="GET /spec lists the actions this server exposes.")
        inputs = await self.body(request)
        self._refuse_local(item, inputs)
        conn = self.connection(request.headers)
        asynchronous, wait = _prefer(request.headers.get("prefer"))
        budget = self.config.async_budget if asynchronous else self.config.sync_budget
        if wait is not None:
            budget = max(0.001, min(budget, wait))
        try:
            out = await self._thread(self.runtime.run, key, conn, inputs, budget)
        except Exception as exc:
            if self.runtime.Pending is not None and isinstance(exc, self.runtime.Pending):
                return await self._pending(request, key, conn, exc, asynchronous)
            raise
        return _response(out, 200, self._extra_headers(conn))

    async def operation(self, request):
        self.authorize(request.headers)
        conn = self.connection(request.headers)
        resume = self.signer.open(request.path_params["token"], identity(conn))
        key = resume.get("action")
        if self.surface.read_only and key not in self.surface.actions:
            raise ConnectorError("permission_denied", "This server is read-only")
        if not self.runtime.has_budget:
            raise ConnectorError("not_found", "This server's runtime cannot follow operations")
        try:
            out = await self._thread(self.runtime.resume, resume, conn, self.config.poll_budget)
        except Exception as exc:
            if isinstance(exc, self.runtime.Pending):
                return await self._pending(request, key, conn, exc, False)
            raise
        return _response(out, 200, self._extra_headers(conn))

    async def _pending(self, request, key, conn, pending, preferred: bool):
        resume = getattr(pending, "resume", None)
        try:
            if not isinstance(resume, dict):
                raise TokenRefused("the runtime gave no resumable state")
            token = self.signer.issue(resume, identity(conn), _secret_values(conn, self.api_key))
        except TokenRefused as why:
            # Cannot go stateless: finish the step in this request instead (nothing is lost or
            # started twice; the caller just holds the connection longer).
            log.warning("operation for %s continues synchronously: %s", key, why)
            out = await self._thread(self.runtime.resume, resume, conn, None)
            return _response(out, 200, self._extra_headers(conn))
        location = f"{self.base_url(request)}/operations/{token}"
        retry = _retry_after(getattr(pending, "retry_after", None))
        state = getattr(pending, "state", None)
        body = {"status": "running", "operation": token, "location": location, "action": key, "retry_after": retry,
                "started": started_ids(resume), "state": state}
        headers = {"Location": location, "Retry-After": str(retry), **self._extra_headers(conn)}
        if preferred:
            headers["Preference-Applied"] = "respond-async"
        return _response(body, 202, headers)

    async def picker(self, request):
        self.authorize(request.headers)
        key = request.path_params["key"]
        item = self.surface.pickers.get(key)
        if item is None:
            raise ConnectorError("not_found", f"Unknown picker {key!r}", hint="GET /spec lists the pickers.")
        inputs = await self.body(request) if request.method == "POST" else dict(request.query_params)
        self._refuse_local(item, inputs)
        conn = self.connection(request.headers)
        out = await self._thread(self.runtime.pick, key, conn, inputs)
        return _response(out, 200, self._extra_headers(conn))

    async def trigger(self, request):
        self.authorize(request.headers)
        key = request.path_params["key"]
        item = self.surface.triggers.get(key)
        if item is None or not self.runtime.can_poll:
            raise ConnectorError("not_found", f"Unknown trigger {key!r}", hint="GET /spec lists the triggers.")
        if request.method == "POST":
            doc = await self.body(request)
            unknown = sorted(set(doc) - {"inputs", "state"})
            inputs, state = doc.get("inputs"), doc.get("state")
            problems = [{"key": k, "label": k, "reason": "is not part of a poll request (inputs, state)"} for k in unknown]
            if inputs is not None and not isinstance(inputs, dict):
                problems.append({"key": "inputs", "label": "inputs", "reason": "must be a JSON object"})
            if state is not None and not isinstance(state, dict):
                problems.append({"key": "state", "label": "state", "reason": "must be a JSON object or null"})
            if problems:
                raise InputError(problems)
        else:
            inputs = {k: v for k, v in request.query_params.items() if k != "state"}
            state = _decode_state(request.query_params.get("state"))
        self._refuse_local(item, inputs or {})
        conn = self.connection(request.headers)
        out = await self._thread(self.runtime.poll, key, conn, inputs or None, state)
        headers = self._extra_headers(conn)
        if request.method == "POST":
            return _response(out, 200, headers)
        # Power Automate's polling trigger: the next poll's URL carries the new state.
        query = {**{k: v for k, v in request.query_params.items() if k != "state"}, "state": _encode_state(out.get("state"))}
        headers["Location"] = f"{self.base_url(request)}/triggers/{key}/poll?{urlencode(query)}"
        headers["Retry-After"] = str(_retry_after(item.get("poll_interval_seconds") or 60))
        events = out.get("events") or []
        if not events:
            return _response(None, 202, headers)
        return _response(events, 200, headers)

    async def test_connection(self, request):
        self.authorize(request.headers)
        await self.body(request)
        conn = self.connection(request.headers)
        from ..connections import connection_type

        kind = connection_type(conn)
        test = self.surface.connection_test(kind)
        out = await self._thread(self.runtime.run, test, conn, {}, None)
        shared = self.connector.session(conn)
        body = {"ok": True, "host": shared.host, "connection_type": kind, "test": test}
        if isinstance(out, dict):
            body.update(user=out.get("userName"), display_name=out.get("displayName"))
        return _response(body, 200, self._extra_headers(conn))

    async def page(self, request):
        from starlette.responses import Response

        name = request.path_params.get("name", "playground.html")
        kinds = {"playground.html": "text/html; charset=utf-8", "playground.js": "text/javascript; charset=utf-8",
                 "playground.css": "text/css; charset=utf-8"}
        if name == "icon.png":
            from .. import __file__ as package_init

            icon = self.surface.connector.get("icon") or "assets/databricks.png"
            path = Path(package_init).parent / icon
            if not path.is_file():
                raise ConnectorError("not_found", "No icon")
            return Response(path.read_bytes(), media_type="image/png")
        if name not in kinds:
            raise ConnectorError("not_found", f"No page {name!r}")
        return Response((STATIC / name).read_bytes(), media_type=kinds[name], headers={
            "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})

    def _refuse_local(self, item: dict, inputs: dict) -> None:
        sent = self.surface.local_inputs_sent(item, inputs)
        if sent:
            raise InputError([{"key": k, "label": k, "reason": "names a file on the server and is not available over HTTP"}
                              for k in sent])


class _HttpError(Exception):
    def __init__(self, status: int, err: ConnectorError):
        self.status, self.err = status, err


def _encode_state(state) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_state(text):
    if not text:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        raise InputError([{"key": "state", "label": "state", "reason": "is not a state this server issued"}]) from None
    if value is not None and not isinstance(value, dict):
        raise InputError([{"key": "state", "label": "state", "reason": "is not a state this server issued"}])
    return value


# ----------------------------------------------------------------------------- ASGI assembly

def _endpoint(fn):
    """A route that answers every failure with the error document and its status."""
    @functools.wraps(fn)
    async def wrapper(request):
        try:
            return await fn(request)
        except _HttpError as exc:
            return _response({"error": exc.err.to_dict()}, exc.status)
        except ConnectorError as err:
            return error_response(err)
        except Exception as exc:  # noqa: BLE001 - a bug: never a traceback (it may hold secrets) to the caller
            log.error("internal error in %s %s: %s", request.method, _short_path(request.url.path), type(exc).__name__)
            return error_response(ConnectorError("internal", f"Unexpected {type(exc).__name__} in the server",
                                                 hint="This is a bug in the connector; please report it."))
    return wrapper


class Guard:
    """Outermost ASGI layer: one log line per request (no header, no query, tokens shortened),
    and the browser checks - a cross-origin request is refused (there is no CORS), and on a
    loopback address the Host must be a loopback name (no DNS rebinding into a local server)."""

    def __init__(self, app, config: ServerConfig):
        self.app = app
        loopback = config.host in LOOPBACK_NAMES or config.host.startswith("127.")
        self.hosts = None
        if loopback:
            self.hosts = {"127.0.0.1", "localhost", "::1", "[::1]"}
            if config.public_url:
                self.hosts.add(urlsplit(config.public_url).hostname or "")
        self.public_origin = config.public_url.rstrip("/") if config.public_url else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        hostname = urlsplit(f"//{host}").hostname or ""
        started = time.perf_counter()
        status = {"code": 0}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        refusal = None
        if self.hosts is not None and hostname not in self.hosts and f"[{hostname}]" not in self.hosts:
            refusal = "the Host header is not this server's (a loopback server answers loopback names only)"
        origin = headers.get("origin")
        if refusal is None and origin and origin != "null":
            own = f"{scope.get('scheme', 'http')}://{host}"
            if origin.rstrip("/") not in (own, self.public_origin):
                refusal = "cross-origin requests are not accepted (call the server from a backend, or open its own page)"
        elif refusal is None and origin == "null":
            refusal = "requests from an opaque origin are not accepted"
        try:
            if refusal:
                await error_response(ConnectorError("permission_denied", f"Refused: {refusal}"))(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            log.info("%s %s %s %.1fms", scope.get("method"), _short_path(scope.get("path", "")), status["code"] or "-",
                     (time.perf_counter() - started) * 1000)


def create_app(config: ServerConfig | None = None, connector=None):
    """The ASGI application (Starlette), with MCP's session manager in its lifespan."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.routing import Route

    from .mcp_tools import McpEndpoint

    config = config or ServerConfig(no_auth=True)
    app = App(config, connector)
    mcp = McpEndpoint(app)

    @contextlib.asynccontextmanager
    async def lifespan(_starlette):
        async with mcp.run():
            yield

    routes = [
        Route("/", _endpoint(app.page), methods=["GET"]),
        Route("/static/{name}", _endpoint(app.page), methods=["GET"]),
        Route("/healthz", _endpoint(app.healthz), methods=["GET"]),
        Route("/spec", _endpoint(app.spec), methods=["GET"]),
        Route("/openapi.json", _endpoint(app.openapi), methods=["GET"]),
        Route("/swagger.json", _endpoint(app.swagger), methods=["GET"]),
        Route("/connections", _endpoint(app.list_connections), methods=["GET"]),
        Route("/connections/test", _endpoint(app.test_connection), methods=["POST"]),
        Route("/actions/{key}", _endpoint(app.action), methods=["POST"]),
        Route("/pickers/{key}", _endpoint(app.picker), methods=["GET", "POST"]),
        Route("/triggers/{key}/poll", _endpoint(app.trigger), methods=["GET", "POST"]),
        Route("/operations/{token}", _endpoint(app.operation), methods=["GET"]),
        Route("/mcp", mcp),
    ]

    async def http_error(request, exc):
        kind = "not_found" if exc.status_code == 404 else "invalid_input"
        message = {404: f"No route {request.url.path[:100]}", 405: f"Method {request.method} is not allowed here"}.get(
            exc.status_code, str(exc.detail))
        return _response({"error": ConnectorError(kind, message, hint="GET /openapi.json describes every route.").to_dict()},
                         exc.status_code, {"Allow": exc.headers.get("Allow")} if exc.headers and exc.headers.get("Allow") else None)

    star = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    star.state.connector_app = app
    return Guard(star, config)


def app_from_env():
    """uvicorn factory for ``--workers``: the configuration travels in the environment."""
    _setup_logging()
    return create_app(ServerConfig.from_json(os.environ[CONFIG_ENV]))


def _setup_logging() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def serve(config: ServerConfig) -> int:
    """Run the server until interrupted (``databricks-connector serve``)."""
    import uvicorn

    config.check()
    _setup_logging()
    config.token_secret()      # one secret for every worker of this server
    if not config.token_secret_env and config.workers == 1:
        log.info("operation tokens are signed with a per-process secret; pass --token-secret-env to share one "
                 "between servers behind a load balancer")
    common = dict(host=config.host, port=config.port, access_log=False, log_level="warning", server_header=False,
                  lifespan="on", timeout_graceful_shutdown=10)
    if config.workers > 1:
        os.environ[CONFIG_ENV] = config.to_json()
        uv = uvicorn.Config(f"{__name__}:app_from_env", factory=True, workers=config.workers, **common)
    else:
        uv = uvicorn.Config(create_app(config), **common)
    sock = uv.bind_socket()
    # Small answers go out at once: without TCP_NODELAY, a response's headers and body (two writes)
    # wait on the client's delayed ACK, about 40 ms per call. Accepted sockets inherit it on Linux.
    import socket

    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = sock.getsockname()[1]
    host = config.host if ":" not in config.host else f"[{config.host}]"
    url = f"http://{host}:{port}"

    def announce():
        sys.stderr.write(f"databricks-connector serve: listening on {url} (MCP at {url}/mcp, playground at {url}/)\n")
        sys.stderr.flush()

    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        announce()
        Multiprocess(uv, sockets=[sock]).run()
        return 0

    class _Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if self.started:
                announce()

    _Server(uv).run(sockets=[sock])
    return 0
