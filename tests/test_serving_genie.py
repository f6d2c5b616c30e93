"""Model serving and Genie over real HTTP against the emulator: config updates waited for with the
one waiting mechanism (polls counted, failures classified), queries in every input format with
the format detected from the endpoint's OpenAPI document, and Genie's answers with their SQL and
rows read through the result streaming (several chunks), follow-ups, failures and no-wait mode."""
import uuid

import pytest

from databricks_connector.errors import ConnectorError, InputError

from tests.scenarios.genie import QUESTION, fast_genie, space
from tests.scenarios.serving import CHAT, EMBEDDINGS, endpoint, fast_serving

MODEL = "main.default.scenario_model"


def _count(emulator, since, method, path):
    return sum(1 for r in emulator.requests[since:] if r["method"] == method and r["path"] == path)


# --------------------------------------------------------------------------- serving

def test_create_waits_until_the_config_is_deployed(connector, conn, emulator):
    fast_serving(emulator, 0.6)
    name = f"ep-{uuid.uuid4().hex[:8]}"
    since = len(emulator.requests)
    out = connector.run("create_serving_endpoint", conn, {"name": name, "entity_name": MODEL, "entity_version": "1",
                                                          "wait_for_ready": True, "poll_interval_seconds": 0.1,
                                                          "timeout_seconds": 60})
    assert out["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"} and "pending_config" not in out
    assert out["config"]["served_entities"][0]["entity_name"] == MODEL
    assert _count(emulator, since, "POST", "/api/2.0/serving-endpoints") == 1
    assert _count(emulator, since, "GET", f"/api/2.0/serving-endpoints/{name}") >= 2      # it polled
    # without waiting the answer is the update in progress
    fast_serving(emulator, 30)
    pending = connector.run("update_serving_endpoint_config", conn, {"name": name, "entity_name": MODEL,
                                                                     "entity_version": "2"})
    assert pending["state"]["config_update"] == "IN_PROGRESS" and pending["pending_config"]["config_version"] == 2
    assert pending["config"]["config_version"] == 1                                     # still serving the old one
    with pytest.raises(ConnectorError) as err:                                         # one update at a time
        connector.run("update_serving_endpoint_config", conn, {"name": name, "entity_name": MODEL,
                                                               "entity_version": "3"})
    assert err.value.status == 409


def test_a_failed_update_fails_the_step_and_a_timeout_names_the_endpoint(connector, pat, emulator):
    name = endpoint(emulator, connector, pat)
    emulator.config.update({"serving_update_fail_next": True, "serving_update_seconds": 0.2})
    with pytest.raises(ConnectorError) as err:
        connector.run("update_serving_endpoint_config", pat, {"name": name, "entity_name": MODEL, "entity_version": "9",
                                                              "wait_for_ready": True, "poll_interval_seconds": 0.1})
    assert err.value.type == "operation_failed" and "UPDATE_FAILED" in err.value.message
    assert err.value.details["started"]["name"] == name
    kept = connector.run("get_serving_endpoint", pat, {"name": name})
    assert kept["config"]["served_entities"][0]["entity_version"] == "1"
    fast_serving(emulator, 60)
    with pytest.raises(ConnectorError) as err:
        connector.run("update_serving_endpoint_config", pat, {"name": name, "entity_name": MODEL, "entity_version": "2",
                                                              "wait_for_ready": True, "timeout_seconds": 1,
                                                              "poll_interval_seconds": 0.2})
    assert err.value.type == "timeout" and name in err.value.message


def test_query_detects_the_format_from_the_openapi_document(connector, conn, emulator):
    chat = connector.run("query_serving_endpoint", conn, {"name": CHAT, "text": "Is it raining?",
                                                          "system_prompt": "Be brief.", "max_tokens": 20})
    assert chat["input_format"] == "chat" and chat["choices"][0]["message"]["content"] == "You asked: Is it raining?"
    assert chat["served_model_name"] and chat["usage"]["total_tokens"] > 0
    emb = connector.run("query_serving_endpoint", conn, {"name": EMBEDDINGS, "input": ["red apple", "red apple pie",
                                                                                       "quantum field"]})
    assert emb["input_format"] == "embeddings" and len(emb["data"]) == 3
    a, b, c = (d["embedding"] for d in emb["data"])
    dot = lambda x, y: sum(p * q for p, q in zip(x, y))      # noqa: E731
    assert len(a) == emulator.config.serving_embedding_dimensions and dot(a, b) > dot(a, c)
    name = endpoint(emulator, connector, conn)
    since = len(emulator.requests)
    records = connector.run("query_serving_endpoint", conn, {"name": name, "input": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]})
    assert records["input_format"] == "dataframe_records" and records["predictions"] == [3.0, 7.0]
    assert _count(emulator, since, "GET", f"/api/2.0/serving-endpoints/{name}/openapi") == 1
    split = connector.run("query_serving_endpoint", conn, {"name": name, "input": {"columns": ["x"], "data": [[5], [6]]}})
    assert split["input_format"] == "dataframe_split" and split["predictions"] == [5.0, 6.0]
    since = len(emulator.requests)
    chosen = connector.run("query_serving_endpoint", conn, {"name": name, "input": [[1, 1], [2, 2]],
                                                            "input_format": "instances"})
    assert chosen["predictions"] == [2.0, 4.0]
    assert _count(emulator, since, "GET", f"/api/2.0/serving-endpoints/{name}/openapi") == 0    # told: no detection


def test_query_input_that_does_not_fit_the_endpoint_is_an_input_error(connector, pat, emulator):
    name = endpoint(emulator, connector, pat)
    since = len(emulator.requests)
    with pytest.raises(InputError) as err:
        connector.run("query_serving_endpoint", pat, {"name": name, "text": "hello", "input_format": "dataframe_records"})
    assert err.value.problems[0]["key"] == "text"
    with pytest.raises(InputError):
        connector.run("query_serving_endpoint", pat, {"name": CHAT, "input": [{"x": 1}], "input_format": "chat"})
    assert not [r for r in emulator.requests[since:] if "/invocations" in r["path"]]
    with pytest.raises(InputError) as err:     # detected: the model takes rows, not a question
        connector.run("query_serving_endpoint", pat, {"name": name, "text": "hello"})
    assert "takes" in err.value.problems[0]["reason"]
    assert not [r for r in emulator.requests[since:] if "/invocations" in r["path"]]


def test_list_pick_and_delete_endpoints(connector, conn, emulator):
    name = endpoint(emulator, connector, conn)
    listed = connector.run("list_serving_endpoints", conn, {})
    assert {CHAT, EMBEDDINGS, name} <= {e["name"] for e in listed["endpoints"]}
    assert {"label": f"{name} (READY)", "value": name} in connector.pick("select_serving_endpoint", conn, {})
    assert connector.run("delete_serving_endpoint", conn, {"name": name}) == {"name": name, "deleted": True}
    with pytest.raises(ConnectorError) as err:
        connector.run("get_serving_endpoint", conn, {"name": name})
    assert err.value.type == "not_found"


# --------------------------------------------------------------------------- Genie

def test_ask_genie_returns_text_sql_and_every_chunk_of_rows(connector, conn, emulator):
    fast_genie(emulator)
    emulator.config.update({"statement_chunk_max_rows": 2})
    sid = space(connector, conn)
    since = len(emulator.requests)
    out = connector.run("ask_genie", conn, {"space_id": sid, "question": "What are the longest trips?",
                                            "poll_interval_seconds": 0.1, "timeout_seconds": 60})
    assert out["status"] == "COMPLETED" and out["sql"].startswith("SELECT trip_distance")
    assert out["row_count"] == 5 and len(out["rows"]) == 5 and out["truncated"] is False
    distances = [r["trip_distance"] for r in out["rows"]]
    assert distances == sorted(distances, reverse=True)
    assert "5 rows" in out["text"] and out["attachment_id"] and out["statement_id"]
    chunks = [r for r in emulator.requests[since:] if f"/api/2.0/sql/statements/{out['statement_id']}/result/chunks/"
              in r["path"]]
    assert len(chunks) == 2                                  # chunks 1 and 2 after the first, in the query result
    polls = [r for r in emulator.requests[since:] if r["method"] == "GET" and r["path"].endswith(out["message_id"])]
    assert len(polls) >= 2
    capped = connector.run("get_genie_query_result", conn, {k: out[k] for k in ("space_id", "conversation_id",
                                                                                 "message_id")} | {"max_rows": 3})
    assert capped["row_count"] == 3 and capped["truncated"] is True and capped["truncated_by"] == "max_rows"


def test_follow_up_text_only_answer_and_no_wait(connector, pat, emulator):
    fast_genie(emulator)
    sid = space(connector, pat)
    started = connector.run("ask_genie", pat, {"space_id": sid, "question": "hello", "wait_for_answer": False})
    assert started["status"] == "SUBMITTED" and started["message"]["content"] == "hello"
    with pytest.raises(ConnectorError) as err:          # the conversation is still answering
        connector.run("ask_genie_follow_up", pat, {"space_id": sid, "conversation_id": started["conversation_id"],
                                                   "question": QUESTION, "wait_for_answer": False})
    assert err.value.status == 400
    ids = {k: started[k] for k in ("space_id", "conversation_id", "message_id")}
    for _ in range(200):                                  # polled by count, not by time
        msg = connector.run("get_genie_message", pat, ids)
        if msg["status"] == "COMPLETED":
            break
    assert msg["status"] == "COMPLETED" and "query" not in str(msg["attachments"])
    with pytest.raises(ConnectorError) as err:
        connector.run("get_genie_query_result", pat, ids)
    assert err.value.type == "not_found"
    follow = connector.run("ask_genie_follow_up", pat, {"space_id": sid, "conversation_id": started["conversation_id"],
                                                        "question": QUESTION, "poll_interval_seconds": 0.1})
    assert follow["conversation_id"] == started["conversation_id"] and follow["rows"] == [{"trips": 200}]


def test_genie_failures_are_classified(connector, pat, emulator):
    fast_genie(emulator)
    sid = space(connector, pat)
    emulator.config.update({"genie_fail_next": True})
    with pytest.raises(ConnectorError) as err:
        connector.run("ask_genie", pat, {"space_id": sid, "question": QUESTION, "poll_interval_seconds": 0.1})
    assert err.value.type == "operation_failed" and err.value.details["status"] == "FAILED"
    assert err.value.details["started"]["message_id"]
    emulator.config.update({"genie_questions": {"(?i)broken": "SELECT no_such_column FROM samples.nyctaxi.trips"}})
    with pytest.raises(ConnectorError) as err:
        connector.run("ask_genie", pat, {"space_id": sid, "question": "a broken one", "poll_interval_seconds": 0.1})
    assert err.value.type == "operation_failed" and "no_such_column" in err.value.message
    with pytest.raises(ConnectorError) as err:
        connector.run("ask_genie", pat, {"space_id": "0" * 32, "question": QUESTION})
    assert err.value.type == "not_found"
