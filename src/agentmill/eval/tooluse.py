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

from agentmill.agent.toolcall import parse_tool_calls
from agentmill.data.formats import Record
from agentmill.eval.evaluate import answer_budget
from agentmill.eval.metrics import mean
from agentmill.model.generate import generate_batch

_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def tool_records(records: list[Record]) -> list[Record]:
    return [r for r in records if r.messages and _first_call_index(r.messages) is not None]


def _first_call_index(messages: list[dict]) -> int | None:
    return next((i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("tool_calls")), None)


def same_call(predicted: dict | None, gold: dict) -> bool:
    """Same tool name and the same arguments (numbers compared as numbers: 5 == 5.0)."""
    if predicted is None:
        return False
    p, g = predicted["function"], gold["function"]
    return p["name"] == g["name"] and _canonical(p.get("arguments", {})) == _canonical(g.get("arguments", {}))


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


def states_number(answer: str, number: float) -> bool:
    """Whether `answer` writes `number` (to the cent; "-$1,250.60" and "$1,250.60 owed" both count)."""
    for text in _NUMBER.findall(answer):
        try:
            if abs(abs(float(text.replace(",", "").rstrip("."))) - abs(number)) < 0.005:
                return True
        except ValueError:
            continue
    return False


def evaluate_tool_use(model, tokenizer, records: list[Record]) -> dict[str, float]:
    records = tool_records(records)
    if not records:
        return {}
    call_prompts, gold_calls, tools = [], [], []
    answer_prompts, numbers, answer_tools, gold_answers = [], [], [], []
    for r in records:
        i = _first_call_index(r.messages)
        call_prompts.append(r.messages[:i])
        gold_calls.append(r.messages[i]["tool_calls"][0])
        tools.append(r.tools)
        last = max(j for j, m in enumerate(r.messages) if m["role"] == "assistant")
        results = [m for m in r.messages[i:last] if m["role"] == "tool"]
        number = headline_number(results[-1]["content"]) if results else None
        if last > i and number is not None:
            answer_prompts.append(r.messages[:last])
            gold_answers.append(r.messages[last].get("content") or "")
            numbers.append(number)
            answer_tools.append(r.tools)
    outputs = generate_batch(model, tokenizer, call_prompts, tools=tools, batch_size=32,
                             max_new_tokens=answer_budget(tokenizer, [_call_text(c) for c in gold_calls]))
    exact = []
    for out, gold in zip(outputs, gold_calls):
        _, calls = parse_tool_calls(out)
        exact.append(same_call(calls[0].call if calls else None, gold))
    metrics = {"tool_call_exact": mean(exact), "tool_records": float(len(records))}
    if answer_prompts:
        answers = generate_batch(model, tokenizer, answer_prompts, max_new_tokens=answer_budget(tokenizer, gold_answers),
                                 batch_size=32,
                                 tools=answer_tools)
        metrics["tool_answer_match"] = mean([states_number(a, n) for a, n in zip(answers, numbers)])
    return metrics


def _call_text(call: dict) -> str:
    """A gold call as the model writes it (Hermes form), for the length budget."""
    function = call["function"]
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return f'<tool_call>\n{{"name": "{function["name"]}", "arguments": {arguments}}}\n</tool_call>'

