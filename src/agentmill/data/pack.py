"""Packing: several examples in one row, no pad tokens, nothing leaking between them.

A packed row is one sequence whose `position_ids` restart at 0 at every example. With
transformers' SDPA path, called with ``use_cache=False`` and no attention mask, the model
detects the restarts and lets each token attend only within its own example, so a packed
example's logits equal its logits alone (tested). Targets are shifted per example here, so
the loss needs no shifting and never predicts across a boundary.
"""

from __future__ import annotations

import bisect
import random

import torch

from agentmill.data.render import Example


def pack(lengths: list[int], budget: int, seed: int | None = None) -> list[list[int]]:
    """Best fit: group example indices into bins of total length <= budget.

    Without `seed`, longest first (ties by index): best-fit decreasing, the tightest packing.
    With `seed`, in a seeded random order: rows then mix short and long examples instead of
    grouping similar lengths, which for classification data often means grouping one label,
    so a few-step run sees every label in every step (measured on the example: intent
    accuracy swung 0.80-0.94 between runs of 48 and 56 steps with decreasing order).
    Each example goes into the fullest bin it still fits, else a new bin. Deterministic.
    Raises ValueError for an example longer than `budget`.
    """
    too_long = [i for i, n in enumerate(lengths) if n > budget]
    if too_long:
        i = too_long[0]
        raise ValueError(f"example {i} has {lengths[i]} tokens, more than the packing budget {budget}")
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, bin number), sorted
    if seed is None:
        order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    else:
        order = list(range(len(lengths)))
        random.Random(seed).shuffle(order)
    for i in order:
        k = bisect.bisect_left(free, (lengths[i], -1))  # the bin with the least room that fits
        if k < len(free):
            room, b = free.pop(k)
        else:
            room, b = budget, len(bins)
            bins.append([])
        bins[b].append(i)
        bisect.insort(free, (room - lengths[i], b))
    return bins


def collate(examples: list[Example]) -> dict:
    """Concatenate examples into one row of shape [1, T].

    Returns `input_ids`, `position_ids` (restarting at 0 per example), `targets` (next-token
    targets shifted within each example: targets[t] = labels[t+1] inside the same example,
    else -100) and `num_targets` (int, targets != -100). No attention mask: the loss is
    ``cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-100, reduction="sum")``.
    """
    input_ids, position_ids, targets = [], [], []
    for e in examples:
        if not e.input_ids:
            continue
        input_ids += e.input_ids
        position_ids += range(len(e.input_ids))
        targets += list(e.labels[1:]) + [-100]
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "position_ids": torch.tensor([position_ids], dtype=torch.long),
        "targets": torch.tensor([targets], dtype=torch.long),
        "num_targets": sum(1 for t in targets if t != -100),
    }
