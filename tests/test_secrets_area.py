"""Secrets over real HTTP against the emulator: scopes and secrets made, listed and deleted, and a
secret's value never in an output, a debug log, an error or the spec (it is masked by value while
the call runs, even when a proxy echoes it back in an error)."""
import json

import pytest

from databricks_connector.emulator.secrets import secret_value
from databricks_connector.errors import ConnectorError
from tests.tamper import TamperProxy

VALUE = "pa55-w0rd-that-never-shows"


def test_a_secret_is_stored_listed_and_deleted_without_its_value_showing(emulator, connector, conn, capsys):
    scope = f"t-{conn['type']}"
    connector.run("create_secret_scope", conn, {"scope": scope})
    with pytest.raises(ConnectorError) as exc:
        connector.run("create_secret_scope", conn, {"scope": scope})
    assert exc.value.error_code == "RESOURCE_ALREADY_EXISTS"
    out = connector.run("put_secret", conn, {"scope": scope, "key": "db", "value": VALUE, "debug": True})
    assert out == {"scope": scope, "key": "db", "stored": True}
    assert secret_value(emulator.state, scope, "db") == VALUE.encode()
    listed = connector.run("list_secrets", conn, {"scope": scope})
    assert [s["key"] for s in listed["secrets"]] == ["db"] and listed["secrets"][0]["last_updated_timestamp"]
    assert any(s["name"] == scope for s in connector.run("list_secret_scopes", conn, {})["scopes"])
    connector.run("delete_secret", conn, {"scope": scope, "key": "db"})
    assert connector.run("list_secrets", conn, {"scope": scope})["count"] == 0
    connector.run("delete_secret_scope", conn, {"scope": scope})
    captured = capsys.readouterr()
    assert "[databricks] POST" in captured.err, "the debug log was written"
    assert VALUE not in captured.err + captured.out + json.dumps(out) + json.dumps(listed)


def test_a_value_echoed_in_an_error_is_masked(emulator, connector, pat, capsys):
    with TamperProxy(emulator.url, ca_bundle=pat.get("ca_bundle")) as proxy:
        def echo(answer):
            answer.status = 400
            answer.body = json.dumps({"error_code": "INVALID_PARAMETER_VALUE",
                                      "message": f"bad value {VALUE} for key"}).encode()
        proxy.on(r"/api/2\.0/secrets/put", echo, method="POST")
        connector.run("create_secret_scope", pat, {"scope": "echo"})
        with pytest.raises(ConnectorError) as exc:
            connector.run("put_secret", proxy.connection(pat), {"scope": "echo", "key": "k", "value": VALUE, "debug": True})
    err = exc.value
    text = json.dumps({"m": err.message, "h": err.hint, "d": err.details}, default=str) + repr(err) + str(err)
    assert VALUE not in text and "****" in err.message
    captured = capsys.readouterr()
    assert VALUE not in captured.err + captured.out


def test_the_value_is_a_secret_in_the_spec(connector):
    action = next(a for a in connector.spec()["actions"] if a["key"] == "put_secret")
    assert action["input_schema"]["properties"]["value"].get("x-secret") is True
    assert not any(a["key"] in ("get_secret", "get_secret_value") for a in connector.spec()["actions"])
