"""The agent routes (/v1/agent) against a live server: sessions in the store, a message answered with
and without streaming, server-side tool calls as SSE events, the conversation read back."""

import json

import httpx
import pytest

from agentmill.model.run import RunModel
from agentmill.serve import ServeSettings, create_app
from agentmill.store import SQLiteSessionStore, StoredMessage
from serve_util import build_run, live_server, script_outputs
from store_faults import FAULTS, files_read_only

CALC = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call>'


@pytest.fixture(scope="module")
def server(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("agent")
    run = RunModel.load(build_run(root / "run", tokenizer))
    store = SQLiteSessionStore(root / "s.db")
    app = create_app(run, store=store, settings=ServeSettings(agent_max_new_tokens=48))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as h:
        yield h, store
    store.close()


def sse_events(response) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


def test_sessions_message_and_history(server):
    h, store = server
    session = h.post("/v1/agent/sessions", json={}).json()
    assert session["object"] == "agent.session" and session["title"] == ""
    assert session["id"] in [s["id"] for s in h.get("/v1/agent/sessions").json()["data"]]

    turn = h.post(f"/v1/agent/sessions/{session['id']}/messages", json={"content": "hello there", "task": "t1"}).json()
    assert turn["task"] == "t1" and isinstance(turn["answer"], str) and turn["usage"]["completion_tokens"] > 0
    assert [s["kind"] for s in turn["steps"]] == ["user", "route", "answer"]

    with h.stream("POST", f"/v1/agent/sessions/{session['id']}/messages",
                  json={"content": "and now?", "task": "auto", "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    kinds = [k for k, _ in events]
    assert kinds[0] == "route" and kinds[-2:] == ["answer", "done"]
    assert set(kinds) <= {"route", "token", "answer", "done"}
    route, answer, done = events[0][1], events[-2][1], events[-1][1]
    assert route["task"] in ("t1", "t2") and set(route["scores"]) == {"t1", "t2"} and route["forced"] is False
    assert "".join(e["text"] for k, e in events if k == "token").strip() == answer["content"]  # the agent strips
    assert done["task"] == route["task"] and done["session_id"] == session["id"]

    stored = h.get(f"/v1/agent/sessions/{session['id']}").json()
    assert stored["title"] == "hello there" and stored["prompt_tokens"] > 0
    assert [m["kind"] for m in stored["messages"]] == ["user", "route", "answer"] * 2
    assert stored["messages"][-1]["content"] == answer["content"]
    assert [m.kind for m in store.messages(session["id"])] == ["user", "route", "answer"] * 2

    assert h.delete(f"/v1/agent/sessions/{session['id']}").json()["deleted"] is True
    r = h.get(f"/v1/agent/sessions/{session['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found"
    r = h.post(f"/v1/agent/sessions/{session['id']}/messages", json={"content": "hi"})
    assert r.status_code == 404


def test_server_side_tool_call_streams_as_events(server, monkeypatch, tokenizer):
    h, _ = server
    # first generation: a calculator call; after the tool's result: the answer
    script_outputs(monkeypatch, tokenizer, {"<tool_response>": "It is 5.", "SCRIPTED-CALC": "Sure. " + CALC})
    sid = h.post("/v1/agent/sessions", json={"title": "calc"}).json()["id"]
    with h.stream("POST", f"/v1/agent/sessions/{sid}/messages",
                  json={"content": "SCRIPTED-CALC what is 2+3?", "task": "t2", "stream": True}) as r:
        events = sse_events(r)
    kinds = [k for k, _ in events]
    assert kinds[0] == "route" and "tool_call" in kinds and kinds[-2:] == ["answer", "done"]
    call = next(e for k, e in events if k == "tool_call")
    result = next(e for k, e in events if k == "tool_result")
    assert call["function"]["name"] == "calculator"
    assert json.loads(call["function"]["arguments"]) == {"expression": "2+3"}
    assert result == {"id": call["id"], "name": "calculator", "content": "5", "error": False}
    assert events[-2][1]["content"] == "It is 5." and "<tool_call>" not in "".join(
        e["text"] for k, e in events if k == "token")
    stored = h.get(f"/v1/agent/sessions/{sid}").json()["messages"]
    assert [m["kind"] for m in stored] == ["user", "route", "model", "tool_result", "answer"]


def test_agent_route_errors(server):
    h, _ = server
    sid = h.post("/v1/agent/sessions").json()["id"]
    r = h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": "hi", "task": "nope"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "task"
    r = h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": ""})
    assert r.status_code == 422 and r.json()["error"]["param"] == "content"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_store_that_cannot_write_is_a_503_and_reads_keep_working(server, fault, caplog):
    h, store = server
    sid = h.post("/v1/agent/sessions").json()["id"]
    assert h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": "hello", "task": "t1"}).status_code == 200
    before = h.get(f"/v1/agent/sessions/{sid}").json()["messages"]
    big = "tell me " * 20_000  # a message that needs new pages in the file: a full disk refuses it
    with FAULTS[fault](store), caplog.at_level("ERROR", logger="agentmill.serve"):
        r = h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": big, "task": "t1"})
        assert r.status_code == 503 and r.headers["retry-after"] == "30"
        assert r.json()["error"]["type"] == "server_error" and r.json()["error"]["code"] == "store_unavailable"
        with h.stream("POST", f"/v1/agent/sessions/{sid}/messages",
                      json={"content": big, "task": "t1", "stream": True}) as streamed:
            events = sse_events(streamed)
        assert events == [("error", r.json())]  # a stream says the same, as its one event
        # reads still work and show exactly what was acknowledged
        assert h.get(f"/v1/agent/sessions/{sid}").json()["messages"] == before
        assert sid in [s["id"] for s in h.get("/v1/agent/sessions").json()["data"]]
        if fault == "read_only":  # what fits in free pages still goes to a full disk
            r = h.post("/v1/agent/sessions", json={"title": "new"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
    logged = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert logged and all(str(store.path) in m and "cannot take writes" in m for m in logged)
    assert all("tell me" not in m for m in logged)  # the log names the store, never the message
    # once the store takes writes again the same session goes on, well formed
    turn = h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": "again", "task": "t1"}).json()
    assert [s["kind"] for s in turn["steps"]] == ["user", "route", "answer"]
    after = h.get(f"/v1/agent/sessions/{sid}").json()["messages"]
    assert after[:len(before)] == before and [m["kind"] for m in after] == ["user", "route", "answer"] * 2


def test_a_server_started_on_a_read_only_store_serves_its_sessions_and_503s_writes(tmp_path, tokenizer, monkeypatch):
    writable = SQLiteSessionStore(tmp_path / "s.db")
    sid = writable.create(title="kept").id
    writable.append(sid, StoredMessage("user", "acknowledged", kind="user"))
    writable.close()
    run = RunModel.load(build_run(tmp_path / "run", tokenizer))
    with files_read_only(monkeypatch):
        store = SQLiteSessionStore(tmp_path / "s.db")  # before: the server refused to start
    app = create_app(run, store=store, settings=ServeSettings(agent_max_new_tokens=8))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as h:
        assert [m["content"] for m in h.get(f"/v1/agent/sessions/{sid}").json()["messages"]] == ["acknowledged"]
        for r in (h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": "hi", "task": "t1"}),
                  h.post("/v1/agent/sessions")):
            assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
        assert h.post("/v1/chat/completions", json={"model": "t1", "max_tokens": 2,
                                                    "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    store.close()


@pytest.mark.parametrize("log_content", [False, True])
def test_logs_carry_message_content_only_when_asked(tmp_path, tokenizer, caplog, log_content):
    run = RunModel.load(build_run(tmp_path / "run", tokenizer))
    store = SQLiteSessionStore(tmp_path / "s.db")
    app = create_app(run, store=store, settings=ServeSettings(agent_max_new_tokens=8, log_content=log_content))
    secret = "my card number is 4111-2222-3333-4444"
    with caplog.at_level("DEBUG"), live_server(app) as url, httpx.Client(base_url=url, timeout=60) as h:
        assert h.post("/v1/chat/completions", json={"model": "t1", "max_tokens": 2, "messages": [
            {"role": "user", "content": f"chat: {secret}"}]}).status_code == 200
        assert h.post("/v1/completions", json={"model": "t1", "max_tokens": 2,
                                               "prompt": f"text: {secret}"}).status_code == 200
        sid = h.post("/v1/agent/sessions").json()["id"]
        assert h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": f"agent: {secret}",
                                                                  "task": "t1"}).status_code == 200
    logged = [r.getMessage() for r in caplog.records]
    with_secret = [m for m in logged if "4111-2222-3333-4444" in m]
    if log_content:  # one line per request, and the agent's answer
        assert [m.split(":")[0].split()[0] for m in with_secret] == ["chat", "completion", "agent"]
        assert any(m.startswith(f"agent {sid} answer:") for m in logged)
    else:
        assert logged and with_secret == []  # the server did log (access lines), never the content
    store.close()
