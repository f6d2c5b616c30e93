"""The options newer tools set, over real HTTP against the emulator: query_tags on Execute SQL;
typed trigger, webhook/e-mail notifications and performance target on Create/Update Job."""
import json

import pytest
import requests

from databricks_connector.errors import ConnectorError

from .scenarios import seed_warehouse

TRIGGER = {"table_update": {"table_names": ["main.sales.orders"], "condition": "ANY_UPDATED"}, "pause_status": "UNPAUSED"}
HOOKS = {"on_failure": [{"id": "0481e838-0a59-4eff-9541-a4ca6f149574"}], "on_success": [{"id": "d1"}]}
MAILS = {"on_failure": ["ops@example.com"], "no_alert_for_skipped_runs": True}


def _posts(emulator, since, path):
    return [json.loads(r["raw"]) for r in emulator.requests[since:] if r["method"] == "POST" and r["path"] == path]


def test_query_tags_go_with_the_statement(connector, conn, emulator):
    wid = seed_warehouse(emulator, "RUNNING")
    since = len(emulator.requests)
    out = connector.run("execute_sql_statement", conn, {"warehouse_id": wid, "statement": "SELECT 1 AS one",
                                                        "query_tags": {"team": "finance", "adhoc": ""}})
    assert out["status"]["state"] == "SUCCEEDED"
    (body,) = _posts(emulator, since, "/api/2.0/sql/statements")
    assert body["query_tags"] == [{"key": "team", "value": "finance"}, {"key": "adhoc"}]
    # the emulator refuses a wrong shape, as Databricks would
    r = requests.post(f"{emulator.url}/api/2.0/sql/statements", headers={"Authorization": f"Bearer {emulator.pat}"},
                      json={"warehouse_id": wid, "statement": "SELECT 1", "query_tags": {"team": "x"}},
                      verify=conn.get("ca_bundle") or True)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_create_and_update_job_with_typed_settings(connector, conn, emulator):
    since = len(emulator.requests)
    job_id = connector.run("create_job", conn, {"name": f"typed-{conn['type']}", "trigger": TRIGGER,
                                                "webhook_notifications": HOOKS, "email_notifications": MAILS,
                                                "performance_target": "STANDARD"})["job_id"]
    (sent,) = _posts(emulator, since, "/api/2.2/jobs/create")
    assert sent["trigger"] == TRIGGER and sent["webhook_notifications"] == HOOKS
    assert sent["email_notifications"] == MAILS and sent["performance_target"] == "STANDARD"
    settings = connector.run("get_job", conn, {"job_id": job_id})["settings"]
    assert settings["trigger"] == TRIGGER and settings["webhook_notifications"] == HOOKS
    assert settings["email_notifications"] == MAILS

    periodic = {"periodic": {"interval": 2, "unit": "HOURS"}}
    connector.run("update_job", conn, {"job_id": job_id, "trigger": periodic, "performance_target": "PERFORMANCE_OPTIMIZED"})
    settings = connector.run("get_job", conn, {"job_id": job_id})["settings"]
    assert settings["trigger"] == periodic and settings["performance_target"] == "PERFORMANCE_OPTIMIZED"
    assert settings["email_notifications"] == MAILS            # what was not given is kept


def test_bad_typed_settings_are_refused_before_any_request(connector, pat, emulator):
    since = len(emulator.requests)
    with pytest.raises(ConnectorError) as err:
        connector.run("create_job", pat, {"name": "bad", "trigger": {"periodic": {"interval": 1, "unit": "HOURS"},
                                                                     "file_arrival": {"url": "/Volumes/a/b/c/"}},
                                          "webhook_notifications": {"on_failure": [{"id": "x"}] * 4},
                                          "email_notifications": {"on_failure": ["not-an-address"]},
                                          "performance_target": "FAST"})
    e = err.value
    assert e.type == "invalid_input"
    for label in ("Trigger", "Webhook Notifications", "Email Notifications", "Performance Target"):
        assert label in e.message, (label, e.message)
    assert not [r for r in emulator.requests[since:] if r["path"].startswith("/api/2.2/jobs")]
