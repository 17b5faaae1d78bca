"""The turn loop: route → generate → (validate, run tools, generate again)* → answer.

One `Agent` holds one conversation (its memory is a list of typed steps, agent/steps.py) over
one run (`RunModel`). Each task is prompted exactly as it was trained: the task's system
prompt and the schemas of its allowed tools come from the run's manifest and go through the
one `render`. Tool calls are validated against the tool's JSON schema; a bad one gets one
constrained repair (agent/toolcall.py). Loops are cut by rule: an identical (tool, arguments)
call twice in a turn stops the turn, and every turn and session has a step and a token budget.
With a session store, every step is written (and acknowledged) as it happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from agentmill.agent.provenance import untrusted_arguments
from agentmill.agent.router import Router
from agentmill.agent.steps import (AnswerStep, ModelStep, NoticeStep, RouteStep, Step, ToolResultStep, UserStep,
                                   arguments_key, from_dict, to_dict, to_messages, turns)
from agentmill.agent.toolcall import OPEN, parse_tool_calls, repair_call
from agentmill.data.render import render
from agentmill.errors import AgentmillError
from agentmill.model.generate import generate_stream
from agentmill.store import StoredMessage
from agentmill.tools.setup import task_prompt


BASE = "base"  # the task name that means "no adapter, no task prompt"


@dataclass
class Budgets:
    """Limits that end a turn or a session with a visible notice instead of running on."""

    tool_steps_per_turn: int = 4  # model outputs that call tools, per user message
    tokens_per_turn: int = 16_000  # prompt + completion tokens of all generations of a turn
    steps_per_session: int = 200  # tool-calling outputs over the whole session
    tokens_per_session: int = 500_000
    max_new_tokens: int = 256  # per generation
    context_tokens: int | None = None  # prompt limit; default: the model's max_position_embeddings


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_steps: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.tool_steps += other.tool_steps


@dataclass
class TurnResult:
    answer: str
    task: str | None
    steps: list[Step]
    usage: Usage
    stopped: str | None = None  # why the loop was cut: repeat | steps | tokens | bad_tool_call | declined


Event = Callable[[str, object], None]  # (kind, payload): route, token, tool_call, tool_result, notice, answer
Approve = Callable[[dict], bool]


@dataclass
class Agent:
    run: object  # RunModel
    tools: object  # ToolRegistry with every tool of the recipe
    budgets: Budgets = field(default_factory=Budgets)
    store: object | None = None  # SessionStore
    session_id: str | None = None
    forced_task: str | None = None  # /task NAME: skip the router; BASE = the bare backbone
    steps: list[Step] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self):
        self.router = Router(self.run)
        config = getattr(self.run.model, "config", None)
        self.context_tokens = self.budgets.context_tokens or getattr(config, "max_position_embeddings", 2048)

    # ---------------------------------------------------------------- sessions

    @classmethod
    def resume(cls, run, tools, store, session_id: str, **kwargs) -> "Agent":
        """Rebuild an agent from a stored session (the prompt is a pure function of the steps)."""
        session = store.get(session_id)
        steps = [from_dict(m.meta) for m in store.messages(session_id) if m.meta and m.meta.get("kind")]
        agent = cls(run, tools, store=store, session_id=session_id, steps=steps, **kwargs)
        agent.usage = Usage(session.prompt_tokens, session.completion_tokens,
                            sum(1 for s in steps if isinstance(s, ModelStep)))
        return agent

    def _add(self, step: Step) -> Step:
        """Keep a step: written to the store first, so memory never holds what the store refused."""
        if self.store is not None and self.session_id is not None:
            task = step.task if isinstance(step, RouteStep) else self._task()
            self.store.append(self.session_id, _stored(step, task))
        self.steps.append(step)
        return step

    def _task(self) -> str | None:
        return next((s.task for s in reversed(self.steps) if isinstance(s, RouteStep)), None)

    # ---------------------------------------------------------------- prompt

    def task_prompt(self, task: str | None) -> tuple[str | None, list[dict] | None]:
        """(system prompt, tool schemas) the task was trained with."""
        return task_prompt(self.run, task, self.tools)

    def prompt(self, task: str | None) -> tuple[list[dict], list[dict] | None]:
        system, schemas = self.task_prompt(task)
        messages = to_messages(self.steps)
        if system:
            messages = [{"role": "system", "content": system}] + messages
        return messages, schemas

    def _prompt_tokens(self, task) -> tuple[str, int]:
        messages, schemas = self.prompt(task)
        text = render(self.run.tokenizer, messages, add_generation_prompt=True, tools=schemas)
        return text, len(self.run.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _fit_context(self, task, on_event: Event) -> tuple[str, int]:
        """Leave whole earliest turns out of the prompt until it fits, with a visible notice."""
        text, n = self._prompt_tokens(task)
        limit = self.context_tokens - self.budgets.max_new_tokens
        if n <= limit:
            return text, n
        spans = turns(self.steps)
        for start, _ in spans[1:]:
            note = NoticeStep("trim", f"context full: the conversation before message {start} is left out "
                              f"of the prompt ({n} tokens > {limit})", keep_from=start)
            self.steps.append(note)
            text, n = self._prompt_tokens(task)
            self.steps.pop()
            if n <= limit:
                self._add(note)
                on_event("notice", note)
                return text, n
        raise AgentmillError(f"the current message alone needs {n} prompt tokens, more than the context "
                             f"limit {limit}: shorten it")

    # ---------------------------------------------------------------- the turn

    def route(self, text: str, task: str | None, on_event: Event) -> RouteStep:
        forced = task or self.forced_task
        if forced == BASE and BASE not in self.run.tasks:
            step = RouteStep(None, forced=True)
        elif forced:
            self.run.check_chat_task(forced)
            step = RouteStep(forced, forced=True)
        else:
            chosen, scores = self.router.route(text)
            step = RouteStep(chosen, scores)
        self._add(step)
        self.run.use_task(step.task)
        on_event("route", step)
        return step

    def turn(self, text: str, task: str | None = None, on_event: Event | None = None,
             approve: Approve | None = None, media: list | None = None) -> TurnResult:
        """One user message and everything it causes. `media`: the message's images and recordings,
        already read (media/parts.py `Extracted`); the model reads their labelled text after `text`,
        routing and classification read their plain text."""
        from agentmill.media.parts import compose, plain

        on_event = on_event or (lambda kind, payload: None)
        first = len(self.steps)
        media = list(media or [])
        said = plain(text, media)
        if self.store is not None and self.session_id is not None and not any(
                isinstance(s, UserStep) for s in self.steps) and not self.store.get(self.session_id).title:
            named = text if text.strip() else said  # what was typed, else what was said or read
            self.store.rename(self.session_id, " ".join(named.split())[:60])  # a session is named by its start
        self._add(UserStep(compose(text, media), media=[m.summary() for m in media]))
        route = self.route(said, task, on_event)
        if self.run.is_classifier(route.task):  # a classification task answers with its label
            answer = self._add(AnswerStep(self._label(route.task, said), route.task))
            on_event("token", answer.content)
            on_event("answer", answer)
            return TurnResult(answer.content, route.task, self.steps[first:], Usage())
        usage, seen, stopped = Usage(), set(), None
        while True:
            prompt_text, prompt_n = self._fit_context(route.task, on_event)
            over = self._over_budget(usage, prompt_n)
            if over:
                stopped = over[0]
                self._notice(*over, on_event)
                break
            started = time.perf_counter()
            out = "".join(self._stream(prompt_text, route.task, on_event))
            latency = int((time.perf_counter() - started) * 1000)
            n_out = len(self.run.tokenizer(out, add_special_tokens=False)["input_ids"]) + 1  # + end of turn
            usage.prompt_tokens += prompt_n
            usage.completion_tokens += n_out
            content, parsed = parse_tool_calls(out)
            if not parsed:
                answer = self._add(AnswerStep(content, route.task, prompt_n, n_out, latency))
                on_event("answer", answer)
                break
            calls, repaired, problem = self._valid_calls(parsed, route.task,
                                                         prompt_text + (content + "\n" if content else ""))
            if problem:
                stopped = "bad_tool_call"
                self._notice(stopped, problem, on_event)
                break
            self._add(ModelStep(content, calls, raw=out, repaired=repaired, prompt_tokens=prompt_n,
                                completion_tokens=n_out, latency_ms=latency))
            usage.tool_steps += 1
            repeated = [c for c in calls if arguments_key(c) in seen]
            if repeated:
                fn = repeated[0]["function"]
                stopped = "repeat"
                self._notice(stopped, f"stopped: the model repeated the call {fn['name']}"
                             f"({_args(fn['arguments'])}) within this turn", on_event)
                break
            seen.update(arguments_key(c) for c in calls)
            for call in calls:
                on_event("tool_call", call)
                held = self._held(call) if approve is None else []
                if held:  # an argument only tool output or an image named: the user must say it first
                    stopped = "confirm"
                    fn = call["function"]
                    self._add(ToolResultStep(call["id"], fn["name"], "not run: waiting for the user to confirm "
                                             f"{', '.join(held)}", error=True))
                    self._notice(stopped, f"held for your confirmation: {fn['name']}({_args(fn['arguments'])}) uses "
                                 f"{', '.join(repr(v) for v in held)}, which came from what a tool returned or an "
                                 "image showed, not from you. To run it, say the value yourself (e.g. \"yes, "
                                 f"{held[0]}\").", on_event)
                    break
                if approve is not None and not approve(call):
                    stopped = "declined"
                    self._add(ToolResultStep(call["id"], call["function"]["name"], "the user declined this call",
                                             error=True))
                    self._notice(stopped, f"stopped: you declined {call['function']['name']}", on_event)
                    break
                on_event("tool_result", self._execute(call))
            if stopped:
                break
        self.usage.add(usage)
        if self.store is not None and self.session_id is not None:
            self.store.add_usage(self.session_id, usage.prompt_tokens, usage.completion_tokens)
        new = self.steps[first:]
        answers = [s for s in new if isinstance(s, AnswerStep)]
        answer = answers[-1].content if answers else next(
            (s.text for s in reversed(new) if isinstance(s, NoticeStep) and s.reason != "trim"), "")
        if not answers:  # keep the conversation well formed: every user message gets an assistant reply
            self._add(AnswerStep(answer, route.task))
            new = self.steps[first:]
        return TurnResult(answer, route.task, new, usage, stopped)

    # ---------------------------------------------------------------- pieces of the turn

    def _label(self, task: str, text: str) -> str:
        return self.run.classify(task, text)

    def _over_budget(self, usage: Usage, prompt_n: int) -> tuple[str, str] | None:
        b = self.budgets
        if usage.tool_steps >= b.tool_steps_per_turn:
            return ("steps", f"stopped: {usage.tool_steps} tool steps in this turn "
                                       f"(budget {b.tool_steps_per_turn})")
        if self.usage.tool_steps + usage.tool_steps >= b.steps_per_session:
            return ("steps", f"stopped: the session used its {b.steps_per_session} tool steps")
        if usage.total + prompt_n + b.max_new_tokens > b.tokens_per_turn:
            return ("tokens", f"stopped: this turn would pass its token budget "
                                       f"({usage.total} used + {prompt_n} prompt > {b.tokens_per_turn})")
        if self.usage.total + usage.total + prompt_n + b.max_new_tokens > b.tokens_per_session:
            return ("tokens", f"stopped: the session would pass its token budget "
                                       f"({self.usage.total + usage.total} used of {b.tokens_per_session})")
        return None

    def _notice(self, reason: str, text: str, on_event: Event) -> None:
        on_event("notice", self._add(NoticeStep(reason, text)))

    def _stream(self, prompt_text: str, task, on_event: Event) -> Iterator[str]:
        """Model output pieces; the answer part is streamed to `on_event`, tool-call text is not.

        `prompt_text` is the rendered prompt: the served agent feeds it to the batching engine;
        here `generate_stream` renders the same messages itself."""
        messages, schemas = self.prompt(task)
        shown, buffer = True, ""
        for piece in generate_stream(self.run.model, self.run.tokenizer, messages,
                                     max_new_tokens=self.budgets.max_new_tokens, tools=schemas,
                                     decoder=self.run.decoder()[0]):
            yield piece
            if not shown:
                continue
            buffer += piece
            if OPEN in buffer:
                before = buffer[:buffer.index(OPEN)]
                if before:
                    on_event("token", before)
                shown = False
            elif not any(OPEN.startswith(buffer[i:]) for i in range(max(0, len(buffer) - len(OPEN)), len(buffer))):
                on_event("token", buffer)
                buffer = ""
        if shown and buffer:
            on_event("token", buffer)

    def _valid_calls(self, parsed, task, prompt_text: str) -> tuple[list[dict], bool, str | None]:
        """(validated calls, whether one was repaired, the problem to tell the user or None).

        Each bad call gets one repair."""
        _, schemas = self.task_prompt(task)
        allowed = {s["function"]["name"] for s in schemas or []}
        calls, repaired_any = [], False
        for p in parsed:
            problem = p.error
            if p.call is not None:
                name = p.call["function"]["name"]
                if name not in allowed:
                    problem = f"tool '{name}' is not allowed for task '{task}' (allowed: {', '.join(sorted(allowed)) or 'none'})"
                else:
                    try:
                        p.call["function"]["arguments"] = self.tools.get(name).validate(p.call["function"]["arguments"])
                        calls.append(p.call)
                        continue
                    except AgentmillError as err:
                        problem = str(err)
            if not schemas:
                return [], False, f"the model tried to call a tool, but task '{task}' has none: {problem}"
            repaired = repair_call(self.run.model, self.run.tokenizer, prompt_text, schemas)
            if repaired is None:
                return [], False, f"the model's tool call could not be repaired ({problem})"
            try:
                name = repaired["function"]["name"]
                repaired["function"]["arguments"] = self.tools.get(name).validate(repaired["function"]["arguments"])
            except AgentmillError as err:
                return [], False, f"the model's tool call was invalid ({problem}) and its repair too ({err})"
            repaired_any = True
            calls.append(repaired)
        return calls, repaired_any, None

    def _held(self, call: dict) -> list[str]:
        """The arguments that keep a `tools.confirm` call waiting for the user (none: run it)."""
        fn = call["function"]
        if fn["name"] not in getattr(self.tools, "confirm", ()) or not isinstance(fn["arguments"], dict):
            return []
        return untrusted_arguments(fn["arguments"], self.steps)

    def _execute(self, call: dict) -> ToolResultStep:
        fn = call["function"]
        try:
            content, error = self.tools.get(fn["name"]).run(fn["arguments"]), False
        except AgentmillError as err:
            content, error = f"error: {err}", True
        return self._add(ToolResultStep(call["id"], fn["name"], content, error))


def _args(arguments: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in arguments.items())


def _stored(step: Step, task: str | None) -> StoredMessage:
    """A step as a session-store message: OpenAI-ish columns for humans, the step itself in `meta`."""
    meta = to_dict(step)
    if isinstance(step, UserStep):
        return StoredMessage(role="user", content=step.content, kind=step.kind, meta=meta)
    if isinstance(step, ModelStep):
        return StoredMessage(role="assistant", content=step.content, tool_calls=step.tool_calls, task=task,
                             adapter=task, latency_ms=step.latency_ms, kind=step.kind, meta=meta)
    if isinstance(step, ToolResultStep):
        return StoredMessage(role="tool", content=step.content, tool_call_id=step.call_id, name=step.name,
                             kind=step.kind, meta=meta)
    if isinstance(step, AnswerStep):
        return StoredMessage(role="assistant", content=step.content, task=step.task, adapter=step.task,
                             latency_ms=step.latency_ms, kind=step.kind, meta=meta)
    if isinstance(step, RouteStep):
        return StoredMessage(role="route", content=step.task, task=step.task, kind=step.kind, meta=meta)
    return StoredMessage(role="notice", content=step.text, kind=step.kind, meta=meta)
