"""/v1/agent: the run's agent with server-side tools and stored sessions (see the package docstring)."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from agentmill.agent.agent import BASE
from agentmill.agent.steps import AnswerStep, NoticeStep, RouteStep, ToolResultStep, to_dict
from agentmill.serve import sse
from agentmill.serve.auth import owner_of
from agentmill.errors import AgentmillError
from agentmill.serve.contract import EVERY_V1_ROUTE, SSE, errors
from agentmill.serve.errors import ApiError, as_api_error, log_content
from agentmill.serve.media import read_agent_message
from agentmill.serve.schemas import AgentMessage, SessionCreate
from agentmill.serve.state import state_of

router = APIRouter(prefix="/v1/agent", responses=EVERY_V1_ROUTE)


def _pool(request: Request):
    pool = state_of(request).sessions
    if pool is None:
        raise ApiError(400, "this server runs without a session store", code="no_session_store")
    return pool


def _owner(request: Request) -> str | None:
    return owner_of(request.state.caller)


@router.post("/sessions", responses=errors(400, 503))
def create_session(request: Request, body: SessionCreate | None = None):
    return _pool(request).create((body or SessionCreate()).title, owner=_owner(request))


@router.get("/sessions", responses=errors(400))
def list_sessions(request: Request, all: bool = False, limit: int | None = None):
    return {"object": "list", "data": _pool(request).list(everything=all, limit=limit, owner=_owner(request))}


@router.get("/sessions/{session_id}", responses=errors(400, 404))
def get_session(request: Request, session_id: str):
    return _pool(request).detail(session_id, owner=_owner(request))


@router.get("/media/{digest}", response_class=Response, responses={
    200: {"content": {"image/*": {}, "audio/*": {}, "application/octet-stream": {}}}, **errors(404)})
def get_media(request: Request, digest: str):
    """An image or recording a stored message references, by its SHA-256 (as its `media` lists it)."""
    from agentmill.media.audio import audio_type
    from agentmill.media.image import image_format

    state, owner = state_of(request), _owner(request)
    data = state.media_store.get(digest)
    # with keys, a key sees only the media of its own sessions' messages (and of unowned ones)
    if data is not None and owner is not None and state.sessions is not None:
        data = data if state.sessions.store.holds_media(digest, owner) else None
    if data is None:
        raise ApiError(404, f"no stored media {digest[:80]!r}", param="digest", code="media_not_found")
    kind = image_format(data) or audio_type(data) or "application/octet-stream"
    return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=31536000, immutable",
                                                    "X-Content-Type-Options": "nosniff"})


@router.delete("/sessions/{session_id}", responses=errors(400, 404, 503))
def delete_session(request: Request, session_id: str):
    return _pool(request).delete(session_id, owner=_owner(request))


def _task(run, name: str) -> str | None:
    """The agent's `task` argument: None lets the router choose."""
    if name == "auto":
        return None
    if name == "base" and name not in run.tasks:
        return BASE
    try:
        run.check_chat_task(name)
    except AgentmillError as err:
        raise ApiError(400, f"{err}; or auto (the router) or base", param="task", code="unknown_task") from None
    return name


def payload(kind: str, value) -> dict:
    """An agent event as the JSON of its SSE event."""
    if kind == "token":
        return {"text": value}
    if isinstance(value, RouteStep):
        return {"task": value.task, "scores": value.scores, "forced": value.forced}
    if kind == "tool_call":
        fn = value["function"]
        arguments = fn["arguments"] if isinstance(fn["arguments"], str) else json.dumps(fn["arguments"])
        return {"id": value["id"], "type": "function", "function": {"name": fn["name"], "arguments": arguments}}
    if isinstance(value, ToolResultStep):
        return {"id": value.call_id, "name": value.name, "content": value.content, "error": value.error}
    if isinstance(value, NoticeStep):
        return {"reason": value.reason, "text": value.text}
    if isinstance(value, AnswerStep):
        return {"content": value.content, "task": value.task,
                "usage": {"prompt_tokens": value.prompt_tokens, "completion_tokens": value.completion_tokens}}
    return {"value": str(value)}


def _usage(usage) -> dict:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total, "tool_steps": usage.tool_steps}


@router.post("/sessions/{session_id}/messages", responses={
    200: {"content": SSE}, **errors(400, 404, 409, 429, 503)})
async def post_message(request: Request, session_id: str, body: AgentMessage):
    state = state_of(request)
    pool = _pool(request)
    task = _task(state.run, body.task)
    slot = state.limiter.acquire(request.state.caller)
    lock = None
    try:
        await asyncio.to_thread(pool.owned, session_id, _owner(request))  # 404 before anything runs
        lock = pool.claim(session_id)  # 409 before any image is read or recording heard
        text, media = await read_agent_message(state, body.content)
        if not text.strip() and not media:
            raise ApiError(400, "the message has no text and no media", param="content")
    except BaseException:
        if lock is not None:
            lock.release()
        slot.release()
        raise
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    holder = {}

    def push(item) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server stopping)
            pass

    def work():
        try:
            agent = holder["agent"] = pool.agent(session_id)
            agent.cancelled.clear()
            if media:  # what was read from the message's images and recordings, before the route
                push(("media", {"media": [m.summary() for m in media]}))
            log_content(state, f"agent {session_id} user:", text)
            result = agent.turn(text, task=task, media=media,
                                on_event=lambda kind, value: push((kind, payload(kind, value))))
            log_content(state, f"agent {session_id} answer:", result.answer)
            push(("__done__", result))
            return result
        except BaseException as err:  # noqa: BLE001 - reported to the client
            push(("__error__", err))
            raise
        finally:
            lock.release()

    future = pool.executor.submit(work)
    if body.stream:
        return sse.response(_stream(session_id, events, holder, slot))
    try:
        result = await asyncio.wrap_future(future)
    finally:
        slot.release()
    return JSONResponse({"object": "agent.turn", "session_id": session_id, "answer": result.answer,
                         "task": result.task, "stopped": result.stopped, "usage": _usage(result.usage),
                         "steps": [to_dict(s) for s in result.steps]})


async def _stream(session_id: str, events: asyncio.Queue, holder: dict, slot):
    finished, answered = False, False
    try:
        while True:
            kind, value = await events.get()
            if kind == "__error__":
                finished = True
                yield sse.event("error", as_api_error(value).body())
                return
            if kind == "__done__":
                finished = True
                if not answered:  # a turn cut by a rule still ends with the text it answered
                    yield sse.event("answer", {"content": value.answer, "task": value.task, "usage": None})
                yield sse.event("done", {"session_id": session_id, "task": value.task, "stopped": value.stopped,
                                         "usage": _usage(value.usage)})
                return
            answered |= kind == "answer"
            yield sse.event(kind, value)
    finally:
        if not finished and "agent" in holder:
            holder["agent"].cancel()  # the client left: end the turn soon
        slot.release()
