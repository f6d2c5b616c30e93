"""Workload identity federation: token exchange (RFC 8693) at the Databricks token endpoint, and an
OIDC issuer the emulator plays for tests.

``POST /oidc/v1/token`` with ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``,
``subject_token_type=urn:ietf:params:oauth:token-type:jwt`` and ``subject_token=<OIDC token>``
(``client_id`` names the service principal whose federation policy applies; without it an
account-wide policy maps the token's subject to a user) answers a Databricks access token when a
federation policy trusts the token: signature (RS256, a key of the issuer's JWKS), ``iss``
(``Config.federation_issuer`` unless the policy names another), ``aud`` (one of the policy's
audiences; the account id by default), ``sub`` (the policy's subject), ``exp``/``nbf``/``iat``.
Failures are OAuth errors with an ``error_description``.

The emulator is also that issuer: ``mint_oidc_token`` signs a token as a CI system or Kubernetes
would (its public keys at ``GET /oidc-issuer/jwks.json``), and ``token_file`` keeps a token in a
file that is rewritten before it expires, like a Kubernetes projected service-account token.
PyJWT (the ``[emulator]`` extra) signs and verifies.
"""
from __future__ import annotations

import math
import os
import secrets
import tempfile
import threading
import uuid

from .api import route
from .oauth import issue_access_token, oauth_error, store as oauth_store

JWT_TYPES = ("urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token")
DEFAULT_SUBJECT = "repo:example-org/data-pipelines:environment:production"


class Issuer:
    """The emulator's OIDC issuer: one trusted RS256 key, and an untrusted one for tests."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.keys = {"emulator-1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        self.untrusted = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict:
        import jwt

        keys = []
        for kid, key in self.keys.items():
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}


def issuer(state) -> Issuer:
    return state.area("oidc_issuer", Issuer)


CLOCK_SKEW = 5        # seconds of clock difference tolerated on iat and nbf (a token from a clock a little ahead)


def mint(state, subject: str = DEFAULT_SUBJECT, audience: str | None = None, issuer_url: str | None = None,
         lifetime: float | None = None, trusted: bool = True, **claims) -> str:
    """An OIDC token signed as the emulator's issuer (``trusted=False``: by a key it does not publish)."""
    import jwt

    iss = issuer(state)
    now = state.now()
    seconds = float(state.config.oidc_token_lifetime if lifetime is None else lifetime)
    payload = {"iss": issuer_url or state.config.federation_issuer, "sub": subject,
               "aud": audience or state.account_id, "iat": int(now), "nbf": int(now) - 1,
               "exp": math.ceil(now + seconds), "jti": secrets.token_hex(8), **claims}
    key = iss.keys["emulator-1"] if trusted else iss.untrusted
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "emulator-1"})


def policies(state) -> list:
    """The federation policies: {client_id (None: account-wide), issuer, audiences, subject}."""
    return state.area("federation_policies", list)


def add_policy(state, client_id: str | None, subject: str = DEFAULT_SUBJECT, audiences=None,
               issuer_url: str | None = None) -> dict:
    """A federation policy: tokens of ``issuer_url`` (default: ``Config.federation_issuer``) for
    ``subject`` and one of ``audiences`` (default: the account id) sign in as ``client_id``."""
    policy = {"client_id": client_id, "subject": subject, "audiences": list(audiences or [state.account_id]),
              "issuer": issuer_url}
    with state.lock:
        policies(state).append(policy)
    return policy


def exchange(req, form: dict):
    import jwt

    state = req.state
    subject_token = form.get("subject_token") or ""
    if form.get("subject_token_type") not in JWT_TYPES:
        return oauth_error(400, "invalid_request", "subject_token_type must be urn:ietf:params:oauth:token-type:jwt.")
    if not subject_token:
        return oauth_error(400, "invalid_request", "subject_token is missing.")
    client_id = form.get("client_id") or None
    if client_id is not None and client_id not in state.service_principals:
        return oauth_error(401, "invalid_client", f"Unknown service principal {client_id}.")
    iss = issuer(state)
    try:
        header = jwt.get_unverified_header(subject_token)
        key = iss.keys.get(header.get("kid", ""))
        if key is None:
            return oauth_error(400, "invalid_grant", "The token's signing key is not in the issuer's JWKS.")
        # the times are checked against the workspace's clock (which tests may move), not the host's
        claims = jwt.decode(subject_token, key.public_key(), algorithms=["RS256"],
                            options={"require": ["exp", "iat", "iss", "sub", "aud"], "verify_aud": False,
                                     "verify_exp": False, "verify_iat": False, "verify_nbf": False})
    except jwt.InvalidTokenError as exc:
        return oauth_error(400, "invalid_grant", f"The subject token is not valid: {exc}.")
    now = state.now()
    times = [claims.get(k) for k in ("exp", "iat", "nbf") if k in claims]
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in times):
        return oauth_error(400, "invalid_grant", "The subject token is not valid: exp, iat and nbf must be numbers.")
    if claims["exp"] <= now:
        return oauth_error(400, "invalid_grant", "The subject token has expired.")
    if max(claims["iat"], claims.get("nbf", 0)) > now + CLOCK_SKEW:
        return oauth_error(400, "invalid_grant", "The subject token is not valid: The token is not yet valid (iat/nbf).")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    with state.lock:
        candidates = [p for p in policies(state) if p["client_id"] == client_id]
    match = next((p for p in candidates
                  if claims["iss"] == (p["issuer"] or state.config.federation_issuer)
                  and claims["sub"] == p["subject"] and set(audiences) & set(p["audiences"])), None)
    if match is None:
        who = f"service principal {client_id}" if client_id else "the account"
        return oauth_error(400, "invalid_grant", f"No federation policy of {who} trusts a token with issuer "
                           f"{claims['iss']}, subject {claims['sub']} and audience {', '.join(audiences)}.")
    scopes = (form.get("scope") or "all-apis").split()
    principal = state.service_principals[client_id]["principal"] if client_id else state.add_user(claims["sub"])
    lifetime = float(state.config.federation_token_lifetime)
    token = "eyJ" + secrets.token_urlsafe(48)
    issue_access_token(state, token, principal, lifetime, scopes)
    with state.lock:
        oauth_store(state).issued["token_exchange"] += 1
    seconds = int(lifetime) if lifetime.is_integer() else lifetime
    return 200, {"access_token": token, "token_type": "Bearer", "expires_in": seconds, "scope": " ".join(scopes),
                 "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}, \
        {"Content-Type": "application/json", "Cache-Control": "no-store"}


class TokenFile:
    """A file holding a fresh OIDC token, rewritten (atomically) at half its lifetime, as the kubelet
    does for a projected service-account token."""

    def __init__(self, state, subject: str = DEFAULT_SUBJECT):
        self.state, self.subject = state, subject
        self.directory = tempfile.mkdtemp(prefix="databricks-emulator-oidc-")
        self.path = os.path.join(self.directory, "token")
        self.writes = 0
        self._stop = threading.Event()
        self.write()
        self._thread = threading.Thread(target=self._run, name="emulator-oidc-token-file", daemon=True)
        self._thread.start()
        state.on_close(self.close)

    def write(self) -> None:
        lifetime = float(self.state.config.oidc_token_lifetime)
        token = mint(self.state, self.subject, lifetime=lifetime)
        tmp = f"{self.path}.{uuid.uuid4().hex}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(token)
        os.replace(tmp, self.path)
        self.minted, self.lifetime = self.state.now(), lifetime
        self.writes += 1

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            # rewritten at half the token's life (sooner when the configured lifetime was shortened)
            due = self.minted + min(self.lifetime, float(self.state.config.oidc_token_lifetime)) / 2
            if self.state.now() >= due:
                try:
                    self.write()
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)


def token_file(state) -> TokenFile:
    return state.area("oidc_token_file", lambda: TokenFile(state))


@route("GET", r"/oidc-issuer/\.well-known/openid-configuration", auth=False)
def issuer_configuration(req):
    return {"issuer": req.state.config.federation_issuer, "jwks_uri": req.base_url + "/oidc-issuer/jwks.json",
            "id_token_signing_alg_values_supported": ["RS256"], "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"]}


@route("GET", r"/oidc-issuer/jwks\.json", auth=False)
def issuer_jwks(req):
    return issuer(req.state).jwks()
