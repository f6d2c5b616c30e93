"""Waiting, one mechanism for clusters, warehouses, contexts, commands, statements and runs.

A wait polls ``poll() -> (done, value, state)`` until it reports done. ``poll`` raises a
ConnectorError itself for a failure state. The wait owns:

* the deadline: absolute and wall-clock, fixed when the wait first starts (a resumed wait keeps
  it), and bounding every request a poll makes (plus a short grace for the last poll);
* the backoff: the first poll at once, then ``interval`` (well under a second by default),
  growing by ``FACTOR`` up to ``MAX_INTERVAL`` (20 s: an hour-long wait polls about 200 times);
* progress: a line when the state changes, at least every ``PROGRESS_EVERY`` seconds while it
  does not, and a final line (done, failed, timed out, or continuing later);
* the budget of the call (front doors that cannot hold a connection open): when the next poll
  would come after it, the wait stops with ``Pending`` and its record says where to go on.

What happens on timeout and on interrupt (cancelling what the step started) belongs to the step
(``connector/steps.py``); this module calls ``on_timeout(state, waited)`` for it.
"""
from __future__ import annotations

import time

from .errors import ConnectorError

TRANSIENT = frozenset({"timeout", "unavailable", "rate_limited", "network", "server_error"})
DEFAULT_INTERVAL = 0.25     # seconds before the second poll
FACTOR = 1.5                # each pause is this much longer than the previous one ...
MAX_INTERVAL = 20.0         # ... up to this
PROGRESS_EVERY = 25.0       # a progress line at least this often while the state does not change


def _passing(exc: ConnectorError) -> bool:
    """A poll failure the wait outlives: the workspace or the network failing for a while (after
    the session's retries). A 200 answer that cannot be read is a defect of the answer, not an
    outage: it ends the wait at once, as does any error the user must act on, and throttling the
    session could not wait out (a Retry-After past the deadline: polling sooner would ignore it)."""
    if exc.type not in TRANSIENT or exc.type == "rate_limited":
        return False
    return not (exc.type == "server_error" and (exc.status or 0) < 500)


def schedule(interval: float = DEFAULT_INTERVAL, cap: float = MAX_INTERVAL, factor: float = FACTOR):
    """The pauses between polls, one after another (an endless generator)."""
    delay = max(0.05, float(interval))
    cap = max(delay, float(cap))
    while True:
        yield delay
        delay = min(cap, delay * factor)


def new_record(timeout: float, interval: float | None, max_interval: float | None) -> dict:
    """The JSON record of a wait that starts now: what a resumed wait needs to go on."""
    now = time.time()
    first = max(0.05, float(interval if interval is not None else DEFAULT_INTERVAL))
    return {"since": now, "deadline": now + max(0.0, float(timeout)), "timeout": float(timeout),
            "delay": first, "cap": max(first, float(max_interval or MAX_INTERVAL)), "polls": 0, "state": None}


class PendingWait(Exception):
    """Raised by :func:`run` when the next poll would pass the call's budget."""

    def __init__(self, state, retry_after: float):
        super().__init__(state)
        self.state = state
        self.retry_after = retry_after


def run(poll, *, what: str, record: dict, progress, on_timeout, bound, budget_end: float | None = None,
        heartbeat: float | None = None):
    """Poll until done and return the value.

    ``record``: from :func:`new_record` (updated in place: polls, delay, last state).
    ``progress(message, info)``: every line. ``on_timeout(state, waited) -> ConnectorError``:
    builds (and cancels for) the timeout error, which is raised. ``bound(end)``: every request
    made from now on ends by ``end`` (monotonic). ``budget_end`` (monotonic): past it, raise
    :class:`PendingWait` instead of sleeping."""
    heartbeat = PROGRESS_EVERY if heartbeat is None else heartbeat
    mono, wall = time.monotonic(), time.time()
    deadline = mono + (record["deadline"] - wall)
    since = mono - (wall - record["since"])
    delay, cap = record["delay"], record["cap"]
    grace = min(10.0, max(2.0, delay))
    last_state = record.get("state")
    resumed = record["polls"] > 0

    def line(event, state, message=None, **extra):
        elapsed = time.monotonic() - since
        text = message or f"{what}: {state} after {elapsed:.1f}s"
        progress(text, {"event": event, "what": what, "state": state, "elapsed_seconds": round(elapsed, 1),
                        "polls": record["polls"], **extra})
        return time.monotonic()

    if resumed:
        opening = f"{what}: still {last_state} after {time.monotonic() - since:.1f}s, waiting on"
    else:
        opening = f"{what}: waiting (timeout {record['timeout']:.0f}s)"
    last_line = line("resume" if resumed else "start", last_state, opening)
    while True:
        end = deadline + grace
        if budget_end is not None:
            end = min(end, budget_end + grace)
        bound(end)
        try:
            done, value, state = poll()
        except ConnectorError as exc:
            now = time.monotonic()
            record["polls"] += 1
            if exc.type in TRANSIENT and budget_end is not None and now >= budget_end and now < deadline:
                record.update(state=last_state)
                line("pending", last_state, f"{what}: {last_state} after {now - since:.1f}s; going on later")
                raise PendingWait(last_state, min(delay, max(0.0, deadline - now))) from None
            if not _passing(exc):
                line("failed", last_state, f"{what}: failed after {now - since:.1f}s ({exc.type})")
                raise
            # A poll whose requests kept failing (after the session's own retries): the wait goes on
            # to its deadline, and a timeout names the last failure.
            done, value, state = False, None, last_state
            failed_check = exc.message[:200]
            if now < deadline:
                line("check_failed", state, f"{what}: a status check failed after {now - since:.1f}s "
                     f"({exc.type}); checking again")
        else:
            record["polls"] += 1
            failed_check = None
        if done:
            record.update(state=state)
            line("done", state, f"{what}: {state} after {time.monotonic() - since:.1f}s, done")
            return value
        now = time.monotonic()
        if state != last_state:
            last_line = line("state", state)
        elif now - last_line >= heartbeat:
            last_line = line("heartbeat", state)
        last_state = state
        record.update(state=state)
        if now >= deadline:
            waited = now - since
            if failed_check is not None:
                state = f"{state or 'unknown'} (last check failed: {failed_check})"
            line("timeout", state, f"{what}: still {state} after {waited:.1f}s, timed out")
            bound(None)
            raise on_timeout(state, waited)
        pause = min(delay, deadline - now)
        delay = min(cap, delay * FACTOR)
        if budget_end is not None and now + pause > budget_end:
            record.update(delay=delay)
            line("pending", state, f"{what}: {state} after {now - since:.1f}s; going on later")
            raise PendingWait(state, pause)
        record.update(delay=delay)
        wake = now + pause
        while True:
            now = time.monotonic()
            if now >= wake:
                break
            if now - last_line >= heartbeat:
                last_line = line("heartbeat", state)
            time.sleep(max(0.0, min(wake, last_line + heartbeat) - now))
