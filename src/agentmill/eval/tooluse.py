"""Trained tool use, measured on held-out chat records that call tools.

For each record whose conversation has an assistant turn with `tool_calls` (and a tool result
after it): prompt with everything before that turn (the record's system prompt and tools, as
the agent prompts) and check that greedy decoding calls the same tool with exactly the same
arguments (`tool_call_exact`); then prompt with everything up to the final answer, the gold
tool result included, and check that the answer states the tool's number (`tool_answer_match`,
over records whose tool result holds a number).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from agentmill.agent.toolcall import parse_tool_calls
from agentmill.data.formats import Record
from agentmill.data.render import content_text
from agentmill.data.toolgen import answer_kind
from agentmill.eval.evaluate import answer_budget, last_user, outcome
from agentmill.eval.metrics import mean
from agentmill.model.generate import generate_batch

_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def tool_records(records: list[Record]) -> list[Record]:
    return [r for r in records if r.messages and _first_call_index(r.messages) is not None]


def _first_call_index(messages: list[dict]) -> int | None:
    """The first trained tool call (a `weight: 0` message is context another task wrote)."""
    return next((i for i, m in enumerate(messages)
                 if m["role"] == "assistant" and m.get("tool_calls") and m.get("weight", 1)), None)


def same_call(predicted: dict | None, gold: dict, tools: list[dict] | None = None) -> bool:
    """Same tool name and the same arguments (numbers compared as numbers: 5 == 5.0).

    With the offered `tools`' schemas, an argument left out counts as its schema default on
    either side: `compounding` omitted equals `"compounding": "monthly"` when that is the
    default (as function-calling benchmarks score optional parameters)."""
    if predicted is None:
        return False
    p, g = predicted["function"], gold["function"]
    if p["name"] != g["name"]:
        return False
    defaults = _defaults(tools, g["name"])
    return (_canonical({**defaults, **_arguments(p)}) == _canonical({**defaults, **_arguments(g)}))


def _arguments(function: dict) -> dict:
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return {"": arguments}  # unparseable: equal only to the same text
    return arguments if isinstance(arguments, dict) else {"": arguments}


def _defaults(tools: list[dict] | None, name: str) -> dict:
    for t in tools or []:
        function = t.get("function", t)
        if function.get("name") == name:
            properties = (function.get("parameters") or {}).get("properties") or {}
            return {k: v["default"] for k, v in properties.items() if isinstance(v, dict) and "default" in v}
    return {}


def _canonical(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 9)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def headline_number(tool_result: str) -> float | None:
    """The first number of a tool result (a JSON number, or the first numeric field of an object)."""
    try:
        value = json.loads(tool_result)
    except (json.JSONDecodeError, TypeError):
        return None
    if isinstance(value, dict):
        value = next((v for v in value.values() if isinstance(v, (int, float)) and not isinstance(v, bool)), None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def parse_number(text: str) -> float | None:
    """A number as answers write it ("1,250.60", "42."), or None."""
    try:
        return float(text.replace(",", "").rstrip("."))
    except ValueError:
        return None


def states_number(answer: str, number: float) -> bool:
    """Whether `answer` writes `number` (to the cent; "-$1,250.60" and "$1,250.60 owed" both count)."""
    for text in _NUMBER.findall(answer):
        value = parse_number(text)
        if value is not None and abs(abs(value) - abs(number)) < 0.005:
            return True
    return False


@dataclass
class ToolCase:
    """One held-out tool question: the prompt before the gold call, and (when the tool's result
    holds a number) the prompt before the answer that reports it, with that number."""

    call_prompt: list[dict]
    gold_call: dict
    tools: list[dict] | None
    record: Record | None = None
    answer_prompt: list[dict] | None = None
    gold_answer: str = ""
    number: float | None = None


def tool_cases(records: list[Record]) -> list[ToolCase]:
    """The first tool call of each record, and the answer right after its results.

    The answer is the first assistant turn without tool calls after the call (not the
    conversation's last turn, which may answer a later, unrelated question)."""
    cases = []
    for r in tool_records(records):
        m = r.messages
        i = _first_call_index(m)
        case = ToolCase(m[:i], m[i]["tool_calls"][0], r.tools, record=r)
        j = next((j for j in range(i + 1, len(m)) if m[j]["role"] == "assistant" and not m[j].get("tool_calls")),
                 None)
        results = [x for x in m[i:j] if x["role"] == "tool"] if j is not None else []
        number = headline_number(results[-1]["content"]) if results else None
        if number is not None:
            case.answer_prompt, case.gold_answer, case.number = m[:j], content_text(m[j].get("content")), number
        cases.append(case)
    return cases


def evaluate_tool_use(model, tokenizer, records: list[Record], decoder=None,
                      outcomes: list | None = None) -> dict[str, float]:
    cases = tool_cases(records)
    if not cases:
        return {}
    outputs = generate_batch(model, tokenizer, [c.call_prompt for c in cases], tools=[c.tools for c in cases],
                             batch_size=32, decoder=decoder,
                             max_new_tokens=answer_budget(tokenizer, [_call_text(c.gold_call) for c in cases]))
    exact = []
    for out, case in zip(outputs, cases):
        _, calls = parse_tool_calls(out)
        exact.append(same_call(calls[0].call if calls else None, case.gold_call, case.tools))
        if outcomes is not None:
            outcomes.append(outcome("tool_call_exact", case.record, last_user(case.call_prompt), case.gold_call, out,
                                    exact[-1]))
    metrics = {"tool_call_exact": mean(exact), "tool_records": float(len(cases))}
    answered = [c for c in cases if c.answer_prompt is not None]
    if answered:
        answers = generate_batch(model, tokenizer, [c.answer_prompt for c in answered], batch_size=32,
                                 max_new_tokens=answer_budget(tokenizer, [c.gold_answer for c in answered]),
                                 tools=[c.tools for c in answered], decoder=decoder)
        matched = [states_number(a, c.number) for a, c in zip(answers, answered)]
        if outcomes is not None:
            outcomes.extend(outcome("tool_answer_match", c.record, last_user(c.answer_prompt),
                                    {"answer": c.gold_answer, "number": c.number}, a, ok)
                            for a, c, ok in zip(answers, answered, matched))
        metrics["tool_answer_match"] = mean(matched)
        metrics["tool_answer_records"] = float(len(answered))
    return metrics


def _call_text(call: dict) -> str:
    """A gold call as the model writes it (Hermes form), for the length budget."""
    function = call["function"]
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return f'<tool_call>\n{{"name": "{function["name"]}", "arguments": {arguments}}}\n</tool_call>'


def evaluate_general_tool_use(model, tokenizer, records: list[Record], decoder=None,
                              prefix: str = "unseen", constrain: bool = True,
                              outcomes: list | None = None) -> dict[str, float]:
    """General tool use on generated records (data/toolgen.py), each asking one question with its
    own tools: `{prefix}_tool_exact` over the records whose answer is a call (the same call,
    schema defaults filled in), `no_tool_when_none_fits` over those where no offered tool fits
    (the answer calls nothing), `asks_when_values_missing` over those that say none of the
    fitting tool's required values (the answer calls nothing: a call would invent them), and
    `tool_call_parsed`: the share of calls written that parse
    into an offered tool's name with a JSON object of arguments. `constrain`: calls decoded
    within the offered schemas (model/constrain.py), as every generation path does by default.
    `outcomes`: a list that gets each record's question, gold answer, output and whether it was right."""
    if not records:
        return {}
    prompts = [r.messages[:-1] for r in records]
    golds = [r.messages[-1] for r in records]
    budget = answer_budget(tokenizer, [_call_text(g["tool_calls"][0]) if g.get("tool_calls") else g["content"]
                                       for g in golds])
    outputs = generate_batch(model, tokenizer, prompts, tools=[r.tools for r in records], batch_size=32,
                             decoder=decoder, max_new_tokens=budget, constrain=constrain)
    exact, none, asks, written, parsed = [], [], [], 0, 0
    for out, gold, r in zip(outputs, golds, records):
        _, calls = parse_tool_calls(out)
        offered = {t["function"]["name"] for t in r.tools or []}
        written += len(calls)
        parsed += sum(c.call is not None and c.call["function"]["name"] in offered for c in calls)
        kind = answer_kind(r)
        right = (same_call(calls[0].call if calls else None, gold["tool_calls"][0], r.tools) if kind == "call"
                 else not calls)
        {"call": exact, "ask": asks, "none_fits": none}[kind].append(right)
        if outcomes is not None:
            outcomes.append({"source": r.source, "kind": kind, "right": right, "question": r.messages[-2]["content"],
                             "offered": sorted(t["function"]["name"] for t in r.tools or []),
                             "gold": gold.get("tool_calls") or gold.get("content"), "output": out})
    metrics = {f"{prefix}_tool_exact": mean(exact), "no_tool_when_none_fits": mean(none),
               "tool_call_parsed": parsed / written if written else 1.0,
               f"{prefix}_tool_records": float(len(exact)), "none_fits_records": float(len(none))}
    if asks:
        metrics |= {"asks_when_values_missing": mean(asks), "values_missing_records": float(len(asks))}
    return metrics
