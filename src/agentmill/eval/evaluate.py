"""Per-task evaluation on held-out records, shared by training (before/after) and `agentmill eval`.

- text: held-out loss and perplexity.
- classification: each label scored as a continuation (label text + end-of-turn token, exactly
  what training labels); the best-scoring label is the prediction → accuracy, macro-F1.
- instruction: greedy generation → exact match and token F1; plus held-out loss.
- chat: held-out loss on the trained (assistant) tokens; with generation, tool use (eval/tooluse.py)
  and multi-turn memory (eval/memory.py) on the records that have them.
"""

from __future__ import annotations

import contextlib
import math

import torch

from agentmill.config import TrainSpec
from agentmill.data.formats import Record, classification_messages
from agentmill.data.render import Example, encode_chat, encode_text
from agentmill.eval.metrics import accuracy, exact_match, macro_f1, mean, token_f1
from agentmill.model.generate import generate_batch, score_many
from agentmill.train.loop import evaluate_loss


def encode_records(tokenizer, records: list[Record], fmt: str, spec: TrainSpec,
                   labels: list[str] | None = None) -> list[Example]:
    """Records → training examples (the same encoding for training and held-out loss)."""
    if fmt == "text":
        texts = [r.text for r in records]
        return encode_text(tokenizer, texts, block_size=spec.max_length, source=records[0].source.rsplit(":", 1)[0])
    examples = []
    for r in records:
        messages = classification_messages(r.text, labels, r.label) if fmt == "classification" else r.messages
        examples.append(encode_chat(tokenizer, messages, mask=spec.mask, max_length=spec.max_length,
                                    tools=r.tools, source=r.source))
    return examples


def _loss_metrics(model, examples, spec, accelerator=None) -> dict[str, float]:
    loss, _ = evaluate_loss(model, examples, spec, accelerator)
    return {"eval_loss": loss}


def evaluate_classifier(classifier, records: list[Record], labels: list[str],
                        outcomes: list | None = None) -> dict[str, float]:
    """Accuracy and macro F1 of a text classifier (model/text_classifier.py) on every record:
    scoring is cheap, so no cap."""
    predicted, gold = classifier.predict([r.text for r in records]), [r.label for r in records]
    if outcomes is not None:
        outcomes.extend(outcome("accuracy", r, r.text, g, p, p == g) for r, p, g in zip(records, predicted, gold))
    return {"accuracy": accuracy(predicted, gold), "macro_f1": macro_f1(predicted, gold, labels),
            "records": len(records)}


def capped(records: list[Record], spec: TrainSpec) -> list[Record]:
    """The records an evaluation uses: the first eval_max_records (for text, documents or paragraphs),
    and as many again of those that came with an image or a recording (scored on their own)."""
    plain = [r for r in records if not r.media]
    with_media = [r for r in records if r.media]
    return plain[: spec.eval_max_records] + with_media[: spec.eval_max_records]


@torch.no_grad()
def evaluate_task(model, tokenizer, fmt: str, records: list[Record], spec: TrainSpec,
                  labels: list[str] | None = None, accelerator=None, generate: bool = True,
                  decoder=None, outcomes: list | None = None) -> dict[str, float]:
    """Metrics of one task on held-out `records` (capped at spec.eval_max_records).

    `decoder`: the run's `DecoderWeights`: answers are generated with them, as serve and chat
    generate (the adapter stays unmerged: the decoder applies it); scores and losses still come
    from the model's own forward.
    `outcomes`: a list that gets one dict per scored case (metric, source, question, gold,
    output, right), for `agentmill eval --misses`."""
    with scoring(model, accelerator, decoder):
        return _evaluate(model, tokenizer, fmt, capped(records, spec), spec, labels, accelerator, generate, decoder,
                         outcomes)


@torch.no_grad()
def evaluate_general_tools(model, tokenizer, records: list[Record], accelerator=None, decoder=None,
                           constrain: bool = True, outcomes: list | None = None) -> dict:
    """General tool use on generated held-out records (eval/tooluse.py), scored as a task is."""
    from agentmill.eval.tooluse import evaluate_general_tool_use

    with scoring(model, accelerator, decoder):
        return evaluate_general_tool_use(model, tokenizer, records, decoder=decoder, constrain=constrain,
                                         outcomes=outcomes)


@contextlib.contextmanager
def scoring(model, accelerator=None, decoder=None):
    """Eval mode, the run's precision (bf16 autocast) as `agentmill eval` uses it, and a LoRA
    adapter merged for speed unless a decoder applies it; everything restored after."""
    was_training = model.training
    model.eval()
    precision = accelerator.autocast() if accelerator is not None else contextlib.nullcontext()
    try:
        with precision, (merged_lora(model) if decoder is None else contextlib.nullcontext()):
            yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def merged_lora(model):
    """A PEFT model's active LoRA adapter merged into the weights for the duration (unmerged after).

    Every forward then runs one matmul per layer instead of base + LoRA (measured: generation
    ~20 % faster on CPU); merging and unmerging in float32 changes the weights by rounding only."""
    merge = getattr(model, "merge_adapter", None)
    layers = [m for m in model.modules() if hasattr(m, "merged_adapters")] if merge else []
    if not layers or any(m.merged or m.disable_adapters for m in layers):  # base model only, or merged already
        yield
        return
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()


def outcome(metric: str, record: Record, question, gold, output, right: bool) -> dict:
    """One scored case, as `agentmill eval --misses` writes it."""
    return {"metric": metric, "source": record.source, "question": question, "gold": gold, "output": output,
            "right": bool(right)}


def last_user(messages: list[dict]):
    return next((m.get("content") for m in reversed(messages) if m["role"] == "user"), None)


def _evaluate(model, tokenizer, fmt, records, spec, labels, accelerator, generate, decoder,
              outcomes=None) -> dict[str, float]:
    if fmt == "text":
        loss = _loss_metrics(model, encode_records(tokenizer, records, fmt, spec), spec, accelerator)["eval_loss"]
        return {"eval_loss": loss, "perplexity": math.exp(loss) if loss < 50 else float("inf")}
    if fmt == "classification":
        scored = score_many(model, tokenizer, [classification_messages(r.text, labels) for r in records], labels)
        preds = [labels[max(range(len(labels)), key=scores.__getitem__)] for scores in scored]
        golds = [r.label for r in records]
        if outcomes is not None:
            outcomes.extend(outcome("accuracy", r, r.text, g, p, p == g) for r, p, g in zip(records, preds, golds))
        return {"accuracy": accuracy(preds, golds), "macro_f1": macro_f1(preds, golds, labels)}
    metrics = _loss_metrics(model, encode_records(tokenizer, records, fmt, spec), spec, accelerator)
    if fmt == "instruction" and generate:
        prompts = [[m for m in r.messages if m["role"] != "assistant"] for r in records]
        golds = [next(m["content"] for m in r.messages if m["role"] == "assistant") for r in records]
        preds = generate_batch(model, tokenizer, prompts, max_new_tokens=answer_budget(tokenizer, golds),
                               decoder=decoder)
        metrics["exact_match"] = mean([exact_match(p, g) for p, g in zip(preds, golds)])
        if outcomes is not None:
            outcomes.extend(outcome("exact_match", r, last_user(q), g, p, exact_match(p, g))
                            for r, q, p, g in zip(records, prompts, preds, golds))
        metrics["token_f1"] = mean([token_f1(p, g) for p, g in zip(preds, golds)])
    if fmt == "chat" and generate:
        from agentmill.eval.media import evaluate_media_answers
        from agentmill.eval.memory import evaluate_memory
        from agentmill.eval.tooluse import evaluate_tool_use

        plain = [r for r in records if not r.media]  # the text metrics stay comparable run to run
        metrics.update(evaluate_tool_use(model, tokenizer, plain, decoder=decoder, outcomes=outcomes))
        metrics.update(evaluate_memory(model, tokenizer, plain, decoder=decoder, outcomes=outcomes))
        metrics.update(evaluate_media_answers(model, tokenizer, records, decoder=decoder))
    return metrics


def answer_budget(tokenizer, golds: list[str]) -> int:
    """Generation budget: the longest gold answer plus slack (greedy decoding stops at the
    end-of-turn token anyway; the budget only bounds a model that rambles)."""
    longest = max(len(tokenizer(g, add_special_tokens=False)["input_ids"]) for g in golds)
    return min(256, longest + 16)
