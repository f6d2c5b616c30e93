"""The shared session: the only way out to the network.

``SharedSession`` is one per connection: a pooled ``requests.Session``, the connection's auth,
timeouts on every request, the User-Agent, retries bounded by a deadline, error
classification and the redacted debug log. It is thread-safe and reused across actions.

``ActionSession`` is what a handler receives: a light per-call view of the shared session that
carries the call's options (Debug Request, the call's deadline) and offers the runtime's
mechanisms for pagination and waiting.

Retry rules:
* 429 and 503 mean the request was not processed: retried for every method, honouring
  ``Retry-After`` (an integer number of seconds), unless that wait would pass the deadline.
* A connection that could not be opened (refused, connect timeout) sent nothing: retried.
* Other 5xx, a dropped connection and a read timeout may follow a request that was applied:
  retried only when the request is safe to repeat (GET/HEAD, or a POST the caller marks
  idempotent because it carries an idempotency token or is naturally idempotent).
* 401/403 for a rejected OAuth token: the token is dropped and the request re-sent once.
"""
from __future__ import annotations

import json as _json
import logging
import platform
import random
import threading
import time

import requests
from requests.adapters import HTTPAdapter

from . import __version__
from .debuglog import Redactor, emit
from .errors import ConnectorError, from_response
from .pagination import paginate as _paginate
from .waiting import wait_for

log = logging.getLogger("databricks_connector.http")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USER_AGENT = f"databricks-connector/{__version__} python/{platform.python_version()} os/{platform.system().lower()}"


class RetryPolicy:
    """How one request is retried. The default follows the rules in the module doc; Raw Request
    builds its own from the user's inputs."""

    def __init__(self, *, max_attempts: int | None = None, delay: float | None = None, exponential: bool = True,
                 retry_all_errors: bool = False, base: float = 0.5, cap: float = 10.0):
        self.max_attempts = max_attempts
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


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0  # an HTTP-date: wait a second and try, as the SDK does


def _not_sent(exc: Exception) -> bool:
    """True when the connection could not be opened, so the server saw nothing."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    from urllib3.exceptions import NewConnectionError

    seen = set()
    todo = [exc]
    while todo:
        cur = todo.pop()
        if not isinstance(cur, BaseException) or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, NewConnectionError):
            return True
        todo += [getattr(cur, "reason", None), cur.__cause__, cur.__context__, *getattr(cur, "args", ())]
    return False


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


class SharedSession:
    def __init__(self, connection, *, connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 retry_timeout: float = 300.0, policy: RetryPolicy | None = None,
                 pool_size: int = 32):
        self.connection = connection
        self.host = connection.host
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry_timeout = retry_timeout
        self.policy = policy or DEFAULT_POLICY
        self.redactor = Redactor(connection.secret_values)
        http = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        http.mount("https://", adapter)
        http.mount("http://", adapter)
        http.headers["User-Agent"] = f"{USER_AGENT} auth/{getattr(connection.auth, 'auth_type', 'unknown')}"
        http.headers["Accept"] = "application/json"
        http.verify = connection.ca_bundle or True   # TLS verification is never turned off
        self._http = http
        # Links to cloud storage travel without any workspace credential, on their own pool.
        self._plain = None
        self._plain_lock = threading.Lock()
        if hasattr(connection.auth, "post"):
            connection.auth.post = self._token_post
        self._debug = threading.local()

    def action(self, *, debug: bool = False, timeout: float | None = None) -> "ActionSession":
        return ActionSession(self, debug=debug, timeout=timeout)

    def close(self) -> None:
        self._http.close()
        if self._plain is not None:
            self._plain.close()

    # -- the token request for service principals --------------------------------------
    def _token_post(self, url, body, headers):
        return self.exchange("POST", url, data=body, headers=headers, auth=False, idempotent=True,
                             deadline=time.monotonic() + min(self.retry_timeout, 120.0), debug=self._debugging())

    def _debugging(self) -> bool:
        return getattr(self._debug, "on", False)

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
        http = http or self._http
        attempt = 0
        reauthed = False
        prev = getattr(self._debug, "on", False)
        self._debug.on = debug
        try:
            while True:
                attempt += 1
                started = time.monotonic()
                remaining = deadline - started
                if remaining <= 0:
                    raise ConnectorError("timeout", f"{method} {self._short(url)} did not complete before the deadline",
                                         hint="Raise the step's timeout or try again later.")
                timeout = (min(self.connect_timeout, remaining), min(read_timeout or self.read_timeout, max(remaining, 0.1)))
                try:
                    response = http.request(method, url, params=params, json=json, data=data, files=files,
                                            headers=headers, timeout=timeout, allow_redirects=allow_redirects,
                                            auth=(self.connection.auth if auth else _no_auth), stream=stream,
                                            verify=http.verify)   # a CA bundle wins over REQUESTS_CA_BUNDLE
                except ConnectorError:
                    raise                                  # e.g. the OAuth token could not be fetched
                except requests.exceptions.RequestException as exc:
                    elapsed = time.monotonic() - started
                    not_sent = _not_sent(exc)
                    error = self._transport_error(exc, method, url, not_sent, safe)
                    self._log(debug, method, url, None, elapsed, error=error.message)
                    if _certificate_refused(exc) is not None:
                        raise error from None           # the same certificate will be refused again
                    if (not_sent or safe or policy.retry_all_errors) and self._may_retry(policy, attempt, deadline, None):
                        self._sleep(policy, attempt, deadline, None, debug)
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
                    continue
                wait = _retry_after(response)
                retryable = status in (429, 503) or (status >= 500 and safe) or policy.retry_all_errors
                if retryable and self._may_retry(policy, attempt, deadline, wait):
                    self._sleep(policy, attempt, deadline, wait, debug)
                    continue
                if retryable and wait is not None and time.monotonic() + wait > deadline:
                    response.retry_after_exceeded = wait
                return response
        finally:
            self._debug.on = prev

    def _token_rejected(self, response) -> bool:
        auth = self.connection.auth
        if response.status_code == 403:
            body = response.text[:500]
            if "Invalid access token" not in body and '"error_code": 403' not in body and '"error_code":403' not in body:
                return False
        return auth.rejected(response.request)

    def _may_retry(self, policy, attempt, deadline, wait) -> bool:
        if policy.max_attempts is not None and attempt >= policy.max_attempts:
            return False
        delay = wait if wait is not None else policy.backoff(attempt)
        return time.monotonic() + delay < deadline

    def _sleep(self, policy, attempt, deadline, wait, debug) -> None:
        delay = wait + random.random() * 0.1 if wait is not None else policy.backoff(attempt)
        delay = max(0.0, min(delay, deadline - time.monotonic()))
        if debug:
            emit(f"[databricks] retrying in {delay:.2f}s (attempt {attempt + 1})")
        time.sleep(delay)

    def _transport_error(self, exc, method, url, not_sent, safe) -> ConnectorError:
        where = f"{method} {self._short(url)}"
        if isinstance(exc, requests.exceptions.SSLError):
            refused = _certificate_refused(exc)
            why = f" ({refused.verify_message})" if refused is not None and getattr(refused, "verify_message", None) else ""
            return ConnectorError("network", f"{where}: TLS verification failed{why}",
                                  hint="Check the host; for a private CA set the connection's CA bundle.")
        if isinstance(exc, requests.exceptions.ConnectTimeout) or (not_sent and isinstance(exc, requests.exceptions.Timeout)):
            return ConnectorError("network", f"{where}: could not connect in time")
        if isinstance(exc, requests.exceptions.Timeout):
            note = "" if safe else " The request may have been applied; it was not re-sent because repeating it is not safe."
            return ConnectorError("timeout", f"{where}: no answer within the read timeout.{note}",
                                  hint="Check the resource's state before running the step again.")
        if not_sent:
            return ConnectorError("network", f"{where}: could not connect to the workspace")
        note = "" if safe else " The request may have been applied; it was not re-sent because repeating it is not safe."
        return ConnectorError("network", f"{where}: the connection was dropped.{note}",
                              hint="Check the resource's state before running the step again." if not safe else None)

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
                s.mount("https://", HTTPAdapter(pool_maxsize=16, max_retries=0))
                s.mount("http://", HTTPAdapter(pool_maxsize=16, max_retries=0))
                s.headers["User-Agent"] = USER_AGENT
                s.verify = self._http.verify
                self._plain = s
            return self._plain


class ActionSession:
    """What a handler gets: requests against the workspace, pagination, waiting, progress."""

    def __init__(self, shared: SharedSession, *, debug: bool = False, timeout: float | None = None):
        self.shared = shared
        self.host = shared.host
        self.debug = debug
        self.deadline = time.monotonic() + timeout if timeout else None

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
        err = from_response(response.status_code, response.content, response.headers.get("Content-Type", ""),
                            response.reason, retry_after=_retry_after(response))
        exceeded = getattr(response, "retry_after_exceeded", None)
        if exceeded is not None:
            err.hint = f"Databricks asked to wait {exceeded:.0f}s before retrying, longer than the time left for this step."
        err.message = self.shared.redactor.text(err.message)
        return err

    def request(self, method: str, path: str, **kw):
        """JSON of a successful request ({} for an empty body)."""
        response = self.response(method, path, **kw)
        return self.decode(response, method, path)

    def decode(self, response, method, path):
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ConnectorError("server_error", f"{method} {self.shared._short(self.url(path))} answered {response.status_code} "
                                 "with a body that is not valid JSON", status=response.status_code,
                                 hint="The answer was malformed; run the step again. If it changed state, check the resource first.") from None

    def get(self, path: str, params=None, **kw):
        return self.request("GET", path, params=_query(params), **kw)

    def post(self, path: str, body=None, *, idempotent: bool = False, **kw):
        return self.request("POST", path, json=body if body is not None else {}, idempotent=idempotent, **kw)

    def delete(self, path: str, params=None, **kw):
        return self.request("DELETE", path, params=_query(params), idempotent=True, **kw)

    # -- runtime mechanisms ---------------------------------------------------------------
    def paginate(self, path: str, *, items: str, params=None, max_items: int | None = None,
                 token_param: str = "page_token", next_key: str = "next_page_token"):
        """Every item of a paged GET list: (items, truncated)."""
        base = dict(params or {})

        def page(token):
            q = dict(base)
            if token:
                q[token_param] = token
            return self.get(path, q)

        return _paginate(page, items=items, next_token=lambda p: p.get(next_key), max_items=max_items)

    def pages(self, fetch_page, *, items: str, next_token, max_items: int | None = None):
        """The same mechanism for any paging style: ``fetch_page(token) -> page``."""
        return _paginate(fetch_page, items=items, next_token=next_token, max_items=max_items)

    def wait(self, poll, *, what: str, timeout: float, interval: float = 2.0, max_interval: float | None = None,
             on_timeout=None):
        """Poll until done. Every request a poll makes ends by the wait's own deadline (plus a short
        grace for the last poll), so retries cannot carry a wait past its timeout; the action on
        timeout (e.g. a cancel) gets the call's normal time."""
        saved = self.deadline
        end = time.monotonic() + max(0.0, timeout) + min(10.0, max(2.0, interval))
        self.deadline = end if saved is None else min(saved, end)

        def timed_out():
            self.deadline = saved
            return on_timeout() if on_timeout is not None else None

        try:
            return wait_for(poll, what=what, timeout=timeout, interval=interval, max_interval=max_interval,
                            on_timeout=timed_out, progress=self.progress)
        finally:
            self.deadline = saved

    def progress(self, message: str) -> None:
        emit(f"[progress] {message}")

    def storage_get(self, url: str, headers=None, **kw) -> requests.Response:
        """GET a presigned cloud-storage link: no Authorization, no workspace credential."""
        response = self.shared.exchange("GET", url, headers=headers, auth=False, idempotent=True,
                                        deadline=self._deadline(), debug=self.debug, http=self.shared.plain_http(), **kw)
        return response


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
