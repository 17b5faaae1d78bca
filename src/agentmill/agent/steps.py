"""The agent's memory: a list of typed steps; the prompt is a pure function of them.

Steps are what happened, in order: the user's message, the routing decision, each model
output (with the tool calls it made, as executed), each tool result, the answer, and notices
(loop stopped, budget reached, context trimmed). `to_messages` turns them into the OpenAI-style
messages that `render` prints, so replaying stored steps rebuilds exactly the same prompt.
Steps round-trip through plain JSON (`to_dict` / `from_dict`) for the session store.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields


@dataclass
class UserStep:
    content: str  # what the model reads: the typed text, then each image's or recording's labelled text
    # the images and recordings of the message (media/parts.py `Extracted.summary`: type, name, engine,
    # extracted text, sha256 of the original kept in media/store.py, ...)
    media: list[dict] = field(default_factory=list)
    kind: str = field(default="user", init=False)


@dataclass
class RouteStep:
    task: str | None
    scores: dict[str, float] = field(default_factory=dict)
    forced: bool = False  # /task NAME or the API's `model` field
    kind: str = field(default="route", init=False)


@dataclass
class ModelStep:
    """A model output that called tools: its text before the calls and the calls as executed."""

    content: str
    tool_calls: list[dict]  # [{"id", "type": "function", "function": {"name", "arguments": {...}}}]
    raw: str = ""  # what the model printed, before parsing and repair
    repaired: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    kind: str = field(default="model", init=False)


@dataclass
class ToolResultStep:
    call_id: str
    name: str
    content: str  # JSON text of the result, or the error message
    error: bool = False
    kind: str = field(default="tool_result", init=False)


@dataclass
class AnswerStep:
    content: str
    task: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    kind: str = field(default="answer", init=False)


@dataclass
class NoticeStep:
    """Something the user must see that is not model output: loop cut, budget hit, trimming."""

    reason: str  # "repeat" | "steps" | "tokens" | "tool_error" | "bad_tool_call" | "declined" | "confirm" | "trim"
    text: str
    keep_from: int = 0  # reason "trim": steps before this index are left out of the prompt
    kind: str = field(default="notice", init=False)


Step = UserStep | RouteStep | ModelStep | ToolResultStep | AnswerStep | NoticeStep
KINDS = {cls.__dataclass_fields__["kind"].default: cls
         for cls in (UserStep, RouteStep, ModelStep, ToolResultStep, AnswerStep, NoticeStep)}


def to_dict(step: Step) -> dict:
    return asdict(step)


def from_dict(data: dict) -> Step:
    cls = KINDS[data["kind"]]
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.init and f.name in data})


INTERRUPTED = "(no answer: this turn was interrupted)"


def to_messages(steps: list[Step]) -> list[dict]:
    """The conversation the model sees (without system prompt and tools, which come from the task).

    A turn that stopped before its answer (the server was killed, the store filled up) is closed
    here, so the next turn's prompt stays well formed: each call it made gets a result saying so,
    and the turn gets an assistant reply saying it was interrupted."""
    start = 0
    for step in steps:
        if isinstance(step, NoticeStep) and step.reason == "trim":
            start = step.keep_from
    messages: list[dict] = []
    open_calls: dict[str, str] = {}  # call id -> tool name, for calls of this turn without a result
    answered = True
    for step in steps[start:]:
        if isinstance(step, UserStep):
            if not answered:
                messages += _close(open_calls)
            open_calls, answered = {}, False
            messages.append({"role": "user", "content": step.content})
        elif isinstance(step, ModelStep):
            messages.append({"role": "assistant", "content": step.content or None, "tool_calls": step.tool_calls})
            open_calls.update({c["id"]: c["function"]["name"] for c in step.tool_calls})
        elif isinstance(step, ToolResultStep):
            messages.append({"role": "tool", "tool_call_id": step.call_id, "name": step.name,
                             "content": step.content})
            open_calls.pop(step.call_id, None)
        elif isinstance(step, AnswerStep):
            messages.append({"role": "assistant", "content": step.content})
            answered = True
    return messages


def _close(open_calls: dict[str, str]) -> list[dict]:
    results = [{"role": "tool", "tool_call_id": call_id, "name": name, "content": json.dumps({"error": INTERRUPTED})}
               for call_id, name in open_calls.items()]
    return results + [{"role": "assistant", "content": INTERRUPTED}]


def turns(steps: list[Step]) -> list[tuple[int, int]]:
    """[start, end) index ranges of each turn (a turn starts at a UserStep)."""
    starts = [i for i, s in enumerate(steps) if isinstance(s, UserStep)]
    return [(a, b) for a, b in zip(starts, starts[1:] + [len(steps)])]


def arguments_key(call: dict) -> str:
    """Canonical (tool, arguments) identity, for the repeated-call rule."""
    fn = call["function"]
    return fn["name"] + json.dumps(fn.get("arguments", {}), sort_keys=True)
