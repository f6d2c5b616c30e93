"""File transfer, one mechanism of the runtime: uploads and downloads of workspace files (Unity
Catalog volumes through the Files API) with flat memory, whatever the size.

* ``upload(session, path, local_path=... | data=..., overwrite=...)``: the body is a local file
  streamed in 1 MiB pieces with its Content-Length (``LocalFile``); every attempt (a retry after a
  503 refusal, a re-authentication) re-reads it from its first byte; a file that changes size or
  time while it is sent fails the step (what arrived would not be the file). A small body may be
  given as bytes instead (inline content from a platform).
* ``download(session, path, output_path=... | inline_limit=...)``: the response streams to a file
  written beside its target and renamed over it only when complete (``results.AtomicFile``); the
  bytes are counted against Content-Length; a connection that breaks mid-body is resumed with
  ``Range: bytes=<received>-`` guarded by ``If-Unmodified-Since`` (a file that changed meanwhile
  is downloaded again from the start), at most ``RESUMES`` times without progress. Inline
  downloads (no output file) refuse a file over ``inline_limit`` before reading its body.
* ``check_local_file(path)``: every reason a local file cannot be uploaded, as input problems.

Transfers are bounded by the step's own deadline (Timeout), not by the per-request read timeout: a
5 GiB upload takes longer than a minute. Each request also ends within the session's retry window
(plus, for an upload, the time its size takes at 1 MiB/s), so a long Retry-After or a dead server
fails the step like any other request; a download cut at that window resumes with Range. Handlers call these functions and never open files.
"""
from __future__ import annotations

import io
import os
import stat
import time

import requests

from .errors import ConnectorError
from .results import AtomicFile, path_text_problem, target_path

CHUNK = 1 << 20
READ_CHUNK = 1 << 16                  # a body is read in 64 KiB pieces: a cut loses at most the piece in flight
UPLOAD_LIMIT = 5 * 1024 ** 3          # a single PUT of the Files API
RESUMES = 3                           # resumes in a row without a new byte before a download fails


def check_local_file(path, *, key: str = "local_path", label: str = "Local File") -> list:
    """Every reason the local file at ``path`` cannot be uploaded (an empty list when it can)."""
    def bad(reason):
        return [{"key": key, "label": label, "reason": reason}]

    if path_text_problem(path):
        return bad(path_text_problem(path))
    full = target_path(path)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return bad(f"{full} does not exist")
    except OSError as exc:
        return bad(f"cannot be read: {exc.strerror}")
    if stat.S_ISDIR(st.st_mode):
        return bad(f"{full} is a folder; give a file")
    if not stat.S_ISREG(st.st_mode):
        return bad(f"{full} is not a regular file")
    if not os.access(full, os.R_OK):
        return bad(f"{full} is not readable")
    if st.st_size > UPLOAD_LIMIT:
        return bad(f"{full} is {st.st_size} bytes; one upload is at most 5 GiB")
    return []


class LocalFile:
    """A local file as a request body: its length is known (Content-Length) and every iteration
    reads it again from the start, so a re-sent request sends the whole file."""

    def __init__(self, path: str):
        self.path = target_path(path)
        st = os.stat(self.path)
        self.size = st.st_size
        self._stamp = (st.st_size, st.st_mtime_ns)
        self.sends = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        self.sends += 1
        sent = 0
        with open(self.path, "rb") as fh:
            while sent < self.size:
                data = fh.read(min(CHUNK, self.size - sent))
                if not data:
                    raise _changed(self.path)
                sent += len(data)
                yield data

    def changed(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_size, st.st_mtime_ns) != self._stamp

    def __repr__(self) -> str:
        return f"<local file: {self.size} bytes>"


def _changed(path: str) -> ConnectorError:
    return ConnectorError("invalid_input", f"The local file {path} changed while it was uploaded; what arrived would not be "
                          "the file", hint="Upload it again once nothing writes to it.")


def _exchange(session, method: str, path: str, deadline: float, **kw):
    """A request bounded by the transfer's deadline (not the per-request read timeout); a
    classified error for anything but a 2xx answer."""
    shared = session.shared
    url = session.url(path)
    response = shared.exchange(method, url, deadline=deadline, debug=session.debug, stream=True, **kw)
    if response.status_code >= 300:
        try:
            response.content                    # the (small) error body, read before the error is made
        except (requests.exceptions.RequestException, OSError):
            pass
        finally:
            response.close()
        if response.status_code >= 400:
            raise session.error(response)
        raise ConnectorError("configuration", f"HTTP {response.status_code}: the workspace redirected {method} "
                             f"{shared._short(url)}; redirects are not followed so credentials stay on the workspace "
                             "host", status=response.status_code, hint="Check the Host: use the workspace URL itself.")
    return response


def _deadline(session, timeout: float | None) -> float:
    ends = [time.monotonic() + (timeout if timeout else 3600.0)]
    if session.deadline is not None:
        ends.append(session.deadline)
    return min(ends)


MIN_RATE = 1 << 20                    # bytes/s a transfer is given time for, beyond the session's retry window


def _request_deadline(session, deadline: float, size: int = 0) -> float:
    """One request's deadline: the session's retry window (so a long Retry-After or a dead server
    ends the step as any request does) plus the time ``size`` bytes take at MIN_RATE, within the
    transfer's own deadline."""
    return min(deadline, time.monotonic() + session.shared.retry_timeout + size / MIN_RATE)


def upload(session, path: str, *, local_path: str | None = None, data: bytes | None = None,
           overwrite: bool = True, timeout: float | None = None) -> dict:
    """PUT a file's bytes to ``path`` (an API path, already escaped). Returns ``{"size", "sends"}``."""
    body = LocalFile(local_path) if local_path is not None else bytes(data or b"")
    deadline = _request_deadline(session, _deadline(session, timeout), len(body))
    response = _exchange(session, "PUT", path, deadline, data=body, params={"overwrite": "true" if overwrite else "false"},
                         headers={"Content-Type": "application/octet-stream"}, idempotent=overwrite)
    response.close()
    if isinstance(body, LocalFile):
        if body.changed():
            raise _changed(body.path)
        return {"size": body.size, "sends": body.sends}
    return {"size": len(body), "sends": 1}


class _Memory:
    """The inline counterpart of AtomicFile: bytes kept in memory, at most ``limit``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.buf = io.BytesIO()

    def write(self, data: bytes) -> None:
        self.buf.write(data)

    def restart(self) -> None:
        self.buf = io.BytesIO()

    def discard(self) -> None:
        self.buf = io.BytesIO()


class _FileSink:
    def __init__(self, path: str):
        self.file = AtomicFile(path)

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def restart(self) -> None:
        self.file.discard()
        self.file = AtomicFile(self.file.path)

    def discard(self) -> None:
        self.file.discard()


def _broken(exc) -> bool:
    return isinstance(exc, (requests.exceptions.RequestException, OSError))


def download(session, path: str, *, output_path: str | None = None, inline_limit: int = 10 * 1024 * 1024,
             timeout: float | None = None, what: str | None = None) -> dict:
    """GET a file's bytes from ``path`` (an API path, already escaped) into ``output_path`` (written
    beside it and renamed when complete) or into memory (at most ``inline_limit`` bytes).
    Returns ``{"size", "content_type", "last_modified", "resumed", "content" (bytes, inline only)}``."""
    what = what or path
    deadline = _deadline(session, timeout)
    sink = _FileSink(output_path) if output_path is not None else _Memory(inline_limit)
    received = 0
    expected = None
    validator = None
    content_type = None
    resumed = restarts = stalls = 0
    try:
        while True:
            headers = {"Accept": "application/octet-stream"}
            if received:
                headers["Range"] = f"bytes={received}-"
                if validator:
                    headers["If-Unmodified-Since"] = validator
            try:
                # each request within the session's retry window: a download longer than that is cut
                # at it and resumed with Range from what arrived (a new window)
                response = _exchange(session, "GET", path, _request_deadline(session, deadline), headers=headers,
                                     idempotent=True)
            except ConnectorError as exc:
                if received and exc.status == 412 and restarts < 1:     # changed since the first bytes: start again
                    restarts += 1
                    sink.restart()
                    received, expected, validator = 0, None, None
                    continue
                raise
            try:
                status = response.status_code
                if received and status == 200:            # the server ignored the range: the whole file again
                    sink.restart()
                    received, expected = 0, None
                if received:
                    problem = _range_problem(response.headers.get("Content-Range"), received, expected)
                    if problem:
                        raise ConnectorError("server_error", f"Resuming the download of {what}: {problem}",
                                             hint="Run the step again.")
                else:
                    expected = _length(response, what)
                    validator = response.headers.get("Last-Modified")
                    content_type = response.headers.get("Content-Type")
                    if isinstance(sink, _Memory) and expected > sink.limit:
                        raise ConnectorError("invalid_input", f"{what} is {expected} bytes, more than the {sink.limit} bytes "
                                             "returned inline", hint="Give an Output File to download it to a file.",
                                             details={"size": expected, "inline_limit": sink.limit})
                before = received
                try:
                    for chunk in response.iter_content(READ_CHUNK):
                        received += len(chunk)
                        if received > expected:
                            raise ConnectorError("server_error", f"The download of {what} sent more than the "
                                                 f"{expected} bytes it announced", hint="Run the step again.")
                        sink.write(chunk)
                except ConnectorError:
                    raise
                except Exception as exc:  # noqa: BLE001 - classified below
                    if not _broken(exc):
                        raise
            finally:
                response.close()
            if received == expected:
                break
            if time.monotonic() >= deadline:
                raise ConnectorError("timeout", f"The download of {what} did not complete before the step's "
                                     f"deadline ({received} of {expected} bytes)",
                                     hint="Raise the step's timeout or try again later.",
                                     details={"received": received, "size": expected})
            stalls = 0 if received > before else stalls + 1
            if stalls >= RESUMES:
                raise ConnectorError("server_error", f"The download of {what} broke off at {received} of {expected} "
                                     f"bytes {RESUMES} times without progress", hint="Run the step again later.",
                                     details={"received": received, "size": expected})
            resumed += 1
            session.progress(f"resuming the download of {what} at byte {received} of {expected}",
                             {"received": received, "size": expected})
        out = {"size": received, "content_type": content_type, "last_modified": validator, "resumed": resumed}
        if isinstance(sink, _FileSink):
            sink.file.commit()
            out["output_path"] = sink.file.path
        else:
            out["content"] = sink.buf.getvalue()
        return out
    except BaseException:
        sink.discard()
        raise


def _length(response, what: str) -> int:
    value = response.headers.get("Content-Length")
    try:
        n = int(value)
        if n < 0:
            raise ValueError
        return n
    except (TypeError, ValueError):
        raise ConnectorError("server_error", f"The download of {what} did not say its size (Content-Length: "
                             f"{value!r}), so a complete file cannot be told from a cut one",
                             hint="Run the step again.") from None


def _range_problem(header, start: int, expected) -> str | None:
    if not header or not header.startswith("bytes "):
        return f"the answer has no Content-Range (got {header!r})"
    try:
        span, _, total = header[6:].partition("/")
        first = int(span.split("-")[0])
    except ValueError:
        return f"the answer's Content-Range is malformed ({header!r})"
    if first != start:
        return f"the answer starts at byte {first}, not {start}"
    if total != "*" and expected is not None and int(total) != expected:
        return f"the file is now {total} bytes, not {expected}"
    return None
