"""Steps: one action call, what it started, and how it ends.

The runner makes one :class:`Step` per call and hands it to the handler's session. Handlers use
it through thin methods of ``ActionSession``:

* ``session.start(name, fn, ids=..., follow_up=...)`` runs ``fn()`` (the request that starts
  something: a run, a statement, a command, a context, a cluster) once per step, records its
  answer and the ids of what it started, and names the action that follows it up ("Get Run").
  A resumed step returns the recorded answer without calling ``fn`` again, so nothing is
  started twice.
* ``session.on_cancel(what, fn)`` registers what to cancel on timeout and on interrupt (a
  statement, a run with Cancel on Timeout, a command, a context the step made), undone last
  first, within a short budget of its own: ``CANCEL_SECONDS`` after a timeout,
  ``INTERRUPT_CANCEL_SECONDS`` after an interrupt. A cancel that fails never replaces the
  step's error: its failure goes in the error's ``details.cancel``.
* ``session.wait(poll, ...)`` is the one waiting mechanism (``connector/waiting.py``) with the
  step's progress sink, budget and records.

Every error of a step that started something carries ``details.started`` (the ids) and a hint
naming the follow-up action with those ids ("use Get Run with run_id 123"). An interrupt
(KeyboardInterrupt, or SIGTERM turned into one by the CLI) runs the cancels, then raises
:class:`~connector.errors.Interrupted` (a KeyboardInterrupt carrying the ``interrupted`` error).
A wait that would pass the call's budget raises :class:`~connector.errors.Pending` whose
``resume`` document lets ``Connector.resume`` go on with the same step.
"""
from __future__ import annotations

import json
import time

from . import waiting
from .debuglog import emit
from .errors import ConnectorError, Interrupted, Pending

CANCEL_SECONDS = 5.0            # the whole clean-up after a timeout
INTERRUPT_CANCEL_SECONDS = 1.5  # the whole clean-up after an interrupt: the answer comes within 2 s
RESUME_VERSION = 1


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def stderr_progress(message: str, info: dict) -> None:
    emit(f"[progress] {message}")


def _silent(message: str, info: dict) -> None:
    pass


def progress_sink(progress):
    """``None``: lines on stderr; ``False``: nothing; a callable ``(message, info)``: called."""
    if progress is None or progress is True:
        return stderr_progress
    if progress is False:
        return _silent
    if not callable(progress):
        raise ConnectorError("invalid_input", "progress must be None, False or a callable (message, info)")
    return progress


class Step:
    def __init__(self, action: str = "", inputs: dict | None = None, *, progress=None, budget: float | None = None,
                 resume: dict | None = None, describe=None):
        self.action = action
        self.inputs = inputs or {}
        self._progress = progress_sink(progress)
        self.budget_end = time.monotonic() + max(0.0, float(budget)) if budget is not None else None
        self.describe = describe            # action key -> manifest item (labels and inputs of follow-ups)
        resume = resume or {}
        self.records: list = [dict(r) for r in resume.get("starts", [])]
        self.waits: list = [dict(w) for w in resume.get("waits", [])]
        self.started: dict = {}
        self.follow_up = None
        self.starting: str | None = None
        self._n_starts = 0
        self._n_waits = 0
        self._cancels: list = []
        self.resumed = bool(resume)

    # -- progress ----------------------------------------------------------------------------
    def progress(self, message: str, info: dict | None = None) -> None:
        info = dict(info or {})
        if self.started:
            info.setdefault("started", dict(self.started))
        try:
            self._progress(message, info)
        except (KeyboardInterrupt, ConnectorError):
            raise
        except Exception:   # a platform's progress callback must not fail the step
            pass

    # -- starting ----------------------------------------------------------------------------
    def start(self, name: str, fn, *, ids=None, follow_up=None):
        index = self._n_starts
        self._n_starts += 1
        if index < len(self.records):
            rec = self.records[index]
            if rec.get("name") != name:
                raise ConnectorError("invalid_input", f"The resume document does not match this step: it recorded "
                                     f"{rec.get('name')!r} where the step starts {name!r}",
                                     hint="Resume an operation with the document its own Pending gave.")
            result = rec.get("result")
        else:
            self.starting = name
            result = fn()
            self.starting = None
            self.records.append({"name": name, "result": result})
        found = ids(result) if callable(ids) else (ids or {})
        self.started.update({k: v for k, v in (found or {}).items() if v is not None})
        if follow_up is not None:
            self.follow_up = follow_up
        return result

    def on_cancel(self, what: str, fn) -> None:
        self._cancels.append((what, fn))

    def cancel(self, session, budget: float, *, reraise: bool = True) -> list:
        """Run every registered cancel, last first, all within ``budget`` seconds; each runs once.
        Returns what happened: [{"what", "ok", "note" | "error"}]."""
        out = []
        if not self._cancels:
            return out
        saved = session.deadline
        end = time.monotonic() + budget
        try:
            while self._cancels:
                what, fn = self._cancels.pop()
                session.deadline = end
                try:
                    note = fn()
                    out.append({"what": what, "ok": True, "note": note or f"Cancelled {what}."})
                except ConnectorError as exc:
                    out.append({"what": what, "ok": False,
                                "error": {"type": exc.type, "message": exc.message, "status": exc.status,
                                          "error_code": exc.error_code}})
                except KeyboardInterrupt as exc:      # interrupted while cleaning up: stop at once
                    out.append({"what": what, "ok": False, "error": {"type": "interrupted",
                                "message": "interrupted before the cancel finished"}})
                    out += [{"what": w, "ok": False, "error": {"type": "interrupted", "message": "not attempted"}}
                            for w, _ in reversed(self._cancels)]
                    self._cancels.clear()
                    exc.cancels = out        # the interrupt goes on (a timeout's clean-up was cut short)
                    if reraise:
                        raise
        finally:
            session.deadline = saved
        return out

    # -- waiting -----------------------------------------------------------------------------
    def wait(self, session, poll, *, what: str, timeout: float, interval: float | None = None,
             max_interval: float | None = None, on_timeout=None, follow_up=None):
        index = self._n_waits
        self._n_waits += 1
        if index < len(self.waits):
            record = self.waits[index]
        else:
            record = waiting.new_record(timeout, interval, max_interval)
            self.waits.append(record)
        saved = session.deadline

        def bound(end):
            session.deadline = saved if end is None else (end if saved is None else min(saved, end))

        def timed_out(state, waited):
            bound(None)
            cancels = self.cancel(session, CANCEL_SECONDS)
            message = f"Timed out after {waited:.0f}s waiting for {what}; it was still {state}."
            for c in cancels:
                message += " " + (c["note"] if c["ok"] else f"Cancelling {c['what']} failed: {c['error']['message']}")
            if on_timeout is not None:
                note = on_timeout()
                if note:
                    message += f" {note}"
            details = {"state": state, "waited_seconds": round(waited, 1)}
            if cancels:
                details["cancel"] = cancels
            return ConnectorError("timeout", message, details=details,
                                  hint=self.timeout_hint(state, cancels, follow_up))

        try:
            return waiting.run(poll, what=what, record=record, progress=self.progress, on_timeout=timed_out,
                               bound=bound, budget_end=self.budget_end)
        except waiting.PendingWait as p:
            raise Pending(self.resume_document(), retry_after=p.retry_after, state=p.state,
                          started=dict(self.started), what=what) from None
        finally:
            session.deadline = saved

    # -- hints -------------------------------------------------------------------------------
    def follow_up_text(self, follow_up=None) -> str | None:
        """"use Get Run with run_id 123" for the step's (or the given) follow-up action."""
        follow_up = follow_up or self.follow_up
        if not follow_up:
            return None
        key, extra = (follow_up, {}) if isinstance(follow_up, str) else follow_up
        values = {**self.started, **(extra or {})}
        label, keys = key, list(values)
        if self.describe is not None:
            try:
                item = self.describe(key)
                label = item["label"]
                keys = [i["key"] for i in item["inputs"] if i["key"] in values]
            except ConnectorError:
                pass
        parts = [f"{k} {values[k]}" for k in keys if values.get(k) is not None]
        return f"use {label}" + (f" with {_join(parts)}" if parts else "")

    def timeout_hint(self, state, cancels, follow_up=None) -> str:
        follow = self.follow_up_text(follow_up)
        if cancels and all(c["ok"] for c in cancels):
            return ("It was cancelled. Raise the timeout and run the step again"
                    + (f"; to see how far it got, {follow}." if follow else "."))
        if cancels:
            return ("Cancelling it failed (see details.cancel): " + (f"{follow} to check it, " if follow else "check it ")
                    + "and cancel it yourself if it is still running.")
        if follow:
            return f"It is still {state}: {follow} to follow it, or raise the timeout."
        return "Raise the timeout, or check the resource and wait again."

    def annotate(self, err: ConnectorError) -> ConnectorError:
        """Put the ids of what the step started, and the follow-up action, on an error."""
        if not self.started:
            return err
        err.details = {**(err.details or {}), "started": dict(self.started)}
        follow = self.follow_up_text()
        if follow and follow not in (err.hint or ""):
            ids = _join([f"{k} {v}" for k, v in self.started.items() if k != "run_page_url"])
            err.hint = ((err.hint or "").rstrip() + f" The step had started {ids}: {follow} to check it "
                        "before running the step again.").strip()
        return err

    # -- interrupts --------------------------------------------------------------------------
    def interrupted(self, session, exc: BaseException) -> Interrupted:
        """Cancel what a timeout would cancel, then the error to raise (a KeyboardInterrupt)."""
        cancels = getattr(exc, "cancels", None)          # a timeout's clean-up that this interrupt cut short
        if cancels is None:
            cancels = self.cancel(session, INTERRUPT_CANCEL_SECONDS, reraise=False) if session is not None else []
        message = "The step was interrupted"
        if self.action:
            message += f" ({self.action})"
        message += "."
        for c in cancels:
            message += " " + (c["note"] if c["ok"] else f"Cancelling {c['what']} failed: {c['error']['message']}")
        details = {}
        if cancels:
            details["cancel"] = cancels
        if self.starting:
            details["starting"] = self.starting
            message += f" It was interrupted while starting ({self.starting}): that request may have been applied."
        follow = self.follow_up_text()
        if follow:
            hint = ("What it started was cancelled; " if cancels and all(c["ok"] for c in cancels) else "")
            hint += f"{follow} to check what it started before running the step again."
        else:
            hint = "Run the step again when ready."
        err = ConnectorError("interrupted", message, hint=hint, details=details or None)
        self.annotate(err)
        return Interrupted(err, signal=getattr(exc, "signal", None))

    # -- resuming ----------------------------------------------------------------------------
    def resume_document(self) -> dict:
        doc = {"version": RESUME_VERSION, "action": self.action, "inputs": self.inputs, "started": dict(self.started),
               "starts": self.records, "waits": self.waits}
        try:
            return json.loads(json.dumps(doc, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ConnectorError("internal", f"The step of {self.action} cannot be resumed: its state is not JSON ({exc})",
                                 hint="This is a bug in the connector; please report it.") from None


def check_resume(doc) -> dict:
    """A resume document's shape, before anything runs (it may come back from a platform)."""
    problems = []
    if not isinstance(doc, dict):
        problems.append("must be the JSON object a Pending gave")
    else:
        if doc.get("version") != RESUME_VERSION:
            problems.append(f"version must be {RESUME_VERSION}")
        if not isinstance(doc.get("action"), str) or not doc.get("action"):
            problems.append("action must be an action key")
        if not isinstance(doc.get("inputs"), dict):
            problems.append("inputs must be an object")
        for key in ("starts", "waits"):
            value = doc.get(key)
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                problems.append(f"{key} must be a list of objects")
        for w in doc.get("waits") or []:
            if not isinstance(w, dict):
                continue
            fields = ("since", "deadline", "timeout", "delay", "cap", "polls")
            if not all(isinstance(w.get(f), (int, float)) and not isinstance(w.get(f), bool) for f in fields):
                problems.append("each wait needs numbers " + ", ".join(fields))
                break
    if problems:
        raise ConnectorError("invalid_input", "Not a resume document: " + "; ".join(problems),
                             hint="Pass the `resume` of the Pending that the call raised, unchanged.")
    return doc
