"""POST /v1/chat/completions: one request → one generation in the shared batch → OpenAI's answer.

The generation's text is sorted into content and tool calls as it arrives (serve/toolcalls.py);
a forced tool call (tool_choice "required" or a named function) that still does not parse
gets one schema-constrained repair (agent/toolcall.py `repair_call`) on the engine thread.
Non-streamed: one `chat.completion`. Streamed (SSE, as OpenAI): a first chunk whose delta
carries the role, content deltas, tool-call fragments, a chunk with `finish_reason`, with
`stream_options.include_usage` a usage chunk (empty choices), then ``data: [DONE]``.
A failure after the stream started arrives as ``data: {"error": {...}}`` then ``[DONE]``.
With `n` > 1 the choices decode side by side in the batch (with a `seed`, choice i samples with
seed + i) and stream interleaved, each chunk naming its choice's `index`; usage counts the
prompt once and the completion tokens of every choice.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from dataclasses import dataclass

from fastapi.responses import JSONResponse

from agentmill.agent.toolcall import ParsedCall, parse_tool_calls, repair_call
from agentmill.serve import sse
from agentmill.serve.media import read_request_media
from agentmill.serve.generation import AsyncStream, Delta, Failed, Generation, merged
from agentmill.serve.errors import as_api_error
from agentmill.serve.prompts import answer_budget, chat_prompt
from agentmill.serve.schemas import ChatChoice, ChatCompletion, ResponseMessage, Usage
from agentmill.serve.toolcalls import ContentSplitter, fragments, openai_call


@dataclass
class Reply:
    """What every response or chunk of one request repeats."""

    id: str
    model: str
    info: dict
    created: int

    @classmethod
    def new(cls, prefix: str, target, extracted=()) -> "Reply":
        info = target.info()
        if extracted:  # what the model read from the request's images and recordings
            info["media"] = [e.summary() for e in extracted]
        return cls(f"{prefix}-{secrets.token_hex(12)}", target.model, info, int(time.time()))


def usage_of(end) -> Usage:
    return Usage(prompt_tokens=end.prompt_tokens, completion_tokens=end.completion_tokens,
                 total_tokens=end.prompt_tokens + end.completion_tokens)


def total_usage(usages: list[Usage]) -> Usage:
    """The usage of a request with these choices: its prompt once, every choice's completion."""
    prompt, completion = usages[0].prompt_tokens, sum(u.completion_tokens for u in usages)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def finish_reason(end) -> str:
    return "length" if end.reason == "length" else "stop"


def text_of(content) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def submit(state, ids: list[int], target, body, max_new: int, plan=None) -> tuple[list[Generation], list[AsyncStream]]:
    """The request's `n` generations, queued in the engine, and their event streams."""
    temperature = state.settings.default_temperature if body.temperature is None else body.temperature
    gens, streams = [], []
    try:
        for i in range(body.n):
            stream = AsyncStream()
            seed = None if body.seed is None else body.seed + i
            gens.append(state.engine.submit(Generation(
                ids, stream.emit, target.adapter, max_new, temperature, body.top_p, seed, body.stop_list(),
                tools=plan.tools if plan else None, written=plan.forced if plan else "")))
            streams.append(stream)
    except BaseException:
        cancel(gens)
        raise
    return gens, streams


def cancel(gens: list[Generation]) -> None:
    for gen in gens:
        gen.cancelled.set()


async def chat_completion(state, body, slot):
    """The response to a validated request; `slot` (the caller's limit) is released when it ends."""
    try:
        extracted = await read_request_media(state, body.messages)
        last_user = next((text_of(m.content) for m in reversed(body.messages) if m.role == "user"), "")
        target = await state.catalog.resolve(body.model, last_user, state.engine)
        if state.run.is_classifier(target.task):  # a classification task answers with its label
            slot.release()
            return await _label_reply(state, body, target, last_user, extracted)
        prompt_text, plan = chat_prompt(state.run, body, target.task)
        ids = state.run.tokenizer(prompt_text + plan.forced, add_special_tokens=False)["input_ids"]
        asked = {"max_completion_tokens": body.max_completion_tokens, "max_tokens": body.max_tokens}
        max_new = answer_budget(len(ids), asked, state.context, state.settings.max_tokens_cap, "messages")
        gens, streams = submit(state, ids, target, body, max_new, plan)
    except BaseException:
        slot.release()
        raise
    reply = Reply.new("chatcmpl", target, extracted)
    events = [_events(state, target, plan, prompt_text, stream) for stream in streams]
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse.response(_stream(reply, events, gens, slot, usage))
    try:
        choices = await asyncio.gather(*(_choice(i, e) for i, e in enumerate(events)))
    finally:
        cancel(gens)
        slot.release()
    usage = total_usage([u for _, u in choices])
    body = ChatCompletion(id=reply.id, created=reply.created, model=reply.model, usage=usage,
                          choices=[c for c, _ in choices], agentmill=reply.info)
    return JSONResponse(body.model_dump())


async def _choice(index: int, events) -> tuple[ChatChoice, Usage]:
    content, calls, finish, usage = "", [], "stop", None
    async for kind, value in events:
        if kind == "content":
            content += value
        elif kind == "tool_call":
            calls.append(value)
        else:
            finish, usage = value
    message = ResponseMessage(content=content or (None if calls else ""), tool_calls=calls or None)
    return ChatChoice(index=index, message=message, finish_reason=finish), usage


async def _label_reply(state, body, target, text: str, extracted=()):
    """The task's label for the last user message (nothing generated), as a whole response or a
    stream of one delta; the `agentmill` field says a classifier answered."""
    job = functools.partial(state.run.classify, target.task, text)
    label = await asyncio.wrap_future(state.engine.call(job, task=target.task))
    reply = Reply.new("chatcmpl", target, extracted)
    reply.info = {**reply.info, "answered_by": "classifier", "labels": state.run.task_info(target.task)["labels"]}
    usage = Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
    if not body.stream:
        choices = [ChatChoice(index=i, message=ResponseMessage(content=label), finish_reason="stop")
                   for i in range(body.n)]
        return JSONResponse(ChatCompletion(id=reply.id, created=reply.created, model=reply.model, usage=usage,
                                           choices=choices, agentmill=reply.info).model_dump())
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def chunks():
        for i in range(body.n):
            yield sse.data(_chunk(reply, {"role": "assistant", "content": ""}, info=True, usage=include_usage,
                                  index=i))
            yield sse.data(_chunk(reply, {"content": label}, usage=include_usage, index=i))
            yield sse.data(_chunk(reply, {}, "stop", info=True, usage=include_usage, index=i))
        if include_usage:
            yield sse.data({**_chunk(reply, None), "usage": usage.model_dump()})
        yield sse.DONE

    return sse.response(chunks())


async def _events(state, target, plan, prompt_text: str, stream: AsyncStream):
    """("content", text) · ("tool_call", call) · finally ("end", (finish_reason, usage))."""
    splitter = ContentSplitter() if plan.active else None
    if splitter and plan.forced:
        splitter.feed(plan.forced)
    calls, end = [], None
    async for event in stream:
        if isinstance(event, Failed):
            raise event.error
        if not isinstance(event, Delta):
            end = event
        elif splitter is None:
            yield "content", event.text
        else:
            shown = splitter.feed(event.text)
            if shown:
                yield "content", shown
            for call in filter(None, (openai_call(p, plan.allowed) for p in splitter.closed_blocks())):
                calls.append(call)
                yield "tool_call", call
    if splitter is not None:
        rest = splitter.flush()
        if rest:
            yield "content", rest
        _, parsed = parse_tool_calls(splitter.calls_text)  # the last block may be unclosed
        for call in filter(None, (openai_call(p, plan.allowed) for p in parsed[splitter.taken:])):
            calls.append(call)
            yield "tool_call", call
        if not calls and plan.forced:
            call = await _repair(state, target, plan, prompt_text)
            if call is not None:
                calls.append(call)
                yield "tool_call", call
        if not calls and splitter.in_calls:
            yield "content", splitter.calls_text  # not a usable call: the client sees what the model wrote
    yield "end", ("tool_calls" if calls else finish_reason(end), usage_of(end))


async def _repair(state, target, plan, prompt_text: str) -> dict | None:
    tools = [t for t in plan.tools if t["function"]["name"] in plan.allowed]
    job = functools.partial(repair_call, state.run.model, state.run.tokenizer, prompt_text, tools)
    repaired = await asyncio.wrap_future(state.engine.call(job, task=target.task))
    if repaired is None:
        return None
    return openai_call(ParsedCall("", repaired), plan.allowed)


def _chunk(reply: Reply, delta: dict | None, finish: str | None = None, info: bool = False,
           usage: bool = False, index: int = 0) -> dict:
    out = {"id": reply.id, "object": "chat.completion.chunk", "created": reply.created, "model": reply.model,
           "system_fingerprint": None,
           "choices": [] if delta is None else [{"index": index, "delta": delta, "logprobs": None,
                                                  "finish_reason": finish}]}
    if usage:
        out["usage"] = None
    if info:
        out["agentmill"] = reply.info
    return out


async def _stream(reply: Reply, events: list, gens: list[Generation], slot, include_usage: bool):
    try:
        for i in range(len(events)):
            yield sse.data(_chunk(reply, {"role": "assistant", "content": ""}, info=True, usage=include_usage,
                                  index=i))
        calls, usages = [0] * len(events), []
        async for i, (kind, value) in merged(events):
            if kind == "content":
                yield sse.data(_chunk(reply, {"content": value}, usage=include_usage, index=i))
            elif kind == "tool_call":
                for fragment in fragments(value, calls[i]):
                    yield sse.data(_chunk(reply, {"tool_calls": [fragment]}, usage=include_usage, index=i))
                calls[i] += 1
            else:
                finish, usage = value
                usages.append(usage)
                yield sse.data(_chunk(reply, {}, finish, info=True, usage=include_usage, index=i))
        if include_usage:
            yield sse.data({**_chunk(reply, None), "usage": total_usage(usages).model_dump()})
        yield sse.DONE
    except Exception as err:  # noqa: BLE001 - the status line is gone: the error becomes an event
        yield sse.data(as_api_error(err).body())
        yield sse.DONE
    finally:
        cancel(gens)
        slot.release()
