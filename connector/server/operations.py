"""Stateless operation tokens for the asynchronous 202 pattern.

A long step that passes the server's budget raises the runner's ``Pending``, whose ``resume``
(action key, resolved inputs, the ids already started, the step's deadline) is everything needed
to continue it: Databricks holds the state. The server answers ``202 Accepted`` with
``Location: /operations/{token}``, where the token is that ``resume``, signed:

    op1.<base64url(zlib(JSON payload))>.<base64url(HMAC-SHA256(secret, "op1." + body))>

The payload is ``{"r": resume, "b": binding, "exp": expiry, "iat": issued}``. ``binding`` is a
keyed digest of the caller's connection identity, so only the caller that started an operation
can follow it; ``exp`` bounds how long a token is honoured. Any server process that has the same
secret (``--token-secret-env``) can answer any token, and a restart loses nothing. The token is
signed, not encrypted: it never carries a secret (``issue`` refuses one that would), and its
size is bounded so it fits in a URL.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib

from ..errors import ConnectorError

PREFIX = "op1"
MAX_TOKEN = 6000        # characters: a Location URL stays well under the 8 KiB proxies accept


class TokenRefused(Exception):
    """The resume cannot travel in a token (too large, or it would carry a secret)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: bytes, ttl: float = 86400.0, clock=time.time):
        if len(secret) < 16:
            raise ConnectorError("configuration", "The operation-token secret must be at least 16 bytes")
        self._secret = secret
        self.ttl = ttl
        self.clock = clock

    def __repr__(self) -> str:
        return f"Signer(ttl={self.ttl}, secret=****)"

    def binding(self, identity: str) -> str:
        return _b64(hmac.new(self._secret, b"bind:" + identity.encode(), hashlib.sha256).digest()[:18])

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._secret, f"{PREFIX}.{body}".encode("ascii"), hashlib.sha256).digest())

    def issue(self, resume: dict, identity: str, secrets=()) -> str:
        text = json.dumps(resume, sort_keys=True, separators=(",", ":"), default=str)
        for value in secrets:
            if isinstance(value, str) and len(value) >= 4 and value in text:
                raise TokenRefused("the step's state holds a secret value")
        now = int(self.clock())
        payload = json.dumps({"r": resume, "b": self.binding(identity), "iat": now, "exp": now + int(self.ttl)},
                             sort_keys=True, separators=(",", ":"), default=str)
        body = _b64(zlib.compress(payload.encode("utf-8"), 9))
        token = f"{PREFIX}.{body}.{self._mac(body)}"
        if len(token) > MAX_TOKEN:
            raise TokenRefused(f"the step's state is {len(token)} characters, over the {MAX_TOKEN} a token carries")
        return token

    def open(self, token: str, identity: str) -> dict:
        """The ``resume`` of a valid token issued to this caller; one ``not_found`` error for any
        token that is malformed, forged, expired or another caller's (they are not told apart,
        except expiry, so a token cannot be probed)."""
        unknown = ConnectorError("not_found", "Unknown operation: the token is not valid on this server",
                                 hint="Use the Location URL of the latest 202 answer, with the same connection headers.")
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3 or parts[0] != PREFIX or len(token) > MAX_TOKEN:
            raise unknown
        body, mac = parts[1], parts[2]
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(body).encode("ascii")):
            raise unknown
        try:
            payload = json.loads(zlib.decompress(_unb64(body), bufsize=MAX_TOKEN * 4).decode("utf-8"))
            resume, binding, exp = payload["r"], payload["b"], payload["exp"]
        except (ValueError, KeyError, TypeError, zlib.error):
            raise unknown from None
        if not hmac.compare_digest(str(binding).encode(), self.binding(identity).encode()):
            raise unknown
        if not isinstance(exp, (int, float)) or self.clock() > exp:
            raise ConnectorError("not_found", "The operation token has expired",
                                 hint="Follow an operation at least once a day; look the resource up by its id instead.")
        if not isinstance(resume, dict):
            raise unknown
        return resume


def started_ids(resume: dict) -> dict:
    """The ids of what the step started, for the 202 body (the contract's ``resume`` carries them;
    its exact key is the runtime's, so the usual names are looked for)."""
    for key in ("started", "ids"):
        value = resume.get(key)
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}
    return {}
