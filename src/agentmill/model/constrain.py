"""Tool calls decoded within the offered tools' JSON schemas (llguidance, the grammar engine under
vLLM's and llama.cpp's structured outputs).

A row decodes freely until its text ends with ``<tool_call>``; from there each token is picked
among those the call grammar allows: a newline, ``{"name": "<an offered tool>", "arguments":
{...}}`` with that tool's parameters (their names, types, enums; required ones present, no
others), a newline and ``</tool_call>``; then the row is free again (to stop, or call again).
The JSON is written the way training renders calls (``json.dumps``: ", " and ": "), so the
constraint only removes what the model must not write. A call can then always be parsed.
"""

from __future__ import annotations

import json
import weakref

import numpy as np
import torch

TRIGGER = "<tool_call>"
_LLTOKENIZERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_GRAMMARS: dict[str, str] = {}


def _closed(schema: dict) -> dict:
    """A parameters schema that admits no properties beyond its own (the model's invented keys)."""
    out = dict(schema)
    if out.get("type") == "object" or "properties" in out:
        out.setdefault("additionalProperties", False)
        out["properties"] = {k: _closed(v) if isinstance(v, dict) else v
                             for k, v in (out.get("properties") or {}).items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _closed(out["items"])
    return out


def call_grammar(tools: list[dict]) -> str:
    """The Lark grammar (llguidance's dialect, with an embedded JSON schema) of one call to one of `tools`."""
    key = json.dumps(tools, sort_keys=True)
    if key not in _GRAMMARS:
        alternatives = []
        for tool in tools:
            fn = tool.get("function", tool)
            parameters = fn.get("parameters") or {"type": "object", "properties": {}}
            alternatives.append({"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
                                 "properties": {"name": {"const": fn["name"]}, "arguments": _closed(parameters)}})
        schema = {"anyOf": alternatives,
                  "x-guidance": {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}}
        _GRAMMARS[key] = 'start: "\\n" call "\\n</tool_call>"\ncall: %json ' + json.dumps(schema)
    return _GRAMMARS[key]


def _lltokenizer(tokenizer):
    import llguidance.hf

    try:
        return _LLTOKENIZERS[tokenizer]
    except KeyError:
        _LLTOKENIZERS[tokenizer] = llguidance.hf.from_tokenizer(tokenizer)  # ~0.3 s: once per tokenizer
        return _LLTOKENIZERS[tokenizer]


class CallConstraint:
    """One row's constraint. Per step: `mask(logits)` before the token is picked, `advance(token)` after."""

    def __init__(self, tokenizer, tools: list[dict], written: str = ""):
        """`written`: the answer's text the prompt already holds (a server forcing the start of a
        call for `tool_choice`): a call opened there is continued under the grammar."""
        self.tokenizer = tokenizer
        self.grammar = call_grammar(tools)
        self.matcher = None
        self.tail: list[int] = []
        self.calls = 0  # calls started under the constraint
        if TRIGGER in written:
            self._open()
            rest = written[written.rindex(TRIGGER) + len(TRIGGER):]
            if self.matcher is not None and rest:
                self.matcher.consume_tokens(tokenizer(rest, add_special_tokens=False)["input_ids"])
                if self.matcher.is_error():
                    self.matcher = None

    def _open(self) -> None:
        import llguidance

        self.matcher = llguidance.LLMatcher(_lltokenizer(self.tokenizer), self.grammar, log_level=0)
        self.calls += 1
        if self.matcher.is_error():  # a schema llguidance cannot compile: decode freely
            self.matcher = None

    def advance(self, token: int) -> None:
        if self.matcher is not None:
            self.matcher.consume_token(token)
            if self.matcher.is_error() or self.matcher.is_stopped() or self.matcher.is_accepting():
                self.matcher, self.tail = None, []
            return
        self.tail = (self.tail + [token])[-8:]
        if self.tokenizer.decode(self.tail).endswith(TRIGGER):
            self._open()

    def mask(self, logits: torch.Tensor) -> None:
        """Forbid (in place: -inf) the tokens of `logits` (one row) the call grammar does not allow."""
        if self.matcher is None:
            return
        bits = np.unpackbits(np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
        allowed = torch.from_numpy(bits[: logits.shape[-1]].astype(bool))
        if len(allowed) < logits.shape[-1]:
            allowed = torch.cat([allowed, torch.zeros(logits.shape[-1] - len(allowed), dtype=torch.bool)])
        if allowed.any():
            logits.masked_fill_(~allowed.to(logits.device), float("-inf"))


class ConstrainedLogits:
    """`model.generate`'s logits processor for a batch: one CallConstraint per row (None: free)."""

    def __init__(self, constraints: list[CallConstraint | None]):
        self.constraints = constraints
        self.started = False

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for row, constraint in enumerate(self.constraints):
            if constraint is None:
                continue
            if self.started:  # the last input token is the one generated at the previous step
                constraint.advance(int(input_ids[row, -1]))
            constraint.mask(scores[row])
        self.started = True
        return scores


def constraints_for(tokenizer, tools: list[list[dict] | None]) -> list[CallConstraint | None]:
    return [CallConstraint(tokenizer, t) if t else None for t in tools]
