"""Make a live SQLiteSessionStore refuse writes the way a machine does: a full disk (SQLite's
SQLITE_FULL, through `max_page_count`: the file may not grow a page) or a read-only file (its
connection reopened `mode=ro`: SQLITE_READONLY). Root ignores file modes, so chmod cannot do it."""

from __future__ import annotations

import contextlib
import sqlite3


@contextlib.contextmanager
def disk_full(store):
    with store._lock:
        (pages,) = store._db.execute("PRAGMA page_count").fetchone()
        store._db.execute(f"PRAGMA max_page_count = {pages}")
    try:
        yield
    finally:
        with store._lock:
            store._db.execute("PRAGMA max_page_count = 1073741823")


@contextlib.contextmanager
def read_only(store):
    with store._lock:
        writable = store._db
        store._db = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, isolation_level=None,
                                    check_same_thread=False)
    try:
        yield
    finally:
        with store._lock:
            store._db.close()
            store._db = writable


FAULTS = {"disk_full": disk_full, "read_only": read_only}


@contextlib.contextmanager
def files_read_only(monkeypatch):
    """Every SQLite file the store opens in this block opens as on a read-only mount (`mode=ro`)."""
    connect = sqlite3.connect

    def read_only_connect(path, *args, uri=False, **kwargs):
        return connect(f"file:{path}?mode=ro", *args, uri=True, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr("agentmill.store.sqlite.sqlite3.connect", read_only_connect)
        yield
