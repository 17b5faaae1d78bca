"""Persistent chat sessions: what the agent said and did, kept across restarts.

`open_store()` gives the default store (SQLite under AGENTMILL_HOME); code that uses a store
depends only on the `SessionStore` interface.
"""

from agentmill.store.sessions import (
    Session,
    SessionExists,
    SessionNotFound,
    SessionStore,
    StoredMessage,
    StoreError,
    StoreUnavailable,
    default_store_path,
    open_store,
)
from agentmill.store.sqlite import SQLiteSessionStore

__all__ = ["Session", "SessionExists", "SessionNotFound", "SessionStore", "SQLiteSessionStore",
           "StoredMessage", "StoreError", "StoreUnavailable", "default_store_path", "open_store"]
