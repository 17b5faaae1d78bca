"""The OpenAI-compatible API against a live uvicorn server on loopback, with the official `openai`
client (models, chat, streaming, tool calls, typed errors) and raw httpx (error shapes, limits)."""

import json
import threading

import httpx
import openai
import pytest

from agentmill.data.render import render
from agentmill.errors import AgentmillError
from agentmill.model.generate import generate
from agentmill.model.run import RunModel
from agentmill.serve import ServeSettings, create_app
from agentmill.serve.settings import check_bind, keys_from_env
from agentmill.store import SQLiteSessionStore
from serve_util import SYSTEM_T1, build_run, free_port, live_server, script_outputs

KEY = "sk-test-0123456789"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer):
    return build_run(tmp_path_factory.mktemp("serve") / "run", tokenizer)


@pytest.fixture(scope="module")
def run(run_dir):
    return RunModel.load(run_dir)


@pytest.fixture(scope="module")
def server(run, tmp_path_factory):
    store = SQLiteSessionStore(tmp_path_factory.mktemp("db") / "s.db")
    settings = ServeSettings(api_keys=[KEY], max_tokens_cap=64, max_body_bytes=65_536)
    app = create_app(run, store=store, settings=settings)
    with live_server(app) as url:
        yield url, app
    store.close()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0, timeout=60)


def http(server, **kw):
    return httpx.Client(base_url=server[0], headers={"Authorization": f"Bearer {KEY}"}, timeout=60, **kw)


def chat(client, content="Hello there", model="t1", **kw):
    kw = {"temperature": 0, "max_tokens": 8, **kw}
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **kw)


# ---------------------------------------------------------------- openai client


def test_list_models(client):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny-base", "t1", "t2", "merged", "intent", "auto"]  # not `domain`
    by_id = {m.id: m for m in models}
    assert by_id["t1"].model_extra["parent"] == "tiny-base" and by_id["tiny-base"].model_extra["parent"] is None
    assert by_id["t1"].model_extra["agentmill"]["adapter"] is True
    assert by_id["merged"].model_extra["agentmill"]["adapter"] is False
    assert by_id["auto"].model_extra["agentmill"]["router"] is True
    assert client.models.retrieve("t2").id == "t2"
    assert by_id["intent"].model_extra["agentmill"]["answers"] == "label"


def test_an_evaluation_set_is_not_a_model(client):
    with pytest.raises(openai.NotFoundError, match="'domain' is an evaluation set of the run"):
        chat(client, "hello", model="domain")


def test_a_classification_task_answers_with_its_label(client, run):
    reply = chat(client, "Hi there, good morning!", model="intent")
    label = reply.choices[0].message.content
    assert reply.model_extra["agentmill"]["answered_by"] == "classifier" and reply.usage.completion_tokens == 0
    run.use_task("intent")
    try:
        assert label == run.classify("intent", "Hi there, good morning!")  # the backbone's best-scored label
    finally:
        run.use_task(None)
    stream = client.chat.completions.create(model="intent", messages=[{"role": "user", "content": "Hi there, good morning!"}],
                                            stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == label


def test_plain_chat_is_the_task_answering_as_trained(client, run):
    reply = chat(client, "What is the capital of France?", max_tokens=10)
    choice = reply.choices[0]
    assert reply.model == "t1" and reply.model_extra["agentmill"]["task"] == "t1"
    assert choice.finish_reason in ("stop", "length") and choice.message.role == "assistant"
    assert reply.usage.completion_tokens >= 1 and reply.usage.total_tokens > reply.usage.prompt_tokens
    # the same text as `generate` with the task's adapter and its trained system prompt
    run.use_task("t1")
    try:
        ref = generate(run.model, run.tokenizer, [{"role": "system", "content": SYSTEM_T1},
                                                  {"role": "user", "content": "What is the capital of France?"}],
                       max_new_tokens=10)
    finally:
        run.use_task(None)
    assert choice.message.content == ref
    base = chat(client, "What is the capital of France?", model="tiny-base", max_tokens=10)
    assert base.model == "tiny-base" and base.choices[0].message.content != ref


def test_auto_routes_and_says_which_task_answered(client):
    reply = chat(client, "route me please", model="auto")
    info = reply.model_extra["agentmill"]
    assert info["routed"] is True and info["task"] in ("t1", "t2") and reply.model == info["task"]
    assert set(info["scores"]) == {"t1", "t2"}


def test_streaming_like_openai(client, server):
    whole = chat(client, "Tell me a story", model="t2", max_tokens=12).choices[0].message.content
    chunks = list(chat(client, "Tell me a story", model="t2", max_tokens=12, stream=True,
                       stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"] and chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert all(c.model == "t2" for c in chunks)
    with http(server) as h, h.stream("POST", "/v1/chat/completions", json={
            "model": "t2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    assert "usage" not in json.loads(lines[-2][6:])  # only with include_usage


def test_tool_call_non_streamed_and_streamed(client, monkeypatch, tokenizer):
    script_outputs(monkeypatch, tokenizer, {"SCRIPTED-WEATHER": "Let me check. " + CALL})
    reply = chat(client, "SCRIPTED-WEATHER in Paris?", max_tokens=60, tools=[WEATHER])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    chunks = list(chat(client, "SCRIPTED-WEATHER in Paris?", max_tokens=60, tools=[WEATHER], stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    fragments = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert content == "Let me check." and len(fragments) >= 3  # id + name, then the arguments in pieces
    assert fragments[0].id and fragments[0].function.name == "get_weather" and fragments[0].index == 0
    assert all(f.index == 0 and f.id is None and f.function.name is None for f in fragments[1:])
    assert json.loads("".join(f.function.arguments for f in fragments)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # tool_choice "none": the tools are not offered, the text stays content
    reply = chat(client, "SCRIPTED-WEATHER in Paris?", max_tokens=60, tools=[WEATHER], tool_choice="none")
    assert reply.choices[0].message.tool_calls is None and "<tool_call>" in reply.choices[0].message.content


@pytest.mark.parametrize("parameters, message", [
    ({"type": "object", "properties": {"city": {"type": "strin"}}}, "parameters is not a valid JSON schema at "
                                                                     "properties/city/type"),
    ({"type": "object", "required": "city"}, "parameters is not a valid JSON schema"),
    ({"type": "array", "items": {"type": "string"}}, "parameters must describe an object"),
])
def test_a_tool_with_a_bad_schema_gets_a_400_naming_it(client, parameters, message):
    bad = {"type": "function", "function": {"name": "get_rain", "parameters": parameters}}
    with pytest.raises(openai.BadRequestError, match=r"tools\[1\] \(get_rain\): " + message) as err:
        chat(client, "weather?", tools=[WEATHER, bad])
    assert err.value.body["param"] == "tools.[1].function.parameters"


def test_a_tool_name_used_twice_gets_a_400(client):
    with pytest.raises(openai.BadRequestError, match="the function name 'get_weather' is used twice"):
        chat(client, "weather?", tools=[WEATHER, WEATHER])


def test_forced_tool_choice_always_calls(client):
    """The untrained tiny model writes no usable call: the forced start plus the constrained repair do."""
    named = {"type": "function", "function": {"name": "get_weather"}}
    for choice in ("required", named):
        reply = chat(client, "weather?", max_tokens=24, tools=[WEATHER], tool_choice=choice)
        [call] = reply.choices[0].message.tool_calls
        assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
        assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_text_completions(client):
    out = client.completions.create(model="t2", prompt="Once upon a time", max_tokens=5, temperature=0)
    assert out.model == "t2" and out.choices[0].finish_reason == "length" and out.usage.completion_tokens == 5
    pieces = list(client.completions.create(model="t2", prompt="Once upon a time", max_tokens=5, temperature=0,
                                            stream=True))
    assert "".join(p.choices[0].text for p in pieces) == out.choices[0].text


def test_typed_errors(client, server):
    bad = openai.OpenAI(base_url=server[0] + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        bad.models.list()
    assert err.value.status_code == 401 and err.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as err:
        chat(client, model="gpt-4o")
    assert "gpt-4o" in err.value.message and "t1, t2" in err.value.message and err.value.body["param"] == "model"
    with pytest.raises(openai.UnprocessableEntityError) as err:
        chat(client, n=17)
    assert err.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as err:
        chat(client, logprobs=True)
    assert err.value.body["param"] == "logprobs" and err.value.body["code"] == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError, match="at most 64"):
        chat(client, max_tokens=1000)
    for sent, big in (({"max_tokens": 8, "max_completion_tokens": 1000}, "max_completion_tokens"),
                      ({"max_tokens": 1000, "max_completion_tokens": 8}, "max_tokens")):  # each is held to the cap
        with pytest.raises(openai.BadRequestError, match=f"{big} is 1000 but this server allows at most 64") as err:
            chat(client, **sent)
        assert err.value.body["param"] == big
    with pytest.raises(openai.BadRequestError, match=r"the prompt has \d+ tokens but .* context length is 2048"):
        chat(client, "word " * 2100, max_tokens=8)
    with pytest.raises(openai.BadRequestError, match=r"length is 2048 tokens; the prompt has \d+ and max_tokens"):
        chat(client, "word " * 2010, max_tokens=60)
    with pytest.raises(openai.UnprocessableEntityError):
        chat(client, temperature=7)


# ---------------------------------------------------------------- raw HTTP


def error_of(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    return body["error"]


def test_error_shapes(server):
    with http(server) as h:
        e = error_of(h.post("/v1/chat/completions", json={"model": "t1", "messages": [{"role": "robot"}]}), 422)
        assert e["param"] == "messages[0].role" and e["type"] == "invalid_request_error"
        e = error_of(h.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}), 422)
        assert e["param"] == "model"
        e = error_of(h.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}),
                     400)
        assert e["code"] == "invalid_json"
        json_type = {"content-type": "application/json"}
        e = error_of(h.post("/v1/chat/completions", content=b"x" * 70_000, headers=json_type), 413)
        assert "65536" in e["message"]
        error_of(h.get("/v1/nothing-here"), 404)
        e = error_of(h.post("/v1/completions", json={"model": "t1", "prompt": ["a", "b"]}), 422)
        assert e["param"] == "prompt" and e["message"].startswith("prompt: List should have at most 1 item")
    with httpx.Client(base_url=server[0]) as h:
        assert error_of(h.get("/v1/models"), 401)["code"] == "missing_api_key"
        assert error_of(h.get("/v1/agent/sessions"), 401)["code"] == "missing_api_key"
        error_of(h.post("/v1/chat/completions", content=b"x" * 70_000), 401)  # the key is checked first
        assert h.get("/health").json()["status"] == "ok"  # public
        page = h.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_mid_stream_failure_is_an_error_event(server, monkeypatch):
    engine = server[1].state.agentmill.engine

    def boom(tokens):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(engine.batch, "step", boom)
    with http(server) as h, h.stream("POST", "/v1/chat/completions", json={
            "model": "t1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": True}) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line]
    first, error = json.loads(lines[0][6:]), json.loads(lines[-2][6:])
    assert first["choices"][0]["delta"]["role"] == "assistant" and lines[-1] == "data: [DONE]"
    assert error["error"]["type"] == "server_error" and "secret" not in lines[-2]
    monkeypatch.undo()
    assert engine.load()["running"] == 0


def test_rate_and_concurrency_limits(run, monkeypatch):
    settings = ServeSettings(rate_per_minute=3, concurrency_per_key=1)
    body = {"model": "t1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    app = create_app(run, settings=settings)
    batch, gate = app.state.agentmill.engine.batch, threading.Event()
    step = batch.step
    monkeypatch.setattr(batch, "step", lambda tokens: (gate.wait(30), step(tokens))[1])
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as h:
        with h.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as held:
            lines = held.iter_lines()
            next(lines)  # in flight (its decoding waits for the gate): holds the only slot
            r = h.post("/v1/chat/completions", json=body)
            assert error_of(r, 429)["code"] == "concurrency_limit_exceeded" and r.headers["retry-after"] == "1"
            gate.set()
            assert [line for line in lines if line][-1] == "data: [DONE]"
        for _ in range(2):  # a refused request does not count: 3 in this minute with these
            assert h.post("/v1/chat/completions", json=body).status_code == 200
        r = h.post("/v1/chat/completions", json=body)
        assert error_of(r, 429)["code"] == "rate_limit_exceeded"
        assert 1 <= int(r.headers["retry-after"]) <= 60


def test_no_public_bind_without_keys(run_dir, monkeypatch, capsys):
    monkeypatch.delenv("AGENTMILL_API_KEYS", raising=False)
    with pytest.raises(AgentmillError, match="refusing to serve on 0.0.0.0 without an API key"):
        check_bind("0.0.0.0", keys_from_env([]), insecure_public=False)
    check_bind("127.0.0.1", [], False)
    check_bind("::1", [], False)
    check_bind("0.0.0.0", [], insecure_public=True)
    monkeypatch.setenv("AGENTMILL_API_KEYS", "k1, k2,")
    assert keys_from_env(["k0", "k1"]) == ["k0", "k1", "k2"]
    check_bind("0.0.0.0", keys_from_env([]), False)
    monkeypatch.delenv("AGENTMILL_API_KEYS")
    import sys

    from agentmill import cli

    monkeypatch.setattr(sys, "argv", ["agentmill", "serve", str(run_dir), "--host", "0.0.0.0"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--insecure-public" in err and "Traceback" not in err


def test_one_rendering(run):
    """The server prompts through the one `render` (what chat and training use)."""
    from agentmill.serve.prompts import chat_prompt
    from agentmill.serve.schemas import ChatCompletionRequest

    body = ChatCompletionRequest(model="t2", messages=[{"role": "developer", "content": "Be short."},
                                                       {"role": "user", "content": "hi"}], tools=[WEATHER])
    text, plan = chat_prompt(run, body, "t2")
    assert plan.choice == "auto" and text == render(run.tokenizer, [{"role": "system", "content": "Be short."},
                                                                    {"role": "user", "content": "hi"}],
                                                    add_generation_prompt=True, tools=[WEATHER])


def test_agentmill_serve_runs_the_engine_on_its_main_thread_and_stops_on_sigterm(run_dir, tmp_path):
    """The real command: uvicorn on a thread, the engine on the main thread (serve/server.py); it
    answers, stops cleanly on SIGTERM, and a port that is taken is a clear error, not a hang."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    port = free_port()
    env = dict(os.environ, AGENTMILL_HOME=str(tmp_path / "home"))
    argv = [sys.executable, "-m", "agentmill.cli", "serve", str(run_dir), "--port", str(port),
            "--db", str(tmp_path / "s.db")]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "slow"
            time.sleep(0.3)
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60, json={
            "model": "t1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] >= 1
        with socket.socket() as taken:  # a second server on a taken port
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            second = subprocess.run([*argv[:-4], "--port", str(taken.getsockname()[1])], env=env,
                                    capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and "could not serve on" in second.stderr + second.stdout
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "Application shutdown complete" in out and "Traceback" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
