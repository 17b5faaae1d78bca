"""Evaluation metrics: pure functions on Python values (no torch).

- `accuracy`, `macro_f1`: classification.
- `normalize_answer`, `exact_match`, `token_f1`: generated answers, SQuAD style, except that
  numbers keep their form: "$1,234.56" and "-3.5%" survive normalisation intact.
- `perplexity`: exp of the mean negative log-likelihood per token.
- `mean`.

Empty inputs give 0.0 (never NaN), so results always serialise as plain JSON numbers.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["accuracy", "macro_f1", "normalize_answer", "exact_match", "token_f1", "perplexity", "mean"]


def mean(xs: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for an empty input."""
    values = [float(x) for x in xs]
    return sum(values) / len(values) if values else 0.0


def _check_lengths(preds: Sequence, golds: Sequence) -> None:
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} gold labels")


def accuracy(preds: Sequence, golds: Sequence) -> float:
    """Fraction of predictions equal to their gold label; 0.0 when there are none."""
    _check_lengths(preds, golds)
    if not golds:
        return 0.0
    return sum(p == g for p, g in zip(preds, golds)) / len(golds)


def macro_f1(preds: Sequence, golds: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted mean of per-class F1 over `labels` (default: sorted set of the gold labels).

    A class's F1 is 2·TP / (2·TP + FP + FN), and 0 where that is undefined (the class is neither
    predicted nor gold). Predictions outside `labels` count only as misses of their gold class.
    """
    _check_lengths(preds, golds)
    label_set = list(labels) if labels is not None else sorted(set(golds))
    if not label_set:
        return 0.0
    scores = []
    for label in label_set:
        tp = sum(p == label and g == label for p, g in zip(preds, golds))
        fp = sum(p == label and g != label for p, g in zip(preds, golds))
        fn = sum(p != label and g == label for p, g in zip(preds, golds))
        denominator = 2 * tp + fp + fn
        scores.append(2 * tp / denominator if denominator else 0.0)
    return sum(scores) / len(scores)


_PUNCTUATION = set(string.punctuation)
_KEPT = {"$", "%"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _is_punctuation(ch: str) -> bool:
    return ch in _PUNCTUATION or unicodedata.category(ch).startswith("P")


def normalize_answer(s: str) -> str:
    """Lowercase; drop punctuation and the articles a/an/the; collapse whitespace.

    Kept: `$` and `%`; `.` and `,` between two digits ("1,234.56"); and `-` as a leading minus
    sign (directly before a digit, not after a letter or digit: "-3.5" but "covid-19" → "covid19").
    Punctuation is deleted, not replaced by a space ("don't" → "dont"), as in SQuAD.
    """
    text = str(s).lower()
    out = []
    for i, ch in enumerate(text):
        if ch in _KEPT or not _is_punctuation(ch):
            out.append(ch)
            continue
        prev = text[i - 1] if i > 0 else ""
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch in ".," and prev.isdigit() and nxt.isdigit():
            out.append(ch)
        elif ch == "-" and nxt.isdigit() and not prev.isalnum():
            out.append(ch)
    text = _ARTICLES.sub(" ", "".join(out))
    return " ".join(text.split())


def exact_match(pred: str, gold: str) -> float:
    """1.0 when the normalised answers are equal, else 0.0."""
    return float(normalize_answer(pred) == normalize_answer(gold))


def token_f1(pred: str, gold: str) -> float:
    """SQuAD token F1 between the normalised answers (bag of whitespace tokens).

    If either side has no tokens, 1.0 when both are empty, else 0.0.
    """
    pred_tokens = normalize_answer(pred).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def perplexity(total_nll: float, total_tokens: int) -> float:
    """exp(total_nll / total_tokens); float('inf') where that overflows."""
    if total_tokens <= 0:
        raise ValueError("perplexity needs at least one token")
    mean_nll = float(total_nll) / total_tokens
    if math.isnan(mean_nll):
        return float("nan")
    try:
        return math.exp(mean_nll)
    except OverflowError:
        return float("inf")


def format_metrics(metrics: dict[str, float]) -> str:
    """One line for a console: `accuracy 0.95, macro_f1 0.945`."""
    return ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()) or "-"
