"""What a session store keeps (sessions and their messages) and the interface every store implements.

The agent, the terminal chat and the HTTP server only talk to `SessionStore`, so a different
backend (a server database, say) plugs in by passing `tests/test_store.py` — the conformance suite.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentmill.errors import AgentmillError
from agentmill.paths import home


class StoreError(AgentmillError):
    """The session store cannot do what was asked (unreadable file, unserialisable message, ...)."""


class StoreUnavailable(StoreError):
    """The store cannot take a write now (disk full, read-only file or mount, I/O error, locked
    too long): nothing was written, reads still work, and the same write may succeed later."""


class SessionNotFound(StoreError):
    """No session with this id: a typo, or it was deleted."""

    def __init__(self, session_id: str):
        self.session_id = session_id
        super().__init__(f"no session with id {session_id!r} (see `agentmill sessions list`)")


class SessionExists(StoreError):
    """`create` was given an id that is already taken."""

    def __init__(self, session_id: str):
        self.session_id = session_id
        super().__init__(f"a session with id {session_id!r} already exists")


@dataclass
class Session:
    """One conversation's header. Times are Unix seconds; `run` is the RUN_DIR it talked to;
    `owner` is who may read it (the server's digest of the API key that made it; None: anyone)."""

    id: str
    title: str
    created: float
    updated: float
    prompt_tokens: int
    completion_tokens: int
    run: str | None
    owner: str | None = None

    def readable_by(self, owner: str | None) -> bool:
        """A key's sessions are that key's; sessions made without a key are anyone's (a server
        that gains keys later keeps serving them). SQLiteSessionStore.holds_media says it in SQL."""
        return self.owner is None or self.owner == owner


@dataclass
class StoredMessage:
    """One step of a conversation, as the agent saw it.

    `role`, `content`, `tool_calls`, `tool_call_id` and `name` follow the OpenAI chat shape so a
    history replays as-is; `task`/`adapter` say which adapter answered, `kind` is the agent's
    typed-step kind ("user", "route", "model", "tool_call", "tool_result", "answer", "trim") and
    `meta` is free JSON. `tool_calls` and `meta` are stored as JSON, so they come back as JSON
    gives them (tuples become lists, keys become strings). The store fills `seq` (1, 2, ... per
    session) and `created` (unless given) when the message is appended.
    """

    role: str
    content: str | None
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    task: str | None = None
    adapter: str | None = None
    latency_ms: int | None = None
    kind: str | None = None
    meta: dict | None = None
    seq: int | None = None
    created: float | None = None


class SessionStore(abc.ABC):
    """Durable storage of sessions and their messages.

    Contract (checked by tests/test_store.py): `append`/`append_many` return only once the write
    is committed, so an acknowledged message survives the writer being killed; a batch is stored
    whole or not at all; seqs of a session are 1..n in append order even with several writer
    processes; every change to a session (message, usage, title) moves its `updated` forward.
    """

    @abc.abstractmethod
    def create(self, title: str = "", run: str | None = None, session_id: str | None = None,
               owner: str | None = None) -> Session:
        """Start a session; a random unguessable id (128 bits) unless `session_id` is given
        (SessionExists if taken)."""

    @abc.abstractmethod
    def get(self, session_id: str) -> Session:
        """The session's header; SessionNotFound if there is none."""

    @abc.abstractmethod
    def list(self, limit: int | None = None) -> list[Session]:
        """Sessions, most recently updated first."""

    def cannot_write(self) -> str | None:
        """Why the store cannot take writes now (a read-only file, a full disk), or None. A store
        that cannot write still opens and reads; each write raises StoreUnavailable."""
        return None

    def append(self, session_id: str, message: StoredMessage) -> int:
        """Store one message and return its seq once it is durable."""
        return self.append_many(session_id, [message])[0]

    @abc.abstractmethod
    def append_many(self, session_id: str, messages: Sequence[StoredMessage]) -> list[int]:
        """Store messages in one transaction (all or none) and return their seqs once durable."""

    @abc.abstractmethod
    def messages(self, session_id: str) -> list[StoredMessage]:
        """The session's messages in seq order, `seq` and `created` filled in."""

    def message_count(self, session_id: str) -> int:
        """How many messages the session has (stores override this with something cheaper)."""
        return len(self.messages(session_id))

    def holds_media(self, digest: str, owner: str | None) -> bool:
        """Whether a user message carries the media with this SHA-256 (in its `meta["media"]`),
        in a session that is unowned or owned by `owner`. Stores override this with a query."""
        for session in self.list():
            if not session.readable_by(owner):
                continue
            for message in self.messages(session.id):
                if message.kind != "user":
                    continue
                media = (message.meta or {}).get("media") or []
                if any(isinstance(m, dict) and m.get("sha256") == digest for m in media):
                    return True
        return False

    @abc.abstractmethod
    def add_usage(self, session_id: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Add one generation's token counts to the session's totals."""

    @abc.abstractmethod
    def rename(self, session_id: str, title: str) -> None:
        """Give the session a new title."""

    @abc.abstractmethod
    def delete(self, session_id: str) -> None:
        """Remove the session and all its messages; SessionNotFound if there is none."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's resources; the store is not used afterwards."""

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def default_store_path() -> Path:
    """AGENTMILL_HOME/sessions.db: one store shared by chat, serve and the `sessions` command."""
    return home() / "sessions.db"


def open_store(path: str | os.PathLike | None = None) -> SessionStore:
    """The session store at `path` (default `default_store_path()`), created with its folder if missing."""
    from agentmill.store.sqlite import SQLiteSessionStore  # the backend imports this module

    return SQLiteSessionStore(default_store_path() if path is None else path)
