"""`kill -9` of `agentmill serve` in the middle of load, then a restart on the same store: every
agent turn a client saw acknowledged is in the store whole, no message is half-written, the file
is intact, and every session continues."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import httpx

from agentmill.agent.steps import from_dict
from agentmill.serve import ServeSettings
from agentmill.store import SQLiteSessionStore
from serve_util import build_run, served_process
from test_serve_agent import sse_events

SESSIONS = 4


def _client(url: str, sid: str, stream: bool, acknowledged: list, stop: threading.Event) -> None:
    """Post numbered messages to one session until the server dies; keep each acknowledged turn."""
    with httpx.Client(base_url=url, timeout=60) as h:
        for i in range(1000):
            if stop.is_set():
                return
            content = f"{sid[:6]} message {i}"
            body = {"content": content, "task": "t1" if i % 2 else "auto", "stream": stream}
            try:
                if stream:
                    with h.stream("POST", f"/v1/agent/sessions/{sid}/messages", json=body) as r:
                        events = sse_events(r)
                    if events and events[-1][0] == "done":  # acknowledged: the turn ended and said so
                        acknowledged.append((content, next(e["content"] for k, e in events if k == "answer")))
                else:
                    r = h.post(f"/v1/agent/sessions/{sid}/messages", json=body)
                    if r.status_code == 200:
                        acknowledged.append((content, r.json()["answer"]))
            except (httpx.HTTPError, StopIteration, ValueError):
                return  # the server is gone


def test_kill_9_under_load_loses_nothing_acknowledged_and_sessions_continue(tmp_path, tokenizer):
    run_dir = build_run(tmp_path / "run", tokenizer)
    db, log = tmp_path / "s.db", tmp_path / "server.log"
    settings = ServeSettings(agent_max_new_tokens=24, rate_per_minute=1_000_000)
    process, url = served_process(run_dir, db, settings, log)
    try:
        sids = [httpx.post(url + "/v1/agent/sessions", json={}).json()["id"] for _ in range(SESSIONS)]
        acknowledged = {sid: [] for sid in sids}
        stop = threading.Event()
        clients = [threading.Thread(target=_client, args=(url, sid, n % 2 == 1, acknowledged[sid], stop))
                   for n, sid in enumerate(sids)]
        for c in clients:
            c.start()
        deadline = time.monotonic() + 120
        while min(len(a) for a in acknowledged.values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)  # in the middle of turns: each client has one in flight
        process.wait(timeout=30)
        stop.set()
        for c in clients:
            c.join(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert min(len(a) for a in acknowledged.values()) >= 2, log.read_text()[-3000:]

    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SQLiteSessionStore(db)
    for sid in sids:
        stored = store.messages(sid)
        assert [m.seq for m in stored] == list(range(1, len(stored) + 1))
        steps = [from_dict(m.meta) for m in stored]  # every row is a whole step (no half-written JSON)
        users = [m.content for m in stored if m.kind == "user"]
        answers = [m.content for m in stored if m.kind == "answer"]
        seen = acknowledged[sid]
        assert users[:len(seen)] == [content for content, _ in seen]  # acknowledged turns in order
        assert answers[:len(seen)] == [answer for _, answer in seen]
        assert len(users) - len(seen) <= 1  # at most the turn that was cut, unacknowledged
        assert len(steps) == len(stored)
    store.close()

    process, url = served_process(run_dir, db, settings, log)  # restart on the same store
    try:
        with httpx.Client(base_url=url, timeout=60) as h:
            for sid in sids:
                before = h.get(f"/v1/agent/sessions/{sid}").json()["messages"]
                turn = h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": "still there?", "task": "t1"})
                assert turn.status_code == 200 and turn.json()["answer"] is not None
                after = h.get(f"/v1/agent/sessions/{sid}").json()["messages"]
                assert after[:len(before)] == before
                assert [m["kind"] for m in after[len(before):]] == ["user", "route", "answer"]
    finally:
        process.terminate()
        process.wait(timeout=30)
