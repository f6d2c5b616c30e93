"""HTTP server of the emulator: routing, auth, fault injection, request log, control
interface (/__emulator/...), and the in-process :class:`Emulator` API."""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
import pkgutil
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

from . import api, tls
from .api import ApiError, HttpError, Request, find_route
from .state import Config, ConfigError, WorkspaceState

FAULT_KINDS = ("429", "503", "500", "502_html", "drop_before", "drop_after", "delay",
               "malformed_json", "invalid_token")

_CORE = {"api", "server", "state"}


def load_area_modules() -> None:
    """Import every module of this package (not starting with "_") so their @route
    decorators register. Idempotent."""
    pkg = __name__.rsplit(".", 1)[0]
    path = importlib.import_module(pkg).__path__
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in _CORE:
            continue
        importlib.import_module(f"{pkg}.{info.name}")


# --------------------------------------------------------------------------- faults

@dataclasses.dataclass
class Fault:
    path: str
    kind: str
    times: Optional[int] = 1          # None = unlimited
    method: Optional[str] = None
    retry_after: Optional[float] = None
    delay: Optional[float] = None
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        if self.path == path:
            return True
        try:
            return re.fullmatch(self.path, path) is not None
        except re.error:
            return False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: List[Fault] = []

    def add(self, path: str, kind: str, times: Optional[int] = 1, method: Optional[str] = None,
            retry_after: Optional[float] = None, delay: Optional[float] = None) -> Fault:
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if kind == "delay" and delay is None:
            raise ValueError("fault kind 'delay' needs delay=<seconds>")
        f = Fault(path, kind, times, method.upper() if method else None, retry_after, delay)
        with self._lock:
            self._faults.append(f)
        return f

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Optional[Fault]:
        """The first live fault matching the request, consuming one firing."""
        with self._lock:
            for f in self._faults:
                if f.matches(method, path) and (f.times is None or f.fired < f.times):
                    f.fired += 1
                    return f
        return None

    def list(self) -> List[dict]:
        with self._lock:
            return [f.as_dict() for f in self._faults]


# --------------------------------------------------------------------------- HTTP handler

def _unauthenticated() -> ApiError:
    return ApiError(401, 401, "Credential was not sent or was of an unsupported type for this API.")


def _invalid_token() -> ApiError:
    return ApiError(403, 403, "Invalid access token.",
                    headers={"X-Databricks-Reason-Phrase": "Invalid access token."})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server_version = "DatabricksEmulator/0.1"
    timeout = 60  # idle keep-alive connections give up after this

    def log_message(self, format, *args):  # silence stderr logging
        pass

    # every method goes through one dispatcher
    def do_GET(self): self._dispatch()
    def do_POST(self): self._dispatch()
    def do_PUT(self): self._dispatch()
    def do_PATCH(self): self._dispatch()
    def do_DELETE(self): self._dispatch()
    def do_HEAD(self): self._dispatch()

    @property
    def emu(self) -> "Emulator":
        return self.server.emulator  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ plumbing
    def _send(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
        headers = dict(headers or {})
        stream = getattr(self, "_body_stream", None)
        if stream is not None and not stream.done:      # an upload left unread: the connection cannot be reused
            self.close_connection = True
            headers["Connection"] = "close"
        if hasattr(body, "read"):                       # a file (downloads): sent in pieces, never whole
            return self._send_file(status, body, headers)
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps({} if body is None else body).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Content-Type", "application/json")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(data)))
        # headers and body in one write (one segment, no wait on the peer's delayed ACK)
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(data)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []
        self.wfile.flush()

    def _send_file(self, status: int, fh, headers: Dict[str, str]) -> None:
        """Send ``fh`` (an open binary file positioned at the start of what is sent; the handler sets
        Content-Length) in 1 MiB pieces, and close it."""
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, str(v))
            self.end_headers()
            left = int(headers.get("Content-Length", 0))
            while left > 0 and self.command != "HEAD":
                data = fh.read(min(left, 1 << 20))
                if not data:
                    break
                self.wfile.write(data)
                left -= len(data)
            self.wfile.flush()
        finally:
            fh.close()

    def _drop(self) -> None:
        """Close the socket without a response."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except Exception:
            pass

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        emu = self.emu
        split = urllib.parse.urlsplit(self.path)
        path = split.path or "/"
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        headers = {k: v for k, v in self.headers.items()}
        method = self.command.upper()
        self._body_stream = None
        streamed, _ = find_route(method, path)
        if streamed is not None and streamed.stream_body:     # an upload: its handler reads the body
            from .api import BodyStream
            length = self.headers.get("Content-Length")
            chunked = (self.headers.get("Transfer-Encoding") or "").lower() == "chunked"
            self._body_stream = BodyStream(self.rfile, int(length) if length else None, chunked)
            raw = b""
        else:
            raw = self._read_body()
        base_url = f"{emu.scheme}://{self.headers.get('Host')}" if self.headers.get("Host") else emu.url

        if path.startswith("/__emulator/"):
            try:
                status, body = emu._control(method, path, query, raw)
            except HttpError as e:
                status, body = e.status, e.body
            except Exception as e:  # noqa: BLE001
                status, body = 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": str(e)}
            self._send(status, body)
            return

        parsed = None
        ctype = (self.headers.get("Content-Type") or "").lower()
        json_error = False
        if raw and "x-www-form-urlencoded" not in ctype and "multipart/" not in ctype:
            try:
                parsed = json.loads(raw)
            except ValueError:
                json_error = True
        emu._record({"method": method, "path": path, "query": query, "headers": headers,
                     "json": parsed, "raw": raw, "time": time.time()})

        fault = emu.faults.take(method, path)
        if fault is not None:
            k = fault.kind
            if k == "drop_before":
                return self._drop()
            if k == "delay":
                time.sleep(float(fault.delay or 0))
            elif k in ("429", "503", "500", "502_html", "invalid_token"):
                return self._send(*self._fault_response(fault))

        status, body, extra = self._handle(method, path, query, headers, raw, parsed, json_error,
                                           base_url)
        if fault is not None and fault.kind == "drop_after":
            if hasattr(body, "read"):
                body.close()
            return self._drop()
        if hasattr(body, "read"):                     # a file answer (downloads): malformed_json cuts JSON only
            return self._send(status, body, extra)
        if fault is not None and fault.kind == "malformed_json" and 200 <= status < 300:
            text = (body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray))
                    else body if isinstance(body, str) else json.dumps(body if body is not None else {}))
            cut = text[: max(1, len(text) // 2)] if len(text) > 2 else '{"'
            extra = {k: v for k, v in (extra or {}).items() if k.lower() != "content-type"}
            extra["Content-Type"] = "application/json"
            return self._send(200, cut.encode(), extra)
        self._send(status, body, extra)

    def _fault_response(self, fault: Fault):
        k = fault.kind
        headers: Dict[str, str] = {}
        if fault.retry_after is not None:
            ra = fault.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        if k == "429":
            return 429, {"error_code": "REQUEST_LIMIT_EXCEEDED",
                         "message": "Workspace request rate limit exceeded: RPC token bucket limit has "
                                    "been exceeded."}, headers
        if k == "503":
            return 503, {"error_code": "TEMPORARILY_UNAVAILABLE",
                         "message": "The service is temporarily unavailable. Please try again later."}, headers
        if k == "500":
            return 500, {"error_code": "INTERNAL_ERROR",
                         "message": "Internal error (injected by the emulator)."}, headers
        if k == "502_html":
            html = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n")
            return 502, html.encode(), {"Content-Type": "text/html"}
        e = _invalid_token()
        return e.status, e.body, e.headers

    def _handle(self, method, path, query, headers, raw, parsed, json_error, base_url):
        emu = self.emu
        try:
            r, match = find_route(method, path)
            needs_auth = r.auth if r is not None else path.startswith("/api/")
            principal = None
            if needs_auth:
                principal = self._authenticate()
            if r is None:
                if match:
                    raise ApiError(405, "METHOD_NOT_ALLOWED",
                                   f"Method {method} is not allowed for {path}")
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
            if json_error and r.parse_json:
                raise ApiError(400, "MALFORMED_REQUEST",
                               "Invalid JSON given in the body of the request - failed to parse the body")
            req = Request(method=method, path=path, query=query, headers=headers, raw=raw,
                          json=parsed if r.parse_json else None, params=match.groupdict(),
                          groups=match.groups(), principal=principal, state=emu.state,
                          base_url=base_url, body_stream=getattr(self, "_body_stream", None))
            result = r.handler(req)
            if isinstance(result, tuple):
                if len(result) == 2:
                    return result[0], result[1], {}
                return result[0], result[1], dict(result[2] or {})
            return 200, result, {}
        except HttpError as e:
            return e.status, e.body, e.headers
        except Exception as e:  # noqa: BLE001 - a handler bug must not kill the connection
            import traceback
            traceback.print_exc()
            return 500, {"error_code": "INTERNAL_ERROR", "message": f"Emulator error: {e!r}"}, {}

    def _authenticate(self):
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthenticated()
        principal = self.emu.state.principal_for_token(token.strip())
        if principal is None:                     # a Microsoft Entra ID token (entra.py), or none at all
            from .entra import principal_for_token as entra_principal

            principal = entra_principal(self.emu.state, token.strip(), self.headers)
        if principal is None:
            raise _invalid_token()
        return principal


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        import sys
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # the client went away (e.g. its read timeout during a "delay" fault)
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------- Emulator

class Emulator:
    """A local Databricks workspace on loopback.

    >>> with Emulator(cluster_start_seconds=0.2) as emu:
    ...     requests.get(emu.url + "/api/2.0/preview/scim/v2/Me",
    ...                  headers={"Authorization": f"Bearer {emu.pat}"})
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", *, token: Optional[str] = None,
                 client_id: Optional[str] = None, client_secret: Optional[str] = None, **config: Any) -> None:
        """``config``: any field of :class:`Config` (a bad name or value raises ConfigError naming
        them all). ``token``, ``client_id``, ``client_secret``: fixed credentials for the personal
        access token and the service principal (random ones otherwise)."""
        load_area_modules()
        cfg = Config()
        cfg.update(config)
        self.host = host
        self.port = port
        self.state = WorkspaceState(cfg)
        self.faults = Faults()
        self._log_lock = threading.Lock()
        self._requests: List[dict] = []
        self.pat = self.state.add_pat("emulator-user@example.com", token=token)
        self.client_id, self.client_secret = self.state.add_service_principal(client_id=client_id,
                                                                              client_secret=client_secret)
        self._seed_sign_ins()
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self.scheme = "https" if cfg.tls else "http"   # read once, at start-up

    # -- lifecycle
    def start(self) -> "Emulator":
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.emulator = self  # type: ignore[attr-defined]
        self.scheme = tls.serve(self._httpd, self.tls_context())
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"databricks-emulator-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None
        self.state.close()

    def serve_forever(self) -> None:
        """Start and block (used by ``python -m ...emulator``)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses and credentials
    @property
    def config(self) -> Config:
        return self.state.config

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    # -- TLS (emulator/tls.py): one certificate authority per process
    @property
    def ca_bundle(self) -> Optional[str]:
        """Path of the PEM certificate of the authority that signed this emulator's certificate
        (None over plain http). Connection documents carry it as ``ca_bundle``."""
        return tls.authority().path if self.scheme == "https" else None

    def tls_context(self):
        """The server-side SSLContext of this emulator's servers (None over plain http)."""
        if not self.config.tls:
            return None
        return tls.authority().server_context(tls.names_for(self.host))

    @property
    def token_url(self) -> str:
        return self.url + "/oidc/v1/token"

    @property
    def account_id(self) -> str:
        return self.state.account_id

    @property
    def workspace_id(self) -> str:
        return self.state.workspace_id

    @property
    def account_token_url(self) -> str:
        return f"{self.url}/oidc/accounts/{self.account_id}/v1/token"

    def add_pat(self, user: str = "emulator-user@example.com") -> str:
        return self.state.add_pat(user)

    def revoke_pat(self, token: str) -> None:
        self.state.revoke_pat(token)

    def add_service_principal(self, display_name: str = "emulator-service-principal"):
        """Returns (client_id, client_secret) of a new service principal."""
        return self.state.add_service_principal(display_name)

    def expire_tokens(self) -> None:
        """Every OAuth access token issued so far becomes invalid."""
        self.state.expire_oauth_tokens()

    def connections(self) -> Dict[str, dict]:
        docs = {
            "personal_access_token": {"type": "personal_access_token", "host": self.url, "token": self.pat},
            "service_principal": {"type": "service_principal", "token_url": self.token_url,
                                  "scopes": "all-apis", "client_id": self.client_id,
                                  "client_secret": self.client_secret},
        }
        docs.update(self._sign_in_connections())
        if self.ca_bundle:
            for doc in docs.values():
                doc["ca_bundle"] = self.ca_bundle
        return docs

    def info(self) -> dict:
        return {"url": self.url, "pat": self.pat, "client_id": self.client_id,
                "client_secret": self.client_secret, "token_url": self.token_url,
                "account_id": self.account_id, "account_token_url": self.account_token_url,
                "workspace_id": self.workspace_id, "ca_bundle": self.ca_bundle, "connections": self.connections(),
                "config": self.config.as_dict()}

    # -- request log
    def _record(self, entry: dict) -> None:
        with self._log_lock:
            self._requests.append(entry)

    @property
    def requests(self) -> List[dict]:
        with self._log_lock:
            return list(self._requests)

    def count(self, method: Optional[str] = None, path: Optional[str] = None) -> int:
        n = 0
        for r in self.requests:
            if method and r["method"] != method.upper():
                continue
            if path and r["path"] != path:
                try:
                    if re.fullmatch(path, r["path"]) is None:
                        continue
                except re.error:
                    continue
            n += 1
        return n

    @property
    def token_fetches(self) -> int:
        return self.state.token_fetches

    def reset(self) -> None:
        """Clear requests, faults and counters (credentials and workspace objects stay)."""
        with self._log_lock:
            self._requests.clear()
        self.faults.clear()
        self.state.reset_counters()

    # -- HTTP control interface
    def _control(self, method: str, path: str, query: Dict[str, List[str]], raw: bytes):
        def body() -> dict:
            if not raw:
                return {}
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            return data

        if path == "/__emulator/info" and method == "GET":
            return 200, self.info()
        if path == "/__emulator/faults":
            if method == "POST":
                f = self.faults.add(**body())
                return 200, {"fault": f.as_dict()}
            if method == "DELETE":
                self.faults.clear()
                return 200, {}
            if method == "GET":
                return 200, {"faults": self.faults.list()}
        if path == "/__emulator/requests" and method == "GET":
            since = int((query.get("since") or ["0"])[0])
            out = []
            for r in self.requests[since:]:
                e = dict(r)
                raw_b = e.pop("raw")
                e["body"] = raw_b.decode("utf-8", "replace")
                e["raw_base64"] = base64.b64encode(raw_b).decode()
                out.append(e)
            return 200, {"requests": out, "count": len(out), "token_fetches": self.token_fetches,
                         "applied": dict(self.state.applied)}
        if path == "/__emulator/config":
            if method == "POST":
                try:
                    self.config.update(body())
                except ConfigError as e:
                    raise ApiError(400, "INVALID_PARAMETER_VALUE", str(e),
                                   details=[{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                             "field_violations": [{"description": p} for p in e.problems]}]) from None
                return 200, self.config.as_dict()
            if method == "GET":
                if (query.get("describe") or [""])[0].lower() in ("1", "true", "yes"):
                    return 200, {"knobs": Config.describe()}
                return 200, self.config.as_dict()
        if path == "/__emulator/reset" and method == "POST":
            self.reset()
            return 200, {}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No control endpoint '{method} {path}'")

    # -- sign-in: user login, Microsoft Entra ID, workload identity federation (oauth.py, entra.py,
    #    federation.py). The connection documents of connections() use these.
    def _seed_sign_ins(self) -> None:
        from . import oauth

        oauth.seed_sign_ins(self)

    def _sign_in_connections(self) -> Dict[str, dict]:
        from . import oauth

        return oauth.sign_in_connections(self)

    def user_login(self, user: str = "emulator-user@example.com", client_id: Optional[str] = None,
                   scopes: str = "all-apis offline_access") -> dict:
        """A connection document of a new, independent sign-in of ``user`` (as if they had gone
        through the browser step)."""
        from . import oauth

        return oauth.user_login_document(self, user, client_id, scopes)

    def add_oauth_app(self, redirect_uris=(), confidential: bool = False, loopback: bool = False):
        """Register an app connection; returns (client_id, client_secret or None)."""
        from . import oauth

        return oauth.add_app(self.state, redirect_uris, confidential, loopback)

    def revoke_user_tokens(self, user_name: Optional[str] = None) -> int:
        """Revoke every user sign-in (of one user): refresh and access tokens stop working."""
        from . import oauth

        return oauth.revoke(self.state, user_name)

    @property
    def token_grants(self) -> Dict[str, int]:
        """Tokens issued so far per grant: client_credentials, authorization_code, refresh_token,
        token_exchange, entra."""
        from . import oauth

        with self.state.lock:
            return dict(oauth.store(self.state).issued)

    def add_entra_service_principal(self, workspace_user: bool = True) -> dict:
        """A Microsoft Entra ID application in the default tenant: tenant_id, client_id, client_secret."""
        from . import entra

        return entra.add_service_principal(self.state, self.entra["tenant_id"], workspace_user)

    @property
    def azure_workspace_resource_id(self) -> str:
        from . import entra

        return entra.store(self.state).resource_id

    def mint_oidc_token(self, subject: Optional[str] = None, **kw) -> str:
        """An OIDC token signed as the emulator's issuer (see federation.mint)."""
        from . import federation

        return federation.mint(self.state, subject or federation.DEFAULT_SUBJECT, **kw)

    def add_federation_policy(self, client_id: Optional[str], subject: Optional[str] = None, audiences=None,
                              issuer: Optional[str] = None) -> dict:
        from . import federation

        return federation.add_policy(self.state, client_id, subject or federation.DEFAULT_SUBJECT, audiences, issuer)
