"""With API keys, an agent session belongs to the key that made it: another key can neither list,
read, continue nor delete it, nor fetch the media of its messages; the key itself is never stored."""

import httpx
import pytest

from agentmill.model.run import RunModel
from agentmill.serve import ServeSettings, create_app
from agentmill.store import SQLiteSessionStore, StoredMessage
from serve_util import build_run, live_server

ALICE, BOB = "sk-alice-0123456789", "sk-bob-9876543210"


@pytest.fixture(scope="module")
def served(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("owners")
    run = RunModel.load(build_run(root / "run", tokenizer))
    store = SQLiteSessionStore(root / "sessions.db")
    settings = ServeSettings(api_keys=[ALICE, BOB], max_tokens_cap=16, agent_max_new_tokens=4,
                             media_dir=root / "media")
    app = create_app(run, store=store, settings=settings)
    with live_server(app) as url:
        yield url, app, store, root
    store.close()


def client(url, key):
    return httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"})


def test_a_session_is_its_keys_alone(served):
    url, app, store, root = served
    with client(url, ALICE) as alice, client(url, BOB) as bob:
        sid = alice.post("/v1/agent/sessions", json={"title": "alice's"}).json()["id"]
        theirs = bob.post("/v1/agent/sessions", json={"title": "bob's"}).json()["id"]
        assert len(sid) == 32 and "owner" not in alice.get(f"/v1/agent/sessions/{sid}").json()
        assert [s["id"] for s in alice.get("/v1/agent/sessions").json()["data"]] == [sid]
        assert [s["id"] for s in bob.get("/v1/agent/sessions", params={"all": True}).json()["data"]] == [theirs]

        turn = alice.post(f"/v1/agent/sessions/{sid}/messages", json={"content": "hello", "task": "t1"})
        assert turn.status_code == 200, turn.text
        for response in (bob.get(f"/v1/agent/sessions/{sid}"),
                         bob.post(f"/v1/agent/sessions/{sid}/messages", json={"content": "hi", "task": "t1"}),
                         bob.delete(f"/v1/agent/sessions/{sid}")):
            # exactly what an id that does not exist gets: the id is not even confirmed
            assert response.status_code == 404 and response.json()["error"]["code"] == "session_not_found"
        assert bob.get("/v1/agent/sessions/" + "f" * 32).json()["error"]["code"] == "session_not_found"
        kinds = [m["kind"] for m in alice.get(f"/v1/agent/sessions/{sid}").json()["messages"]]
        assert kinds.count("user") == 1  # bob's message never reached it
        assert alice.delete(f"/v1/agent/sessions/{theirs}").status_code == 404
        assert bob.delete(f"/v1/agent/sessions/{theirs}").json()["deleted"] is True
    raw = (root / "sessions.db").read_bytes() + b"".join(p.read_bytes() for p in root.glob("sessions.db-*"))
    assert ALICE.encode() not in raw and BOB.encode() not in raw


def test_media_is_fetched_only_by_the_key_whose_message_carries_it(served):
    url, app, store, _ = served
    media = app.state.agentmill.media_store
    digest = media.put(b"\x89PNG\r\n\x1a\n" + b"picture of alice's invoice")
    stray = media.put(b"\x89PNG\r\n\x1a\n" + b"in no message at all")
    with client(url, ALICE) as alice, client(url, BOB) as bob:
        sid = alice.post("/v1/agent/sessions", json={}).json()["id"]
        store.append(sid, StoredMessage(role="user", content="[image, OCR] ...", kind="user",
                                        meta={"kind": "user", "content": "...", "media": [{"sha256": digest}]}))
        assert alice.get(f"/v1/agent/media/{digest}").content.endswith(b"alice's invoice")
        assert bob.get(f"/v1/agent/media/{digest}").status_code == 404
        assert alice.get(f"/v1/agent/media/{stray}").status_code == 404  # stored, but no message of hers


def test_logs_carry_no_message_content(served, caplog):
    import logging

    url, _, _, _ = served
    caplog.set_level(logging.DEBUG)
    marker = "zebra-7731-confidential"
    with client(url, ALICE) as alice:
        sid = alice.post("/v1/agent/sessions", json={}).json()["id"]
        assert alice.post(f"/v1/agent/sessions/{sid}/messages",
                          json={"content": f"my PIN note: {marker}", "task": "t1"}).status_code == 200
        chat = alice.post("/v1/chat/completions", json={"model": "t1", "max_tokens": 4,
                                                        "messages": [{"role": "user", "content": marker}]})
        assert chat.status_code == 200, chat.text
        bad = alice.post("/v1/chat/completions", json={"model": "t1", "messages": [{"role": "wizard",
                                                                                    "content": marker}]})
        assert bad.status_code in (400, 422)
    assert caplog.records and marker not in caplog.text and ALICE not in caplog.text
