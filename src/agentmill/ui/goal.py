"""`agentmill run RUN_DIR --goal ...`: goal mode in the terminal, each step printed, each call approved."""

from __future__ import annotations

import json
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.prompt import Confirm

from agentmill.agent.agent import Agent, Budgets
from agentmill.agent.goal import run_goal


def goal_run(run_dir, goal: str, max_steps: int = 8, yes: bool = False, task: str | None = None, store=None,
             console: Console | None = None, max_new_tokens: int = 256,
             confirm: Callable[[str], bool] | None = None, run=None, tools=None, attach: list[str] = ()):
    """Goal mode in the terminal; `attach`: images or recordings the goal comes with (read first)."""
    from agentmill.model.run import RunModel
    from agentmill.tools.setup import registry_for_run

    console = console or Console()
    run = run or RunModel.load(run_dir)
    media = _read_attachments(run, attach, console)
    agent = Agent(run, tools or registry_for_run(run), budgets=Budgets(max_new_tokens=max_new_tokens), store=store,
                  forced_task=task)
    if store is not None:
        run_dir = str(run.run_dir.resolve()) if run.run_dir else None
        agent.session_id = store.create(title=f"goal: {goal[:60]}", run=run_dir).id
    confirm = confirm or (lambda question: Confirm.ask(question, console=console, default=True))
    step = {"n": 0, "thought": ""}

    def on_event(kind, payload):
        if kind == "route":
            console.print(f"[bold]goal:[/] {escape(goal)}\n[dim]task:[/] [bold cyan]{escape(payload.task or 'base')}[/]"
                          + (f" [dim](router: {payload.scores})[/]" if payload.scores else ""))
        elif kind == "token":
            step["thought"] += payload
        elif kind == "tool_call":
            step["n"] += 1
            fn = payload["function"]
            console.print(f"[bold]step {step['n']}[/]")
            if step["thought"].strip():
                console.print(f"  [dim]plan:[/] {escape(step['thought'].strip())}")
            step["thought"] = ""
            console.print(f"  [magenta]tool:[/] {escape(fn['name'])}"
                          f"({escape(json.dumps(fn['arguments'], ensure_ascii=False))})")
        elif kind == "tool_result":
            style = "red" if payload.error else "green"
            console.print(f"  [{style}]result:[/] {escape(payload.content[:600])}")
        elif kind == "notice":
            console.print(f"[yellow]{escape(payload.text)}[/]")

    def approve(call) -> bool:
        if yes:
            return True
        fn = call["function"]
        return confirm(f"  run {fn['name']}({json.dumps(fn['arguments'], ensure_ascii=False)})?")

    result = run_goal(agent, goal, max_steps=max_steps, approve=approve, on_event=on_event, media=media)
    console.print(f"[bold green]answer:[/] {escape(result.answer)}")
    u = result.usage
    where = f"; session {agent.session_id}" if agent.session_id else ""
    console.print(f"[dim]{u.tool_steps} tool steps of {max_steps}, {u.prompt_tokens} prompt + "
                  f"{u.completion_tokens} completion tokens{where}"
                  + (f"; stopped: {result.stopped}" if result.stopped else "") + "[/]")
    return result, agent


def _read_attachments(run, paths, console) -> list:
    from agentmill.media import MediaBackends
    from agentmill.media.parts import extract_file
    from agentmill.media.settings import media_settings_of
    from agentmill.media.store import MediaStore

    if not paths:
        return []
    backends, store, media = MediaBackends(media_settings_of(run)), MediaStore(), []
    for path in paths:
        item = extract_file(path, backends)
        store.put(item.data)
        console.print(f"[dim]{escape(item.label())}[/]")
        media.append(item)
    return media
