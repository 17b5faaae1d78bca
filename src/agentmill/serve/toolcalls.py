"""The model's Hermes ``<tool_call>`` blocks as OpenAI `tool_calls`, whole or streamed.

The model writes tool calls the way it was trained (agent/toolcall.py): content, then blocks
``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``. `ContentSplitter` sorts
streamed text into content to show now and tool-call text to hold (a tail that may be the
start of ``<tool_call>``, and whitespace before it, is held until it is known); `openai_calls` turns blocks into
OpenAI calls, arguments as a JSON string; `fragments` cuts one call into the stream deltas
OpenAI sends: id, type and name first, then the arguments in pieces.
"""

from __future__ import annotations

import json

from agentmill.agent.toolcall import CLOSE, OPEN, ParsedCall, new_call_id, parse_tool_calls

ARGUMENT_PIECE = 16  # characters of arguments per streamed fragment


class ContentSplitter:
    def __init__(self):
        self.held = ""  # content not shown yet (may be the start of OPEN)
        self.calls_text = ""  # everything from the first OPEN on
        self.taken = 0  # closed blocks already handed out by `closed_blocks`

    @property
    def in_calls(self) -> bool:
        return bool(self.calls_text)

    def feed(self, piece: str) -> str:
        """Content to show now."""
        if self.in_calls:
            self.calls_text += piece
            return ""
        self.held += piece
        if OPEN in self.held:
            cut = self.held.index(OPEN)
            shown, self.calls_text, self.held = self.held[:cut].rstrip(), self.held[cut:], ""
            return shown
        keep = next((k for k in range(min(len(OPEN) - 1, len(self.held)), 0, -1)
                     if OPEN.startswith(self.held[-k:])), 0)
        rest = self.held[:len(self.held) - keep]
        cut = len(rest.rstrip())  # whitespace before a call is not content: hold it until we know
        shown, self.held = self.held[:cut], self.held[cut:]
        return shown

    def flush(self) -> str:
        shown, self.held = self.held, ""
        return shown

    def closed_blocks(self) -> list[ParsedCall]:
        """Blocks closed since the last call (parsed), in order."""
        end = self.calls_text.rfind(CLOSE)
        if end < 0:
            return []
        _, parsed = parse_tool_calls(self.calls_text[:end + len(CLOSE)])
        new, self.taken = parsed[self.taken:], len(parsed)
        return new


def openai_call(parsed: ParsedCall, allowed: set[str]) -> dict | None:
    """The OpenAI call of a parsed block, or None when it is not a call of an offered tool."""
    if parsed.call is None or parsed.call["function"]["name"] not in allowed:
        return None
    fn = parsed.call["function"]
    return {"id": parsed.call.get("id") or new_call_id(), "type": "function",
            "function": {"name": fn["name"], "arguments": json.dumps(fn["arguments"], ensure_ascii=False)}}


def openai_calls(text: str, allowed: set[str]) -> tuple[str, list[dict]]:
    """(content, valid calls) of a whole output; invalid blocks are dropped."""
    content, parsed = parse_tool_calls(text)
    calls = [c for c in (openai_call(p, allowed) for p in parsed) if c is not None]
    return content, calls


def fragments(call: dict, index: int) -> list[dict]:
    """The `delta.tool_calls` entries that stream one call."""
    arguments = call["function"]["arguments"]
    first = {"index": index, "id": call["id"], "type": "function",
             "function": {"name": call["function"]["name"], "arguments": ""}}
    rest = [{"index": index, "function": {"arguments": arguments[i:i + ARGUMENT_PIECE]}}
            for i in range(0, len(arguments), ARGUMENT_PIECE)]
    return [first, *rest]
