"""What the server promises in `/openapi.json`: every error a route can return, with OpenAI's
error body, and what is fixed only once a run is loaded: the model and task names, the
max_tokens cap, the body limit, the API key. A fuzzer (tests/test_contract.py, `make fuzz`)
holds the server to it."""

from __future__ import annotations

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error body: what every status >= 400 carries."""

    error: ErrorDetail


WHY = {400: "The request cannot be served as sent (the message says why; `param` names the field).",
       401: "A missing or wrong API key (only where the server has keys).",
       404: "No such model, session, stored file or route.",
       409: "The session is still answering another message.",
       413: "The body is larger than the server allows.",
       422: "A field is missing or invalid (`param` names it).",
       429: "Too many requests, or the server is busy: retry after `Retry-After` seconds.",
       500: "An internal error (the server log has the details).",
       503: "The session store cannot take writes (disk full, read-only): the request stopped at the "
            "first step it could not save; reads still work; retry after `Retry-After` seconds."}


def errors(*statuses: int) -> dict:
    """FastAPI `responses` for these statuses, each with the error body."""
    return {status: {"model": ErrorBody, "description": WHY[status]} for status in statuses}


# what every /v1 route can answer: a key problem, a body over the limit, an invalid field, a bug
EVERY_V1_ROUTE = errors(401, 413, 422, 500)
# a server-sent event (chat, completions and agent turns with `stream`): `data` is JSON or [DONE]
SSE = {"text/event-stream": {"schema": {"type": "object", "properties": {
    "event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}}}}}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}


def _property(schema: dict, model: str, field: str) -> dict | None:
    return schema.get("components", {}).get("schemas", {}).get(model, {}).get("properties", {}).get(field)


def _run_facts(schema: dict, state) -> None:
    models = list(dict.fromkeys([*state.catalog.names(), "base"]))
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        if (prop := _property(schema, name, "model")) is not None:
            prop["enum"] = models
        for field in ("max_tokens", "max_completion_tokens"):
            if (prop := _property(schema, name, field)) is not None:
                for option in prop.get("anyOf", [prop]):
                    if option.get("type") == "integer":
                        option["maximum"] = state.settings.max_tokens_cap
    if (prop := _property(schema, "AgentMessage", "task")) is not None:
        prop["enum"] = list(dict.fromkeys(["auto", "base", *state.run.chat_tasks()]))
    from agentmill.media.voice import VOICES
    from agentmill.serve.audio_routes import SPEECH_MODELS

    if (prop := _property(schema, "SpeechRequest", "model")) is not None:
        prop["enum"] = list(SPEECH_MODELS)
    if (prop := _property(schema, "SpeechRequest", "voice")) is not None:
        prop["enum"] = list(VOICES)  # espeak-ng's own names ("en-gb", "en-us+f3") are taken too
    recognisers = ["whisper-1", state.media.speech.model_id] if "audio" in state.media.accepts else ["whisper-1"]
    for name, body in schema.get("components", {}).get("schemas", {}).items():
        if name.startswith("Body_") and "model" in body.get("properties", {}) and "file" in body["properties"]:
            body["properties"]["model"]["enum"] = list(dict.fromkeys(recognisers))


def _retry_after(schema: dict) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status in ("429", "503"):
                if status in operation.get("responses", {}):
                    operation["responses"][status]["headers"] = RETRY_AFTER


def _session_links(schema: dict) -> None:
    """OpenAPI links from a created session to the routes that take its id (clients and stateful
    fuzzing follow them)."""
    paths = schema.get("paths", {})
    created = paths.get("/v1/agent/sessions", {}).get("post", {}).get("responses", {}).get("200")
    if created is None:
        return
    links = {}
    for path, method in (("/v1/agent/sessions/{session_id}", "get"), ("/v1/agent/sessions/{session_id}", "delete"),
                         ("/v1/agent/sessions/{session_id}/messages", "post")):
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            links[operation["operationId"]] = {"operationId": operation["operationId"],
                                               "parameters": {"session_id": "$response.body#/id"}}
    created["links"] = links


def _keys(schema: dict, state) -> None:
    if not state.settings.api_keys:
        return
    schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/v1"):
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]


def openapi(app, state) -> dict:
    """The app's OpenAPI document, built once: FastAPI's, completed with what this run fixes."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes,
                             description=f"Request bodies are limited to {state.settings.max_body_bytes:,} bytes "
                                         f"(413 above).")
        _run_facts(schema, state)
        _retry_after(schema)
        _session_links(schema)
        _keys(schema, state)
        app.openapi_schema = schema
    return app.openapi_schema
