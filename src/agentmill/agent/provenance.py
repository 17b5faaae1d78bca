"""Where a tool call's arguments came from: the user, or text the agent only read.

Injected instructions live in text an attacker can place: a tool's result (a knowledge page, an
account memo, an error message) or the text read from an uploaded image. A call whose argument
appears there but nowhere in what the user typed or said is the shape of an injected action, so
tools listed in `tools.confirm` hold such a call until the user says the value themselves
("yes, NW-66666"): the user confirms by naming it, and no new API is needed.
"""

from __future__ import annotations

import re

from agentmill.agent.steps import Step, ToolResultStep, UserStep

MIN_CHARS = 3  # shorter strings ("a", "5") are everywhere: they say nothing about their source


def _norm(text: str) -> str:
    """Lower case, single spaces, digits without thousands separators ("$9,999" -> "$9999")."""
    return _GROUPED.sub("", " ".join(text.split()).lower())


_GROUPED = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _leaves(value) -> list[str]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _norm(str(value))
    return [text] if len(text) >= MIN_CHARS else []


def _typed(step: UserStep) -> str:
    """What the user typed or said: the message without the text read from its images."""
    text = step.content
    for item in step.media:
        if item.get("type") == "image" and item.get("text"):
            text = text.replace(item["text"], " ")
    return text


def sources(steps: list[Step]) -> tuple[str, str]:
    """(trusted, untrusted) text of a conversation, normalised: what the user typed or said, and
    what tools returned plus what was read from images."""
    trusted, untrusted = [], []
    for step in steps:
        if isinstance(step, UserStep):
            trusted.append(_typed(step))
            untrusted += [m["text"] for m in step.media if m.get("type") == "image" and m.get("text")]
        elif isinstance(step, ToolResultStep):
            untrusted.append(step.content)
    return _norm(" ".join(trusted)), _norm(" ".join(untrusted))


def _found(leaf: str, text: str) -> bool:
    return re.search(r"(?<![\w.])" + re.escape(leaf) + r"(?![\w])", text) is not None


def untrusted_arguments(arguments: dict, steps: list[Step]) -> list[str]:
    """The argument values that appear in tool output or image text but not in the user's words,
    and the numbers inside a value that is not itself one of them: a calculator's `"9999 * 12"`
    carries the 9999 an image gave even though the whole expression is the model's."""
    trusted, untrusted = sources(steps)

    def read_only_there(text: str) -> bool:
        return _found(text, untrusted) and not _found(text, trusted)

    held = []
    for leaf in _leaves(arguments):
        if read_only_there(leaf):
            held.append(leaf)
        else:
            held += [n for n in _NUMBER.findall(leaf) if n != leaf and len(n) >= MIN_CHARS and read_only_there(n)]
    return list(dict.fromkeys(held))
