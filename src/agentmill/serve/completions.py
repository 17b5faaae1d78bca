"""POST /v1/completions: a text prompt continued with the chosen adapter, no chat template.

One prompt per request (a string, or a list holding one); `max_tokens` defaults to 16 as at
OpenAI; `echo` puts the prompt before the text; `n` choices as in chat (serve/chat.py).
Streamed: ``text_completion`` chunks, each choice's last one with `finish_reason`, the usage in
the last chunk, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio

from fastapi.responses import JSONResponse

from agentmill.serve import sse
from agentmill.serve.chat import Reply, cancel, finish_reason, submit, total_usage, usage_of
from agentmill.serve.generation import Delta, Failed, merged
from agentmill.serve.errors import ApiError, as_api_error
from agentmill.serve.prompts import answer_budget
from agentmill.serve.schemas import Completion, CompletionChoice

DEFAULT_MAX_TOKENS = 16


async def text_completion(state, body, slot):
    try:
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1 or not prompts[0]:
            raise ApiError(400, "send exactly one non-empty prompt per request", param="prompt")
        prompt = prompts[0]
        target = await state.catalog.resolve(body.model, prompt, state.engine)
        ids = state.run.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        asked = {"max_tokens": body.max_tokens or min(DEFAULT_MAX_TOKENS, state.settings.max_tokens_cap)}
        max_new = answer_budget(len(ids), asked, state.context, state.settings.max_tokens_cap, "prompt")
        gens, streams = submit(state, ids, target, body, max_new)
    except BaseException:
        slot.release()
        raise
    reply = Reply.new("cmpl", target)
    echo = prompt if body.echo else ""
    if body.stream:
        return sse.response(_stream(reply, streams, gens, slot, echo))
    try:
        choices = await asyncio.gather(*(_choice(i, stream, echo) for i, stream in enumerate(streams)))
    finally:
        cancel(gens)
        slot.release()
    out = Completion(id=reply.id, created=reply.created, model=reply.model,
                     usage=total_usage([u for _, u in choices]), choices=[c for c, _ in choices], agentmill=reply.info)
    return JSONResponse(out.model_dump())


async def _choice(index: int, stream, echo: str):
    text, end = echo, None
    async for event in stream:
        if isinstance(event, Failed):
            raise event.error
        if isinstance(event, Delta):
            text += event.text
        else:
            end = event
    return CompletionChoice(index=index, text=text, finish_reason=finish_reason(end)), usage_of(end)


def _chunk(reply: Reply, text: str, finish: str | None = None, index: int = 0) -> dict:
    return {"id": reply.id, "object": "text_completion", "created": reply.created, "model": reply.model,
            "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish}],
            "agentmill": reply.info}


async def _stream(reply: Reply, streams, gens, slot, echo: str):
    try:
        if echo:
            for i in range(len(streams)):
                yield sse.data(_chunk(reply, echo, index=i))
        usages, ends = [], 0
        async for i, event in merged(streams):
            if isinstance(event, Failed):
                raise event.error
            if isinstance(event, Delta):
                yield sse.data(_chunk(reply, event.text, index=i))
                continue
            usages.append(usage_of(event))
            ends += 1
            chunk = _chunk(reply, "", finish_reason(event), index=i)
            if ends == len(streams):  # the last choice to end carries the request's usage
                chunk["usage"] = total_usage(usages).model_dump()
            yield sse.data(chunk)
        yield sse.DONE
    except Exception as err:  # noqa: BLE001
        yield sse.data(as_api_error(err).body())
        yield sse.DONE
    finally:
        cancel(gens)
        slot.release()
