"""The emulator's sign-in flows on the wire: the authorize endpoint and its consent, the code
exchange with PKCE, refresh-token rotation and revocation, the Microsoft Entra ID token endpoint,
workload identity federation, OAuth errors with error_description, short token lifetimes."""
import base64
import hashlib
import secrets
import urllib.parse

import pytest
import requests

ME = "/api/2.0/preview/scim/v2/Me"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT = "urn:ietf:params:oauth:token-type:jwt"


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def authorize_params(challenge, redirect="http://localhost:8020", client_id="databricks-cli", **extra):
    return {"response_type": "code", "client_id": client_id, "redirect_uri": redirect, "scope": "all-apis offline_access",
            "state": "st-123", "code_challenge": challenge, "code_challenge_method": "S256", **extra}


def code_from(location):
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    return {k: v[0] for k, v in query.items()}


def sign_in(emu, redirect="http://localhost:8020", client_id="databricks-cli"):
    """The browser step with auto-consent: (code, verifier)."""
    emu.config.oauth_auto_consent = True
    verifier, challenge = pkce()
    r = requests.get(emu.url + "/oidc/v1/authorize", params=authorize_params(challenge, redirect, client_id),
                     allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    answer = code_from(r.headers["Location"])
    assert answer["state"] == "st-123" and r.headers["Location"].startswith(redirect)
    return answer["code"], verifier


def token(emu, **form):
    return requests.post(emu.token_url, data=form, timeout=10)


def exchange(emu, code, verifier, redirect="http://localhost:8020", client_id="databricks-cli"):
    return token(emu, grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=redirect,
                 client_id=client_id)


def me(emu, access_token, **headers):
    return requests.get(emu.url + ME, headers={"Authorization": f"Bearer {access_token}", **headers}, timeout=10)


# --------------------------------------------------------------------------- authorize and consent

def test_the_consent_page_then_allow_or_deny(emu):
    verifier, challenge = pkce()
    params = authorize_params(challenge)
    page = requests.get(emu.url + "/oidc/v1/authorize", params=params, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "databricks-cli" in page.text and "all-apis offline_access" in page.text
    query = urllib.parse.urlencode(params)
    allow = requests.post(emu.url + "/oidc/v1/authorize", data={"_query": query, "user_name": "dana@example.com",
                                                               "decision": "allow"}, allow_redirects=False, timeout=10)
    assert allow.status_code == 302
    code = code_from(allow.headers["Location"])["code"]
    tok = exchange(emu, code, verifier).json()
    assert me(emu, tok["access_token"]).json()["userName"] == "dana@example.com"
    deny = requests.post(emu.url + "/oidc/v1/authorize", data={"_query": query, "decision": "deny"},
                         allow_redirects=False, timeout=10)
    answer = code_from(deny.headers["Location"])
    assert deny.status_code == 302 and answer["error"] == "access_denied" and answer["error_description"]
    assert answer["state"] == "st-123" and "code" not in answer


def test_unknown_clients_and_redirects_get_an_error_page_not_a_redirect(emu):
    _, challenge = pkce()
    for params in (authorize_params(challenge, client_id="nobody"),
                   authorize_params(challenge, redirect="https://evil.example/callback")):
        r = requests.get(emu.url + "/oidc/v1/authorize", params=params, allow_redirects=False, timeout=10)
        assert r.status_code in (400, 401) and "Location" not in r.headers and "error" in r.text.lower()
    app, _ = emu.add_oauth_app(["https://platform.example/cb"])
    emu.config.oauth_auto_consent = True
    ok = requests.get(emu.url + "/oidc/v1/authorize", params=authorize_params(challenge, "https://platform.example/cb", app),
                      allow_redirects=False, timeout=10)
    assert ok.status_code == 302 and ok.headers["Location"].startswith("https://platform.example/cb?code=")


def test_pkce_is_required_and_verified(emu):
    emu.config.oauth_auto_consent = True
    params = {k: v for k, v in authorize_params("x").items() if not k.startswith("code_challenge")}
    r = requests.get(emu.url + "/oidc/v1/authorize", params=params, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and code_from(r.headers["Location"])["error"] == "invalid_request"
    code, verifier = sign_in(emu)
    bad = exchange(emu, code, verifier + "x")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant" and bad.json()["error_description"]
    code, verifier = sign_in(emu)
    assert exchange(emu, code, verifier, redirect="http://localhost:9999").json()["error"] == "invalid_request"


def test_a_code_is_good_once_and_briefly(emu):
    code, verifier = sign_in(emu)
    first = exchange(emu, code, verifier)
    assert first.status_code == 200
    tok = first.json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 3600 and tok["refresh_token"].startswith("doau")
    assert set(tok["scope"].split()) == {"all-apis", "offline_access"}
    again = exchange(emu, code, verifier)
    assert again.status_code == 400 and "already used" in again.json()["error_description"]
    emu.config.authorization_code_lifetime = 1
    code, verifier = sign_in(emu)
    emu.state.clock.advance(2)
    late = exchange(emu, code, verifier)
    assert late.status_code == 400 and "expired" in late.json()["error_description"]


def test_a_confidential_app_must_authenticate(emu):
    app, secret = emu.add_oauth_app(["https://platform.example/cb"], confidential=True)
    code, verifier = sign_in(emu, "https://platform.example/cb", app)
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": "https://platform.example/cb", "client_id": app}
    no_secret = token(emu, **form)
    assert no_secret.status_code == 401 and no_secret.json()["error"] == "invalid_client"
    ok = requests.post(emu.token_url, data={k: v for k, v in form.items() if k != "client_id"}, auth=(app, secret), timeout=10)
    assert ok.status_code == 200, ok.text


# --------------------------------------------------------------------------- refresh, rotation, revocation

def test_refresh_rotates_and_retires_the_old_refresh_token(emu):
    code, verifier = sign_in(emu)
    first = exchange(emu, code, verifier).json()
    second = token(emu, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id="databricks-cli")
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"] and rotated["access_token"] != first["access_token"]
    reused = token(emu, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id="databricks-cli")
    assert reused.status_code == 400 and reused.json() == {
        "error": "invalid_grant", "error_description": "The refresh token was already used (it was rotated)."}
    assert me(emu, rotated["access_token"]).status_code == 200
    assert emu.token_grants == {"authorization_code": 1, "refresh_token": 1}


def test_without_rotation_the_refresh_token_stays(emu):
    emu.config.rotate_refresh_tokens = False
    doc = emu.user_login()
    again = token(emu, grant_type="refresh_token", refresh_token=doc["refresh_token"], client_id="databricks-cli").json()
    assert again["refresh_token"] == doc["refresh_token"]
    assert token(emu, grant_type="refresh_token", refresh_token=doc["refresh_token"],
                 client_id="databricks-cli").status_code == 200


def test_revocation_and_refresh_token_expiry(emu):
    doc = emu.user_login("erin@example.com")
    assert me(emu, doc["access_token"]).status_code == 200
    assert emu.revoke_user_tokens("erin@example.com") == 1
    assert me(emu, doc["access_token"]).status_code == 403
    r = token(emu, grant_type="refresh_token", refresh_token=doc["refresh_token"], client_id="databricks-cli")
    assert r.status_code == 400 and r.json()["error_description"] == "The refresh token has been revoked."
    emu.config.refresh_token_lifetime = 5
    doc = emu.user_login()
    emu.state.clock.advance(6)
    r = token(emu, grant_type="refresh_token", refresh_token=doc["refresh_token"], client_id="databricks-cli")
    assert r.status_code == 400 and "expired" in r.json()["error_description"]


def test_user_tokens_have_their_own_short_lifetime(emu):
    emu.config.user_token_lifetime = 1
    doc = emu.user_login()
    assert me(emu, doc["access_token"]).status_code == 200
    emu.state.clock.advance(1.5)
    assert me(emu, doc["access_token"]).status_code == 403
    refreshed = token(emu, grant_type="refresh_token", refresh_token=doc["refresh_token"], client_id="databricks-cli").json()
    assert refreshed["expires_in"] == 1 and me(emu, refreshed["access_token"]).status_code == 200


def test_every_oauth_error_has_a_description(emu):
    answers = [token(emu, grant_type="client_credentials"),
               token(emu, grant_type="refresh_token", refresh_token="doau-nope", client_id="databricks-cli"),
               token(emu, grant_type="authorization_code", code="nope", code_verifier="x" * 43,
                     redirect_uri="http://localhost:8020", client_id="databricks-cli"),
               token(emu, grant_type="password", username="a", password="b"),
               token(emu, grant_type=EXCHANGE, subject_token="x", subject_token_type=JWT)]
    for r in answers:
        assert r.status_code >= 400 and r.headers["Content-Type"].startswith("application/json")
        body = r.json()
        assert body["error"] and body["error_description"], body


# --------------------------------------------------------------------------- Microsoft Entra ID

def entra_token(emu, sp, version="v1", **form):
    path = f"/{sp['tenant_id']}/oauth2/token" if version == "v1" else f"/{sp['tenant_id']}/oauth2/v2.0/token"
    data = {"grant_type": "client_credentials", "client_id": sp["client_id"], "client_secret": sp["client_secret"]}
    data.update({"resource": "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"} if version == "v1"
                else {"scope": "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"})
    data.update(form)
    return requests.post(emu.url + path, data=data, timeout=10)


def test_entra_v1_and_v2_token_answers(emu):
    sp = emu.entra
    v1 = entra_token(emu, sp)
    assert v1.status_code == 200
    body = v1.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == "3599" and body["resource"].startswith("2ff814a6")
    claims = body["access_token"].split(".")[1]
    assert '"tid"' in base64.urlsafe_b64decode(claims + "==").decode()
    assert me(emu, body["access_token"]).json()["userName"] == sp["client_id"]
    v2 = entra_token(emu, sp, "v2").json()
    assert "resource" not in v2 and me(emu, v2["access_token"]).status_code == 200
    emu.config.entra_token_lifetime = 1
    short = entra_token(emu, sp).json()
    assert short["expires_in"] == "1"
    emu.state.clock.advance(1.5)
    assert me(emu, short["access_token"]).status_code == 403


def test_entra_errors_are_aadsts_errors(emu):
    sp = emu.entra
    wrong = entra_token(emu, sp, client_secret="nope")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.json()["error_description"].startswith("AADSTS7000215") and wrong.json()["error_codes"] == [7000215]
    assert entra_token(emu, {**sp, "tenant_id": "other-tenant"}).json()["error_description"].startswith("AADSTS90002")
    assert entra_token(emu, {**sp, "client_id": "unknown"}).json()["error"] == "unauthorized_client"
    assert entra_token(emu, sp, resource="https://graph.microsoft.com/").json()["error"] == "invalid_resource"


def test_an_entra_principal_outside_the_workspace_needs_the_management_headers(emu):
    sp = emu.add_entra_service_principal(workspace_user=False)
    access = entra_token(emu, sp).json()["access_token"]
    r = me(emu, access)
    assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    mgmt = entra_token(emu, sp, resource="https://management.core.windows.net/").json()["access_token"]
    assert me(emu, mgmt).status_code == 403                      # a management token is no workspace token
    wrong_resource = me(emu, access, **{"X-Databricks-Azure-SP-Management-Token": mgmt,
                                        "X-Databricks-Azure-Workspace-Resource-Id": "/subscriptions/x/resourceGroups/y/"
                                        "providers/Microsoft.Databricks/workspaces/z"})
    assert wrong_resource.status_code == 403
    ok = me(emu, access, **{"X-Databricks-Azure-SP-Management-Token": mgmt,
                            "X-Databricks-Azure-Workspace-Resource-Id": emu.azure_workspace_resource_id})
    assert ok.status_code == 200 and ok.json()["userName"] == sp["client_id"]
    assert me(emu, access).status_code == 200                    # a workspace user from now on


# --------------------------------------------------------------------------- workload identity federation

def federate(emu, subject_token, client_id=None):
    return token(emu, grant_type=EXCHANGE, subject_token=subject_token, subject_token_type=JWT, scope="all-apis",
                 client_id=client_id or emu.federation_client_id)


def test_a_trusted_oidc_token_is_exchanged(emu):
    r = federate(emu, emu.mint_oidc_token())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["issued_token_type"].endswith("access_token")
    assert me(emu, body["access_token"]).json()["userName"] == emu.federation_client_id
    assert emu.token_grants["token_exchange"] == 1


def test_the_issuers_jwks_verifies_its_tokens(emu):
    import jwt

    config = requests.get(emu.url + "/oidc-issuer/.well-known/openid-configuration", timeout=10).json()
    assert config["issuer"] == emu.config.federation_issuer
    keys = requests.get(config["jwks_uri"], timeout=10).json()["keys"]
    key = jwt.PyJWK(keys[0])
    claims = jwt.decode(emu.mint_oidc_token(), key.key, algorithms=["RS256"], audience=emu.account_id)
    assert claims["iss"] == emu.config.federation_issuer


@pytest.mark.parametrize("case", ["untrusted key", "expired", "other subject", "other audience", "other issuer"])
def test_an_untrusted_oidc_token_is_refused_with_a_reason(emu, case):
    token_ = {"untrusted key": lambda: emu.mint_oidc_token(trusted=False),
              "expired": lambda: emu.mint_oidc_token(lifetime=-5),
              "other subject": lambda: emu.mint_oidc_token(subject="repo:x/y:ref:refs/heads/dev"),
              "other audience": lambda: emu.mint_oidc_token(audience="https://elsewhere"),
              "other issuer": lambda: emu.mint_oidc_token(issuer_url="https://issuer.example")}[case]()
    r = federate(emu, token_)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant" and r.json()["error_description"]


def test_the_trusted_issuer_is_configurable(emu):
    minted_before = emu.mint_oidc_token()
    emu.config.federation_issuer = "https://token.actions.githubusercontent.com"
    assert federate(emu, minted_before).status_code == 400            # the old issuer is no longer trusted
    assert federate(emu, emu.mint_oidc_token()).status_code == 200


def test_an_account_wide_policy_maps_the_subject_to_a_user(emu):
    emu.add_federation_policy(None, subject="frank@example.com")
    r = token(emu, grant_type=EXCHANGE, subject_token=emu.mint_oidc_token("frank@example.com"), subject_token_type=JWT)
    assert r.status_code == 200 and me(emu, r.json()["access_token"]).json()["userName"] == "frank@example.com"


def test_the_projected_token_file_is_rewritten_before_it_expires(emu):
    import time

    emu.config.oidc_token_lifetime = 1
    path = emu.connections()["workload_identity_federation"]["oidc_token_filepath"]
    first = open(path).read()
    deadline = time.monotonic() + 10
    while open(path).read() == first and time.monotonic() < deadline:
        time.sleep(0.1)
    second = open(path).read()
    assert second != first and federate(emu, second).status_code == 200
