"""Waiting, one mechanism for clusters, warehouses, commands, statements and runs: a wall-clock
deadline, backoff between polls, progress on stderr, an optional action on timeout."""
from __future__ import annotations

import time

from .errors import ConnectorError

TRANSIENT = frozenset({"timeout", "unavailable", "rate_limited", "network", "server_error"})


def wait_for(poll, *, what: str, timeout: float, interval: float = 2.0, max_interval: float | None = None,
             on_timeout=None, progress=None, factor: float = 1.5):
    """Call ``poll()`` until it reports done. ``poll() -> (done, value, state)``; it raises a
    ConnectorError itself for a failure state. Returns ``value``."""
    start = time.monotonic()
    deadline = start + max(0.0, timeout)
    delay = max(0.05, interval)
    cap = max_interval or max(delay, 30.0)
    last_state = None
    while True:
        try:
            done, value, state = poll()
        except ConnectorError as exc:
            # A poll whose requests ran out of time (or kept failing) at the deadline: the wait timed out.
            if exc.type not in TRANSIENT or time.monotonic() < deadline:
                raise
            done, value, state = False, None, f"{last_state or 'unknown'} (last check failed: {exc.message[:200]})"
        if done:
            return value
        now = time.monotonic()
        if state != last_state and progress:
            progress(f"{what}: {state} after {now - start:.1f}s")
        last_state = state
        if now >= deadline:
            waited = now - start
            message = f"Timed out after {waited:.0f}s waiting for {what}; it was still {state}."
            if on_timeout is not None:
                note = on_timeout()
                if note:
                    message += f" {note}"
            raise ConnectorError("timeout", message, details={"state": state, "waited_seconds": round(waited, 1)},
                                 hint="Raise the timeout, or check the resource and wait again.")
        time.sleep(min(delay, deadline - now))
        delay = min(cap, delay * factor)
