"""Multi-turn chat with a run's agent in the terminal (rich), answers streamed as they are generated.

Each message is routed (the chosen task is shown as ``[task]`` before the answer), may call
tools (shown as ``→ tool(args)`` and ``← result``), and is stored in the session store when
one is given, so ``agentmill chat RUN_DIR --session ID`` picks the conversation up again.
Commands: ``/reset`` starts a new conversation, ``/task NAME`` forces a task (``/task`` alone
lists them, ``/task auto`` gives routing back to the router, ``/task base`` uses the bare
backbone), ``/image FILE [question]`` and ``/audio FILE [question]`` attach a picture or a
recording (read with OCR / speech recognition; sent with the question, or with the next
message), ``/quit`` ends (so do EOF and Ctrl-C). The input function is injectable so tests
and the demo can script a conversation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

from rich.console import Console
from rich.markup import escape

from agentmill.agent.agent import BASE, Agent, Budgets
from agentmill.agent.steps import to_messages
from agentmill.errors import AgentmillError

HELP = ("commands: [bold]/reset[/] new conversation · [bold]/task NAME[/] force a task "
        "([bold]/task[/] lists them, [bold]/task auto[/] = router, [bold]/task base[/] = no adapter) · "
        "[bold]/image FILE[/] · [bold]/audio FILE[/] attach (then the question) · [bold]/quit[/] end")
AUTO = "auto"


class _Session:
    """One chat: the agent and the console; `handle` processes one input line."""

    def __init__(self, agent: Agent, console: Console):
        from agentmill.media import MediaBackends
        from agentmill.media.settings import media_settings_of
        from agentmill.media.store import MediaStore

        self.agent = agent
        self.console = console
        self.run = agent.run
        self.last = None  # the latest TurnResult
        self.media = MediaBackends(media_settings_of(agent.run))
        self.media_store = MediaStore()
        self.attached = []  # images and recordings waiting for the next message (media.parts.Extracted)

    @property
    def label(self) -> str:
        forced = self.agent.forced_task
        if forced:
            return forced
        return AUTO if self.agent.router.available else BASE

    def list_tasks(self) -> None:
        rows = []
        for name in self.run.chat_tasks():
            info = self.run.task_info(name)
            mark = "*" if name == self.agent.forced_task else " "
            kind = "adapter" if self.run.has_adapter(name) else "backbone"
            if self.run.is_classifier(name):
                kind += ", answers with its label"
            tools = f", tools: {', '.join(info['tools'])}" if info.get("tools") else ""
            rows.append(f" {mark} {escape(name)}  [dim]({info.get('format', '?')}, {kind}{tools})[/]")
        if self.agent.router.available:
            mark = "*" if self.agent.forced_task is None else " "
            rows.append(f" {mark} auto  [dim](the router picks a task for each message)[/]")
        mark = "*" if self.agent.forced_task == BASE or (self.agent.forced_task is None
                                                          and not self.agent.router.available) else " "
        rows.append(f" {mark} base  [dim](backbone, no adapter)[/]")
        self.console.print("tasks:\n" + "\n".join(rows))

    def switch(self, name: str) -> None:
        if name == AUTO and self.agent.router.available:
            self.agent.forced_task = None
        elif name == BASE and BASE not in self.run.tasks:
            self.agent.forced_task = BASE
        elif name not in self.run.chat_tasks():
            try:
                self.run.check_chat_task(name)
            except AgentmillError as err:
                self.console.print(f"[red]error:[/] {escape(str(err))}")
            return
        else:
            self.agent.forced_task = name
        self.run.use_task(None if self.agent.forced_task in (None, BASE) else self.agent.forced_task)
        history = len(to_messages(self.agent.steps))
        self.console.print(f"[dim]now answering as[/] [bold]\\[{escape(self.label)}][/] "
                           f"[dim](history kept: {history} messages; /reset to clear)[/]")

    def reset(self) -> None:
        agent = self.agent
        agent.steps.clear()
        if agent.store is not None:
            run_dir = str(self.run.run_dir.resolve()) if self.run.run_dir else None
            agent.session_id = agent.store.create(run=run_dir).id
            self.console.print(f"[dim]history cleared; new session {agent.session_id}[/]")
        else:
            self.console.print("[dim]history cleared[/]")

    def command(self, line: str) -> bool:
        """Run a /command; False when the chat should end."""
        name, _, arg = line[1:].strip().partition(" ")
        arg = arg.strip()
        if name in ("quit", "exit", "q"):
            return False
        if name == "reset":
            self.reset()
        elif name == "task":
            if arg:
                self.switch(arg)
            else:
                self.list_tasks()
        elif name in ("image", "audio"):
            path, _, question = arg.partition(" ")
            if not path:
                self.console.print(f"[red]usage:[/] /{name} FILE \\[question]")
            elif self.attach(path, name) and question.strip():
                self.answer(question.strip())
        else:
            if name not in ("help", "?"):
                self.console.print(f"[red]unknown command[/] /{escape(name)}")
            self.console.print(HELP)
        return True

    def on_event(self, kind: str, payload) -> None:
        c = self.console
        if kind == "route":
            c.print(f"[bold cyan]\\[{escape(payload.task or BASE)}][/] ", end="")
        elif kind == "token":
            c.print(payload, end="", markup=False, highlight=False, soft_wrap=True)
        elif kind == "tool_call":
            fn = payload["function"]
            c.print(f"\n  [magenta]→ {escape(fn['name'])}[/]({escape(json.dumps(fn['arguments'], ensure_ascii=False))})")
        elif kind == "tool_result":
            style = "red" if payload.error else "green"
            c.print(f"  [{style}]← {escape(payload.content[:400])}[/]")
            c.print(f"[bold cyan]\\[{escape(self.agent._task() or BASE)}][/] ", end="")
        elif kind == "notice":
            c.print(f"\n[yellow]{escape(payload.text)}[/]", end="" if payload.reason == "trim" else "\n")

    def attach(self, path: str, kind: str | None = None) -> bool:
        """Read an image or a recording for the next message; False (error shown) if it cannot be."""
        from agentmill.media import MediaError
        from agentmill.media.parts import extract_file

        try:
            item = extract_file(path, self.media)
        except MediaError as err:
            self.console.print(f"[red]error:[/] {escape(str(err))}")
            return False
        if kind and item.kind != kind:
            self.console.print(f"[red]error:[/] {escape(path)} is {'an image' if item.kind == 'image' else 'a recording'}: "
                               f"use /{item.kind}")
            return False
        self.attached.append(item)
        facts = item.facts
        detail = (f"{facts['width']}x{facts['height']}" + (f", confidence {facts['mean_confidence']:.0f}"
                                                           if facts.get("mean_confidence") is not None else "")
                  if item.kind == "image" else f"{facts['duration']:.1f} s")
        self.console.print(f"[dim]{escape(item.label())}[/] [dim]({detail}, {item.seconds:.1f} s to read)[/]")
        return True

    def answer(self, text: str) -> str:
        media, self.attached = self.attached, []
        for item in media:  # the originals are kept before the message that references them
            self.media_store.put(item.data)
        try:
            result = self.agent.turn(text, on_event=self.on_event, media=media)
        except KeyboardInterrupt:
            self.console.print()
            raise
        self.console.print()
        self.last = result
        return result.answer


def checked_chat(run, turns, console: Console | None = None, max_new_tokens: int = 256,
                 tools=None) -> list[dict]:
    """Play a script's turns (eval/script.py) through the agent and mark each ✓/✗ against what
    it must show; returns one {"user", "answer", "task", "ok", "checks"} per turn."""
    from agentmill.eval.script import check_turn

    console = console or Console()
    session = _Session(_agent(run, tools, None, None, Budgets(max_new_tokens=max_new_tokens)), console)
    played = []
    for turn in turns:
        console.print(f"[bold]you>[/] {escape(turn.user)}")
        session.answer(turn.user)
        checks = check_turn(turn.expect, session.last)
        ok = all(c.ok for c in checks)
        marks = "  ".join(f"{'[green]✓' if c.ok else '[red]✗'}[/] {escape(c.detail)}" for c in checks)
        console.print(f"{'[bold green]✓' if ok else '[bold red]✗'}[/] {marks}")
        played.append({"user": turn.user, "answer": session.last.answer, "task": session.last.task, "ok": ok,
                       "checks": [asdict(c) for c in checks]})
    return played


def _agent(run, tools, store, session_id, budgets) -> Agent:
    if tools is None:
        from agentmill.tools.setup import registry_for_run

        tools = registry_for_run(run)
    if store is not None and session_id:
        return Agent.resume(run, tools, store, session_id, budgets=budgets or Budgets())
    agent = Agent(run, tools, budgets=budgets or Budgets(), store=store)
    if store is not None:
        agent.session_id = store.create(run=str(run.run_dir.resolve()) if run.run_dir else None).id
    return agent


def chat_loop(run, task: str | None = None, console: Console | None = None, input_fn: Callable[[str], str] | None = None,
              max_new_tokens: int = 256, tools=None, store=None, session_id: str | None = None,
              budgets: Budgets | None = None, attach: list[str] = (), message: str | None = None) -> list[dict]:
    """Chat until /quit, EOF or Ctrl-C; returns the conversation (OpenAI messages).

    One shot: with `attach` (image or audio files) or `message`, answer that one message and return."""
    console = console or Console()
    input_fn = input_fn or (lambda prompt: input(prompt))  # looked up at call time (tests patch it)
    budgets = budgets or Budgets(max_new_tokens=max_new_tokens)
    if task is not None and task not in (BASE, AUTO):
        run.check_chat_task(task)
    session = _Session(_agent(run, tools, store, session_id, budgets), console)
    if task is not None:
        session.agent.forced_task = None if task == AUTO else task
    run.use_task(None if session.agent.forced_task in (None, BASE) else session.agent.forced_task)
    where = f", session {session.agent.session_id}" if session.agent.session_id else ""
    console.print(f"[bold]agentmill chat[/] — {escape(str(run.manifest.get('name') or run.run_dir or 'model'))}, "
                  f"task [bold]{escape(session.label)}[/]{where}. {HELP}")
    if session_id:
        console.print(f"[dim]resumed: {len(to_messages(session.agent.steps))} earlier messages[/]")
    if attach or message is not None:
        for path in attach:
            if not session.attach(path):
                raise AgentmillError(f"{path}: cannot be read (see above)")
        console.print(f"[bold]you>[/] {escape(message or '')}")
        session.answer(message or "")
        return to_messages(session.agent.steps)
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
    return to_messages(session.agent.steps)


def scripted_chat(run, lines: list[str], task: str | None = None, console: Console | None = None,
                  max_new_tokens: int = 256, tools=None, store=None) -> list[tuple[str, str]]:
    """Play `lines` as user input (commands included, printed like typed); returns (user, answer) pairs."""
    console = console or Console()
    pairs: list[tuple[str, str]] = []
    session = _Session(_agent(run, tools, store, None, Budgets(max_new_tokens=max_new_tokens)), console)
    if task is not None:
        session.agent.forced_task = task
    for line in lines:
        line = line.strip()
        if not line:
            continue
        console.print(f"[bold]you>[/] {escape(line)}")
        if line.startswith("/"):
            before = session.last
            if not session.command(line):
                break
            if session.last is not before:  # /image FILE question: the command sent a message
                pairs.append((line, session.last.answer))
            continue
        pairs.append((line, session.answer(line)))
    return pairs
