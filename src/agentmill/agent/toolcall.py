"""Tool calls in model output: parse the Hermes/Qwen blocks, and repair a bad one by constrained decoding.

The model writes ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` (the format
`render` uses for templates without native tool support, so the format it was trained on).
A block that is not valid JSON, names an unknown tool, or fails the tool's schema gets one
repair: the call is decoded again from the same prompt, token by token, with the JSON
structure forced and each value constrained by its schema type (numbers may only use number
tokens, enums and booleans are chosen by score, strings end at their closing quote). This is
what classic AutoGPT lacked: its "Invalid JSON" loops came from hoping a model would follow a
format it was never trained on or held to.
"""

from __future__ import annotations

import json
import re
import uuid
import weakref
from dataclasses import dataclass

import torch

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


@dataclass
class ParsedCall:
    raw: str  # the block's text
    call: dict | None  # OpenAI-style call when the JSON parsed into {"name", "arguments"}
    error: str | None = None


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:12]


def as_openai_call(name: str, arguments: dict, call_id: str | None = None) -> dict:
    return {"id": call_id or new_call_id(), "type": "function", "function": {"name": name, "arguments": arguments}}


def parse_tool_calls(text: str) -> tuple[str, list[ParsedCall]]:
    """(content before the first call, the calls). An unclosed last block is still parsed."""
    first = text.find(OPEN)
    if first < 0:
        return text.strip(), []
    calls = []
    for match in _BLOCK.finditer(text, first):
        raw = match.group(1).strip()
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            calls.append(ParsedCall(raw, None, f"not valid JSON ({err.msg} at column {err.colno})"))
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            calls.append(ParsedCall(raw, None, 'expected {"name": ..., "arguments": {...}}'))
            continue
        arguments = obj.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                pass
        if not isinstance(arguments, dict):
            calls.append(ParsedCall(raw, None, '"arguments" must be a JSON object'))
            continue
        calls.append(ParsedCall(raw, as_openai_call(obj["name"], arguments)))
    return text[:first].strip(), calls


# ---------------------------------------------------------------- constrained repair

_NUMBER_TOKENS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_NUMBER_PIECE = re.compile(r"^-?[0-9]*\.?[0-9]*$")


def _number_token_ids(tokenizer) -> torch.Tensor:
    try:
        return _NUMBER_TOKENS[tokenizer]
    except KeyError:
        pass
    ids = [i for i in range(len(tokenizer))
           if (piece := tokenizer.decode([i])) and piece.strip() == piece and _NUMBER_PIECE.match(piece)]
    _NUMBER_TOKENS[tokenizer] = torch.tensor(ids)
    return _NUMBER_TOKENS[tokenizer]


class _Decoder:
    """Greedy decoding of a text continuation, one forward per token (repair is rare and short).

    The text only grows, so the KV cache of the longest token prefix shared with the previous
    forward is kept (cropped where re-tokenisation differs) and only the new tokens run:
    a repair after a 700-token prompt costs seconds instead of a full forward per token."""

    def __init__(self, model, tokenizer, prefix: str):
        self.model, self.tokenizer, self.text = model, tokenizer, prefix
        self.device = next(model.parameters()).device
        self._ids: list[int] = []
        self._cache = None

    def _forward(self, ids: list[int], first: int) -> torch.Tensor:
        """Logits (float32) predicting the tokens after positions first..len(ids)-1."""
        from agentmill.model.generate import _cache_kwarg, returned_cache

        common = 0
        while common < min(len(ids), len(self._ids)) and ids[common] == self._ids[common]:
            common += 1
        common = min(common, first, len(ids) - 1)
        kwargs = {}
        if self._cache is not None and common > 0:
            self._cache.crop(common - self._cache.get_seq_length())  # tokens to drop, as a negative count
            kwargs[_cache_kwarg(self.model)] = self._cache
        else:
            common = 0
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([ids[common:]], device=self.device), use_cache=True, **kwargs)
        self._cache = returned_cache(out)
        self._ids = list(ids)
        return out.logits[0, first - common:].float()

    def _logits(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._forward(ids, len(ids) - 1)[-1]

    def force(self, text: str) -> None:
        self.text += text

    def choose(self, options: list[str]) -> str:
        """The option with the highest summed log-prob after the current text."""
        best, best_score = options[0], float("-inf")
        base_len = len(self.tokenizer(self.text, add_special_tokens=False)["input_ids"])
        for option in options:
            ids = self.tokenizer(self.text + option, add_special_tokens=False)["input_ids"]
            logp = torch.log_softmax(self._forward(ids, base_len - 1)[:-1], -1)
            score = logp.gather(-1, torch.tensor(ids[base_len:], device=self.device)[:, None]).sum().item()
            if score > best_score:
                best, best_score = option, score
        self.text += best
        return best

    def number(self, integer: bool, max_tokens: int = 12) -> float | int:
        allowed = _number_token_ids(self.tokenizer).to(self.device)
        allowed_set = set(allowed.tolist())
        out = ""
        for _ in range(max_tokens):
            logits = self._logits(self.text + out)
            if out and int(logits.argmax()) not in allowed_set:
                break  # the model wants to end the number here
            candidate = out + self.tokenizer.decode([int(allowed[logits[allowed].argmax()])])
            if not re.fullmatch(r"-?\d*\.?\d*", candidate) or (integer and "." in candidate):
                break
            out = candidate
        out = out.rstrip(".")
        if out in ("", "-"):
            out = "0"
        self.text += out
        return int(out) if integer or "." not in out else float(out)

    def string(self, max_tokens: int = 48) -> str:
        out = ""
        for _ in range(max_tokens):
            top = int(self._logits(self.text + out).argmax())
            piece = self.tokenizer.decode([top])
            if '"' in piece or "\n" in piece or top in self.tokenizer.all_special_ids:
                out += piece.split('"')[0].split("\n")[0]
                break
            out += piece
        self.text += out + '"'
        return out


def repair_call(model, tokenizer, prompt: str, tools: list[dict]) -> dict | None:
    """Decode one tool call after `prompt` (which ends where the call should start), schema-constrained.

    Returns an OpenAI-style call, or None when a parameter's type cannot be constrained
    (objects, arrays) — the caller then reports the bad call to the user.
    """
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    if not by_name:
        return None
    d = _Decoder(model, tokenizer, prompt + OPEN + '\n{"name": "')
    name = d.choose(list(by_name)) if len(by_name) > 1 else next(iter(by_name))
    if len(by_name) == 1:
        d.force(name)
    d.force('", "arguments": {')
    params = by_name[name].get("parameters") or {}
    props = params.get("properties") or {}
    required = list(params.get("required") or [])
    arguments: dict = {}
    for i, key in enumerate([k for k in props if k in required]):
        schema = props[key]
        d.force((", " if i else "") + json.dumps(key) + ": ")
        kind = schema.get("type")
        if "enum" in schema:
            choice = d.choose([json.dumps(v) for v in schema["enum"]])
            arguments[key] = json.loads(choice)
        elif kind == "boolean":
            arguments[key] = d.choose(["true", "false"]) == "true"
        elif kind in ("number", "integer"):
            arguments[key] = d.number(integer=kind == "integer")
        elif kind == "string":
            d.force('"')
            arguments[key] = d.string()
        else:
            return None
    return as_openai_call(name, arguments)
