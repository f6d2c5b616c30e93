"""Host and token URL normalisation for every cloud, and the refusals that keep tokens home."""
import pytest

from databricks_connector import ConnectorError
from databricks_connector.connections import build
from databricks_connector.connections.environment import from_environment
from databricks_connector.connections.hosts import normalize_host, parse_token_url


@pytest.mark.parametrize("given,expected", [
    ("dbc-1234567890123456.cloud.databricks.com", "https://dbc-1234567890123456.cloud.databricks.com"),
    ("https://dbc-1234567890123456.cloud.databricks.com/", "https://dbc-1234567890123456.cloud.databricks.com"),
    ("HTTPS://ADB-123456789.12.AzureDatabricks.net", "https://adb-123456789.12.azuredatabricks.net"),
    ("1234567890.1.gcp.databricks.com:443", "https://1234567890.1.gcp.databricks.com"),
    ("  dbc-1.cloud.databricks.com  ", "https://dbc-1.cloud.databricks.com"),
    ("dbc-1.cloud.databricks.com:8443", "https://dbc-1.cloud.databricks.com:8443"),
    ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
    ("http://localhost:8765/", "http://localhost:8765"),
])
def test_hosts_are_normalised(given, expected):
    assert normalize_host(given) == expected


@pytest.mark.parametrize("given,why", [
    ("https://dbc-1.cloud.databricks.com/api/2.0", "without a path"),
    ("https://adb-1.2.azuredatabricks.net/?o=123", "without a path or query"),
    ("https://user:pw@dbc-1.cloud.databricks.com", "user name or password"),
    ("https://evil.com@dbc-1.cloud.databricks.com", "user name or password"),
    ("http://dbc-1.cloud.databricks.com", "must use https"),
    ("ftp://dbc-1.cloud.databricks.com", "must use https"),
    ("https://dbc-1.cloud.databrіcks.com", "non-ASCII"),  # Cyrillic і
    ("https://dbc 1.cloud.databricks.com", "spaces"),
    ("", "is empty"),
    ("https://exa_mple.com", "not a valid host"),
])
def test_unsafe_hosts_are_refused(given, why):
    with pytest.raises(ConnectorError) as exc:
        normalize_host(given)
    assert why in exc.value.message
    assert exc.value.type == "configuration"


def test_token_urls_workspace_and_account():
    assert parse_token_url("https://dbc-1.cloud.databricks.com/oidc/v1/token") == (
        "https://dbc-1.cloud.databricks.com/oidc/v1/token", "https://dbc-1.cloud.databricks.com", None)
    url, host, account = parse_token_url("https://accounts.cloud.databricks.com/oidc/accounts/abc-123/v1/token")
    assert host == "https://accounts.cloud.databricks.com" and account == "abc-123"
    for bad in ("https://dbc-REPLACE-ME.cloud.databricks.com/oidc/v1/token", "https://dbc-1.cloud.databricks.com/token",
                "http://dbc-1.cloud.databricks.com/oidc/v1/token"):
        with pytest.raises(ConnectorError):
            parse_token_url(bad)


def test_connection_repr_and_errors_hide_secrets():
    conn = build({"type": "service_principal", "token_url": "https://dbc-1.cloud.databricks.com/oidc/v1/token",
                  "client_id": "cid", "client_secret": "dose-very-secret"})
    assert "dose-very-secret" not in repr(conn) and "dose-very-secret" not in repr(conn.auth)
    pat = build({"type": "personal_access_token", "host": "dbc-1.cloud.databricks.com", "token": "dapi-secret-1"})
    assert "dapi-secret-1" not in repr(pat) and "dapi-secret-1" not in repr(pat.auth)
    with pytest.raises(ConnectorError) as exc:
        build({"type": "service_principal", "token_url": "https://dbc-1.cloud.databricks.com/oidc/v1/token",
               "client_id": "", "client_secret": ""})
    assert "Client ID and Service Principal Client Secret are empty" in exc.value.message


def test_environment_variables(tmp_path):
    env = {"DATABRICKS_HOST": "dbc-1.cloud.databricks.com", "DATABRICKS_TOKEN": "dapi1",
           "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    assert from_environment(env) == {"type": "personal_access_token", "host": "dbc-1.cloud.databricks.com", "token": "dapi1"}
    env = {"DATABRICKS_HOST": "https://dbc-1.cloud.databricks.com", "DATABRICKS_CLIENT_ID": "cid",
           "DATABRICKS_CLIENT_SECRET": "sec", "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    got = from_environment(env)
    assert got["type"] == "service_principal" and got["token_url"] == "https://dbc-1.cloud.databricks.com/oidc/v1/token"
    env = {"DATABRICKS_HOST": "accounts.cloud.databricks.com", "DATABRICKS_ACCOUNT_ID": "acc-1",
           "DATABRICKS_CLIENT_ID": "cid", "DATABRICKS_CLIENT_SECRET": "sec", "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")}
    assert from_environment(env)["token_url"] == "https://accounts.cloud.databricks.com/oidc/accounts/acc-1/v1/token"
    with pytest.raises(ConnectorError, match="More than one authorization method"):
        from_environment({"DATABRICKS_HOST": "h.cloud.databricks.com", "DATABRICKS_TOKEN": "t",
                          "DATABRICKS_CLIENT_ID": "c", "DATABRICKS_CLIENT_SECRET": "s",
                          "DATABRICKS_CONFIG_FILE": str(tmp_path / "none")})


def test_config_profiles(tmp_path):
    cfg = tmp_path / "databrickscfg"
    cfg.write_text("[DEFAULT]\nhost = https://dbc-default.cloud.databricks.com\ntoken = dapi-default\n\n"
                   "[sp]\nhost = https://dbc-sp.cloud.databricks.com\nclient_id = cid\nclient_secret = sec\n")
    env = {"DATABRICKS_CONFIG_FILE": str(cfg)}
    assert from_environment(env)["token"] == "dapi-default"
    env["DATABRICKS_CONFIG_PROFILE"] = "sp"
    assert from_environment(env)["token_url"] == "https://dbc-sp.cloud.databricks.com/oidc/v1/token"
    env["DATABRICKS_CONFIG_PROFILE"] = "missing"
    with pytest.raises(ConnectorError, match="Profile 'missing' is not in"):
        from_environment(env)
    assert from_environment({"DATABRICKS_CONFIG_FILE": str(tmp_path / "absent")}) is None


def test_tls_verification_is_on_and_a_ca_bundle_can_be_given(tmp_path):
    from databricks_connector.session import SharedSession

    base = {"type": "personal_access_token", "host": "dbc-1.cloud.databricks.com", "token": "dapi1"}
    assert SharedSession(build(base))._http.verify is True
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    assert SharedSession(build({**base, "ca_bundle": str(pem)}))._http.verify == str(pem)
    with pytest.raises(ConnectorError, match="CA Bundle"):
        build({**base, "ca_bundle": str(tmp_path / "missing.pem")})


def test_an_empty_token_url_hint_talks_about_the_token_url():
    """#13: the hint of an empty Token URL shows a token URL, not a host."""
    for value in ("", "   ", None):
        with pytest.raises(ConnectorError) as exc:
            build({"type": "service_principal", "token_url": value, "client_id": "c", "client_secret": "s"})
        assert exc.value.message == "Token URL is empty"
        assert "token URL" in exc.value.hint and "/oidc/v1/token" in exc.value.hint
    with pytest.raises(ConnectorError) as exc:
        build({"type": "personal_access_token", "host": "", "token": "dapi1"})
    assert "workspace host" in exc.value.hint and "/oidc/" not in exc.value.hint
