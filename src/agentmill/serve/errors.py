"""Every error the server returns has OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

400 bad request · 401 missing or bad key · 404 unknown model/session/route · 409 session busy ·
405 method not allowed (with Allow) · 413 body too large · 422 invalid fields (param = the
field, e.g. ``messages[0].role``; a field OpenAI has and we do not honour, `UNSUPPORTED`: 400) ·
429 rate limit (with Retry-After) · 500 internal (the traceback goes to the server log only) ·
503 the session store cannot take writes (disk full, read-only; with Retry-After; reads still work).
"""

from __future__ import annotations

import json
import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agentmill.errors import AgentmillError

log = logging.getLogger("agentmill.serve")
content_log = logging.getLogger("agentmill.serve.content")


def log_content(state, what: str, value) -> None:
    """With `log_content` set, one INFO line of what a client sent or an agent answered (debugging)."""
    if state.settings.log_content:
        content_log.info("%s %s", what, json.dumps(value, ensure_ascii=False, default=str)[:20_000])

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
          405: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or _TYPES.get(status, "invalid_request_error")
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def as_api_error(err: BaseException) -> ApiError:
    """Any exception as the error a client may see (internal ones without their details)."""
    if isinstance(err, ApiError):
        return err
    if isinstance(err, AgentmillError):
        from agentmill.media import MediaError
        from agentmill.store import SessionNotFound, StoreUnavailable

        if isinstance(err, MediaError):
            return ApiError(err.status, str(err), param=err.param, code=err.code)

        if isinstance(err, SessionNotFound):
            return ApiError(404, str(err), param="session_id", code="session_not_found")
        if isinstance(err, StoreUnavailable):  # the operator must act: say so in the log too
            log.error("%s", err)
            return ApiError(503, "the session store cannot save now (the server log says why): the request "
                            "stopped at the first step it could not save; reading sessions still works",
                            code="store_unavailable", headers={"Retry-After": "30"})
        return ApiError(400, str(err))
    log.error("internal error", exc_info=(type(err), err, err.__traceback__))
    return ApiError(500, "internal server error (see the server log)", code="internal_error")


# pydantic names the branch of a union in an error's location ("constrained-str", "list[str]"):
# not a field the client sent
_BRANCH = re.compile(r"^(str|int|float|bool|list|dict|none|[a-z]+-[a-z-]+|[\w-]+\[.*\])$")


def field_path(loc) -> str | None:
    parts = [p for p in loc if p not in ("body", "query", "path") and not (isinstance(p, str) and _BRANCH.match(p))]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or None


# fields OpenAI has and this server does not honour: asking for them is a 400 naming the field
UNSUPPORTED = {"logprobs": "this server does not return log probabilities: leave logprobs out or send false",
               "top_logprobs": "this server does not return log probabilities: leave top_logprobs out or send 0"}


def _validation(request: Request, err: RequestValidationError) -> JSONResponse:
    errors = err.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return ApiError(400, "the request body is not valid JSON", code="invalid_json").response()
    for e in errors:
        loc = [p for p in e.get("loc", ()) if p != "body"]
        if len(loc) >= 1 and loc[0] in UNSUPPORTED:
            return ApiError(400, f"{loc[0]}: {UNSUPPORTED[loc[0]]}", param=loc[0],
                            code="unsupported_parameter").response()
    # a union's branches each complain: the one the value was meant for does not say "wrong type"
    errors = sorted(errors, key=lambda e: str(e.get("type", "")).endswith("_type"))
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    param = field_path(first.get("loc", ()))
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more: " + "; ".join(
            f"{field_path(e.get('loc', ()))}: {e.get('msg')}" for e in errors[1:4]) + ")"
    return ApiError(422, message, param=param, code="invalid_value").response()


def allowed_methods(app, path: str) -> list[str]:
    """The methods /openapi.json documents for `path` (Starlette's 405 names only those of the
    first route that matched, and FastAPI makes one route per method)."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {m.upper() for m in operations}
    return sorted(methods)


def _http(request: Request, err: HTTPException) -> JSONResponse:
    message = err.detail if isinstance(err.detail, str) else json.dumps(err.detail)
    headers = dict(getattr(err, "headers", None) or {})
    if err.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    if err.status_code == 405:
        methods = allowed_methods(request.app, request.url.path) or headers.get("Allow", "").split(", ")
        headers["Allow"] = ", ".join(methods)
        message = f"{request.method} is not allowed on {request.url.path}: use {' or '.join(methods)}"
    return ApiError(err.status_code, message, headers=headers).response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, lambda request, err: err.response())
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(AgentmillError, lambda request, err: as_api_error(err).response())
    app.add_exception_handler(Exception, lambda request, err: as_api_error(err).response())


class BodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes` (declared length, or counted while read)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> ApiError:
        return ApiError(413, f"the request body is larger than {self.max_bytes} bytes", code="body_too_large")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large().response()(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._too_large().message)
            return message

        await self.app(scope, limited, send)
