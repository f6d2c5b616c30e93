import base64

import requests

ME = "/api/2.0/preview/scim/v2/Me"


def _token(emu, **kw):
    return requests.post(emu.token_url, timeout=10, **kw)


def test_missing_or_other_scheme_is_401(emu):
    r = requests.get(emu.url + ME)
    assert r.status_code == 401
    assert r.json() == {"error_code": 401, "message":
                        "Credential was not sent or was of an unsupported type for this API."}
    r = requests.get(emu.url + ME, auth=("user", "pw"))
    assert r.status_code == 401


def test_wrong_token_is_403_with_reason_phrase(emu):
    r = requests.get(emu.url + ME, headers={"Authorization": "Bearer dapi0000"})
    assert r.status_code == 403
    assert r.json() == {"error_code": 403, "message": "Invalid access token."}
    assert r.headers["X-Databricks-Reason-Phrase"] == "Invalid access token."


def test_pat_and_scim_me(emu, api, api_for):
    assert emu.pat.startswith("dapi") and len(emu.pat) == 36
    r = api.get(ME)
    assert r.status_code == 200
    me = r.json()
    assert me["userName"] == "emulator-user@example.com"
    assert me["active"] is True and me["emails"][0]["value"] == me["userName"]
    assert "urn:ietf:params:scim:schemas:core:2.0:User" in me["schemas"]
    assert {"value": "allow-cluster-create"} in me["entitlements"]
    assert r.headers["X-Databricks-Org-Id"] == emu.workspace_id
    other = emu.add_pat(user="someone.else@example.com")
    assert api_for(other).get(ME).json()["userName"] == "someone.else@example.com"
    emu.revoke_pat(other)
    assert api_for(other).get(ME).status_code == 403


def test_scim_attribute_filters(api):
    me = api.get(ME, attributes="userName").json()
    assert set(me) == {"id", "schemas", "userName"}
    me = api.get(ME, excludedAttributes="groups,entitlements").json()
    assert "groups" not in me and "userName" in me


def test_oauth_basic_auth(emu, api_for):
    r = _token(emu, auth=(emu.client_id, emu.client_secret),
               data={"grant_type": "client_credentials", "scope": "all-apis"})
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 3600 and tok["scope"] == "all-apis"
    assert emu.token_fetches == 1
    me = api_for(tok["access_token"]).get(ME).json()
    assert me["userName"] == emu.client_id
    assert me["displayName"] == "emulator-service-principal"
    assert emu.client_secret.startswith("dose")


def test_oauth_form_auth_default_scope_and_account_endpoint(emu):
    r = _token(emu, data={"grant_type": "client_credentials", "client_id": emu.client_id,
                          "client_secret": emu.client_secret})
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "all-apis"
    r = requests.post(emu.account_token_url, auth=(emu.client_id, emu.client_secret),
                      data={"grant_type": "client_credentials", "scope": "all-apis sql"})
    assert r.status_code == 200, r.text
    assert set(r.json()["scope"].split()) == {"all-apis", "sql"}
    assert emu.token_fetches == 2
    r = requests.post(emu.url + "/oidc/accounts/nope/v1/token", auth=(emu.client_id, emu.client_secret),
                      data={"grant_type": "client_credentials"})
    assert r.status_code == 400


def test_oauth_errors_are_json(emu):
    r = _token(emu, auth=(emu.client_id, "wrong"), data={"grant_type": "client_credentials"})
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"] == "invalid_client"
    r = _token(emu, data={"grant_type": "client_credentials"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = _token(emu, auth=(emu.client_id, emu.client_secret),
               data={"grant_type": "client_credentials", "scope": "all-apis bogus"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = _token(emu, auth=(emu.client_id, emu.client_secret), data={"grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    assert emu.token_fetches == 0


def test_oauth_token_expires(emu, api_for):
    emu.config.token_lifetime = 1
    tok = _token(emu, auth=(emu.client_id, emu.client_secret),
                 data={"grant_type": "client_credentials"}).json()
    assert tok["expires_in"] == 1
    client = api_for(tok["access_token"])
    assert client.get(ME).status_code == 200
    emu.state.clock.advance(1.5)
    r = client.get(ME)
    assert r.status_code == 403 and r.json()["message"] == "Invalid access token."
    # PATs do not expire
    assert api_for().get(ME).status_code == 200


def test_expire_tokens_hook(emu, api_for):
    tok = _token(emu, auth=(emu.client_id, emu.client_secret),
                 data={"grant_type": "client_credentials"}).json()["access_token"]
    emu.expire_tokens()
    assert api_for(tok).get(ME).status_code == 403


def test_discovery_documents(emu):
    r = requests.get(emu.url + "/.well-known/databricks-config")
    assert r.status_code == 200
    meta = r.json()
    assert meta["oidc_endpoint"] == emu.url + "/oidc"
    assert meta["workspace_id"] == emu.workspace_id and meta["account_id"] == emu.account_id
    d = requests.get(meta["oidc_endpoint"] + "/.well-known/oauth-authorization-server").json()
    assert d["token_endpoint"] == emu.token_url
    d = requests.get(f"{emu.url}/oidc/accounts/{emu.account_id}/.well-known/oauth-authorization-server").json()
    assert d["token_endpoint"] == emu.account_token_url


def test_unknown_endpoint_and_malformed_body(emu, api):
    r = api.get("/api/2.0/no/such/thing")
    assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert requests.get(emu.url + "/api/2.0/no/such/thing").status_code == 401
    r = api.s.post(emu.url + "/api/2.1/clusters/create", data=b"{not json",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error_code"] == "MALFORMED_REQUEST"


def test_basic_header_is_decoded_with_base64(emu):
    cred = base64.b64encode(f"{emu.client_id}:{emu.client_secret}".encode()).decode()
    r = requests.post(emu.token_url, headers={"Authorization": "Basic " + cred},
                      data="grant_type=client_credentials&scope=all-apis",
                      )
    # requests sends str data without a form content type; oauthlib still parses the body
    assert r.status_code == 200, r.text
