"""account_lookup: one account of the bank's SQLite database, opened read-only.

The database is a ``.db`` file, or a ``.sql`` script that is built once into
``agentmill.paths.home()/db/SHA256.db`` (keyed by the script's content). It needs the tables
``customers(id, name, ...)`` and ``accounts(account_id, customer_id, type, balance, currency,
status, opened)``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from agentmill import paths
from agentmill.tools.errors import ToolDefinitionError, ToolExecutionError
from agentmill.tools.registry import Tool, tool

_QUERY = """
SELECT a.account_id, c.name, a.type, a.balance, a.currency, a.status, a.opened
FROM accounts a JOIN customers c ON c.id = a.customer_id
WHERE a.account_id = ?
"""
_FIELDS = ("account_id", "owner", "type", "balance", "currency", "status", "opened")


def make_account_lookup(database: Path) -> Tool:
    """The `account_lookup` tool over `database` (.db file or .sql script)."""
    db = prepare_database(Path(database))
    example = _id_example(db, Path(database))

    @tool(name="account_lookup")
    def account_lookup(account_id: str) -> dict:
        """Look up a bank account by its id: owner, type, balance, currency, status and opening date.

        Args:
            account_id: The account id, e.g. NW-12345.
        """
        wanted = account_id.strip().upper()
        try:
            with closing(open_readonly(db)) as con:
                row = con.execute(_QUERY, (wanted,)).fetchone()
        except sqlite3.Error as err:
            raise ToolExecutionError(f"the account database failed: {err}") from None
        if row is None:
            raise ToolExecutionError(f"no account {wanted or '(empty id)'} (an account id is {example})")
        found = dict(zip(_FIELDS, row))
        found["balance"] = round(found["balance"], 2)
        return found

    return account_lookup


def prepare_database(source: Path) -> Path:
    """The .db file to open: `source` itself, or the cached build of a .sql script."""
    if not source.is_file():
        raise ToolDefinitionError(f"account_lookup: database {source} does not exist")
    db = _build_from_script(source) if source.suffix.lower() == ".sql" else source
    try:
        with closing(open_readonly(db)) as con:
            con.execute("SELECT account_id, customer_id, type, balance, currency, status, opened "
                        "FROM accounts LIMIT 0")
            con.execute("SELECT id, name FROM customers LIMIT 0")
    except sqlite3.Error as err:
        raise ToolDefinitionError(
            f"account_lookup: {source} is not a usable bank database ({err}); it needs tables customers(id, name) "
            "and accounts(account_id, customer_id, type, balance, currency, status, opened)") from None
    return db


def open_readonly(db: Path) -> sqlite3.Connection:
    """A connection that cannot write: SQLite itself refuses (URI mode=ro), not just our queries."""
    con = sqlite3.connect(Path(db).resolve().as_uri() + "?mode=ro", uri=True)
    con.execute("PRAGMA query_only = ON")
    return con


def _build_from_script(script: Path) -> Path:
    data = script.read_bytes()
    target = paths.home() / "db" / f"{hashlib.sha256(data).hexdigest()}.db"
    if target.is_file():
        return target
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
        os.close(fd)
        with closing(sqlite3.connect(tmp)) as con:
            con.executescript(data.decode("utf-8"))
            con.commit()
        os.replace(tmp, target)  # readers never see a half-built database
    except (sqlite3.Error, UnicodeDecodeError) as err:
        raise ToolDefinitionError(f"account_lookup: {script}: the SQL script failed: {err}") from None
    except OSError as err:
        raise ToolDefinitionError(f"account_lookup: cannot build {script} into {target.parent}: {err}") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
    return target


def _id_example(db: Path, source: Path) -> str:
    """The shape of the database's ids in words (NW-10234 → "NW- and 5 digits"): an id with made-up
    digits in the error message was called as it stood (measured: `account_lookup("NW-12345")`
    right after the error)."""
    with closing(open_readonly(db)) as con:
        row = con.execute("SELECT account_id FROM accounts ORDER BY account_id LIMIT 1").fetchone()
    if row is None:
        raise ToolDefinitionError(f"account_lookup: {source} has no accounts")
    parts = re.findall(r"\d+|\D+", str(row[0]))
    words = [f"{len(p)} digit{'s' * (len(p) > 1)}" if p.isdigit() else f'"{p}"' for p in parts]
    return " then ".join(words)
