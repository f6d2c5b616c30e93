"""Lakeflow Declarative Pipelines (Delta Live Tables) API 2.0: pipelines, updates, event logs."""
from __future__ import annotations

import datetime
from urllib.parse import quote

from ..errors import ConnectorError

API = "/api/2.0/pipelines"
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")
# inputs that map one to one onto PipelineSpec fields
SPEC_INPUTS = ("name", "catalog", "schema", "serverless", "continuous", "development", "configuration", "channel")


def _path(pipeline_id: str, suffix: str = "") -> str:
    return f"{API}/{quote(pipeline_id, safe='')}{suffix}"


# --------------------------------------------------------------------------- checks

def check_pipeline_settings(inputs) -> list:
    """What Create/Update Pipeline's schema cannot say about Settings."""
    problems = []
    settings = inputs.get("settings") or {}
    if "target" in settings and (inputs.get("schema") or settings.get("schema")):
        problems.append({"key": "settings", "label": "Settings",
                         "reason": "['target'] cannot be combined with Schema: give one (schema is the current name)"})
    libs = settings.get("libraries")
    if libs is not None and (not isinstance(libs, list) or not all(isinstance(x, dict) for x in libs)):
        problems.append({"key": "settings", "label": "Settings",
                         "reason": "['libraries'] must be a list of objects such as {\"notebook\": {\"path\": ...}}"})
    serverless = inputs.get("serverless", settings.get("serverless"))
    if serverless and settings.get("clusters"):
        problems.append({"key": "serverless", "label": "Serverless",
                         "reason": "cannot be combined with clusters in Settings (a serverless pipeline has no clusters)"})
    return problems


def check_start_update(inputs) -> list:
    if inputs.get("full_refresh") and (inputs.get("refresh_selection") or inputs.get("full_refresh_selection")):
        return [{"key": "full_refresh", "label": "Full Refresh",
                 "reason": "refreshes every table; it cannot be combined with Refresh Selection or Full Refresh "
                           "Selection (leave it off to refresh only a selection)"}]
    return []


# --------------------------------------------------------------------------- reads

def _status_filter(inputs):
    if inputs.get("name_contains"):
        text = inputs["name_contains"].replace("'", "''")
        return f"name LIKE '%{text}%'"
    return inputs.get("filter")


def list_pipelines(session, inputs):
    params = {"max_results": 100}
    flt = _status_filter(inputs)
    if flt:
        params["filter"] = flt
    found, truncated = session.paginate(API, items="statuses", params=params, max_items=inputs.get("max_items"),
                                        require=("pipeline_id",))
    return {"pipelines": found, "count": len(found), "truncated": truncated}


def get_pipeline(session, inputs):
    return _get(session, inputs["pipeline_id"])


def _get(session, pipeline_id):
    return session.get(_path(pipeline_id), require=("pipeline_id",))


def select_pipeline(session, inputs):
    found, _ = session.paginate(API, items="statuses", params={"max_results": 100}, require=("pipeline_id",))
    return [{"label": f"{p.get('name') or p['pipeline_id']} ({p.get('state', 'UNKNOWN')})", "value": p["pipeline_id"]}
            for p in found]


def _get_update(session, pipeline_id, update_id) -> dict:
    path = _path(pipeline_id, f"/updates/{quote(update_id, safe='')}")
    update = session.get(path).get("update")
    if not isinstance(update, dict) or not update.get("update_id"):
        raise ConnectorError("server_error", f"GET {path} answered without the update",
                             hint="The answer does not have the shape of Databricks' answer; run the step again.")
    return update


def get_pipeline_update(session, inputs):
    return _get_update(session, inputs["pipeline_id"], inputs["update_id"])


def list_pipeline_events(session, inputs):
    parts = []
    if inputs.get("filter"):
        parts.append(inputs["filter"])
    if inputs.get("levels"):
        parts.append("level in (" + ", ".join(f"'{lv}'" for lv in inputs["levels"]) + ")")
    if inputs.get("since"):
        parts.append(f"timestamp > '{inputs['since']}'")
    first = {"max_results": 100, "order_by": [f"timestamp {inputs.get('order', 'DESC').lower()}"]}
    if parts:
        first["filter"] = " AND ".join(parts)
    wanted = inputs.get("update_id")
    path = _path(inputs["pipeline_id"], "/events")

    def page(token):
        # a page token carries the filter and order: Databricks refuses them beside it
        return session.get(path, {"page_token": token, "max_results": 100} if token else first)

    if not wanted:
        events, truncated = session.pages(page, items="events", next_token=lambda p: p.get("next_page_token"),
                                          max_items=inputs.get("max_items"), require=("id",), what=path)
    else:
        # Databricks' filter has no update id: keep this update's events page by page, so Max Items
        # counts only them
        events, truncated = session.pages(lambda token: _only_update(page(token), wanted), items="events",
                                          next_token=lambda p: p.get("next_page_token"),
                                          max_items=inputs.get("max_items"), require=("id",), what=path)
    return {"events": events, "count": len(events), "truncated": truncated}


def _only_update(doc, update_id):
    if isinstance(doc, dict) and isinstance(doc.get("events"), list):
        doc = {**doc, "events": [e for e in doc["events"] if not isinstance(e, dict)
                                 or (e.get("origin") or {}).get("update_id") == update_id]}
    return doc


# --------------------------------------------------------------------------- create / update / delete

def _libraries(inputs):
    libs = None
    if inputs.get("notebook_paths") is not None:
        libs = [{"notebook": {"path": p}} for p in inputs["notebook_paths"]]
    if inputs.get("file_paths") is not None:
        libs = (libs or []) + [{"file": {"path": p}} for p in inputs["file_paths"]]
    return libs


def _settings(inputs, base: dict) -> dict:
    body = dict(base)
    body.update(inputs.get("settings") or {})
    for key in SPEC_INPUTS:
        if inputs.get(key) is not None:
            body[key] = inputs[key]
    if inputs.get("schema") is not None and "target" not in (inputs.get("settings") or {}):
        body.pop("target", None)        # schema is target's current name: the new one replaces it
    if inputs.get("allow_duplicate_names"):
        body["allow_duplicate_names"] = True
    return body


def create_pipeline(session, inputs):
    body = _settings(inputs, {})
    libs = _libraries(inputs)
    if libs is not None:
        body["libraries"] = (body.get("libraries") or []) + libs
    if "serverless" not in body and not body.get("clusters"):
        body["serverless"] = True
    created = session.start("create", lambda: session.post(API, body, require=("pipeline_id",)),
                            ids=lambda doc: {"pipeline_id": doc.get("pipeline_id")}, follow_up="get_pipeline")
    out = {"pipeline_id": created["pipeline_id"]}
    if isinstance(created.get("effective_settings"), dict):
        out["effective_settings"] = created["effective_settings"]
    return out


def update_pipeline(session, inputs):
    pid = inputs["pipeline_id"]
    current = _get(session, pid)
    spec = dict(current.get("spec") or {})
    body = _settings(inputs, spec)
    libs = _libraries(inputs)
    if libs is not None:
        kinds = {k for k, given in (("notebook", inputs.get("notebook_paths")), ("file", inputs.get("file_paths")))
                 if given is not None}
        kept = [lib for lib in body.get("libraries") or [] if not (isinstance(lib, dict) and kinds & set(lib))]
        body["libraries"] = kept + libs
    body["id"] = pid
    # a full replacement, safe to re-send (no expected_last_modified: a re-sent PUT that had been
    # applied would be refused as a conflict)
    session.start("update", lambda: session.request("PUT", _path(pid), json=body, idempotent=True),
                  ids={"pipeline_id": pid}, follow_up="get_pipeline")
    return _get(session, pid)


def delete_pipeline(session, inputs):
    pid = inputs["pipeline_id"]
    # not re-sent on an ambiguous failure: a repeat of an applied delete answers 404
    session.request("DELETE", _path(pid), idempotent=False)
    return {"pipeline_id": pid, "deleted": True}


# --------------------------------------------------------------------------- updates

def _error_messages(session, pipeline_id, update_id) -> list:
    """The messages of the update's ERROR events (best effort: the step fails either way)."""
    try:
        doc = session.get(_path(pipeline_id, "/events"), {"filter": "level='ERROR'", "max_results": 25})
    except ConnectorError:
        return []
    out = []
    for e in doc.get("events") or []:
        if not isinstance(e, dict) or (e.get("origin") or {}).get("update_id") not in (None, update_id):
            continue
        exceptions = (e.get("error") or {}).get("exceptions") or []
        text = "; ".join(x.get("message", "") for x in exceptions if isinstance(x, dict) and x.get("message"))
        out.append(text or e.get("message") or "")
    return [m for m in out if m]


def start_pipeline_update(session, inputs):
    pid = inputs["pipeline_id"]
    body = {}
    for key in ("full_refresh", "validate_only"):
        if inputs.get(key):
            body[key] = True
    for key in ("refresh_selection", "full_refresh_selection"):
        if inputs.get(key):
            body[key] = list(inputs[key])
    if inputs.get("parameters"):
        body["parameters"] = dict(inputs["parameters"])
    started = session.start("start_update", lambda: session.post(_path(pid, "/updates"), body, require=("update_id",)),
                            ids=lambda doc: {"pipeline_id": pid, "update_id": doc.get("update_id")},
                            follow_up="get_pipeline_update")
    uid = started["update_id"]
    if not inputs.get("wait_for_completion"):
        update = _get_update(session, pid, uid)
        return {"pipeline_id": pid, "update_id": uid, "state": update.get("state", "UNKNOWN"), "update": update}

    def poll():
        update = _get_update(session, pid, uid)
        state = update.get("state") or "UNKNOWN"
        return state in TERMINAL, update, state

    note = None
    if inputs.get("cancel_on_timeout", True):
        def cancel():
            session.post(_path(pid, "/stop"), {}, idempotent=True)
            return f"Stopped update {uid} of pipeline {pid}."
        session.on_cancel(f"update {uid}", cancel)
    else:
        def note():
            return f"Update {uid} is still running (not stopped)."
    update = session.wait(poll, what=f"update {uid} of pipeline {pid}", timeout=inputs["timeout_seconds"],
                          interval=inputs["poll_interval_seconds"], on_timeout=note, follow_up="get_pipeline_update")
    state = update.get("state")
    if state != "COMPLETED":
        errors = _error_messages(session, pid, uid) if state == "FAILED" else []
        message = f"Update {uid} of pipeline {pid} ended {state}" + (f": {errors[0]}" if errors else "")
        hint = ("See the pipeline's error events (List Pipeline Events with Levels ERROR) and fix its code or "
                "settings, then start an update again." if state == "FAILED"
                else "The update was stopped (Stop Pipeline, or by someone in the workspace); start an update again.")
        raise ConnectorError("operation_failed", message, hint=hint,
                             details={"pipeline_id": pid, "update_id": uid, "state": state, "errors": errors,
                                      "update": update})
    return {"pipeline_id": pid, "update_id": uid, "state": state, "update": update}


def stop_pipeline(session, inputs):
    pid = inputs["pipeline_id"]
    session.start("stop", lambda: session.post(_path(pid, "/stop"), {}, idempotent=True),
                  ids={"pipeline_id": pid}, follow_up="get_pipeline")
    if not inputs.get("wait_for_state"):
        return _get(session, pid)

    def poll():
        p = _get(session, pid)
        state = p.get("state") or "UNKNOWN"
        return state in ("IDLE", "FAILED"), p, state

    return session.wait(poll, what=f"pipeline {pid} to be IDLE", timeout=inputs["timeout_seconds"],
                        interval=inputs["poll_interval_seconds"], follow_up="get_pipeline")


# --------------------------------------------------------------------------- triggers (polling; see connector/triggers.py)

def _epoch_ms(text) -> int | None:
    """An event's ISO 8601 timestamp in epoch milliseconds (None when it is not one)."""
    if not isinstance(text, str):
        return None
    try:
        dt = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return int(round(dt.timestamp() * 1000))


def _iso(ms: int) -> str:
    dt = datetime.datetime.fromtimestamp(max(0, ms) / 1000, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _finished(e) -> str | None:
    """The end state an update_progress event reports, or None."""
    if not isinstance(e, dict) or e.get("event_type") != "update_progress":
        return None
    state = ((e.get("details") or {}).get("update_progress") or {}).get("state")
    return state if state in TERMINAL else None


def pipeline_update_finished(session, inputs, poll):
    """Each update that ended fires once. Per pipeline, the cursor is the time of the newest event
    read; each poll reads the event log oldest first from an overlap window behind it. Watching
    every pipeline, the list is read first and the pipelines are visited in turn, a poll cut off
    by its page cap continuing with the next pipeline on the next poll."""
    states = set(inputs.get("states") or TERMINAL)
    data = poll.data
    cursors = data.setdefault("pipelines", {})      # pipeline id -> time of the newest event read
    names = data.setdefault("names", {})
    single = inputs.get("pipeline_id")
    if single:
        names.setdefault(single, None)
    else:
        token = None
        while poll.page():
            page = session.get(API, {"max_results": 100, **({"page_token": token} if token else {})})
            for p in page.get("statuses") or []:
                if isinstance(p, dict) and p.get("pipeline_id"):
                    names[p["pipeline_id"]] = p.get("name")
            token = page.get("next_page_token")
            if not token:
                break
    order = sorted(names)
    resume = data.pop("resume_at", None)
    if resume in names:
        i = order.index(resume)
        order = order[i:] + order[:i]
    for pid in order:
        cursors.setdefault(pid, poll.since if poll.since is not None else poll.activated_at)
        last = cursors[pid]
        path = _path(pid, "/events")
        first = {"max_results": 100, "order_by": ["timestamp asc"],
                 "filter": f"timestamp >= '{_iso(cursors[pid] - poll.overlap_ms)}'"}
        token = None
        try:
            while True:
                if not poll.page():
                    data["resume_at"] = pid
                    break
                page = session.get(path, {"page_token": token, "max_results": 100} if token else first)
                for e in page.get("events") or []:
                    at = _epoch_ms(e.get("timestamp")) if isinstance(e, dict) else None
                    if at is None:
                        continue
                    last = max(last, at)
                    state = _finished(e)
                    uid = (e.get("origin") or {}).get("update_id")
                    if not state or not uid or state not in states or not poll.is_new(at):
                        continue
                    key = f"{pid}/{uid}/{state}"
                    if poll.is_seen(key):
                        continue
                    poll.emit(key, _finished_event(session, pid, names.get(pid), uid, state, at, e), at)
                token = page.get("next_page_token")
                if not token:
                    break
        except ConnectorError as exc:
            if single or exc.type != "not_found":
                raise
            cursors.pop(pid, None)                    # the pipeline was deleted
            names.pop(pid, None)
            continue
        cursors[pid] = last
        if "resume_at" in data:
            break
    floor = min(cursors.values(), default=0) - poll.overlap_ms
    return poll.result(floor=floor)


def _finished_event(session, pid, name, uid, state, at, e) -> dict:
    try:
        update = _get_update(session, pid, uid)
    except ConnectorError as exc:
        if exc.type != "not_found":
            raise
        update = None
    message = e.get("message")
    if state == "FAILED":
        errors = [x.get("message") for x in (e.get("error") or {}).get("exceptions") or []
                  if isinstance(x, dict) and x.get("message")]
        message = errors[0] if errors else message
    origin = e.get("origin") or {}
    return {"event_id": f"{pid}/{uid}/{state}", "pipeline_id": pid, "pipeline_name": name or origin.get("pipeline_name"),
            "update_id": uid, "state": state, "timestamp": at, "message": message, "update": update, "event": e}
