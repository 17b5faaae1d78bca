"""Multi-turn memory, measured on held-out chat records whose last answer needs an earlier turn.

A record counts when its last assistant answer states a fact — a capitalised word (a name, a
city) or a number/amount — that an earlier user turn gave and the last user turn does not
repeat ("What is my name?" -> "Your name is Dana."). The model answers that last turn greedily
from the conversation before it; `memory_recall` is the fraction of such records whose answer
states every one of those facts.
"""

from __future__ import annotations

import re

from agentmill.data.formats import Record
from agentmill.eval.evaluate import answer_budget, last_user, outcome
from agentmill.eval.metrics import mean
from agentmill.model.generate import generate_batch

_FACT = re.compile(r"\$?\d[\d,]*(?:\.\d+)?|\b[A-Z][a-z]+\b")
_COMMON = frozenset(["I", "Hi", "Hello", "Hey", "My", "Your", "You", "The", "What", "How", "Thanks", "Thank",
                     "Yes", "No", "Please", "Can", "Do", "Is", "It", "That", "This", "Good", "Sorry", "And"])


def earlier_facts(messages: list[dict]) -> list[str]:
    """Facts of the last answer that only an earlier user turn gave (empty: not a memory record)."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    last = messages[-1]
    if len(users) < 2 or last["role"] != "assistant" or last.get("tool_calls") or not last.get("content"):
        return []
    earlier = " ".join(messages[i]["content"] or "" for i in users[:-1])
    final_question = messages[users[-1]]["content"] or ""
    facts = []
    for fact in _FACT.findall(last["content"]):
        if fact in _COMMON or fact in facts or fact in final_question:
            continue
        if re.search(rf"(?<![\w$]){re.escape(fact)}(?!\w)", earlier):
            facts.append(fact)
    return facts


def memory_records(records: list[Record]) -> list[tuple[Record, list[str]]]:
    return [(r, facts) for r in records if r.messages and (facts := earlier_facts(r.messages))]


def evaluate_memory(model, tokenizer, records: list[Record], decoder=None,
                    outcomes: list | None = None) -> dict[str, float]:
    chosen = memory_records(records)
    if not chosen:
        return {}
    prompts = [r.messages[:-1] for r, _ in chosen]
    golds = [r.messages[-1]["content"] for r, _ in chosen]
    answers = generate_batch(model, tokenizer, prompts, max_new_tokens=answer_budget(tokenizer, golds),
                             batch_size=32, tools=[r.tools for r, _ in chosen], decoder=decoder)
    recalled = [all(f in a for f in facts) for a, (_, facts) in zip(answers, chosen)]
    if outcomes is not None:
        outcomes.extend(outcome("memory_recall", r, last_user(r.messages), {"answer": g, "facts": facts}, a, ok)
                        for (r, facts), g, a, ok in zip(chosen, golds, answers, recalled))
    return {"memory_recall": mean(recalled),
            "memory_records": float(len(chosen))}
