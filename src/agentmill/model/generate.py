"""Generation and scoring, always prompted through `agentmill.data.render.render`.

- `generate_stream` / `generate`: one conversation, streamed or not (greedy when temperature == 0).
- `generate_batch`: many conversations, greedy, left-padded; same strings as `generate`.
- `score_continuations` / `score_many`: summed log-prob of each candidate answer + end-of-turn
  token (exactly the tokens training labels), for classification by scoring.

Every function works with a plain HF causal LM or a PEFT wrapper around one; which adapter is
active is the caller's business (`RunModel.use_task`).

`generate`/`generate_stream` given `decoder=` (a run's `DecoderWeights`, `RunModel.decoder`)
decode with model/decoder.py on the calling thread: on an AMX Xeon (2 cores, bf16) 2x the tokens/s
of `model.generate`, whose streaming thread also pays for a second OpenMP team (see decoder.py).
Greedy answers are the same tokens up to the int8 rounding where int8 weights are in use.

Given `tools`, a tool call the model starts is decoded within the offered tools' schemas
(model/constrain.py); `constrain=False` decodes it freely.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

from agentmill.data.render import end_of_turn_id, render
from agentmill.model.attention import packed_attention
from agentmill.model.constrain import CallConstraint, ConstrainedLogits, constraints_for
from agentmill.model.decoder import Decoder, active_adapter, is_greedy, pick_token, sampling_rng


def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


def _stop_ids(tokenizer) -> list[int]:
    ids = [end_of_turn_id(tokenizer)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_of_turn_id(tokenizer)


def _prompt_ids(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
    text = render(tokenizer, messages, add_generation_prompt=True, tools=tools)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _sampling_kwargs(temperature: float, top_p: float) -> dict:
    if is_greedy(temperature):
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p), "top_k": None}


def _cut(ids: list[int], stops: list[int]) -> list[int]:
    """Tokens before the first stop token (what follows is padding)."""
    for i, t in enumerate(ids):
        if t in stops:
            return ids[:i]
    return ids


@contextlib.contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class _Cancel:
    """Stopping criterion set by the consumer of a stream that stops reading early."""

    def __init__(self):
        self.event = threading.Event()

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _decode_stream(decoder, tokenizer, ids: list[int], adapter: str, max_new_tokens: int,
                   temperature: float, top_p: float, seed: int | None,
                   constraint: CallConstraint | None = None) -> Iterator[str]:
    """The fast decoder's answer to prompt `ids`, yielded as text grows (special tokens skipped)."""
    rng = sampling_rng(temperature, seed)
    stops = set(_stop_ids(tokenizer))
    batch = Decoder(decoder, _pad_id(tokenizer))
    logits = batch.join([ids], [adapter])[0]
    new: list[int] = []
    shown = ""
    while len(new) < max_new_tokens:
        if constraint is not None:
            constraint.mask(logits)
        token = pick_token(logits, temperature, top_p, rng)
        if token in stops:
            break
        if constraint is not None:
            constraint.advance(token)
        new.append(token)
        text = tokenizer.decode(new, skip_special_tokens=True)
        if not text.endswith("\ufffd") and text.startswith(shown):  # not in the middle of a character
            if len(text) > len(shown):
                yield text[len(shown):]
            shown = text
        if len(new) < max_new_tokens:
            logits = batch.step([token])[0]
    text = tokenizer.decode(new, skip_special_tokens=True)
    if text.startswith(shown) and len(text) > len(shown):
        yield text[len(shown):]


def generate_stream(model, tokenizer, messages: list[dict], max_new_tokens: int = 256, temperature: float = 0.0,
                    top_p: float = 1.0, seed: int | None = None, tools: list[dict] | None = None,
                    decoder=None, constrain: bool = True) -> Iterator[str]:
    """Yield the answer's text as it is generated (special tokens skipped).

    With `decoder` (the run's `DecoderWeights`) and one plain adapter active (or none), the fast
    decoder runs on this thread. Else `model.generate` runs in a background thread feeding a
    `TextIteratorStreamer`; an exception there is re-raised here. Closing the iterator early
    stops the generation either way.
    """
    from transformers import StoppingCriteriaList, TextIteratorStreamer

    ids = _prompt_ids(tokenizer, messages, tools)
    constraint = CallConstraint(tokenizer, tools) if tools and constrain else None
    adapter = active_adapter(model) if decoder is not None else None
    if adapter is not None:  # (the decoder's join/step run without autograd themselves)
        yield from _decode_stream(decoder, tokenizer, ids, adapter, max_new_tokens, temperature, top_p, seed,
                                  constraint)
        return
    device = _device(model)
    input_ids = torch.tensor([ids], device=device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    cancel = _Cancel()
    error: list[BaseException] = []
    if seed is not None:
        torch.manual_seed(seed)
    kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                  eos_token_id=_stop_ids(tokenizer), pad_token_id=_pad_id(tokenizer), streamer=streamer,
                  stopping_criteria=StoppingCriteriaList([cancel]), **_constrained([constraint]),
                  **_sampling_kwargs(temperature, top_p))

    def work():
        try:
            with torch.no_grad():
                model.generate(**kwargs)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer thread
            error.append(err)
            streamer.text_queue.put(streamer.stop_signal)  # unblock the consumer

    was_training = model.training
    model.eval()
    thread = threading.Thread(target=work, name="agentmill-generate", daemon=True)
    thread.start()
    try:
        for text in streamer:
            if error:
                break
            if text:
                yield text
    finally:
        cancel.event.set()
        thread.join()
        model.train(was_training)
    if error:
        raise error[0]


@torch.no_grad()
def generate(model, tokenizer, messages: list[dict], max_new_tokens: int = 256, temperature: float = 0.0,
             top_p: float = 1.0, seed: int | None = None, stream: bool = False,
             tools: list[dict] | None = None, decoder=None, constrain: bool = True) -> str:
    """The whole answer as one string (special tokens skipped); `decoder` as in `generate_stream`."""
    if stream or (decoder is not None and active_adapter(model) is not None):
        return "".join(generate_stream(model, tokenizer, messages, max_new_tokens=max_new_tokens,
                                       temperature=temperature, top_p=top_p, seed=seed, tools=tools,
                                       decoder=decoder, constrain=constrain))
    ids = _prompt_ids(tokenizer, messages, tools)
    input_ids = torch.tensor([ids], device=_device(model))
    if seed is not None:
        torch.manual_seed(seed)
    stops = _stop_ids(tokenizer)
    with _eval_mode(model):
        out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                             max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=_pad_id(tokenizer),
                             **_constrained(constraints_for(tokenizer, [tools if constrain else None])),
                             **_sampling_kwargs(temperature, top_p))
    new = _cut(out[0, len(ids):].tolist(), stops)
    return tokenizer.decode(new, skip_special_tokens=True)


@torch.no_grad()
def generate_batch(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int = 64,
                   batch_size: int = 16, tools: list[list[dict] | None] | None = None, decoder=None,
                   constrain: bool = True) -> list[str]:
    """Greedy answers to many conversations, in order; batches of similar length.

    `tools`: the tool schemas shown with each conversation (None: no tools).
    `decoder`: the run's `DecoderWeights`: decode with them, as serve and chat do (`agentmill
    eval --decoder`); else `model.generate`, as below.
    The token prefix a batch shares (a task's system prompt and tool list: most of an agent
    prompt) runs once; its KV cache is repeated for every row, and each row's own part is
    padded on the left of that part, not of the whole prompt (`_shared_prefix_batch`)."""
    if not conversations:
        return []
    tools = tools or [None] * len(conversations)
    prompts = [_prompt_ids(tokenizer, conv, t) for conv, t in zip(conversations, tools)]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # less padding
    stops, pad = _stop_ids(tokenizer), _pad_id(tokenizer)
    device = _device(model)
    results: list[str] = [""] * len(prompts)
    adapter = active_adapter(model) if decoder is not None else None
    with _eval_mode(model):
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            constraints = constraints_for(tokenizer, [tools[i] if constrain else None for i in idx])
            if adapter is not None:
                answers = _decoder_batch(decoder, [prompts[i] for i in idx], adapter, max_new_tokens, set(stops), pad,
                                         constraints)
                for i, new in zip(idx, answers):
                    results[i] = tokenizer.decode(new, skip_special_tokens=True)
                continue
            input_ids, mask, cache = _shared_prefix_batch(model, [prompts[i] for i in idx], pad, device)
            cache_kwargs = {_cache_kwarg(model): cache} if cache is not None else {}
            out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 eos_token_id=stops, pad_token_id=pad, **cache_kwargs,
                                 **_constrained(constraints), **_sampling_kwargs(0.0, 1.0))
            width = input_ids.shape[1]
            for row, i in enumerate(idx):
                new = _cut(out[row, width:].tolist(), stops)
                results[i] = tokenizer.decode(new, skip_special_tokens=True)
    return results


def _constrained(constraints: list[CallConstraint | None]) -> dict:
    """`model.generate` kwargs holding each row's tool calls to its constraint (None: a free row)."""
    if not any(constraints):
        return {}
    from transformers import LogitsProcessorList

    return {"logits_processor": LogitsProcessorList([ConstrainedLogits(constraints)])}


def _decoder_batch(decoder, prompts: list[list[int]], adapter: str, max_new_tokens: int, stops: set[int],
                   pad: int, constraints: list[CallConstraint | None] | None = None) -> list[list[int]]:
    """Greedy new tokens of each prompt with the fast decoder; finished rows leave the batch."""
    batch = Decoder(decoder, pad)
    logits = batch.join(prompts, [adapter] * len(prompts))
    new: list[list[int]] = [[] for _ in prompts]
    alive = list(range(len(prompts)))
    constraints = constraints or [None] * len(prompts)
    while True:
        for row, i in enumerate(alive):
            if constraints[i] is not None:
                constraints[i].mask(logits[row])
        tokens = logits.argmax(-1).tolist()
        keep = []
        for row, (i, token) in enumerate(zip(alive, tokens)):
            if token in stops:
                continue
            if constraints[i] is not None:
                constraints[i].advance(token)
            new[i].append(token)
            if len(new[i]) < max_new_tokens:
                keep.append(row)
        if not keep:
            return new
        if len(keep) < len(alive):
            batch.keep(keep)
            alive, tokens = [alive[r] for r in keep], [tokens[r] for r in keep]
        logits = batch.step(tokens)


MIN_SHARED_PREFIX = 16  # shorter shared prefixes are not worth a separate forward


def _shared_prefix_batch(model, prompts: list[list[int]], pad: int, device):
    """(input_ids, attention_mask, KV cache of the shared prefix or None) for a greedy batch.

    Rows are [shared prefix | pads | own tokens]: the pads sit between the prefix and each row's
    own part, masked out; generate() derives positions from the mask, so every real token keeps
    the position it has alone. The prefix stops one token short of the shortest prompt, so that
    every row has a token of its own to run."""
    shared = 0
    shortest = min(len(p) for p in prompts)
    while shared < shortest - 1 and all(p[shared] == prompts[0][shared] for p in prompts):
        shared += 1
    if len(prompts) < 2 or shared < MIN_SHARED_PREFIX:
        shared = 0
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        own = len(p) - shared
        ids[row, :shared], mask[row, :shared] = torch.tensor(p[:shared]), 1
        ids[row, width - own:], mask[row, width - own:] = torch.tensor(p[shared:]), 1
    if not shared:
        return ids.to(device), mask.to(device), None
    cache = returned_cache(model(input_ids=ids[:1, :shared].to(device), use_cache=True, logits_to_keep=1))
    cache.batch_repeat_interleave(len(prompts))
    return ids.to(device), mask.to(device), cache


def returned_cache(output):
    """The KV cache a forward returned (the field was renamed `cache` in transformers 5.2x)."""
    return getattr(output, "cache", None) or output.past_key_values


def _cache_kwarg(model) -> str:
    """transformers >= 5.2x names the KV cache argument `cache`; older ones `past_key_values`."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


@torch.no_grad()
def score_continuations(model, tokenizer, messages: list[dict], continuations: list[str]) -> list[float]:
    """Summed log-prob of each continuation as the assistant's answer to `messages`.

    Scored tokens per continuation c: tokenize(c) + [end_of_turn_id] — the assistant text and its
    stop token, exactly what training labels. See `score_many`."""
    return score_many(model, tokenizer, [messages], continuations)[0]


@torch.no_grad()
def score_many(model, tokenizer, conversations: list[list[dict]], continuations: list[str],
               row_tokens: int = 2048) -> list[list[float]]:
    """`score_continuations` for many conversations: scores[i][j] for conversation i, answer j.

    Packed like training with shared prefixes (data/pack.py): each prompt runs once, every
    candidate answer follows it as a branch whose positions start at the prompt's length, and
    many prompts share one forward of up to `row_tokens` tokens. Logits only where a scored token
    is predicted; log_softmax in float32 (also under autocast). Measured in the demo pipeline on
    40 intent records with 8 labels: 12-18 s with one prompt + KV cache at a time, 6-10 s packed.
    """
    if not continuations:
        return [[] for _ in conversations]
    eot = end_of_turn_id(tokenizer)
    answers = [tokenizer(c, add_special_tokens=False)["input_ids"] + [eot] for c in continuations]
    prompts = [_prompt_ids(tokenizer, m) for m in conversations]
    answer_tokens = sum(len(a) for a in answers)
    rows: list[list[int]] = [[]]
    size = 0
    for i, p in enumerate(prompts):
        if rows[-1] and size + len(p) + answer_tokens > row_tokens:
            rows.append([])
            size = 0
        rows[-1].append(i)
        size += len(p) + answer_tokens
    scores = [[0.0] * len(answers) for _ in prompts]
    device = _device(model)
    with _eval_mode(model), packed_attention(model):
        for row in rows:
            ids, positions, keep, targets, owners = [], [], [], [], []
            for i in row:
                prompt = prompts[i]
                ids += prompt
                positions += range(len(prompt))
                prompt_last = len(ids) - 1
                for j, answer in enumerate(answers):
                    start = len(ids)
                    ids += answer
                    positions += range(len(prompt), len(prompt) + len(answer))
                    # answer token k is predicted by the prompt's last token (k = 0) or answer token k-1
                    keep += [prompt_last] + list(range(start, start + len(answer) - 1))
                    targets += answer
                    owners += [(i, j)] * len(answer)
            logits = model(input_ids=torch.tensor([ids], device=device),
                           position_ids=torch.tensor([positions], device=device), use_cache=False,
                           logits_to_keep=torch.tensor(keep, device=device)).logits[0].float()
            picked = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(targets, device=device)[:, None])
            for (i, j), value in zip(owners, picked.squeeze(-1).tolist()):
                scores[i][j] += value
    return scores
