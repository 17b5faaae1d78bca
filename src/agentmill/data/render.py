"""The one rendering of conversations (the tokenizer's chat template) and the loss masks.

Training, eval, chat, serving and export all call `render`, so a model is always prompted
exactly the way it was trained. Masks come from an incremental prefix diff of renders, so
they follow whatever the template prints, and the end-of-turn token of every trained
assistant turn carries a label ("stop tokens are trained"), whether or not pad == eos.
"""

from __future__ import annotations

import bisect
import json
import re
import weakref
from dataclasses import dataclass

from agentmill.errors import AgentmillError

MASKS = ("assistant", "all", "last_turn")
MIN_LAST_BLOCK = 16  # encode_text keeps a final partial block only from this many tokens

TOOLS_PROMPT = (
    "# Tools\n\nYou may call these functions:\n<tools>\n{tools}\n</tools>\n\n"
    "To call one, write <tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)


def _type_of(schema: dict) -> str:
    if "enum" in schema:
        return "|".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{_type_of(schema.get('items') or {})}]"
    return "|".join(kind) if isinstance(kind, list) else str(kind)


def describe_tool(tool: dict) -> str:
    """One line per tool: ``name(arg: type, opt?: type = default) - description``.

    The compact form of the tool list for templates without tool support: a JSON schema costs
    ~150 tokens per tool, this ~40, which matters for small models and their training time.
    Parameter descriptions follow in brackets when the schema has them."""
    fn = tool.get("function", tool)
    params = fn.get("parameters") or {}
    required = set(params.get("required") or [])
    args, notes = [], []
    for name, schema in (params.get("properties") or {}).items():
        arg = f"{name}: {_type_of(schema)}" if name in required else f"{name}?: {_type_of(schema)}"
        if "default" in schema:
            arg += f" = {json.dumps(schema['default'])}"
        args.append(arg)
        if schema.get("description"):
            notes.append(f"{name}: {schema['description']}")
    line = f"{fn['name']}({', '.join(args)})"
    if fn.get("description"):
        line += f" - {fn['description']}"
    return line + (f" [{'; '.join(notes)}]" if notes else "")


@dataclass
class Example:
    """One tokenised training example; labels[t] is the token trained at t, -100 = not trained."""

    input_ids: list[int]
    labels: list[int]
    source: str = ""
    truncated: bool = False


def _template(tokenizer) -> str:
    template = tokenizer.chat_template or ""
    return "\n".join(template.values()) if isinstance(template, dict) else template


def _template_knows_tools(tokenizer) -> bool:
    return re.search(r"\btools\b", _template(tokenizer)) is not None


def content_text(content) -> str:
    """Message content as text: None -> "", OpenAI content parts -> their text joined."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content


# the markup that frames tool use in a rendering: text from outside must never print it
TOOL_TAGS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>", "</tools>")
_DEFUSERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def defuse(tokenizer, text: str) -> str:
    """Text that came from outside (a user, a tool's result, a knowledge page, OCR, a transcript)
    as plain data: every special token (``<|im_end|>``, ``<|im_start|>``, ...) and tool tag in it
    is written with ``&lt;``/``&gt;``, so it tokenizes as ordinary text and cannot end a turn,
    open a system message or fake a tool call or result. The tokenizer parses special-token text
    anywhere in a rendering, so this is the only place it can be stopped."""
    if not text or "<" not in text:
        return text
    return _markup(tokenizer).sub(lambda m: m.group(0).replace("<", "&lt;").replace(">", "&gt;"), text)


def _markup(tokenizer) -> "re.Pattern":
    """The tokenizer's special tokens and the tool tags, longest first, as one pattern (cached)."""
    try:
        return _DEFUSERS[tokenizer]
    except (KeyError, TypeError):
        pass
    special = {tok for tok in getattr(tokenizer, "all_special_tokens", []) if len(tok) > 1}
    special |= {tok.content for tok in getattr(tokenizer, "added_tokens_decoder", {}).values()
                if tok.special and len(tok.content) > 1}
    pattern = re.compile("|".join(map(re.escape, sorted(special | set(TOOL_TAGS), key=len, reverse=True))))
    try:
        _DEFUSERS[tokenizer] = pattern
    except TypeError:
        pass
    return pattern


def _defused(tokenizer, content):
    """Message content with its text defused, in the shape it came (a string or OpenAI parts)."""
    if isinstance(content, list):
        return [dict(p, text=defuse(tokenizer, p["text"])) if isinstance(p, dict) and isinstance(p.get("text"), str)
                else p for p in content]
    return defuse(tokenizer, content) if isinstance(content, str) else content


def _tool_call_block(call: dict) -> str:
    fn = call.get("function", call)
    arguments = fn.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass  # keep the raw string: render what we were given
    body = json.dumps({"name": fn["name"], "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


# roles whose text comes from outside: what a user typed (or a client relayed) and what a tool
# returned; system prompts and the model's own turns are the run's
UNTRUSTED = ("user", "tool")


def to_template_messages(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> list[dict]:
    """Messages as the tokenizer's template can print them.

    Templates that know `tool_calls` get the messages as they are. Otherwise (e.g. SmolLM2)
    tool use is written Hermes/Qwen style: assistant tool calls become
    ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks after the content,
    tool results become role "tool" with ``<tool_response>`` tags, and `tools` (when the
    template ignores them) are described in the system message inside ``<tools>``, one
    compact line each (`describe_tool`). User and tool text is `defuse`d: data, never markup.
    """
    template = _template(tokenizer)
    if "tool_calls" in template:
        out = [dict(m, content=_defused(tokenizer, m["content"])) if m["role"] in UNTRUSTED and "content" in m
               else dict(m) for m in messages]
    else:
        out = []
        for m in messages:
            content = content_text(m.get("content"))
            if m["role"] in UNTRUSTED:
                content = defuse(tokenizer, content)
            if m["role"] == "assistant" and m.get("tool_calls"):
                blocks = [_tool_call_block(c) for c in m["tool_calls"]]
                content = "\n".join(([content] if content else []) + blocks)
            elif m["role"] == "tool":
                content = f"<tool_response>\n{content}\n</tool_response>"
            out.append({"role": m["role"], "content": content})
    if tools and not _template_knows_tools(tokenizer):
        described = TOOLS_PROMPT.format(tools="\n".join(describe_tool(t) for t in tools))
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": content_text(out[0].get("content")) + "\n\n" + described}
        else:
            out.insert(0, {"role": "system", "content": described})
    return out


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False,
           tools: list[dict] | None = None) -> str:
    """Render a conversation to text with the tokenizer's chat template (the only renderer)."""
    kwargs = {"tools": tools} if tools and _template_knows_tools(tokenizer) else {}
    return tokenizer.apply_chat_template(to_template_messages(tokenizer, messages, tools), tokenize=False,
                                         add_generation_prompt=add_generation_prompt, **kwargs)


_EOT_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_PROBE = "agentmill end-of-turn probe"


def end_of_turn_id(tokenizer) -> int:
    """The token that ends an assistant turn (SmolLM2: ``<|im_end|>``).

    Found by rendering a one-turn conversation: the special token right after the assistant
    content; falls back to ``eos_token_id`` when none follows.
    """
    try:
        return _EOT_CACHE[tokenizer]
    except (KeyError, TypeError):
        pass
    text = render(tokenizer, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _PROBE}])
    rest = text[text.rindex(_PROBE) + len(_PROBE):]
    ids = tokenizer(rest, add_special_tokens=False)["input_ids"] if rest else []
    special = set(tokenizer.all_special_ids)
    special |= {i for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items() if tok.special}
    eot = ids[0] if ids and ids[0] in special else tokenizer.eos_token_id
    try:
        _EOT_CACHE[tokenizer] = eot
    except TypeError:
        pass
    return eot


def _assistant_spans(tokenizer, messages, tools, source) -> tuple[str, list[tuple[int, int]]]:
    """The full render and, per assistant message, its character span (content + end-of-turn token)."""
    full = render(tokenizer, messages, tools=tools)
    eot_text = tokenizer.decode([end_of_turn_id(tokenizer)], skip_special_tokens=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or m.get("weight", 1) == 0:  # weight 0: context, not trained
            continue
        if i == 0:
            raise AgentmillError(f"{source}: conversation starts with an assistant message; "
                                 "put a system or user message before it")
        prompt = render(tokenizer, messages[:i], add_generation_prompt=True, tools=tools)
        upto = render(tokenizer, messages[: i + 1], tools=tools)
        if not (upto.startswith(prompt) and full.startswith(upto)):
            raise AgentmillError(
                f"{source}: chat template is not prefix-preserving at message {i} (assistant): rendering the "
                "conversation up to a turn must give a prefix of the whole rendering, else assistant turns "
                "cannot be masked")
        start, end = len(prompt), len(upto)
        cut = upto.rfind(eot_text, start, end) if eot_text else -1
        if cut >= 0:
            end = cut + len(eot_text)  # train the stop token, not what the template prints after it
        spans.append((start, end))
    return full, spans


def encode_chat(tokenizer, messages: list[dict], mask: str = "assistant", max_length: int | None = None,
                tools: list[dict] | None = None, source: str = "") -> Example:
    """Tokenise a conversation with labels on the trained tokens.

    mask: "assistant" trains every assistant message (content + end-of-turn token; the
    newline the template prints after it is not trained), "last_turn" only the last one,
    "all" every token. An assistant message with `"weight": 0` (OpenAI's fine-tuning
    convention) is context only: never trained, under any mask but "all". A token is trained when its characters lie inside a trained span
    (a token straddling the span start, e.g. content beginning with "\n" merged into the
    template's "\n", is not); spans come from an incremental prefix diff of `render`,
    checked to be prefix-preserving.

    max_length: a longer conversation is cut after the end-of-turn token of the last
    trained assistant turn that fits (whole turns only, never mid-turn) and marked
    `truncated`; if not even the first trained turn fits, AgentmillError names `source`.
    """
    if mask not in MASKS:
        raise AgentmillError(f"{source}: unknown mask '{mask}' (known: {', '.join(MASKS)})")
    full, spans = _assistant_spans(tokenizer, messages, tools, source)
    if not spans:
        raise AgentmillError(f"{source}: conversation has no assistant message to train")
    trained = spans[-1:] if mask == "last_turn" else spans
    enc = tokenizer(full, return_offsets_mapping=True, add_special_tokens=False)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    if mask == "all":
        labels = list(ids)
    else:
        labels = [-100] * len(ids)
        for t, (a, b) in enumerate(offsets):
            if b > a and any(s <= a and b <= e for s, e in trained):
                labels[t] = ids[t]
    truncated = False
    if max_length is not None and len(ids) > max_length:
        starts = [a for a, _ in offsets]
        boundaries = [bisect.bisect_left(starts, end) for _, end in trained]  # tokens up to each turn's end
        fitting = [b for b in boundaries if b <= max_length]
        if not fitting:
            raise AgentmillError(f"{source}: conversation needs {boundaries[0]} tokens for its first assistant "
                                 f"turn but max_length is {max_length}")
        cut = max(fitting)
        ids, labels, truncated = ids[:cut], labels[:cut], True
    return Example(input_ids=ids, labels=labels, source=source, truncated=truncated)


def encode_text(tokenizer, texts: list[str], block_size: int, source: str = "") -> list[Example]:
    """Continued pre-training examples: documents joined by EOS, cut into blocks of `block_size`.

    Each document is tokenised without special tokens and followed by ``eos_token_id``, so EOS
    separates documents; a block may hold the end of one document and the start of the next,
    and attention spans documents within a block (standard CPT practice). Every token is
    trained (labels = input_ids). A final partial block is kept when it has at least
    MIN_LAST_BLOCK (16) tokens, or when it is the only block (and has 2+ tokens); otherwise
    it is dropped.
    """
    if block_size < 2:
        raise AgentmillError(f"{source}: block_size must be at least 2, got {block_size}")
    if not texts:
        return []
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        stream += list(ids) + [tokenizer.eos_token_id]
    examples = []
    for k, start in enumerate(range(0, len(stream), block_size)):
        block = stream[start:start + block_size]
        if len(block) < block_size and len(block) < MIN_LAST_BLOCK and (k > 0 or len(block) < 2):
            break
        examples.append(Example(input_ids=block, labels=list(block), source=f"{source}#block{k}"))
    return examples
