"""API keys: with any configured, every /v1 route needs ``Authorization: Bearer KEY`` (401 otherwise).

Checked by an ASGI middleware before anything else (body size, parsing), so a caller without a
key costs nothing. A digest of the key (or, without keys, the client's address) becomes
``request.state.caller``: the identity the per-key limits count and that owns the agent sessions
the key creates. The key itself is kept nowhere else (never stored, never logged).
/, /static and /health are public.
"""

from __future__ import annotations

import hashlib
import hmac

from agentmill.serve.errors import ApiError

PROTECTED = "/v1"


class RequireKey:
    def __init__(self, app, keys: list[str]):
        self.app, self.keys = app, [k.encode() for k in keys]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            caller = self.identify(scope)
        except ApiError as err:
            return await err.response()(scope, receive, send)
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    def identify(self, scope) -> str:
        if not self.keys:
            client = scope.get("client")
            return "addr:" + (client[0] if client else "unknown")
        path = scope.get("path", "")
        if not (path == PROTECTED or path.startswith(PROTECTED + "/")):
            return "public"
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if not header or scheme.lower() != "bearer" or not token:
            raise ApiError(401, "missing API key: send it as the header `Authorization: Bearer KEY`",
                           code="missing_api_key")
        if not any(hmac.compare_digest(token.encode(), k) for k in self.keys):
            raise ApiError(401, f"incorrect API key provided: {_masked(token)}", code="invalid_api_key")
        return key_identity(token)


def key_identity(token: str) -> str:
    """Who a key is, without the key: a session's owner in the store is this, never the key."""
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:24]


def owner_of(caller: str) -> str | None:
    """The owner a session created by `caller` gets: its key's identity; None without keys
    (a loopback server without keys is one user's, and every session is theirs)."""
    return caller if caller.startswith("key:") else None


def _masked(token: str) -> str:
    return token[:3] + "*" * max(0, len(token) - 7) + token[-4:] if len(token) > 8 else "*" * len(token)
