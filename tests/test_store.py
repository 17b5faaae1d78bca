"""Session store conformance: every SessionStore implementation must pass the parametrised tests.

A new backend plugs in by adding a case to `store_factory`: an "module:callable" opener and a
location, so that writer processes (tests/store_writer.py) can open the same store too.
The tests marked SQLite-only at the bottom check the file itself (JSON not pickle, pragmas)
and the `agentmill sessions` sub-app.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentmill.errors import AgentmillError
from agentmill.store import (
    SessionExists,
    SessionNotFound,
    SessionStore,
    SQLiteSessionStore,
    StoredMessage,
    StoreError,
    StoreUnavailable,
    open_store,
)
from agentmill.store.schema import SCHEMA_VERSION
from agentmill.ui.sessions_cmd import sessions_app
from store_faults import FAULTS, files_read_only
from store_writer import message_content

WRITER = Path(__file__).with_name("store_writer.py")


@dataclass
class StoreFactory:
    """Opens handles on one store; `opener` and `location` let a child process open it too."""

    opener: str
    location: str
    opened: list[SessionStore] = field(default_factory=list)

    def __call__(self) -> SessionStore:
        module, _, name = self.opener.partition(":")
        store = getattr(__import__(module, fromlist=[name]), name)(self.location)
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite"])
def store_factory(request, tmp_path):
    if request.param == "sqlite":
        # a missing parent folder is part of the contract: the store creates it
        factory = StoreFactory("agentmill.store.sqlite:SQLiteSessionStore", str(tmp_path / "new" / "s.db"))
    yield factory
    for store in factory.opened:
        store.close()


@pytest.fixture
def store(store_factory) -> SessionStore:
    return store_factory()


def full_message(**changes) -> StoredMessage:
    message = StoredMessage(
        role="assistant",
        content="Grüße 👋 — 日本語\n\"quoted\" [not markup] \\ back\tslash",
        tool_calls=[{"id": "call_1", "type": "function",
                     "function": {"name": "get_price", "arguments": json.dumps({"symbol": "ÄPL"})},
                     "extra": {"deep": [{"x": None, "y": [1, 2.5, True, "ü"]}]}}],
        tool_call_id="call_0", name="advisor", task="finance", adapter="finance-lora",
        latency_ms=123, kind="tool_call",
        meta={"scores": {"finance": 0.875, "support": 0.125}, "empty": {}, "list": [None, "a", 3]},
        created=1700000000.123456,
    )
    return dataclasses.replace(message, **changes)


# -- round trip -------------------------------------------------------------------------------


def test_every_message_field_round_trips(store, store_factory):
    session = store.create("t")
    full, bare = full_message(), StoredMessage(role="user", content=None)
    before = time.time()
    assert store.append(session.id, full) == 1
    assert store.append(session.id, bare) == 2
    after = time.time()

    for handle in (store, store_factory()):  # the same answer from a fresh handle (re-read from disk)
        got = handle.messages(session.id)
        assert got[0] == dataclasses.replace(full, seq=1)
        assert before <= got[1].created <= after  # the store stamps messages given no time
        assert got[1] == dataclasses.replace(bare, seq=2, created=got[1].created)
        assert got[1].tool_calls is None and got[1].meta is None and got[1].latency_ms is None


def test_session_fields(store):
    before = time.time()
    session = store.create(title="Budget ✓ plan", run="runs/finance-advisor")
    assert session.title == "Budget ✓ plan" and session.run == "runs/finance-advisor"
    assert (session.prompt_tokens, session.completion_tokens) == (0, 0)
    assert before <= session.created == session.updated <= time.time()
    assert len(session.id) == 32 and all(c in "0123456789abcdef" for c in session.id)  # 128 random bits
    assert store.get(session.id) == session and session.owner is None
    owned = store.create(owner="key:abc")
    assert store.get(owned.id).owner == "key:abc" and owned.owner == "key:abc"

    plain = store.create()
    assert (plain.title, plain.run) == ("", None) and plain.id != session.id
    chosen = store.create("mine", session_id="chat-42")
    assert chosen.id == "chat-42" and store.get("chat-42").title == "mine"
    with pytest.raises(SessionExists, match="chat-42"):
        store.create(session_id="chat-42")


def test_holds_media_only_for_the_owner_or_unowned(store):
    digest, other = "a" * 64, "b" * 64
    mine, theirs, anyone = store.create(owner="key:me"), store.create(owner="key:them"), store.create()
    picture = {"type": "image", "sha256": digest}
    store.append(mine.id, StoredMessage(role="user", content="look", kind="user", meta={"media": [picture]}))
    store.append(anyone.id, StoredMessage(role="user", content="hear", kind="user",
                                          meta={"media": [{"type": "audio", "sha256": other}]}))
    # an assistant message that quotes a digest does not grant it
    store.append(theirs.id, StoredMessage(role="assistant", content="x", kind="answer",
                                          meta={"media": [{"sha256": "c" * 64}]}))
    assert store.holds_media(digest, "key:me") and not store.holds_media(digest, "key:them")
    assert store.holds_media(other, "key:me") and store.holds_media(other, "key:them")  # unowned session
    assert not store.holds_media("c" * 64, "key:them") and not store.holds_media("d" * 64, "key:me")
    for args in [(digest, "key:me"), (digest, "key:them"), (other, "key:them"), ("c" * 64, "key:them")]:
        assert SessionStore.holds_media(store, *args) == store.holds_media(*args)  # the generic fallback agrees


def test_usage_accumulates_and_rename(store):
    session = store.create("old")
    store.add_usage(session.id, 10, 5)
    store.add_usage(session.id, 7, 3)
    store.rename(session.id, "new title ✓")
    got = store.get(session.id)
    assert (got.prompt_tokens, got.completion_tokens, got.title) == (17, 8, "new title ✓")
    assert got.created == session.created and got.updated > session.updated


def test_delete_removes_the_session_and_its_messages(store):
    doomed, kept = store.create("doomed"), store.create("kept")
    store.append_many(doomed.id, [StoredMessage("user", "a"), StoredMessage("assistant", "b")])
    store.append(kept.id, StoredMessage("user", "stays"))
    assert store.delete(doomed.id) is None
    assert [s.id for s in store.list()] == [kept.id]
    assert [m.content for m in store.messages(kept.id)] == ["stays"]
    with pytest.raises(SessionNotFound):
        store.messages(doomed.id)
    # the id is free again and starts empty: its old messages really are gone
    store.create(session_id=doomed.id)
    assert store.messages(doomed.id) == []
    assert store.append(doomed.id, StoredMessage("user", "fresh")) == 1


@pytest.mark.parametrize("call", ["get", "delete", "messages", "message_count", "append",
                                  "append_many", "add_usage", "rename"])
def test_unknown_session_raises_not_found_naming_the_id(store, call):
    args = {"append": (StoredMessage("user", "x"),), "append_many": ([StoredMessage("user", "x")],),
            "add_usage": (1, 1), "rename": ("t",)}.get(call, ())
    with pytest.raises(SessionNotFound) as err:
        getattr(store, call)("no-such-id", *args)
    assert isinstance(err.value, AgentmillError)
    assert "no-such-id" in str(err.value) and "agentmill sessions list" in str(err.value)


# -- ordering and atomicity -------------------------------------------------------------------


def test_seqs_are_contiguous_in_append_order(store):
    session = store.create()
    seqs = [store.append(session.id, StoredMessage("user", f"m{i}")) for i in range(5)]
    seqs += store.append_many(session.id, [StoredMessage("assistant", f"m{i}") for i in range(5, 8)])
    assert store.append_many(session.id, []) == []
    assert seqs == list(range(1, 9))
    got = store.messages(session.id)
    assert [(m.seq, m.content) for m in got] == [(i + 1, f"m{i}") for i in range(8)]
    assert store.message_count(session.id) == 8


def test_list_orders_by_most_recently_updated(store):
    a, b, c = (store.create(name) for name in "abc")
    assert [s.id for s in store.list()] == [c.id, b.id, a.id]
    store.append(a.id, StoredMessage("user", "hi"))
    assert [s.id for s in store.list()] == [a.id, c.id, b.id]
    store.add_usage(b.id, 1, 2)
    assert [s.id for s in store.list()] == [b.id, a.id, c.id]
    assert [s.id for s in store.list(limit=2)] == [b.id, a.id]


@pytest.mark.parametrize("bad", [
    {"meta": {"tags": {"a", "b"}}},  # a set is not JSON
    {"tool_calls": [{"arguments": object()}]},
    {"meta": {"x": float("nan")}},  # json would write NaN, which is not JSON
])
def test_append_many_is_all_or_nothing(store, bad):
    session = store.create()
    store.append_many(session.id, [StoredMessage("user", "one"), StoredMessage("assistant", "two")])
    batch = [StoredMessage("user", "three"), full_message(**bad), StoredMessage("user", "five")]
    with pytest.raises(StoreError) as err:
        store.append_many(session.id, batch)
    assert next(iter(bad)) in str(err.value) and "message 2" in str(err.value)
    assert [m.content for m in store.messages(session.id)] == ["one", "two"]
    assert store.append(session.id, StoredMessage("user", "next")) == 3  # no gap left behind


# -- several writers, threads and processes ---------------------------------------------------


def test_threads_share_one_store(store):
    from concurrent.futures import ThreadPoolExecutor

    session = store.create()

    def write(worker: int) -> list[int]:
        return [store.append(session.id, StoredMessage("user", f"{worker}-{i}")) for i in range(25)]

    with ThreadPoolExecutor(4) as pool:
        seqs = [seq for worker_seqs in pool.map(write, range(4)) for seq in worker_seqs]
    assert sorted(seqs) == list(range(1, 101))
    got = store.messages(session.id)
    for worker in range(4):
        assert [m.content for m in got if m.content.startswith(f"{worker}-")] == [f"{worker}-{i}" for i in range(25)]


def start_writer(factory: StoreFactory, session_id: str, tag: str, count: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(WRITER), factory.opener, factory.location, session_id,
                             tag, str(count), *extra], stdout=subprocess.PIPE, text=True, encoding="utf-8")
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_two_writer_processes_never_collide_or_lose_messages(store_factory, tmp_path):
    store = store_factory()  # creates the store before the writers open it
    shared = store.create("shared").id
    own = {tag: store.create(f"own {tag}").id for tag in "AB"}
    go = tmp_path / "go"
    writers = {tag: start_writer(store_factory, shared, tag, 200, "--own-session", own[tag], "--go-file", str(go),
                                 "--pause", "0.002")
               for tag in "AB"}
    go.touch()  # both are started and waiting: release them together
    acks = {}
    for tag, proc in writers.items():
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        acks[tag] = [line.split() for line in out.splitlines()]

    got = store.messages(shared)
    assert [m.seq for m in got] == list(range(1, 401))
    writers_in_seq_order = [m.meta["writer"] for m in got]
    switches = sum(a != b for a, b in zip(writers_in_seq_order, writers_in_seq_order[1:]))
    assert switches >= 2, "the writers did not overlap, so this test proved nothing"
    for tag in "AB":
        mine = [m for m in got if m.meta["writer"] == tag]
        assert [m.content for m in mine] == [message_content(tag, i) for i in range(200)]
        acked_shared = {int(seq) for _, session_id, seq, _ in acks[tag] if session_id == shared}
        assert acked_shared == {m.seq for m in mine}  # every ack names the seq that was stored
        own_messages = store.messages(own[tag])
        assert [m.content for m in own_messages] == [message_content(tag, i) for i in range(0, 200, 4)]
        assert [m.seq for m in own_messages] == list(range(1, 51))


def test_processes_opening_a_new_store_at_once(store_factory, tmp_path):
    # A smoke test: the race it guards (SQLite refusing the WAL switch at once while another
    # process opens the new file) only shows in a few percent of runs.
    go = tmp_path / "go"
    writers = {tag: start_writer(store_factory, "new", tag, 5, "--go-file", str(go)) for tag in "ABCD"}
    go.touch()
    for proc in writers.values():
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    store = store_factory()
    sessions = {s.title: s.id for s in store.list()}
    assert sorted(sessions) == list("ABCD")
    for tag, session_id in sessions.items():
        assert [m.content for m in store.messages(session_id)] == [message_content(tag, i) for i in range(5)]


def test_acknowledged_messages_survive_kill_9(store_factory):
    store = store_factory()
    rng = random.Random(20240601)
    for attempt in range(4):
        session = store.create(f"killed {attempt}").id
        proc = start_writer(store_factory, session, f"k{attempt}", 1_000_000)
        try:
            first = proc.stdout.readline()  # it is writing now; let it run a little, then kill it
            assert first.startswith("ack ")
            time.sleep(rng.uniform(0.01, 0.3))
            os.kill(proc.pid, signal.SIGKILL)
            rest = proc.stdout.read()
        finally:
            proc.kill()
            proc.wait()
        lines = (first + rest).split("\n")[:-1]  # a line cut off by the kill has no newline: not an ack
        acked = {int(seq): int(index) for _, _, seq, index in (line.split() for line in lines)}

        reopened = store_factory()
        got = {m.seq: m for m in reopened.messages(session)}
        assert acked and set(acked) <= set(got)
        assert all(got[seq].content == message_content(f"k{attempt}", i) for seq, i in acked.items())
        assert sorted(got) == list(range(1, len(got) + 1))
        assert len(got) - len(acked) <= 1  # only the append in flight may have landed unacknowledged
        if len(got) > len(acked):  # ... and then it is whole: the next message of the loop
            assert got[len(got)].content == message_content(f"k{attempt}", len(acked))
        if isinstance(reopened, SQLiteSessionStore):
            with sqlite3.connect(reopened.path) as raw:
                assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# -- SQLite only: the file itself ---------------------------------------------------------------


def test_tool_calls_and_meta_are_json_text_never_pickle(tmp_path):
    path = tmp_path / "s.db"
    with open_store(path) as store:
        session = store.create()
        store.append(session.id, full_message())
    with sqlite3.connect(path) as raw:
        row = raw.execute("SELECT typeof(tool_calls), tool_calls, typeof(meta), meta FROM messages").fetchone()
    assert row[0] == row[2] == "text"
    assert json.loads(row[1]) == full_message().tool_calls
    assert json.loads(row[3]) == full_message().meta


def test_sqlite_file_is_durable_versioned_and_checked(tmp_path):
    path = tmp_path / "s.db"
    store = SQLiteSessionStore(path)
    assert store._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: fsync at every commit
    assert store._db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer agentmill"):
        SQLiteSessionStore(path)

    junk = tmp_path / "junk.db"
    junk.write_text("this is not a database, " * 100)
    with pytest.raises(StoreError, match="junk.db"):
        SQLiteSessionStore(junk)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_store_that_cannot_write_says_so_writes_nothing_and_still_reads(tmp_path, fault):
    store = SQLiteSessionStore(tmp_path / "s.db")
    kept = store.create(title="kept")
    store.append(kept.id, StoredMessage("user", "acknowledged"))
    big = StoredMessage("assistant", "x" * 200_000)  # needs new pages: a full disk refuses it
    writes = [lambda: store.append(kept.id, big), lambda: store.create(title="y" * 200_000),
              lambda: store.rename(kept.id, "z" * 200_000)]
    if fault == "read_only":  # a full disk still takes what fits in the file's free pages
        writes += [lambda: store.create(title="new"), lambda: store.add_usage(kept.id, 1, 1),
                   lambda: store.delete(kept.id)]
    with FAULTS[fault](store):
        for write in writes:
            with pytest.raises(StoreUnavailable, match=r"s\.db cannot take writes now: .*(full|readonly)"):
                write()
        assert [m.content for m in store.messages(kept.id)] == ["acknowledged"]  # reads still work
        assert [s.title for s in store.list()] == ["kept"]
    # nothing of the refused writes half-landed, and the store takes writes again once it can
    assert [m.content for m in store.messages(kept.id)] == ["acknowledged"]
    assert store.get(kept.id).title == "kept" and store.get(kept.id).prompt_tokens == 0
    assert store.append(kept.id, big) == 2
    store.close()
    with sqlite3.connect(tmp_path / "s.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_store_that_is_read_only_when_opened_serves_reads_and_refuses_writes(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    store = SQLiteSessionStore(path)
    assert store.cannot_write() is None
    kept = store.create(title="kept")
    store.append(kept.id, StoredMessage("user", "acknowledged"))
    store.close()
    with files_read_only(monkeypatch):
        store = SQLiteSessionStore(path)  # before: "not a usable session store" (the schema check wrote)
        assert "readonly" in store.cannot_write()
        assert [m.content for m in store.messages(kept.id)] == ["acknowledged"]
        assert [s.title for s in store.list()] == ["kept"]
        for write in (lambda: store.create(), lambda: store.append(kept.id, StoredMessage("user", "lost?")),
                      lambda: store.delete(kept.id)):
            with pytest.raises(StoreUnavailable, match="cannot take writes now"):
                write()
        store.close()
    store = SQLiteSessionStore(path)  # writable again: nothing changed, writes go on
    assert store.cannot_write() is None
    assert [m.content for m in store.messages(kept.id)] == ["acknowledged"]
    assert store.append(kept.id, StoredMessage("user", "later")) == 2
    store.close()


def test_a_read_only_store_that_needs_its_schema_written_says_so(tmp_path, monkeypatch):
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as raw:
        raw.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY)")
        raw.execute("PRAGMA user_version = 1")
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with files_read_only(monkeypatch):
        with pytest.raises(StoreError, match=r"old\.db is in schema 1 and needs upgrading to .*cannot be written"):
            SQLiteSessionStore(old)
        with pytest.raises(StoreError, match=r"empty\.db has no tables yet, but cannot be written"):
            SQLiteSessionStore(empty)


def test_media_grants_are_an_index_lookup_and_go_with_their_session(tmp_path):
    store = SQLiteSessionStore(tmp_path / "s.db")
    session = store.create(owner="key:me")
    odd = {"media": ["text", 3, None, {"sha256": ["x"]}, {"type": "image"}, {"sha256": "e" * 64}]}
    store.append(session.id, StoredMessage("user", "look", kind="user", meta=odd))
    store.append(session.id, StoredMessage("user", "again", kind="user", meta={"media": [{"sha256": "e" * 64}]}))
    store.append(session.id, StoredMessage("user", "no media", kind="user", meta={"media": "not a list"}))
    assert not store.holds_media("text", "key:me")
    traced = []
    store._db.set_trace_callback(traced.append)  # the statement holds_media runs, values bound
    assert store.holds_media("e" * 64, "key:me")
    store._db.set_trace_callback(None)
    plan = " ".join(str(row) for row in store._db.execute(f"EXPLAIN QUERY PLAN {traced[-1]}"))
    assert "messages" not in plan and "SEARCH media" in plan  # an index probe, no scan of the messages
    store.delete(session.id)
    assert not store.holds_media("e" * 64, "key:me")
    assert store._db.execute("SELECT COUNT(*) FROM media").fetchone() == (0,)
    store.close()


def test_an_older_file_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:  # what agentmill wrote before sessions had owners
        raw.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', "
                    "created REAL NOT NULL, updated REAL NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0, "
                    "completion_tokens INTEGER NOT NULL DEFAULT 0, run TEXT)")
        raw.execute("CREATE TABLE messages (session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE, "
                    "seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT, tool_calls TEXT, task TEXT, "
                    "adapter TEXT, latency_ms INTEGER, tool_call_id TEXT, name TEXT, kind TEXT, meta TEXT, "
                    "created REAL NOT NULL, UNIQUE (session_id, seq))")
        raw.execute("INSERT INTO sessions VALUES ('0123456789ab', 'old', 1.0, 2.0, 3, 4, 'runs/x')")
        raw.execute("INSERT INTO messages VALUES ('0123456789ab', 1, 'user', 'hello', NULL, NULL, NULL, NULL, "
                    "NULL, NULL, 'user', NULL, 1.5)")
        media = json.dumps({"media": [{"type": "image", "sha256": "a" * 64}, "odd", {"sha256": 7}]})
        raw.execute("INSERT INTO messages VALUES ('0123456789ab', 2, 'user', 'look', NULL, NULL, NULL, NULL, "
                    "NULL, NULL, 'user', ?, 1.6)", (media,))
        raw.execute("PRAGMA user_version = 1")
    store = SQLiteSessionStore(path)
    old = store.get("0123456789ab")
    assert (old.title, old.prompt_tokens, old.run, old.owner) == ("old", 3, "runs/x", None)
    assert [m.content for m in store.messages(old.id)] == ["hello", "look"]
    # schema 3 indexes media digests: those stored before are found (and nothing else)
    assert store.holds_media("a" * 64, None) and not store.holds_media("7", None)
    assert store.create(owner="key:k").owner == "key:k"
    store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_default_store_lives_in_agentmill_home(tmp_path, monkeypatch):
    from agentmill.store import sessions

    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path / "home"))
    assert sessions.default_store_path() == tmp_path / "home" / "sessions.db"
    with sessions.open_store() as store:
        assert isinstance(store, SQLiteSessionStore) and store.path == tmp_path / "home" / "sessions.db"
        store.create("kept")
    with open_store(tmp_path / "home" / "sessions.db") as store:
        assert [s.title for s in store.list()] == ["kept"]


# -- the `agentmill sessions` sub-app -----------------------------------------------------------


@pytest.fixture
def filled_db(tmp_path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "cli.db"
    with open_store(path) as store:
        first = store.create("Budget questions", run="runs/finance-advisor").id
        store.append_many(first, [
            StoredMessage("user", "How much should I save?", kind="user"),
            StoredMessage("assistant", None, task="finance", kind="tool_call", tool_calls=[
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_rate", "arguments": "{\"term\": 12}"}}]),
            StoredMessage("tool", "rate: 3.1%", tool_call_id="call_1", name="get_rate", kind="tool_result"),
            StoredMessage("assistant", "Save [bold]20%[/bold] of income.", task="finance", kind="answer",
                          latency_ms=250),
        ])
        store.add_usage(first, 120, 45)
        second = store.create("Printer help").id
        store.append(second, StoredMessage("user", "My printer is offline"))
    return path, {"first": first, "second": second}


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(sessions_app, [*args], input=input)


def test_cli_list(filled_db):
    path, ids = filled_db
    result = invoke("list", "--db", str(path))
    assert result.exit_code == 0, result.output
    for expected in (ids["first"], ids["second"], "Budget questions", "Printer help", "runs/finance-advisor",
                     "120/45"):
        assert expected in result.output
    assert result.output.index("Printer help") < result.output.index("Budget questions")  # newest first
    first_row = next(line for line in result.output.splitlines() if ids["first"] in line)
    assert " 4 " in first_row  # message count


def test_cli_list_without_a_store_creates_nothing(tmp_path):
    result = invoke("list", "--db", str(tmp_path / "none.db"))
    assert result.exit_code == 0 and "no sessions yet" in result.output
    assert not (tmp_path / "none.db").exists()


def test_cli_show(filled_db):
    path, ids = filled_db
    result = invoke("show", ids["first"], "--db", str(path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Budget questions" in out and "How much should I save?" in out
    assert "[finance]" in out
    assert 'tool call: {"id":"call_1","type":"function","function":{"name":"get_rate"' in out
    assert "tool result of get_rate (call_1)" in out and "rate: 3.1%" in out
    assert "Save [bold]20%[/bold] of income." in out  # content printed as is, not as rich markup
    assert out.index("How much") < out.index("get_rate") < out.index("rate: 3.1%") < out.index("Save")


def test_cli_show_unknown_id_and_missing_store_are_clear_errors(filled_db, tmp_path):
    path, _ = filled_db
    result = invoke("show", "nope", "--db", str(path))
    assert isinstance(result.exception, SessionNotFound) and "nope" in str(result.exception)
    result = invoke("show", "nope", "--db", str(tmp_path / "missing.db"))
    assert isinstance(result.exception, StoreError) and "missing.db" in str(result.exception)
    assert not (tmp_path / "missing.db").exists()


def test_cli_delete_asks_first(filled_db):
    path, ids = filled_db
    result = invoke("delete", ids["first"], "--db", str(path), input="n\n")
    assert result.exit_code == 0 and "nothing deleted" in result.output
    with open_store(path) as store:
        assert store.message_count(ids["first"]) == 4

    result = invoke("delete", ids["first"], "--db", str(path), input="y\n")
    assert result.exit_code == 0 and f"deleted session {ids['first']}" in result.output
    result = invoke("delete", ids["second"], "--db", str(path), "--yes")
    assert result.exit_code == 0 and "?" not in result.output  # no question asked
    with open_store(path) as store:
        assert store.list() == []


def test_main_cli_prints_store_errors_as_one_line(filled_db, monkeypatch, capsys):
    from agentmill import cli

    path, _ = filled_db
    monkeypatch.setattr(sys, "argv", ["agentmill", "sessions", "show", "nope", "--db", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: no session with id 'nope'") and "Traceback" not in err
