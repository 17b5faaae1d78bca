"""Tool calls decoded within the offered tools' schemas (model/constrain.py)."""

import json

import jsonschema
import torch

from agentmill.agent.toolcall import parse_tool_calls
from agentmill.model.constrain import CallConstraint, call_grammar
from agentmill.model.generate import generate_batch

TOOLS = [
    {"type": "function", "function": {"name": "set_alarm", "description": "Set an alarm.", "parameters": {
        "type": "object", "required": ["day", "loud"],
        "properties": {"day": {"type": "string", "enum": ["monday", "friday"]}, "loud": {"type": "boolean"}}}}},
    {"type": "function", "function": {"name": "lights", "description": "Switch the lights.", "parameters": {
        "type": "object", "required": ["on"], "properties": {"on": {"type": "boolean"}}}}},
]


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _decode_under(constraint, tokenizer, seed, steps=200, prefer=None):
    """Greedy on random logits (plus `prefer` boosts) with the constraint; the text written."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        logits = torch.randn(len(tokenizer), generator=gen)
        for token, boost in (prefer or {}).items():
            logits[token] += boost
        constraint.mask(logits)
        token = int(logits.argmax())
        constraint.advance(token)
        out.append(token)
        if constraint.matcher is None:
            break
    return tokenizer.decode(out)


def test_free_until_the_model_opens_a_call(tokenizer):
    c = CallConstraint(tokenizer, TOOLS)
    logits = torch.randn(len(tokenizer))
    before = logits.clone()
    for token in _ids(tokenizer, "Let me check."):
        c.advance(token)
        c.mask(logits)
    assert torch.equal(logits, before) and c.matcher is None and c.calls == 0


def test_random_logits_under_the_constraint_still_make_a_valid_call(tokenizer):
    for seed in range(5):
        c = CallConstraint(tokenizer, TOOLS)
        for token in _ids(tokenizer, "Sure. <tool_call>"):
            c.advance(token)
        assert c.matcher is not None and c.calls == 1
        text = "<tool_call>" + _decode_under(c, tokenizer, seed)
        assert c.matcher is None, "the call grammar finished"
        assert text.endswith("\n</tool_call>")
        _, calls = parse_tool_calls(text)
        assert len(calls) == 1 and calls[0].call is not None, text
        fn = calls[0].call["function"]
        schema = next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == fn["name"])
        jsonschema.validate(fn["arguments"], {**schema, "additionalProperties": False})


def test_the_call_is_written_as_training_renders_it(tokenizer):
    """", " and ": " separators, name before arguments: what json.dumps writes in training."""
    c = CallConstraint(tokenizer, TOOLS)
    for token in _ids(tokenizer, "<tool_call>"):
        c.advance(token)
    target = '\n{"name": "lights", "arguments": {"on": true}}\n</tool_call>'
    assert c.matcher.validate_tokens(_ids(tokenizer, target)) == len(_ids(tokenizer, target))
    compact = '\n{"name":"lights","arguments":{"on":true}}'
    assert c.matcher.validate_tokens(_ids(tokenizer, compact)) < len(_ids(tokenizer, compact))


def test_unknown_names_and_keys_are_not_allowed(tokenizer):
    for bad in ['\n{"name": "delete_everything"', '\n{"name": "lights", "arguments": {"off": true}}',
                '\n{"name": "set_alarm", "arguments": {"day": "sunday"']:
        c = CallConstraint(tokenizer, TOOLS)
        for token in _ids(tokenizer, "<tool_call>"):
            c.advance(token)
        ids = _ids(tokenizer, bad)
        assert c.matcher.validate_tokens(ids) < len(ids), bad


def test_strings_end_and_free_decoding_resumes_after_the_call(tokenizer):
    tools = [{"type": "function", "function": {"name": "note", "parameters": {
        "type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}}}]
    c = CallConstraint(tokenizer, tools)
    for token in _ids(tokenizer, "<tool_call>"):
        c.advance(token)
    quote = _ids(tokenizer, '"')[0]
    text = "<tool_call>" + _decode_under(c, tokenizer, 0, steps=400, prefer={quote: 3.0})
    _, calls = parse_tool_calls(text)
    assert calls[0].call["function"]["name"] == "note"
    assert isinstance(calls[0].call["function"]["arguments"]["text"], str)
    logits = torch.zeros(len(tokenizer))
    c.mask(logits)
    assert torch.isfinite(logits).all()  # free again: the model may stop or call once more


def test_grammar_is_cached_and_names_every_tool():
    grammar = call_grammar(TOOLS)
    assert grammar is call_grammar(json.loads(json.dumps(TOOLS)))
    assert '"const": "set_alarm"' in grammar and '"const": "lights"' in grammar


def test_constrained_batch_equals_free_batch_when_no_call_starts(tiny, tokenizer):
    """The random tiny model never writes <tool_call>: the constraint must change nothing."""
    conversations = [[{"role": "user", "content": f"hello {i}"}] for i in range(3)]
    tools = [TOOLS] * 3
    free = generate_batch(tiny, tokenizer, conversations, max_new_tokens=12, tools=tools, constrain=False)
    held = generate_batch(tiny, tokenizer, conversations, max_new_tokens=12, tools=tools)
    assert held == free
