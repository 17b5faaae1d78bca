"""`agentmill sessions list|show|delete`: look at and prune the stored chat sessions.

A Typer sub-app that cli.py mounts as `sessions`. Errors are AgentmillError subclasses, so
the main CLI prints them as one line and exits 2.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agentmill.store import Session, SessionStore, StoredMessage, StoreError, default_store_path, open_store

sessions_app = typer.Typer(add_completion=False, no_args_is_help=True, help="List, show and delete stored chat sessions.")
# Not a terminal (CI logs, pipes): wide enough for the table instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)  # piped: one line per session

DbOption = Annotated[Optional[Path], typer.Option(
    "--db", help="Session store file (default AGENTMILL_HOME/sessions.db).")]
SessionIdArgument = Annotated[str, typer.Argument(help="Session id, as `agentmill sessions list` shows it.")]


@sessions_app.command("list")
def list_sessions(
    db: DbOption = None,
    limit: int = typer.Option(50, "--limit", help="Show at most this many, most recent first (0 = all)."),
):
    """Sessions, most recently updated first."""
    path = _store_path(db)
    if not path.exists():  # don't create an empty store just to say it is empty
        console.print(f"no sessions yet ({path})")
        return
    with open_store(path) as store:
        sessions = store.list(limit or None)
        counts = {session.id: store.message_count(session.id) for session in sessions}
    if not sessions:
        console.print(f"no sessions yet ({path})")
        return
    table = Table(title=f"sessions in {path}")
    table.add_column("id", no_wrap=True)
    table.add_column("title")
    table.add_column("run")
    table.add_column("messages", justify="right")
    table.add_column("tokens in/out", justify="right")
    table.add_column("updated", no_wrap=True)
    for session in sessions:
        table.add_row(session.id, session.title, session.run or "", str(counts[session.id]),
                      f"{session.prompt_tokens}/{session.completion_tokens}", _local_time(session.updated))
    console.print(table)


@sessions_app.command("show")
def show_session(session_id: SessionIdArgument, db: DbOption = None):
    """Every message of a session: role, task, content, tool calls and tool results."""
    with _open_existing(db) as store:
        session = store.get(session_id)
        messages = store.messages(session_id)
    console.print(_session_header(session, len(messages)))
    for message in messages:
        console.print(_message_text(message))


@sessions_app.command("delete")
def delete_session(
    session_id: SessionIdArgument,
    db: DbOption = None,
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking."),
):
    """Delete a session and all its messages (asks first unless --yes)."""
    with _open_existing(db) as store:
        session = store.get(session_id)
        count = store.message_count(session_id)
        question = f"delete session {session.id} {session.title!r} and its {count} message(s)?"
        if not yes and not typer.confirm(question, default=False):
            console.print("nothing deleted")
            return
        store.delete(session_id)
    console.print(f"deleted session {session_id} ({count} message(s))")


def _store_path(db: Path | None) -> Path:
    return default_store_path() if db is None else db.expanduser()


def _open_existing(db: Path | None) -> SessionStore:
    """Open the store, refusing to create one: a mistyped --db should be an error, not a new file."""
    path = _store_path(db)
    if not path.exists():
        raise StoreError(f"no session store at {path} (nothing has been saved there yet)")
    return open_store(path)


def _local_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _session_header(session: Session, count: int) -> Text:
    text = Text(f"session {session.id}", style="bold")
    text.append(f"  {session.title!r}" if session.title else "")
    text.append(f"\nrun: {session.run or '-'} · {count} message(s) · tokens in/out "
                f"{session.prompt_tokens}/{session.completion_tokens}\ncreated "
                f"{_local_time(session.created)} · updated {_local_time(session.updated)}\n", style="dim")
    return text


def _message_text(message: StoredMessage) -> Text:
    """One message as plain text (never rich markup: content may contain brackets)."""
    text = Text(f"#{message.seq} ", style="dim")
    text.append(message.role, style="bold")
    if message.role == "tool":
        text.append(f" result{' of ' + message.name if message.name else ''}", style="bold")
    if message.tool_call_id:
        text.append(f" ({message.tool_call_id})", style="dim")
    if message.task:
        text.append(f" [{message.task}]", style="cyan")
    kind = message.kind if message.kind != message.role else None  # "user  user" says nothing
    details = [part for part in (kind, message.adapter and f"adapter {message.adapter}",
                                 message.latency_ms is not None and f"{message.latency_ms} ms") if part]
    if details:
        text.append("  " + " · ".join(details), style="dim")
    if message.content:
        text.append("\n" + _indent(message.content))
    for call in message.tool_calls or []:
        compact = json.dumps(call, ensure_ascii=False, separators=(",", ":"))
        text.append("\n" + _indent(f"tool call: {compact}"), style="yellow")
    return text


def _indent(block: str) -> str:
    return "\n".join("  " + line for line in block.splitlines() or [""])
