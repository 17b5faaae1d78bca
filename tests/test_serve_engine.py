"""The serving engine on the tiny run: mixed-adapter continuous batching gives exactly the tokens of
each request alone, text streaming, stop strings, seeded sampling, failures that spare the worker."""

import asyncio
import threading
import time

import pytest

from agentmill.data.render import render
from agentmill.model.generate import generate
from agentmill.model.run import RunModel
from agentmill.serve.batch import BASE_ADAPTER
from agentmill.serve.engine import Engine
from agentmill.serve.generation import AsyncStream, Delta, Failed, Finished, Generation, SyncStream
from agentmill.serve.text import IncrementalDecoder, StopStrings
from serve_util import build_run

PROMPTS = ["Hi", "What is the capital of France? Answer in one word please.", "2+2?",
           "Tell me a long story about dragons, castles and a brave knight who never sleeps.", "ok", "Why?"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokenizer):
    return RunModel.load(build_run(tmp_path_factory.mktemp("serve") / "run", tokenizer))


@pytest.fixture(params=["decoder", "model-forward"])
def engine(run, request):
    """Every test runs on both batches: the fast decoder and the model's own forward (its fallback)."""
    e = Engine(run, max_batch=8, decoder="auto" if request.param == "decoder" else "model")
    assert e.batch_kind.startswith("fast decoder" if request.param == "decoder" else "the model's own forward")
    yield e
    e.close()


def ids_of(run, text):
    return run.tokenizer(render(run.tokenizer, [{"role": "user", "content": text}], add_generation_prompt=True),
                         add_special_tokens=False)["input_ids"]


def start(engine, run, text, adapter, n=10, **kw):
    stream = SyncStream()
    engine.submit(Generation(ids_of(run, text), stream.emit, adapter=adapter, max_new_tokens=n, **kw))
    return stream


def collect(stream):
    text, end = "", None
    for event in stream:
        if isinstance(event, Delta):
            text += event.text
        else:
            end = event
    return text, end


def test_mixed_adapter_batch_equals_each_request_alone(engine, run):
    adapters = ["t1", "t2", BASE_ADAPTER, "t2", "t1", BASE_ADAPTER]
    alone = [collect(start(engine, run, p, a, n=24)) for p, a in zip(PROMPTS, adapters)]
    # together: three start, three more join at step boundaries while the first ones decode
    steps = engine.steps
    first = [start(engine, run, p, a, n=24) for p, a in zip(PROMPTS[:3], adapters[:3])]
    deadline = time.time() + 10
    while engine.steps < steps + 2 and time.time() < deadline:
        time.sleep(0.001)
    later = [start(engine, run, p, a, n=24) for p, a in zip(PROMPTS[3:], adapters[3:])]
    together = [collect(s) for s in first + later]
    assert engine.joins >= 1 and engine.widest >= 4  # rows of different adapters and lengths shared steps
    for (text_a, end_a), (text_b, end_b) in zip(alone, together):
        assert isinstance(end_a, Finished) and isinstance(end_b, Finished)
        assert end_b.token_ids == end_a.token_ids  # identical token ids (fp32, greedy)
        assert text_b == text_a
    assert len({tuple(e.token_ids) for _, e in alone[:3]}) == 3  # the adapters matter


def test_engine_matches_the_reference_generate(engine, run):
    """Per-row adapters reproduce `generate` with the task selected the classic way (use_task)."""
    for task in ("t1", None):
        text, end = collect(start(engine, run, PROMPTS[1], task or BASE_ADAPTER, n=10))
        run.use_task(task)
        try:
            ref = generate(run.model, run.tokenizer, [{"role": "user", "content": PROMPTS[1]}], max_new_tokens=10)
        finally:
            run.use_task(None)
        assert text == ref
        assert end.reason == "length" and end.completion_tokens == 10
        assert text == run.tokenizer.decode(end.token_ids, skip_special_tokens=True)


def test_stop_strings_and_seeded_sampling(engine, run):
    text, _ = collect(start(engine, run, PROMPTS[3], "t1", n=12))
    stop = text[4:7]
    cut, end = collect(start(engine, run, PROMPTS[3], "t1", n=12, stop=[stop]))
    assert cut == text[:text.index(stop)] and end.reason == "stop"
    a = collect(start(engine, run, PROMPTS[0], "t2", n=8, temperature=1.0, top_p=0.9, seed=7))[1].token_ids
    b = collect(start(engine, run, PROMPTS[0], "t2", n=8, temperature=1.0, top_p=0.9, seed=7))[1].token_ids
    c = collect(start(engine, run, PROMPTS[0], "t2", n=8, temperature=1.0, seed=8))[1].token_ids
    assert a == b and a != c


def test_a_failed_step_fails_its_rows_and_the_worker_goes_on(engine, run, monkeypatch):
    original = engine.batch.step
    monkeypatch.setattr(engine.batch, "step", lambda tokens: (_ for _ in ()).throw(RuntimeError("boom")))
    _, end = collect(start(engine, run, "Hi", "t1"))
    assert isinstance(end, Failed) and "boom" in str(end.error)
    monkeypatch.setattr(engine.batch, "step", original)
    _, end = collect(start(engine, run, "Hi", "t1"))
    assert isinstance(end, Finished)


def test_a_consumer_that_never_reads_stalls_no_one(engine, run):
    """The worker hands events over without waiting: a client that stops reading only grows its queue."""
    loop = asyncio.new_event_loop()

    async def make():
        return AsyncStream()

    stalled = loop.run_until_complete(make())  # its loop does not run again until the end: nothing is read
    engine.submit(Generation(ids_of(run, PROMPTS[3]), stalled.emit, "t1", max_new_tokens=40))
    _, end = collect(start(engine, run, PROMPTS[1], "t2", n=20))
    assert isinstance(end, Finished) and end.completion_tokens == 20

    async def drain():
        return [event async for event in stalled]

    events = loop.run_until_complete(drain())
    loop.close()
    assert isinstance(events[-1], Finished) and events[-1].completion_tokens == 40


def test_cancelled_rows_leave_the_batch(engine, run):
    stream = start(engine, run, PROMPTS[3], "t1", n=200)
    gen = engine._pending[0] if engine._pending else engine.rows[0].gen
    gen.cancelled.set()
    _, end = collect(stream)
    assert end.reason == "cancelled" and len(end.token_ids) < 200


def test_exclusive_jobs_run_on_the_worker_with_the_task_selected(engine, run):
    seen = {}

    def job():
        seen["thread"] = threading.current_thread().name
        seen["task"] = run.task
        return 42

    assert engine.call(job, task="t2").result(timeout=10) == 42
    assert seen == {"thread": "agentmill-engine", "task": "t2"} and run.task is None
    with pytest.raises(ZeroDivisionError):
        engine.call(lambda: 1 / 0).result(timeout=10)


def test_incremental_text():
    from agentmill.model.load import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    text = "Grüße, 東京! 🙂 ok <b>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    dec = IncrementalDecoder(tok)
    pieces = [dec.push(i) for i in ids] + [dec.flush()]
    assert "".join(pieces) == text and all("\ufffd" not in p for p in pieces)
    stops = StopStrings(["END", "<stop>"])
    out = [stops.push(p) for p in ["hello E", "N", "D tail"]]
    assert out == [("hello ", False), ("", False), ("", True)] and stops.text.startswith("hello END")
    stops = StopStrings(["END"])
    assert stops.push("abE") == ("ab", False) and stops.flush() == "E"


def test_a_call_opened_in_the_prompt_is_finished_within_the_tools_schemas(engine, run):
    """tool_choice forces `<tool_call>\\n{"name": "` into the prompt: the untrained model then
    writes only what the call grammar allows: an offered name, its enum values, the closing tag."""
    from agentmill.agent.toolcall import parse_tool_calls

    tools = [{"type": "function", "function": {"name": "set_mode", "parameters": {
        "type": "object", "required": ["mode"], "properties": {"mode": {"type": "string", "enum": ["eco", "boost"]}}}}}]
    written = '<tool_call>\n{"name": "'
    stream = SyncStream()
    ids = ids_of(run, "mode?") + run.tokenizer(written, add_special_tokens=False)["input_ids"]
    engine.submit(Generation(ids, stream.emit, adapter="t1", max_new_tokens=40, tools=tools, written=written))
    text, end = collect(stream)
    _, [call] = parse_tool_calls(written + text)
    assert call.call is not None, text
    assert call.call["function"]["name"] == "set_mode"
    assert call.call["function"]["arguments"]["mode"] in ("eco", "boost")
    assert "</tool_call>" in text
