"""Multi-turn chat with a run in the terminal (rich), answers streamed as they are generated.

Commands: ``/reset`` clears the history, ``/task NAME`` switches task (``/task`` alone lists
them, ``/task base`` drops back to the bare backbone), ``/quit`` ends (so do EOF and Ctrl-C).
The input function is injectable so tests and the demo can script a conversation.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from agentmill.errors import AgentmillError
from agentmill.model.generate import generate_stream

HELP = ("commands: [bold]/reset[/] clear the history · [bold]/task NAME[/] switch task "
        "([bold]/task[/] lists them, [bold]/task base[/] = no adapter) · [bold]/quit[/] end")


class _Session:
    """State of one chat: the run, the history and the console; `handle` processes one input line."""

    def __init__(self, run, console: Console, max_new_tokens: int):
        self.run = run
        self.console = console
        self.max_new_tokens = max_new_tokens
        self.history: list[dict] = []

    def list_tasks(self) -> None:
        rows = []
        for name in self.run.tasks:
            info = self.run.task_info(name)
            mark = "*" if name == self.run.task else " "
            kind = "adapter" if self.run.has_adapter(name) else "backbone"
            rows.append(f" {mark} {escape(name)}  [dim]({info.get('format', '?')}, {kind})[/]")
        mark = "*" if self.run.task is None else " "
        rows.append(f" {mark} base  [dim](backbone, no adapter)[/]")
        self.console.print("tasks:\n" + "\n".join(rows))

    def switch(self, name: str) -> None:
        target = None if name == "base" and "base" not in self.run.tasks else name
        try:
            self.run.use_task(target)
        except AgentmillError as err:
            self.console.print(f"[red]error:[/] {escape(str(err))}")
            return
        self.console.print(f"[dim]now answering as[/] [bold]\\[{escape(self.run.label)}][/] "
                           f"[dim](history kept: {len(self.history)} messages; /reset to clear)[/]")

    def command(self, line: str) -> bool:
        """Run a /command; False when the chat should end."""
        name, _, arg = line[1:].strip().partition(" ")
        arg = arg.strip()
        if name in ("quit", "exit", "q"):
            return False
        if name == "reset":
            self.history.clear()
            self.console.print("[dim]history cleared[/]")
        elif name == "task":
            if arg:
                self.switch(arg)
            else:
                self.list_tasks()
        else:
            if name not in ("help", "?"):
                self.console.print(f"[red]unknown command[/] /{escape(name)}")
            self.console.print(HELP)
        return True

    def answer(self, text: str) -> str:
        self.history.append({"role": "user", "content": text})
        self.console.print(f"[bold cyan]\\[{escape(self.run.label)}][/] ", end="")
        parts: list[str] = []
        try:
            for piece in generate_stream(self.run.model, self.run.tokenizer, list(self.history),
                                         max_new_tokens=self.max_new_tokens):
                parts.append(piece)
                self.console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            self.console.print()
            self.history.pop()
            raise
        self.console.print()
        answer = "".join(parts)
        self.history.append({"role": "assistant", "content": answer})
        return answer


def chat_loop(run, task: str | None = None, console: Console | None = None, input_fn: Callable[[str], str] = input,
              max_new_tokens: int = 256) -> list[dict]:
    """Chat until /quit, EOF or Ctrl-C; returns the final history."""
    console = console or Console()
    session = _Session(run, console, max_new_tokens)
    run.use_task(task)  # an unknown starting task is an error for the caller (the CLI prints it)
    console.print(f"[bold]agentmill chat[/] — {escape(str(run.manifest.get('name') or run.run_dir or 'model'))}, "
                  f"task [bold]{escape(run.label)}[/]. {HELP}")
    while True:
        try:
            line = input_fn("you> ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        line = line.strip()
        if not line:
            continue
        try:
            if line.startswith("/"):
                if not session.command(line):
                    break
                continue
            session.answer(line)
        except KeyboardInterrupt:
            break
        except AgentmillError as err:
            console.print(f"[red]error:[/] {escape(str(err))}")
    console.print("[dim]bye[/]")
    return session.history


def scripted_chat(run, lines: list[str], task: str | None = None, console: Console | None = None,
                  max_new_tokens: int = 256) -> list[tuple[str, str]]:
    """Play `lines` as user input (commands included, printed like typed); returns (user, answer) pairs."""
    console = console or Console()
    pairs: list[tuple[str, str]] = []
    session = _Session(run, console, max_new_tokens)
    run.use_task(task)
    for line in lines:
        line = line.strip()
        if not line:
            continue
        console.print(f"[bold]you>[/] {escape(line)}")
        if line.startswith("/"):
            if not session.command(line):
                break
            continue
        pairs.append((line, session.answer(line)))
    return pairs
