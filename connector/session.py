"""The shared session: the only way out to the network.

``SharedSession`` is one per connection: a pooled ``requests.Session``, the connection's auth,
timeouts on every request, the User-Agent, retries bounded by a deadline and a number of
attempts, error classification and the redacted debug log. It is thread-safe and reused across
actions.

``ActionSession`` is what a handler receives: a light per-call view of the shared session that
carries the call's options (Debug Request, the call's deadline) and offers the runtime's
mechanisms for pagination and waiting.

Retry rules (every request makes at most ``RetryPolicy.max_attempts`` attempts, 10 by default,
and never passes its deadline):

* 429 and 503 are re-sent for a request that is safe to repeat (GET/HEAD, or a POST the caller
  marks idempotent: an idempotency token or a naturally idempotent call). A request that is not
  safe to repeat is re-sent only when the answer is Databricks' own JSON error proving it was
  refused (``REQUEST_LIMIT_EXCEEDED``, ``TEMPORARILY_UNAVAILABLE``, ...): a proxy or load
  balancer answers 503 after the upstream already applied the request (Envoy's text/plain
  ``upstream connect error or disconnect/reset before headers``), so any other 429/503/5xx is a
  classified error saying the request may have been applied (``details.may_have_been_applied``).
* ``Retry-After`` is honoured as seconds (a positive finite number) or an HTTP-date; 0, a
  negative, NaN or garbage gets the policy's normal backoff, never a burst. A wait that would pass
  the deadline is not slept: the request fails at once and says so.
* A connection that could not be opened (refused, DNS failure, connect timeout) sent nothing: it
  is retried at most twice, quickly, so an unreachable host fails in seconds.
* Other 5xx, a dropped connection and a read timeout may follow a request that was applied:
  retried only when the request is safe to repeat.
* A request that can never be sent (a line break or control character in a header value, NaN in a
  JSON body, a URL that is not http(s)) and a process out of file descriptors (EMFILE) fail at
  once with a clear error; nothing is retried.
* 401/403 for a rejected OAuth token: the token is dropped and the request re-sent once.

Deadlines are wall-clock and bound the whole exchange. requests' read timeout bounds one
``recv``; a server that trickles a byte a second never trips it. So each attempt is also armed on
a watchdog (one daemon thread for the process) that shuts the socket down when the attempt's
whole-response limit passes: ``min(deadline, connected + read timeout)`` (a streamed response:
the deadline), headers and body alike. Streaming with deadline checks could not bound the status
line and headers, which http.client reads inside ``requests``, and a per-thread alarm does not
exist outside the main thread; a socket shutdown wakes the blocked ``recv`` at once.
"""
from __future__ import annotations

import errno as _errno
import json as _json
import logging
import math
import platform
import random
import re
import socket
import threading
import time
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import __version__
from .debuglog import Redactor, emit
from .errors import ConnectorError, from_response
from .pagination import paginate as _paginate

log = logging.getLogger("databricks_connector.http")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USER_AGENT = f"databricks-connector/{__version__} python/{platform.python_version()} os/{platform.system().lower()}"

# Databricks' own error codes that say a request was refused, not processed: re-sending is safe.
REFUSED_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "TOO_MANY_REQUESTS", "RESOURCE_EXHAUSTED",
                           "TEMPORARILY_UNAVAILABLE", "WORKSPACE_TEMPORARILY_UNAVAILABLE",
                           "SERVICE_UNDER_MAINTENANCE"})
DEFAULT_MAX_ATTEMPTS = 10
CONNECT_ATTEMPTS = 3          # an unreachable host: the first try and two quick retries
CONNECT_BACKOFF_CAP = 1.0
DEFAULT_POOL_SIZE = 256       # idle connections kept per host; sockets follow the peak number of threads
# Plain http is allowed for loopback only (connections/hosts.py): never through a proxy, where a
# credential would travel in cleartext.
_NO_PROXY = {"http": None, "https": None, "all": None}
_RESOURCE_ERRNOS = frozenset({_errno.EMFILE, _errno.ENFILE})

_LOCAL = threading.local()    # per thread: the current exchange's deadline, debug flag and attempt


class RetryPolicy:
    """How one request is retried. The default follows the rules in the module doc; Raw Request
    builds its own from the user's inputs."""

    def __init__(self, *, max_attempts: int | None = DEFAULT_MAX_ATTEMPTS, delay: float | None = None,
                 exponential: bool = True, retry_all_errors: bool = False, base: float = 0.5, cap: float = 10.0):
        self.max_attempts = DEFAULT_MAX_ATTEMPTS if max_attempts is None else max(1, int(max_attempts))
        self.delay = delay
        self.exponential = exponential
        self.retry_all_errors = retry_all_errors
        self.base = base
        self.cap = cap

    def backoff(self, attempt: int) -> float:
        if not self.exponential and self.delay is not None:
            return self.delay
        return min(self.cap, self.base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


DEFAULT_POLICY = RetryPolicy()


def parse_retry_after(value, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: a positive finite number of seconds, or an
    HTTP-date in the future. Anything else (0, negative, NaN, infinity, garbage, a past date) is
    None: the policy's own backoff applies."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            import datetime as _dt

            when = when.replace(tzinfo=_dt.timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


def _retry_after(response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def _refused(response) -> bool:
    """The answer is Databricks' own JSON error saying the request was refused (not processed)."""
    if "json" not in (response.headers.get("Content-Type") or "").lower():
        return False
    try:
        doc = _json.loads(response.content[:65536])
    except (ValueError, RecursionError):
        return False
    if not isinstance(doc, dict):
        return False
    code = doc.get("error_code")
    return (isinstance(code, str) and code in REFUSED_CODES) or \
        (isinstance(code, str) and "RPC token bucket limit has been exceeded" in str(doc.get("message", "")))


def _chain(exc):
    seen, todo = set(), [exc]
    while todo:
        cur = todo.pop()
        if not isinstance(cur, BaseException) or id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        todo += [getattr(cur, "reason", None), cur.__cause__, cur.__context__, *getattr(cur, "args", ())]


def _not_sent(exc: Exception) -> bool:
    """True when the connection could not be opened, so the server saw nothing."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    from urllib3.exceptions import NewConnectionError

    return any(isinstance(cur, NewConnectionError) for cur in _chain(exc))


def _out_of_resources(exc) -> bool:
    for cur in _chain(exc):
        if isinstance(cur, OSError) and cur.errno in _RESOURCE_ERRNOS:
            return True
        if "Too many open files" in str(cur) and isinstance(cur, (OSError, requests.exceptions.RequestException)):
            return True
    return False


def _resource_error(where: str) -> ConnectorError:
    # os.sysconf needs no descriptor (importing ``resource`` now might fail for want of one)
    limit = ""
    try:
        import os

        soft = os.sysconf("SC_OPEN_MAX")
        limit = f" (the open-file limit is {soft})" if soft and soft > 0 else ""
    except (ValueError, OSError, AttributeError):
        pass
    return ConnectorError("configuration", f"{where}: the process has too many open files{limit}; no connection "
                          "could be opened, so nothing was sent and nothing is retried",
                          hint="Raise the open-file limit (ulimit -n, or LimitNOFILE for a service), close what holds "
                               "descriptors, or lower the number of connections kept open (Connector(max_sessions=...)).")


def _certificate_refused(exc: Exception):
    """The ssl.SSLCertVerificationError behind ``exc`` (the server's certificate was refused), or None."""
    import ssl

    seen, todo = set(), [exc]
    while todo:
        cur = todo.pop()
        if not isinstance(cur, BaseException) or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            return cur
        todo += [getattr(cur, "reason", None), cur.__cause__, cur.__context__, *getattr(cur, "args", ())]
    return None


def _no_auth(request):
    """Explicitly no credentials: stops requests from filling in ~/.netrc ones."""
    return request


# --------------------------------------------------------------------------- the whole-response watchdog

class _Attempt:
    """One attempt's whole-response limit. Armed on the connection it is sent on; the watchdog
    shuts that socket down when the limit passes, unless the connection went back to its pool."""

    __slots__ = ("deadline", "total", "conn", "cut", "limit", "armed")

    def __init__(self, deadline: float, total: float | None):
        self.deadline = deadline
        self.total = total          # seconds from the moment the request is sent; None: the deadline only
        self.conn = None
        self.cut = False
        self.limit = deadline
        self.armed = False

    def arm(self, conn) -> None:
        limit = self.deadline
        if self.total is not None:
            limit = min(limit, time.monotonic() + self.total)
        self.limit = limit
        self.conn = conn
        conn._dc_attempt = self
        self.armed = True
        _WATCHDOG.arm(self, limit)

    def disarm(self) -> None:
        if self.armed:
            self.armed = False
            _WATCHDOG.disarm(self)


class _Watchdog:
    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._armed: dict = {}
        self._wake_at = math.inf
        self._thread = None

    def arm(self, attempt: _Attempt, limit: float) -> None:
        with self._cond:
            self._armed[attempt] = limit
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="databricks-connector-deadlines", daemon=True)
                self._thread.start()
            elif limit < self._wake_at:
                self._cond.notify()

    def disarm(self, attempt: _Attempt) -> None:
        with self._cond:
            self._armed.pop(attempt, None)

    def _run(self) -> None:
        idle = 0
        with self._cond:
            while True:
                now = time.monotonic()
                nxt = math.inf
                for attempt, limit in list(self._armed.items()):
                    if limit <= now:
                        del self._armed[attempt]
                        _cut(attempt)
                    elif limit < nxt:
                        nxt = limit
                idle = 0 if self._armed else idle + 1
                # Poll once a second while requests are in flight (so a new, later limit never needs a
                # wake-up); sleep until notified after a quiet half minute.
                self._wake_at = min(nxt, now + 1.0) if idle < 30 else math.inf
                self._cond.wait(None if self._wake_at == math.inf else max(0.0, self._wake_at - now))


def _cut(attempt: _Attempt) -> None:
    conn = attempt.conn
    sock = getattr(conn, "sock", None) if conn is not None else None
    if sock is None:
        return
    attempt.cut = True
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)   # wakes the thread blocked in recv/send
    except (OSError, ValueError, TypeError):
        pass


_WATCHDOG = _Watchdog()


class _ArmedConnection:
    """Mixed into urllib3's connections: arm the calling thread's attempt once connected."""

    def request(self, *args, **kwargs):
        attempt = getattr(_LOCAL, "attempt", None)
        if attempt is not None:
            if self.sock is None:
                self.connect()           # bounded by the connect timeout; the limit starts once connected
            attempt.arm(self)
        return super().request(*args, **kwargs)


class _Conn(_ArmedConnection, HTTPConnection):
    pass


class _SConn(_ArmedConnection, HTTPSConnection):
    pass


class _DisarmOnReturn:
    def _put_conn(self, conn):
        attempt = getattr(conn, "_dc_attempt", None)
        if attempt is not None:
            conn._dc_attempt = None
            attempt.disarm()
        return super()._put_conn(conn)


class _Pool(_DisarmOnReturn, HTTPConnectionPool):
    ConnectionCls = _Conn


class _SPool(_DisarmOnReturn, HTTPSConnectionPool):
    ConnectionCls = _SConn


class _Adapter(HTTPAdapter):
    """requests' adapter with the watchdog's connection classes (direct and through a proxy)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _SPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = {"http": _Pool, "https": _SPool}
        return manager


def _adapter(pool_size: int) -> HTTPAdapter:
    return _Adapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)


# --------------------------------------------------------------------------- the shared session

class SharedSession:
    def __init__(self, connection, *, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 retry_timeout: float = 300.0, policy: RetryPolicy | None = None,
                 pool_size: int = DEFAULT_POOL_SIZE):
        self.connection = connection
        self.host = connection.host
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry_timeout = retry_timeout
        self.policy = policy or DEFAULT_POLICY
        self.pool_size = pool_size
        self.redactor = Redactor(connection.secret_values, basic_user=getattr(connection.auth, "client_id", None))
        http = requests.Session()
        adapter = _adapter(pool_size)
        http.mount("https://", adapter)
        http.mount("http://", adapter)
        http.headers["User-Agent"] = f"{USER_AGENT} auth/{getattr(connection.auth, 'auth_type', 'unknown')}"
        http.headers["Accept"] = "application/json"
        http.verify = connection.ca_bundle or True   # TLS verification is never turned off
        self._http = http
        # Plain http is for loopback only (connections/hosts.py). Its requests go on a session that
        # never reads the environment: no proxy (a credential would travel in cleartext), no netrc,
        # and none of the 0.1-0.4 ms per request requests spends reading proxy variables. Same pool.
        loopback = requests.Session()
        loopback.trust_env = False
        loopback.mount("http://", adapter)
        loopback.headers.update(http.headers)
        self._loopback = loopback
        # Links to cloud storage travel without any workspace credential, on their own pool.
        self._plain = None
        self._plain_lock = threading.Lock()
        self.closed = False
        auth = connection.auth
        if hasattr(auth, "post"):
            auth.post = self._token_post
        if hasattr(auth, "deadline"):
            auth.deadline = current_deadline

    def action(self, *, debug: bool = False, timeout: float | None = None) -> "ActionSession":
        return ActionSession(self, debug=debug, timeout=timeout)

    def close(self) -> None:
        """Close every pooled connection. A request still running on it finishes; its connection
        is then closed instead of pooled."""
        self.closed = True
        self._http.close()
        self._loopback.close()
        with self._plain_lock:
            if self._plain is not None:
                self._plain.close()

    # -- the token request for OAuth connections -------------------------------------------
    def _token_post(self, url, body, headers):
        """The token request, bounded by the deadline of the request that needs the token."""
        deadline = time.monotonic() + min(self.retry_timeout, 120.0)
        outer = getattr(_LOCAL, "deadline", None)
        if outer is not None:
            deadline = min(deadline, outer)
        return self.exchange("POST", url, data=body, headers=headers, auth=False, idempotent=True,
                             deadline=deadline, debug=self._debugging())

    def _debugging(self) -> bool:
        return getattr(_LOCAL, "debug", False)

    # -- one logical request --------------------------------------------------------------
    def exchange(self, method: str, url: str, *, params=None, json=None, data=None, files=None, headers=None,
                 auth: bool = True, idempotent: bool | None = None, deadline: float | None = None,
                 read_timeout: float | None = None, policy: RetryPolicy | None = None, debug: bool = False,
                 allow_redirects: bool = False, stream: bool = False, http=None) -> requests.Response:
        """Send with retries; return the final response (any status). Transport failures that
        cannot be retried raise a classified ConnectorError."""
        method = method.upper()
        policy = policy or self.policy
        safe = method in SAFE_METHODS if idempotent is None else idempotent
        deadline = deadline or (time.monotonic() + self.retry_timeout)
        plain = url[:7].lower() == "http://"
        http = http or (self._loopback if plain else self._http)
        proxies = dict(_NO_PROXY) if plain and http.trust_env else None   # (a copy: requests adds to it)
        read = read_timeout or self.read_timeout
        attempt = connect_failures = 0
        reauthed = False
        saved = (getattr(_LOCAL, "debug", False), getattr(_LOCAL, "deadline", None), getattr(_LOCAL, "attempt", None))
        _LOCAL.debug, _LOCAL.deadline = debug, deadline
        try:
            while True:
                attempt += 1
                started = time.monotonic()
                remaining = deadline - started
                if remaining <= 0:
                    raise ConnectorError("timeout", f"{method} {self._short(url)} did not complete before the deadline",
                                         hint="Raise the step's timeout or try again later.")
                timeout = (min(self.connect_timeout, remaining), min(read, max(remaining, 0.1)))
                guard = _Attempt(deadline, None if stream else read)
                _LOCAL.attempt = guard
                answered = False
                failure = None
                try:
                    response = http.request(method, url, params=params, json=json, data=data, files=files,
                                            headers=headers, timeout=timeout, allow_redirects=allow_redirects,
                                            auth=(self.connection.auth if auth else _no_auth), stream=stream,
                                            proxies=proxies, verify=http.verify)   # a CA bundle wins over REQUESTS_CA_BUNDLE
                    answered = True
                except ConnectorError:
                    raise                                  # e.g. the OAuth token could not be fetched
                except _UNSENDABLE as exc:
                    raise self._unsendable(exc, method, url, auth, headers) from None
                except requests.exceptions.RequestException as exc:
                    failure = exc
                except (ValueError, UnicodeError) as exc:  # http.client refusing a header value, and the like
                    raise self._unsendable(exc, method, url, auth, headers) from None
                except OSError as exc:
                    if _out_of_resources(exc):
                        raise _resource_error(f"{method} {self._short(url)}") from None
                    raise
                finally:
                    _LOCAL.attempt = saved[2]
                    if not (stream and answered):      # a streamed body stays bounded until it is read
                        guard.disarm()
                if failure is not None or guard.cut:
                    # A cut answer is incomplete whatever http.client made of it (an EOF among the
                    # headers reads as their end: a 200 without a body).
                    elapsed = time.monotonic() - started
                    if failure is not None and _out_of_resources(failure):
                        raise _resource_error(f"{method} {self._short(url)}") from None
                    not_sent = not guard.cut and _not_sent(failure)
                    if guard.cut:
                        error = self._cut_error(method, url, guard, started, safe)
                    else:
                        error = self._transport_error(failure, method, url, not_sent, safe)
                    self._log(debug, method, url, None, elapsed, error=error.message)
                    if failure is not None and _certificate_refused(failure) is not None:
                        raise error from None           # the same certificate will be refused again
                    if not_sent:
                        connect_failures += 1
                        if connect_failures < CONNECT_ATTEMPTS and \
                                self._retry(policy, attempt, deadline, None, debug, cap=CONNECT_BACKOFF_CAP):
                            continue
                        raise error from None
                    if (safe or policy.retry_all_errors) and self._retry(policy, attempt, deadline, None, debug):
                        continue
                    raise error from None
                elapsed = time.monotonic() - started
                self._log(debug, method, url, response, elapsed, request_body=json if json is not None else data,
                          streamed=stream)
                status = response.status_code
                if status < 400:
                    return response
                if status in (401, 403) and auth and not reauthed and self._token_rejected(response):
                    reauthed = True
                    response.close()                   # its connection goes back to the pool
                    continue
                wait = _retry_after(response)
                refused = status in (429, 503) and _refused(response)
                retryable = (status in (429, 503) and (safe or refused)) or (status >= 500 and safe) \
                    or policy.retry_all_errors
                if retryable and self._retry(policy, attempt, deadline, wait, debug):
                    response.close()
                    continue
                if retryable and wait is not None and time.monotonic() + wait > deadline:
                    response.retry_after_exceeded = wait
                if not safe and not refused and (status >= 500 or status == 429):
                    response.maybe_applied = True
                return response
        finally:
            _LOCAL.debug, _LOCAL.deadline, _LOCAL.attempt = saved

    def _token_rejected(self, response) -> bool:
        auth = self.connection.auth
        if response.status_code == 403:
            body = response.text[:500]
            if "Invalid access token" not in body and '"error_code": 403' not in body and '"error_code":403' not in body:
                return False
        return auth.rejected(response.request)

    def _retry(self, policy, attempt, deadline, wait, debug, cap: float | None = None) -> bool:
        """Sleep before the next attempt and say True, or say False when the attempts or the time
        are spent. A ``Retry-After`` is a minimum: the policy's backoff still applies on top of a
        shorter one, so a server asking for 0.01 s never gets a burst."""
        if attempt >= policy.max_attempts:
            return False
        delay = policy.backoff(attempt)
        if cap is not None:
            delay = min(delay, cap)
        if wait is not None:
            delay = max(delay, wait + random.random() * 0.1)
        if time.monotonic() + delay >= deadline:
            return False
        if debug:
            emit(f"[databricks] retrying in {delay:.2f}s (attempt {attempt + 1})")
        time.sleep(delay)
        return True

    def _transport_error(self, exc, method, url, not_sent, safe) -> ConnectorError:
        where = f"{method} {self._short(url)}"
        maybe = None if safe else {"may_have_been_applied": True, "request": where}
        if isinstance(exc, requests.exceptions.SSLError):
            refused = _certificate_refused(exc)
            why = f" ({refused.verify_message})" if refused is not None and getattr(refused, "verify_message", None) else ""
            return ConnectorError("network", f"{where}: TLS verification failed{why}",
                                  hint="Check the host; for a private CA set the connection's CA bundle.")
        if isinstance(exc, requests.exceptions.ConnectTimeout) or (not_sent and isinstance(exc, requests.exceptions.Timeout)):
            return ConnectorError("network", f"{where}: could not connect in time",
                                  hint="Check the host name and the network: nothing answered. Nothing was sent.")
        if isinstance(exc, requests.exceptions.Timeout):
            note = "" if safe else " The request may have been applied; it was not re-sent because repeating it is not safe."
            return ConnectorError("timeout", f"{where}: no answer within the read timeout.{note}",
                                  hint="Check the resource's state before running the step again.", details=maybe)
        if not_sent:
            return ConnectorError("network", f"{where}: could not connect to the workspace ({_reason(exc)})",
                                  hint="Check the host name and the network: the connection was refused or the name "
                                       "did not resolve. Nothing was sent.")
        note = "" if safe else " The request may have been applied; it was not re-sent because repeating it is not safe."
        return ConnectorError("network", f"{where}: the connection was dropped.{note}",
                              hint="Check the resource's state before running the step again." if not safe else None,
                              details=maybe)

    def _cut_error(self, method, url, guard: _Attempt, started: float, safe: bool) -> ConnectorError:
        where = f"{method} {self._short(url)}"
        took = time.monotonic() - started
        at_deadline = guard.limit >= guard.deadline - 1e-6
        bound = "the step's deadline" if at_deadline else f"the read timeout ({guard.total:g}s for the whole answer)"
        note = "" if safe else " The request may have been applied; it was not re-sent because repeating it is not safe."
        return ConnectorError("timeout", f"{where}: the answer did not arrive in full before {bound}; cut after "
                              f"{took:.1f}s.{note}",
                              hint="The server or the network is sending too slowly; check the resource's state and run "
                                   "the step again, or raise its timeout.",
                              details=None if safe else {"may_have_been_applied": True, "request": where})

    def _unsendable(self, exc, method, url, auth, headers=None) -> ConnectorError:
        """A request that can never be sent: say what is wrong without echoing any value."""
        where = f"{method} {self._short(url)}"
        text = str(exc)
        if isinstance(exc, requests.exceptions.InvalidJSONError) or "JSON compliant" in text:
            return ConnectorError("invalid_input", f"{where}: the JSON body contains NaN or Infinity, which JSON cannot "
                                  "carry; nothing was sent", hint="Replace NaN/Infinity values in the inputs with numbers or null.")
        if isinstance(exc, (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema,
                            requests.exceptions.InvalidURL, requests.exceptions.URLRequired)):
            return ConnectorError("invalid_input", f"{where}: the URL cannot be requested (it is not a well-formed "
                                  "http(s) URL); nothing was sent", hint="Check the URL.")
        name = _bad_header(headers)
        if name is None and auth and (isinstance(exc, (requests.exceptions.InvalidHeader, UnicodeError))
                                      or "header" in text.lower()):
            return ConnectorError("configuration", "The connection's credential contains a line break or another "
                                  "character that cannot travel in an HTTP header; nothing was sent",
                                  hint="Copy the token or secret again as one line, without spaces or line breaks.")
        if isinstance(exc, (requests.exceptions.InvalidHeader, UnicodeError)) or "header" in text.lower():
            which = f"header {name}" if name else "a header"
            return ConnectorError("invalid_input", f"{where}: {which} has a line break, a control or non-Latin-1 "
                                  "character in its name or value, so the request cannot be sent; nothing was sent",
                                  hint="Remove line breaks and control characters from header names and values.")
        return ConnectorError("invalid_input", f"{where}: the request cannot be sent ({type(exc).__name__}); "
                              "nothing was sent", hint="Check the inputs.")

    def _short(self, url: str) -> str:
        return self.redactor.text(url.split("?", 1)[0])

    def _log(self, debug, method, url, response, elapsed, request_body=None, error=None, streamed=False) -> None:
        if not debug and not log.isEnabledFor(logging.DEBUG):
            return
        r = self.redactor
        if response is not None:
            req = response.request
            line = (f"[databricks] {method} {r.text(req.url)} -> {response.status_code} in {elapsed * 1000:.0f} ms\n"
                    f"  request headers: {r.headers(req.headers)}\n"
                    f"  request body: {r.body(req.body if req.body is not None else request_body)}\n"
                    f"  response headers: {r.headers(response.headers)}\n"
                    f"  response body: {'(streamed)' if streamed else r.body(response.content)}")
        else:
            line = f"[databricks] {method} {r.text(url)} failed after {elapsed * 1000:.0f} ms: {r.text(error or '')}"
        log.debug(line)
        if debug:
            emit(line)

    # -- links to cloud storage (presigned): never any workspace credential ---------------
    def plain_http(self):
        with self._plain_lock:
            if self._plain is None:
                s = requests.Session()
                s.trust_env = False
                adapter = _adapter(self.pool_size)
                s.mount("https://", adapter)
                s.mount("http://", adapter)
                s.headers["User-Agent"] = USER_AGENT
                s.verify = self._http.verify
                self._plain = s
            return self._plain


def current_deadline() -> float | None:
    """The absolute ``time.monotonic()`` deadline of the request the calling thread is making (None
    outside one). An auth that fetches a token waits for its lock no longer than this."""
    return getattr(_LOCAL, "deadline", None)


_UNSENDABLE = (requests.exceptions.InvalidHeader, requests.exceptions.InvalidJSONError,
               requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
               requests.exceptions.MissingSchema, requests.exceptions.URLRequired)


_BAD_HEADER_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _bad_header(headers) -> str | None:
    """The name of the first given header whose name or value cannot travel in HTTP (told without
    its value), or None when every given header is fine (so the culprit is the credential)."""
    for name, value in (headers or {}).items():
        shown = name if isinstance(name, str) and _TOKEN.fullmatch(name) else "(a header name)"
        if shown != name:
            return shown
        text = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
        try:
            text.encode("latin-1")
        except UnicodeError:
            return name
        if _BAD_HEADER_CHARS.search(text):
            return name
    return None


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _reason(exc) -> str:
    for cur in _chain(exc):
        if isinstance(cur, socket.gaierror):
            return "the host name did not resolve"
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, OSError) and cur.errno in (_errno.ENETUNREACH, _errno.EHOSTUNREACH):
            return "no route to the host"
    return "could not open a connection"


class ActionSession:
    """What a handler gets: requests against the workspace, pagination, waiting, progress."""

    def __init__(self, shared: SharedSession, *, debug: bool = False, timeout: float | None = None):
        self.shared = shared
        self.host = shared.host
        self.debug = debug
        self.deadline = time.monotonic() + timeout if timeout else None
        self._step = None

    # -- requests ------------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.host + (path if path.startswith("/") else "/" + path)

    def _deadline(self, deadline=None) -> float:
        d = time.monotonic() + self.shared.retry_timeout
        for other in (self.deadline, deadline):
            if other is not None:
                d = min(d, other)
        return d

    def response(self, method: str, path: str, *, deadline: float | None = None, **kw) -> requests.Response:
        """The raw response of a successful request; a classified error otherwise. Redirects are
        never followed, so credentials stay on the workspace host; one is an error."""
        response = self.shared.exchange(method, self.url(path), deadline=self._deadline(deadline), debug=self.debug, **kw)
        if response.status_code >= 400:
            raise self.error(response)
        if 300 <= response.status_code < 400:
            location = self.shared.redactor.text(response.headers.get("Location", "(no Location)"))
            raise ConnectorError("configuration", f"HTTP {response.status_code}: the workspace redirected {method} "
                                 f"{self.shared._short(self.url(path))} to {location[:300]}; redirects are not followed so "
                                 "credentials stay on the workspace host", status=response.status_code,
                                 hint="Check the Host: use the workspace URL itself. A redirect to a login or "
                                      "private-link page means the host or the network path is wrong.")
        return response

    def error(self, response) -> ConnectorError:
        redactor = self.shared.redactor
        err = from_response(response.status_code, response.content, response.headers.get("Content-Type", ""),
                            response.reason, retry_after=_retry_after(response), redactor=redactor)
        exceeded = getattr(response, "retry_after_exceeded", None)
        if exceeded is not None:
            err.hint = f"Databricks asked to wait {exceeded:.0f}s before retrying, longer than the time left for this step."
        if getattr(response, "maybe_applied", False):
            req = response.request
            where = f"{req.method} {self.shared._short(req.url)}"
            err.message += (f" ({where}: this answer is not Databricks' own refusal, so the request may have been "
                            "applied; it was not re-sent because repeating it is not safe)")
            err.hint = (f"Check whether {where} took effect before running the step again: running it again may "
                        "apply it twice.")
            err.details = {**(err.details or {}), "may_have_been_applied": True, "request": where}
        return redactor.error(err)

    def request(self, method: str, path: str, *, require=(), expect=dict, **kw):
        """JSON of a successful request ({} for an empty body). The answer must be a JSON object
        (``expect=dict``; ``expect=None`` accepts any JSON) holding every key in ``require`` with a
        non-empty value; anything else is a classified ``server_error``."""
        response = self.response(method, path, **kw)
        return self.decode(response, method, path, require=require, expect=expect)

    def decode(self, response, method, path, *, require=(), expect=dict):
        if not response.content:
            doc = {}
        else:
            try:
                doc = response.json()
            except (ValueError, RecursionError):
                raise ConnectorError("server_error", f"{method} {self.shared._short(self.url(path))} answered "
                                     f"{response.status_code} with a body that is not valid JSON", status=response.status_code,
                                     hint="The answer was malformed; run the step again. If it changed state, check "
                                          "the resource first.",
                                     details=self._maybe(method, path)) from None
        if expect is dict and not isinstance(doc, dict):
            raise self._shape_error(response, method, path, _kind(doc) + " where Databricks sends a JSON object")
        if require:
            missing = [k for k in require if not _present(doc.get(k))]
            if missing:
                raise self._shape_error(response, method, path, "an object without " + ", ".join(missing))
        return doc

    def _maybe(self, method, path):
        if method.upper() in SAFE_METHODS:
            return None
        return {"may_have_been_applied": True, "request": f"{method.upper()} {self.shared._short(self.url(path))}"}

    def _shape_error(self, response, method, path, what: str) -> ConnectorError:
        where = f"{method.upper()} {self.shared._short(self.url(path))}"
        maybe = self._maybe(method, path)
        hint = "The answer does not have the shape of Databricks' answer (a proxy, or a changed API); run the step again."
        if maybe:
            hint = f"Check whether {where} took effect before running the step again: the request may have been applied."
        return ConnectorError("server_error", f"{where} answered {response.status_code} with {what}",
                              status=response.status_code, hint=hint, details=maybe)

    def get(self, path: str, params=None, **kw):
        return self.request("GET", path, params=_query(params), **kw)

    def post(self, path: str, body=None, *, idempotent: bool = False, **kw):
        return self.request("POST", path, json=body if body is not None else {}, idempotent=idempotent, **kw)

    def delete(self, path: str, params=None, **kw):
        return self.request("DELETE", path, params=_query(params), idempotent=True, **kw)

    # -- runtime mechanisms ---------------------------------------------------------------
    def paginate(self, path: str, *, items: str, params=None, max_items: int | None = None,
                 token_param: str = "page_token", next_key: str = "next_page_token", require=()):
        """Every item of a paged GET list: (items, truncated). Each item must be an object holding
        ``require``; the list ends by the step's deadline."""
        base = dict(params or {})

        def page(token):
            q = dict(base)
            if token:
                q[token_param] = token
            return self.get(path, q)

        return self.pages(page, items=items, next_token=lambda p: p.get(next_key), max_items=max_items,
                          require=require, what=path)

    def pages(self, fetch_page, *, items: str, next_token, max_items: int | None = None, require=(), what=None):
        """The same mechanism for any paging style: ``fetch_page(token) -> page``. Every request it
        makes ends by the step's deadline; a server that never stops paging is a classified error."""
        saved = self.deadline
        deadline = self._deadline()
        self.deadline = deadline
        try:
            return _paginate(fetch_page, items=items, next_token=next_token, max_items=max_items, deadline=deadline,
                             require=require, what=what or items)
        finally:
            self.deadline = saved

    # -- the step: what it starts, its waits, its progress (connector/steps.py) ----------------
    @property
    def step(self):
        """The call's Step (the runner sets one; a session used on its own gets a plain one)."""
        if self._step is None:
            from .steps import Step

            self._step = Step()
        return self._step

    @step.setter
    def step(self, value) -> None:
        self._step = value

    def start(self, name: str, fn, *, ids=None, follow_up=None):
        """Run ``fn()``, the request that starts something, once per step (a resumed step returns
        the answer recorded the first time). ``ids``: a dict, or ``answer -> dict``, of the ids
        it started (in every later error's ``details.started``); ``follow_up``: the action key
        (or ``(key, extra inputs)``) a user runs next with those ids, named in hints."""
        return self.step.start(name, fn, ids=ids, follow_up=follow_up)

    def add_started(self, **ids) -> None:
        """More ids of what the step started, learnt later (e.g. a run's page URL)."""
        self.step.started.update({k: v for k, v in ids.items() if v is not None})

    def budget_left(self) -> float | None:
        """Seconds left of the call's budget (``Connector.run(..., budget=)``), or None without one:
        a request that waits server-side (SQL's wait_timeout) waits no longer than this."""
        end = self.step.budget_end
        return None if end is None else max(0.0, end - time.monotonic())

    def on_cancel(self, what: str, fn) -> None:
        """``fn()`` (returning an optional note) runs if the step times out or is interrupted."""
        self.step.on_cancel(what, fn)

    def wait(self, poll, *, what: str, timeout: float, interval: float | None = None,
             max_interval: float | None = None, on_timeout=None, follow_up=None):
        """Poll until done (see connector/waiting.py). Every request a poll makes ends by the
        wait's own deadline (plus a short grace for the last poll), so retries cannot carry a
        wait past its timeout; the cancels on timeout get their own short budget.
        ``on_timeout() -> note`` adds a sentence to the timeout's message."""
        return self.step.wait(self, poll, what=what, timeout=timeout, interval=interval, max_interval=max_interval,
                              on_timeout=on_timeout, follow_up=follow_up)

    def progress(self, message: str, info: dict | None = None, **more) -> None:
        """One progress line: stderr by default, or the caller's progress callback."""
        self.step.progress(message, {**(info or {}), **more})

    def storage_get(self, url: str, headers=None, **kw) -> requests.Response:
        """GET a presigned cloud-storage link: no Authorization, no workspace credential."""
        try:
            parts = urlsplit(url) if isinstance(url, str) else None
        except ValueError:                    # e.g. an unclosed IPv6 bracket
            parts = None
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            scheme = (parts.scheme if parts is not None and parts.scheme else "no scheme")
            raise ConnectorError("server_error", f"Databricks gave a result link that is not an http(s) URL ({scheme}); "
                                 "it was not fetched", hint="Run the step again; if it persists, report it to Databricks support.")
        response = self.shared.exchange("GET", url, headers=headers, auth=False, idempotent=True,
                                        deadline=self._deadline(), debug=self.debug, http=self.shared.plain_http(), **kw)
        return response


def _present(value) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict):
        return bool(value)                                  # an object the action reads
    return isinstance(value, (int, float))


def _kind(doc) -> str:
    if doc is None:
        return "JSON null"
    if isinstance(doc, bool):
        return "a JSON boolean"
    if isinstance(doc, (int, float)):
        return "a JSON number"
    if isinstance(doc, str):
        return "a JSON string"
    if isinstance(doc, list):
        return "a JSON array"
    return "a JSON object"


def _query(params):
    """Query values as Databricks expects them: booleans lower-case, lists repeated, None dropped."""
    if not params:
        return params
    out = {}
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (dict,)):
            v = _json.dumps(v)
        out[k] = v
    return out
