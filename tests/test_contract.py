"""The API keeps what /openapi.json promises: a seeded schemathesis run with every check against
a live server on the tiny run, and the promises it checks spelled out one by one (`n` choices,
refused log probabilities, 405 with the real Allow header, documented errors and limits)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from agentmill.serve import ServeSettings
from fuzz_hooks import BODY_LIMIT
from serve_util import build_run, served_process

TESTS = Path(__file__).resolve().parent
CAP = 16


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer):
    return build_run(tmp_path_factory.mktemp("contract") / "run", tokenizer)


# the limits of the fuzz: a context longer than any body the fuzzer sends, so that no schema-valid
# prompt is too long
@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    settings = ServeSettings(max_tokens_cap=CAP, rate_per_minute=1_000_000, max_body_bytes=BODY_LIMIT,
                             context_tokens=2 * BODY_LIMIT, media_dir=folder / "media")
    process, url = served_process(run_dir, folder / "s.db", settings, folder / "server.log")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="none", max_retries=0, timeout=60)


def fuzz(url: str, examples: int, seed: int) -> subprocess.CompletedProcess:
    """schemathesis with tests/schemathesis.toml and tests/fuzz_hooks.py against `url`."""
    st = Path(sys.executable).with_name("st")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(TESTS)}
    return subprocess.run([str(st), "--config-file", str(TESTS / "schemathesis.toml"), "run", f"{url}/openapi.json",
                           "--max-examples", str(examples), "--seed", str(seed), "--no-color"],
                          cwd=TESTS, env=env, capture_output=True, text=True, timeout=900)


def test_a_fuzzer_finds_no_broken_promise(server):
    """`make fuzz` runs it longer: AGENTMILL_FUZZ_EXAMPLES per operation, AGENTMILL_FUZZ_SEED."""
    done = fuzz(server, examples=int(os.environ.get("AGENTMILL_FUZZ_EXAMPLES", 25)),
                seed=int(os.environ.get("AGENTMILL_FUZZ_SEED", 1)))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    print(out[out.rindex("SUMMARY"):])
    summary = out[out.rindex("SUMMARY"):]
    tested = int(re.search(r"Tested: (\d+)", summary)[1])
    generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", summary).groups())
    assert tested >= 14 and generated >= 500 and passed == generated, summary


def test_n_choices_are_the_seeded_samples_one_by_one(client):
    ask = {"model": "t1", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "temperature": 1.0}
    many = client.chat.completions.create(n=3, seed=7, **ask)
    singles = [client.chat.completions.create(seed=7 + i, **ask) for i in range(3)]
    alone = [r.choices[0].message.content for r in singles]
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert [c.message.content for c in many.choices] == alone
    assert len(set(alone)) > 1  # the seeds differ, so do the samples
    assert many.usage.prompt_tokens == singles[0].usage.prompt_tokens  # the prompt counts once
    assert many.usage.completion_tokens == sum(r.usage.completion_tokens for r in singles)
    streamed = {}
    for chunk in client.chat.completions.create(n=3, seed=7, stream=True, **ask):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + (choice.delta.content or "")
    assert [streamed[i] for i in range(3)] == alone


def test_n_text_completions(client):
    ask = {"model": "t2", "prompt": "Once upon", "max_tokens": 5, "temperature": 1.0}
    many = client.completions.create(n=2, seed=3, **ask)
    alone = [client.completions.create(seed=3 + i, **ask).choices[0].text for i in range(2)]
    assert [c.index for c in many.choices] == [0, 1] and [c.text for c in many.choices] == alone
    assert many.usage.prompt_tokens == client.completions.create(seed=3, **ask).usage.prompt_tokens
    streamed, usage = {}, None
    for chunk in client.completions.create(n=2, seed=3, stream=True, **ask):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
        usage = chunk.usage or usage
    assert [streamed[i] for i in range(2)] == alone and usage.completion_tokens == many.usage.completion_tokens


def test_a_tiny_temperature_is_greedy(client):
    ask = {"model": "t1", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6}
    greedy = client.chat.completions.create(temperature=0, **ask).choices[0].message.content
    assert client.chat.completions.create(temperature=1e-200, **ask).choices[0].message.content == greedy


def test_log_probabilities_are_refused_by_name(server):
    with httpx.Client(base_url=server) as h:
        for field, value in (("logprobs", True), ("top_logprobs", 2)):
            r = h.post("/v1/chat/completions", json={"model": "t1", "messages": [{"role": "user", "content": "Hi"}],
                                                     field: value})
            assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
            assert "log probabilities" in r.json()["error"]["message"]


def test_a_wrong_method_gets_405_naming_every_method(server):
    with httpx.Client(base_url=server) as h:
        r = h.request("OPTIONS", "/v1/agent/sessions")
        assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
        assert r.json()["error"]["message"] == "OPTIONS is not allowed on /v1/agent/sessions: use GET or POST"
        assert h.put("/v1/agent/sessions/abc").headers["allow"] == "DELETE, GET"


def test_the_schema_documents_errors_and_this_runs_limits(server):
    schema = httpx.get(server + "/openapi.json").json()
    tasks = [m["id"] for m in httpx.get(server + "/v1/models").json()["data"] if m["agentmill"]["kind"] == "task"]
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    assert set(chat["responses"]) == {"200", "400", "401", "404", "413", "422", "429", "500"}
    assert chat["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "Retry-After" in chat["responses"]["429"]["headers"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    turn = schema["paths"]["/v1/agent/sessions/{session_id}/messages"]["post"]["responses"]
    assert set(turn) >= {"404", "409", "503"} and "Retry-After" in turn["503"]["headers"]
    request = schema["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert request["model"]["enum"] == ["tiny-base", *tasks, "auto", "base"]
    assert {"type": "integer", "minimum": 1, "maximum": CAP} in request["max_tokens"]["anyOf"]
    assert request["n"]["maximum"] == 16
    task = schema["components"]["schemas"]["AgentMessage"]["properties"]["task"]
    assert task["enum"] == ["auto", "base", *tasks]
    links = schema["paths"]["/v1/agent/sessions"]["post"]["responses"]["200"]["links"]
    assert {link["parameters"]["session_id"] for link in links.values()} == {"$response.body#/id"} and len(links) == 3
