"""Speech and images, measured: what the engines read, and whether the agent answers from it.

- `speech_wer`: word error rate of speech recognition against what was said, normalised the way
  Whisper is scored ("four hundred and twenty dollars" = "$420", "what's" = "what is").
- `ocr_cer`: character error rate of OCR against the text drawn in the image (whitespace folded).
- `evaluate_media_files`: both over a recipe's `media.eval_data` ({file, kind, text} lines).
- `evaluate_media_answers`: on held-out chat records that came with an image or a recording,
  the share answered right: the first tool call exact (when the record calls one) and every
  amount of the gold answer stated (its answer after the gold tool result, when it calls one).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from agentmill.eval.metrics import mean

_MONEY = re.compile(r"\$\s?(-?\d[\d,]*\.?\d*)")


@lru_cache(maxsize=1)
def _whisper_normaliser():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})  # no British -> American spelling table: that ships with hub weights


def normalise_speech(text: str) -> str:
    """Whisper's own English normaliser (the one its paper and the Open ASR Leaderboard score with):
    numbers as digits ("four hundred and twenty dollars" = "$420"), contractions expanded,
    punctuation and filler words dropped."""
    return _whisper_normaliser()(text)


def speech_wer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    pairs = [(normalise_speech(r), normalise_speech(h)) for r, h in zip(references, hypotheses)]
    pairs = [(r, h) for r, h in pairs if r]
    return jiwer.wer([r for r, _ in pairs], [h or "<empty>" for _, h in pairs]) if pairs else float("nan")


def ocr_cer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    fold = lambda t: " ".join(t.split())  # noqa: E731 - line breaks and spacing are layout, not text
    return jiwer.cer([fold(r) for r in references], [fold(h) for h in hypotheses]) if references else float("nan")


def evaluate_media_files(eval_data: Path, backends) -> dict[str, float]:
    """OCR CER over the image lines of `eval_data`, speech WER over its audio lines (read through
    the cache data preparation fills, so the files used in training cost nothing again)."""
    from agentmill.errors import AgentmillError
    from agentmill.media.cache import cached_read

    eval_data = Path(eval_data)
    try:
        lines = [json.loads(line) for line in eval_data.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as err:
        raise AgentmillError(f"{eval_data}: cannot read the media evaluation set ({err})") from None
    found = {"image": ([], []), "audio": ([], [])}
    for n, item in enumerate(lines, 1):
        if item.get("kind") not in found or not isinstance(item.get("text"), str) or not item.get("file"):
            raise AgentmillError(f"{eval_data}:{n}: needs file, kind (image or audio) and text")
        data = (eval_data.parent / item["file"]).read_bytes()
        read = cached_read(backends, data, item["kind"], item["file"])
        found[item["kind"]][0].append(item["text"])
        found[item["kind"]][1].append(read["text"])
    out = {}
    if found["image"][0]:
        out.update(ocr_cer=ocr_cer(*found["image"]), ocr_files=float(len(found["image"][0])))
    if found["audio"][0]:
        out.update(speech_wer=speech_wer(*found["audio"]), speech_files=float(len(found["audio"][0])))
    return out


def amounts(text: str) -> list[float]:
    """The dollar amounts `text` states, in order."""
    from agentmill.eval.tooluse import parse_number

    return [v for v in map(parse_number, _MONEY.findall(text or "")) if v is not None]


def evaluate_media_answers(model, tokenizer, records, decoder=None) -> dict[str, float]:
    from agentmill.agent.toolcall import parse_tool_calls
    from agentmill.data.render import content_text
    from agentmill.eval.evaluate import answer_budget
    from agentmill.eval.metrics import exact_match
    from agentmill.eval.tooluse import _first_call_index, same_call, states_number
    from agentmill.model.generate import generate_batch

    records = [r for r in records if r.media and r.messages]
    if not records:
        return {}
    prompts, golds, tools = [], [], []  # the first trained assistant turn of each record
    for r in records:
        i = next(k for k, m in enumerate(r.messages) if m["role"] == "assistant" and m.get("weight", 1))
        prompts.append(r.messages[:i])
        golds.append(r.messages[i])
        tools.append(r.tools)
    texts = [content_text(g.get("content")) or json.dumps(g.get("tool_calls")) for g in golds]
    outputs = generate_batch(model, tokenizer, prompts, tools=tools, batch_size=32, decoder=decoder,
                             max_new_tokens=answer_budget(tokenizer, texts))
    right = []
    follow = []  # (record index, prompt before the answer after the gold tool result)
    for k, (r, out, gold) in enumerate(zip(records, outputs, golds)):
        if gold.get("tool_calls"):
            _, calls = parse_tool_calls(out)
            ok = same_call(calls[0].call if calls else None, gold["tool_calls"][0], r.tools)
            i = _first_call_index(r.messages)
            j = next((j for j in range(i + 1, len(r.messages)) if r.messages[j]["role"] == "assistant"
                      and not r.messages[j].get("tool_calls")), None)
            if ok and j is not None:
                follow.append((k, r.messages[:j], content_text(r.messages[j].get("content"))))
            right.append(ok)
        else:
            gold_text = content_text(gold.get("content"))
            stated = amounts(gold_text)
            right.append(all(states_number(out, a) for a in stated) if stated else exact_match(out, gold_text))
    if follow:
        answers = generate_batch(model, tokenizer, [p for _, p, _ in follow], tools=[records[k].tools for k, _, _ in follow],
                                 batch_size=32, decoder=decoder,
                                 max_new_tokens=answer_budget(tokenizer, [g for _, _, g in follow]))
        for (k, _, gold), answer in zip(follow, answers):
            right[k] = all(states_number(answer, a) for a in amounts(gold))
    return {"media_answer_accuracy": mean(right), "media_records": float(len(records))}
