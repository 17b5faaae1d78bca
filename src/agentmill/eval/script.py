"""A scripted conversation that checks itself: each turn says what its answer must show.

`agentmill demo` plays the example's `demo_chat.yaml` through the agent and marks every turn
✓/✗: the task the router chose, the tool called and its exact arguments, words and the
number the answer must contain. A turn the agent cut short (budget, bad tool call) is ✗.

    - user: What would I pay each month for $20,000 at 6% APR over 5 years?
      expect: {task: finance_advisor, tool: loan_payment,
               arguments: {principal: 20000, annual_rate_percent: 6, years: 5}, answer_number: 386.66}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentmill.agent.steps import ModelStep
from agentmill.errors import AgentmillError
from agentmill.eval.tooluse import same_call, states_number


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str | list[str] | None = Field(None, description="The task the router must choose (or one of a list).")
    tool: str | None = Field(None, description="The first tool the turn calls; 'none': it calls no tool.")
    arguments: dict | None = Field(None, description="That call's exact arguments (numbers compared as numbers).")
    answer_has: list[str] = Field(default_factory=list, description="Texts the answer contains (any case).")
    answer_number: float | None = Field(None, description="A number the answer states, to the cent.")


class ScriptTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1)
    expect: Expect = Field(default_factory=Expect)


def load_script(path: Path) -> list[ScriptTurn]:
    """The turns of a script file (a YAML list); a clear error names the file and the turn."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise AgentmillError(f"{path}: cannot read the script: {err}") from None
    if not isinstance(data, list) or not data:
        raise AgentmillError(f"{path}: a script is a non-empty YAML list of turns ({{user: ..., expect: ...}})")
    turns = []
    for i, item in enumerate(data, 1):
        try:
            turns.append(ScriptTurn.model_validate(item))
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'turn'}: {e['msg']}" for e in err.errors())
            raise AgentmillError(f"{path}: turn {i}: {problems}") from None
    return turns


@dataclass
class Check:
    what: str  # "task", "tool", "arguments", "answer", "number", "finished"
    ok: bool
    detail: str


def first_call(steps) -> dict | None:
    return next((c for s in steps if isinstance(s, ModelStep) for c in s.tool_calls), None)


def check_turn(expect: Expect, result) -> list[Check]:
    """What `result` (the agent's TurnResult) shows against `expect`, one Check per expectation."""
    checks = [Check("finished", result.stopped is None,
                    "answered" if result.stopped is None else f"stopped: {result.stopped}")]
    if expect.task is not None:
        wanted = [expect.task] if isinstance(expect.task, str) else expect.task
        checks.append(Check("task", result.task in wanted, f"routed to {result.task}"))
    call = first_call(result.steps)
    if expect.tool is not None:
        name = call["function"]["name"] if call else "none"
        checks.append(Check("tool", name == expect.tool, f"called {name}"))
    if expect.arguments is not None:
        gold = {"function": {"name": expect.tool or (call or {}).get("function", {}).get("name"),
                             "arguments": expect.arguments}}
        got = call["function"].get("arguments", {}) if call else None
        checks.append(Check("arguments", same_call(call, gold), f"arguments {got}"))
    for text in expect.answer_has:
        checks.append(Check("answer", text.lower() in result.answer.lower(), f"answer has {text!r}"))
    if expect.answer_number is not None:
        checks.append(Check("number", states_number(result.answer, expect.answer_number),
                            f"answer states {expect.answer_number:g}"))
    return checks
