"""The session store in one SQLite file: acknowledged writes are durable, several processes may write.

Durability: WAL journal with `synchronous=FULL` fsyncs the log at every commit, and `append`
returns only after COMMIT, so an acknowledged message survives the writer being killed.
Concurrency: each write takes the database's write lock up front (`BEGIN IMMEDIATE`) and waits
up to `busy_timeout` seconds for it; the next seq is read inside that transaction, so two
writers can never pick the same seq or lose a message.
Threads: one connection per store, shared by all threads under a lock. SQLite serialises
writers anyway and every operation here takes milliseconds, so per-thread connections would buy
little and leak a connection per worker thread.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from agentmill.store.schema import (INDEX_MEDIA, MESSAGE_COLUMNS, MIGRATIONS, SCHEMA, SCHEMA_VERSION,
                                    SESSION_COLUMNS, message_from_row, message_row)
from agentmill.store.sessions import (
    Session,
    SessionExists,
    SessionNotFound,
    SessionStore,
    StoredMessage,
    StoreError,
    StoreUnavailable,
)

# SQLite's answers to a write that the machine, not the request, refused (extended codes too:
# SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED, ...)
UNWRITABLE = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED",
              "SQLITE_CANTOPEN", "SQLITE_PROTOCOL")


class SQLiteSessionStore(SessionStore):
    """Sessions in the SQLite file at `path` (created, with its folder, if missing)."""

    def __init__(self, path: str | os.PathLike, busy_timeout: float = 30.0):
        self.path = Path(path).expanduser()
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE itself.
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                       check_same_thread=False)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the session store {self.path}: {err}") from err
        try:
            self._use_wal(busy_timeout)
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.Error as err:
            self._db.close()
            raise StoreError(f"{self.path} is not a usable session store: {err}") from err
        except BaseException:
            self._db.close()
            raise

    # -- sessions ---------------------------------------------------------------------------

    def create(self, title: str = "", run: str | None = None, session_id: str | None = None,
               owner: str | None = None) -> Session:
        if session_id is not None and (not isinstance(session_id, str) or not session_id):
            raise StoreError(f"a session id must be a non-empty string, got {session_id!r}")
        now = time.time()
        with self._transaction() as db:
            if session_id is None:
                session_id = _free_id(db)
            elif _exists(db, session_id):
                raise SessionExists(session_id)
            session = Session(session_id, title, now, now, 0, 0, None if run is None else str(run), owner)
            db.execute(f"INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, 0, 0, ?, ?)",
                       (session.id, session.title, now, now, session.run, owner))
        return session

    def get(self, session_id: str) -> Session:
        with self._lock:
            row = self._db.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?",
                                   (session_id,)).fetchone()
        if row is None:
            raise SessionNotFound(session_id)
        return Session(*row)

    def list(self, limit: int | None = None) -> list[Session]:
        with self._lock:
            rows = self._db.execute(f"SELECT {SESSION_COLUMNS} FROM sessions "
                                    "ORDER BY updated DESC, rowid DESC LIMIT ?",
                                    (-1 if limit is None else limit,)).fetchall()
        return [Session(*row) for row in rows]

    def add_usage(self, session_id: str, prompt_tokens: int, completion_tokens: int) -> None:
        self._update_session(session_id, "prompt_tokens = prompt_tokens + ?, "
                             "completion_tokens = completion_tokens + ?",
                             (int(prompt_tokens), int(completion_tokens)))

    def rename(self, session_id: str, title: str) -> None:
        self._update_session(session_id, "title = ?", (title,))

    def delete(self, session_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM media WHERE session_id = ?", (session_id,))
            if db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 0:
                raise SessionNotFound(session_id)

    # -- messages ---------------------------------------------------------------------------

    def append_many(self, session_id: str, messages: Sequence[StoredMessage]) -> list[int]:
        batch = [*messages]
        if not batch:
            self.get(session_id)
            return []
        now = time.time()
        with self._transaction() as db:
            if not _exists(db, session_id):
                raise SessionNotFound(session_id)
            (last,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE session_id = ?",
                                 (session_id,)).fetchone()
            seqs = []
            # Rows are built inside the transaction on purpose: a bad message half-way through
            # rolls back the ones already inserted, which is what makes the batch atomic.
            for position, message in enumerate(batch, 1):
                seq = last + position
                db.execute(f"INSERT INTO messages (session_id, {MESSAGE_COLUMNS}) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (session_id, seq, *message_row(message, now, position, len(batch))))
                seqs.append(seq)
            db.execute(INDEX_MEDIA, (session_id, last))
            db.execute("UPDATE sessions SET updated = MAX(updated, ?) WHERE id = ?", (now, session_id))
        return seqs

    def messages(self, session_id: str) -> list[StoredMessage]:
        with self._transaction("DEFERRED") as db:  # one snapshot: existence check and rows agree
            if not _exists(db, session_id):
                raise SessionNotFound(session_id)
            rows = db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ? ORDER BY seq",
                              (session_id,)).fetchall()
        return [message_from_row(row) for row in rows]

    def message_count(self, session_id: str) -> int:
        with self._transaction("DEFERRED") as db:
            if not _exists(db, session_id):
                raise SessionNotFound(session_id)
            (count,) = db.execute("SELECT COUNT(*) FROM messages WHERE session_id = ?",
                                  (session_id,)).fetchone()
        return count

    def holds_media(self, digest: str, owner: str | None) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM media JOIN sessions s ON s.id = media.session_id "
                "WHERE media.sha256 = ? AND (s.owner IS NULL OR s.owner = ?) LIMIT 1",  # Session.readable_by
                (digest, owner)).fetchone()
        return row is not None

    def cannot_write(self) -> str | None:
        # BEGIN IMMEDIATE succeeds on a read-only file: write the header's user_version unchanged, roll back
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                (version,) = self._db.execute("PRAGMA user_version").fetchone()
                self._db.execute(f"PRAGMA user_version = {int(version)}")
                return None
            except sqlite3.OperationalError as err:
                if not _unwritable(err):
                    raise
                return f"{err} ({getattr(err, 'sqlite_errorname', '')})"
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """BEGIN ... COMMIT under the thread lock; anything raised inside rolls the whole thing back."""
        with self._lock:
            try:
                self._db.execute(f"BEGIN {mode}")
            except sqlite3.OperationalError as err:  # e.g. another process held the lock too long
                raise self._unavailable(err) from err
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as err:
                if self._db.in_transaction:  # SQLite has already rolled back after SQLITE_FULL
                    self._db.execute("ROLLBACK")
                if isinstance(err, sqlite3.OperationalError) and _unwritable(err):
                    raise self._unavailable(err) from err
                raise

    def _unavailable(self, err: sqlite3.Error) -> StoreError:
        name = getattr(err, "sqlite_errorname", "")
        if not _unwritable(err):
            return StoreError(f"session store {self.path}: {err}")
        return StoreUnavailable(f"the session store {self.path} cannot take writes now: {err} ({name}); "
                                "nothing was written, reading still works")

    def _update_session(self, session_id: str, assignments: str, values: tuple) -> None:
        with self._transaction() as db:
            cursor = db.execute(f"UPDATE sessions SET {assignments}, updated = MAX(updated, ?) WHERE id = ?",
                                (*values, time.time(), session_id))
            if cursor.rowcount == 0:
                raise SessionNotFound(session_id)

    def _use_wal(self, busy_timeout: float) -> None:
        """Switch the file to WAL, waiting for other openers: when several processes open a new
        store at once, SQLite answers "locked" to the mode switch at once instead of waiting.
        A file that cannot be written keeps its journal mode: it opens for reading."""
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as err:
                if _unwritable(err) and "locked" not in str(err):
                    return
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return  # nothing to write: a store that cannot take writes still opens, for reading
        try:
            self._upgrade()
        except StoreUnavailable as err:
            what = "has no tables yet" if version == 0 else f"is in schema {version} and needs upgrading to {SCHEMA_VERSION}"
            raise StoreError(f"the session store {self.path} {what}, but cannot be written: {err.__cause__}") from err

    def _upgrade(self) -> None:
        with self._transaction() as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer agentmill (schema {version}; "
                                 f"this version reads up to {SCHEMA_VERSION})")
            if version == 0:
                for statement in SCHEMA:  # not executescript: it would COMMIT half-way
                    db.execute(statement)
            else:  # an older file, upgraded in place (in this one transaction: all steps or none)
                for step in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[step]:
                        db.execute(statement)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _unwritable(err: sqlite3.Error) -> bool:
    return str(getattr(err, "sqlite_errorname", "")).startswith(UNWRITABLE)


def _exists(db: sqlite3.Connection, session_id: str) -> bool:
    return db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None


def _free_id(db: sqlite3.Connection) -> str:
    while True:
        session_id = secrets.token_hex(16)  # 128 bits: not guessable (hex: never starts with "-")
        if not _exists(db, session_id):
            return session_id
