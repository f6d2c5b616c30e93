"""Polling triggers: the caller owns the state, the connector stays stateless.

``Connector.poll(trigger, connection, inputs, state)`` returns ``{"events": [...], "state": {...},
"more": bool, "activated": bool}``. The caller stores ``state`` (JSON) and passes it back on the
next poll; it is never kept here. The semantics, the same for every trigger:

* **Activation starts from now.** The first poll (no state, or a state made for other filters)
  records the activation time and where the stream stands; an event that happened before it is
  history and never fires, however late it is read (unless the trigger's ``since`` input asks for
  the events from that time). The activation time is the caller's clock; the overlap window covers
  a small skew from the workspace's.
* **Exactly once.** Every poll re-reads an overlap window behind its cursor (late or out-of-order
  arrivals are found) and drops events whose dedupe key it has already emitted. The keys are kept
  in the state only while they can still be read again (inside the overlap window), and at most
  ``MEMORY`` of them, so the state stays small.
* **The cursor never passes an event still in flight.** A trigger that waits for something to end
  (a run to finish) holds its cursor at the oldest thing still running.
* **Bounded.** A poll reads at most ``max_pages`` pages and ends by the step's deadline
  (``timeout_seconds``); what it could not read is read by the next poll (``more`` is true), and
  the cursor only moves over what was read. A failed poll raises and leaves the caller's state as
  it was, so nothing is lost.

A trigger handler is ``handler(session, inputs, poll)``: it reads the workspace through the session
and reports through ``poll`` (:class:`Poll`), which holds these mechanisms.
"""
from __future__ import annotations

import hashlib
import json
import time

from .errors import InputError

STATE_VERSION = 1
MEMORY = 2000                 # dedupe keys kept at most
# Inputs that change how a poll runs, not which events it finds: changing them keeps the state.
OPERATIONAL = frozenset({"debug", "max_pages", "timeout_seconds", "overlap_seconds", "since", "start_after",
                         "max_rows"})


def fingerprint(trigger: str, inputs: dict) -> str:
    """What the state was made for: the trigger and the inputs that select its events."""
    chosen = {k: v for k, v in sorted(inputs.items()) if k not in OPERATIONAL}
    text = json.dumps([trigger, chosen], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Poll:
    """One poll of one trigger: the caller's state in, events and the new state out.

    A handler uses ``first`` (the activation poll), ``is_new`` (after activation or ``since``),
    ``cursor`` / ``data`` (its own JSON state), ``emit`` / ``remember`` (exactly-once bookkeeping), ``page()`` (page caps and the deadline),
    ``scan_newest_first`` (a time-windowed newest-first listing) and ``hold`` / ``advance``."""

    def __init__(self, trigger: str, inputs: dict, state, *, deadline: float | None = None):
        self.trigger = trigger
        self.inputs = inputs
        self.fingerprint = fingerprint(trigger, inputs)
        self.overlap_ms = int(float(inputs.get("overlap_seconds", 120)) * 1000)
        self.max_pages = int(inputs.get("max_pages", 10))
        self.deadline = deadline
        # no page is started this close to the deadline: a tenth of the poll's time, at most a second
        self._margin = min(1.0, 0.1 * max(0.0, deadline - time.monotonic())) if deadline is not None else 0.0
        self.pages_read = 0
        self.more = False
        self.events: list = []
        self.activated = False
        state = _checked(trigger, state)
        if state is None or state.get("fingerprint") != self.fingerprint:
            self.activated = True
            state = {"v": STATE_VERSION, "trigger": trigger, "fingerprint": self.fingerprint,
                     "activated_at": int(time.time() * 1000), "cursor": None, "seen": {}, "data": {}}
        self.state = state
        self.seen: dict = dict(state.get("seen") or {})

    # -- the stream position ----------------------------------------------------------
    @property
    def first(self) -> bool:
        """The activation poll: record where the stream stands, emit nothing (unless ``since``)."""
        return self.activated

    @property
    def since(self):
        return self.inputs.get("since")

    def is_new(self, at) -> bool:
        """Did an event at ``at`` (epoch ms) happen after the trigger was activated (or at or
        after ``since``)? What is older is history and never fires, however late it is read."""
        if at is None:
            return True
        if self.since is not None:
            return at >= self.since
        return at > self.activated_at

    @property
    def cursor(self):
        return self.state.get("cursor")

    @cursor.setter
    def cursor(self, value):
        self.state["cursor"] = value

    @property
    def data(self) -> dict:
        """The handler's own JSON state (per-cluster cursors, a backlog, ...)."""
        return self.state.setdefault("data", {})

    @property
    def activated_at(self) -> int:
        return int(self.state.get("activated_at") or 0)

    # -- exactly once -------------------------------------------------------------------
    def is_seen(self, key: str) -> bool:
        return str(key) in self.seen

    def remember(self, key: str, at) -> None:
        """Mark an event as handled without emitting it (history at activation, filtered out)."""
        self.seen[str(key)] = at

    def emit(self, key: str, event: dict, at) -> bool:
        """Emit an event unless its key was emitted before; ``at`` is its position on the cursor's
        axis (to forget the key once it can no longer be read again). Returns whether it fired."""
        key = str(key)
        if key in self.seen:
            return False
        self.seen[key] = at
        self.events.append(event)
        return True

    # -- bounds ---------------------------------------------------------------------------
    def page(self) -> bool:
        """May one more page be read? False (and ``more`` set) at the page cap or near the deadline."""
        if self.pages_read >= self.max_pages:
            self.more = True
            return False
        if self.deadline is not None and time.monotonic() > self.deadline - self._margin:
            self.more = True
            return False
        self.pages_read += 1
        return True

    def scan_newest_first(self, fetch, *, time_of, floor: int):
        """Read a newest-first listing from now down to ``floor`` (inclusive, epoch ms).

        ``fetch(lo, hi, token) -> (items, next_token)`` lists items whose time is in [lo, hi]
        (hi None: no upper bound), newest first. When the page cap or the deadline cuts the listing,
        the next poll continues below the oldest item read (a backlog kept in the state) before it
        reads the newest again, so a window with more items than one poll may read still drains.
        Returns (items, complete): complete is True when the whole window down to ``floor`` was read."""
        hi = self.data.get("backlog_to")
        items, token = [], None
        while True:
            if not self.page():
                break
            batch, token = fetch(floor, hi, token)
            items.extend(batch)
            if not token:
                self.data.pop("backlog_to", None)
                return items, True
        times = [time_of(i) for i in items if time_of(i) is not None]
        if times:
            oldest = min(times)
            self.data["backlog_to"] = oldest if oldest != hi else oldest - 1
        self.more = True
        return items, False

    # -- the cursor ------------------------------------------------------------------------
    def advance(self, to) -> None:
        """Move the cursor forward to ``to`` (never back)."""
        if to is not None and (self.cursor is None or to > self.cursor):
            self.cursor = to

    def result(self, *, floor=None) -> dict:
        """The poll's answer. Keys whose position is below ``floor`` (they can no longer be read
        again) are forgotten, and at most ``MEMORY`` keys are kept, the newest."""
        seen = self.seen
        if floor is not None:
            seen = {k: at for k, at in seen.items() if at is None or _ge(at, floor)}
        if len(seen) > MEMORY:
            ordered = sorted(seen.items(), key=lambda kv: _sort_key(kv[1]))
            seen = dict(ordered[-MEMORY:])
        self.state["seen"] = seen
        return {"events": self.events, "state": self.state, "more": self.more, "activated": self.activated}


def _ge(a, b) -> bool:
    try:
        return a >= b
    except TypeError:
        return True


def _sort_key(at):
    return (0, at) if isinstance(at, (int, float)) else (1, str(at))


def _checked(trigger: str, state):
    """The caller's state, or None for a first poll; a state of another trigger is an input error."""
    if state is None or state == {}:
        return None
    if isinstance(state, str):
        try:
            state = json.loads(state)
        except ValueError:
            raise InputError([{"key": "state", "label": "State", "reason": "is not valid JSON"}]) from None
    if not isinstance(state, dict):
        raise InputError([{"key": "state", "label": "State", "reason": "must be the JSON object a previous poll returned"}])
    if state.get("v") != STATE_VERSION or not isinstance(state.get("seen", {}), dict):
        raise InputError([{"key": "state", "label": "State",
                           "reason": f"is not a state of this connector's triggers (version {STATE_VERSION})"}])
    if state.get("trigger") != trigger:
        raise InputError([{"key": "state", "label": "State",
                           "reason": f"belongs to trigger {state.get('trigger')!r}, not {trigger!r}"}])
    return dict(state)
