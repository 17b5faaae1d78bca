"""Server-sent events: OpenAI's ``data: {...}`` lines ending with ``data: [DONE]``, and named events
(``event: NAME``) for the agent routes."""

from __future__ import annotations

import json

from fastapi.responses import StreamingResponse

DONE = "data: [DONE]\n\n"


def data(payload: dict) -> str:
    return "data: " + json.dumps(payload, ensure_ascii=False) + "\n\n"


def event(name: str, payload: dict) -> str:
    return f"event: {name}\n" + data(payload)


def response(body) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
