"""The SQLite store's on-disk format: its tables, and how a StoredMessage becomes a row and back.

JSON fields (tool_calls, meta) are stored as JSON text, never pickle: the file may come from
anyone, and reading it must not run code.
"""

from __future__ import annotations

import json

from agentmill.store.sessions import StoredMessage, StoreError

# PRAGMA user_version of a store this code wrote; bump it and add a migration step when the
# tables change, so an older file is upgraded in place instead of misread.
SCHEMA_VERSION = 3

SCHEMA = [
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        updated REAL NOT NULL,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        run TEXT,
        owner TEXT
    )""",
    """CREATE TABLE messages (
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT,
        tool_calls TEXT CHECK (tool_calls IS NULL OR json_valid(tool_calls)),
        task TEXT,
        adapter TEXT,
        latency_ms INTEGER,
        tool_call_id TEXT,
        name TEXT,
        kind TEXT,
        meta TEXT CHECK (meta IS NULL OR json_valid(meta)),
        created REAL NOT NULL,
        UNIQUE (session_id, seq)
    )""",
    "CREATE INDEX sessions_by_updated ON sessions (updated)",
]

# Which session's user messages carry the media with this SHA-256 (what /v1/agent/media may
# serve to whom): kept beside the messages so the lookup is an index probe, not a JSON scan of
# every user message.
MEDIA_TABLE = [
    """CREATE TABLE media (
        sha256 TEXT NOT NULL,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        PRIMARY KEY (sha256, session_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX media_by_session ON media (session_id)",
]
SCHEMA += MEDIA_TABLE

# the media digests of user messages (CASE: json_extract of a non-object element would fail on its
# text), for the messages the condition picks: by the migration for every stored message, by an
# append for the rows it just inserted (INDEX_MEDIA's parameters: session id, the seq before them)
_INDEX_MEDIA_WHERE = ("INSERT OR IGNORE INTO media (session_id, sha256) SELECT session_id, digest FROM "
                      "(SELECT m.session_id, CASE WHEN j.type = 'object' THEN json_extract(j.value, '$.sha256') END "
                      "AS digest FROM messages m, json_each(m.meta, '$.media') j WHERE m.kind = 'user' AND {}) "
                      "WHERE typeof(digest) = 'text'")
INDEX_MEDIA = _INDEX_MEDIA_WHERE.format("m.session_id = ? AND m.seq > ?")

# MIGRATIONS[v] takes a store of schema v to v + 1
MIGRATIONS = {
    1: ["ALTER TABLE sessions ADD COLUMN owner TEXT"],  # sessions owned by an API key
    2: MEDIA_TABLE + [_INDEX_MEDIA_WHERE.format("1")],  # media digests indexed, from the messages already stored
}

SESSION_COLUMNS = "id, title, created, updated, prompt_tokens, completion_tokens, run, owner"

MESSAGE_COLUMNS = ("seq, role, content, tool_calls, task, adapter, latency_ms, "
                   "tool_call_id, name, kind, meta, created")


def message_row(message: StoredMessage, now: float, position: int, total: int) -> tuple:
    """The message's column values in `MESSAGE_COLUMNS` order (without seq), or a StoreError saying which one is bad."""
    where = f"message {position} of {total}"
    if not isinstance(message, StoredMessage):
        raise StoreError(f"{where}: expected a StoredMessage, got {type(message).__name__}")
    if not isinstance(message.role, str) or not message.role:
        raise StoreError(f"{where}: role must be a non-empty string, got {message.role!r}")
    if message.content is not None and not isinstance(message.content, str):
        raise StoreError(f"{where}: content must be a string or None, got {type(message.content).__name__}")
    return (message.role, message.content, _to_json(message.tool_calls, "tool_calls", where),
            message.task, message.adapter, message.latency_ms, message.tool_call_id, message.name,
            message.kind, _to_json(message.meta, "meta", where),
            now if message.created is None else message.created)


def _to_json(value, field: str, where: str) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise StoreError(f"{where}: {field} cannot be stored as JSON: {err}") from err


def message_from_row(row: tuple) -> StoredMessage:
    (seq, role, content, tool_calls, task, adapter, latency_ms,
     tool_call_id, name, kind, meta, created) = row
    return StoredMessage(role=role, content=content,
                         tool_calls=None if tool_calls is None else json.loads(tool_calls),
                         tool_call_id=tool_call_id, name=name, task=task, adapter=adapter,
                         latency_ms=latency_ms, kind=kind,
                         meta=None if meta is None else json.loads(meta), seq=seq, created=created)
