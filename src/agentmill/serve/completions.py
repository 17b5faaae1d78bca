"""POST /v1/completions: a text prompt continued with the chosen adapter, no chat template.

One prompt per request (a string, or a list holding one); `max_tokens` defaults to 16 as at
OpenAI; `echo` puts the prompt before the text. Streamed: ``text_completion`` chunks, the last
one with `finish_reason`, then ``data: [DONE]``.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from agentmill.serve import sse
from agentmill.serve.chat import Reply, finish_reason, submit, usage_of
from agentmill.serve.generation import Delta, Failed
from agentmill.serve.errors import ApiError, as_api_error
from agentmill.serve.prompts import answer_budget
from agentmill.serve.schemas import Completion, CompletionChoice

DEFAULT_MAX_TOKENS = 16


async def text_completion(state, body, slot):
    try:
        if body.n != 1:
            raise ApiError(400, f"n is {body.n} but this server returns one choice per request (n=1)", param="n")
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1 or not prompts[0]:
            raise ApiError(400, "send exactly one non-empty prompt per request", param="prompt")
        prompt = prompts[0]
        target = await state.catalog.resolve(body.model, prompt, state.engine)
        ids = state.run.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        max_new = answer_budget(len(ids), body.max_tokens or min(DEFAULT_MAX_TOKENS, state.settings.max_tokens_cap),
                                state.context, state.settings.max_tokens_cap, "prompt")
        gen, stream = submit(state, ids, target, body, max_new)
    except BaseException:
        slot.release()
        raise
    reply = Reply.new("cmpl", target)
    echo = prompt if body.echo else ""
    if body.stream:
        return sse.response(_stream(reply, stream, gen, slot, echo))
    text, end = echo, None
    try:
        async for event in stream:
            if isinstance(event, Failed):
                raise event.error
            if isinstance(event, Delta):
                text += event.text
            else:
                end = event
    finally:
        gen.cancelled.set()
        slot.release()
    out = Completion(id=reply.id, created=reply.created, model=reply.model, usage=usage_of(end),
                     choices=[CompletionChoice(index=0, text=text, finish_reason=finish_reason(end))],
                     agentmill=reply.info)
    return JSONResponse(out.model_dump())


def _chunk(reply: Reply, text: str, finish: str | None = None) -> dict:
    return {"id": reply.id, "object": "text_completion", "created": reply.created, "model": reply.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
            "agentmill": reply.info}


async def _stream(reply: Reply, stream, gen, slot, echo: str):
    try:
        if echo:
            yield sse.data(_chunk(reply, echo))
        async for event in stream:
            if isinstance(event, Failed):
                raise event.error
            if isinstance(event, Delta):
                yield sse.data(_chunk(reply, event.text))
            else:
                yield sse.data({**_chunk(reply, "", finish_reason(event)), "usage": usage_of(event).model_dump()})
        yield sse.DONE
    except Exception as err:  # noqa: BLE001
        yield sse.data(as_api_error(err).body())
        yield sse.DONE
    finally:
        gen.cancelled.set()
        slot.release()
