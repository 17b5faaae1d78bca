"""Attention for packed training rows: each example attends only to itself, cost sum(L_i^2).

transformers' SDPA path isolates packed examples by building a [T, T] block-diagonal mask
from `position_ids` and running one masked kernel over the whole row: it pays T^2 and the
CPU flash kernel's slow masked backward. Here the row is split where `position_ids` restart
and each example runs causal attention alone (a branch of a shared prefix, whose positions
restart at the prefix length, attends to its root's prefix first: data/pack.py). The function is
registered under its own name with no mask function, so transformers builds no mask at all.
Measured on 2 CPU cores, SmolLM2-135M LoRA, 1,024-token rows of 60-200-token examples:
~1.45x the tokens/s of SDPA (bench/train_throughput.py), logits identical to the example
run alone (tests/test_attention.py).

Only valid for one packed row without a KV cache: `packed_attention(model)` switches it on
for the duration of a training/eval forward; generation keeps SDPA.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

NAME = "agentmill_packed"
# Below this length a plain matmul + fp32 softmax beats the CPU flash kernel, whose backward
# has a large fixed cost per call; above it the flash kernel avoids an L x L fp32 matrix.
EAGER_MAX_LEN = 512


def _segments(position_ids: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """(start, end, prefix start, prefix length) of each example in a packed row.

    An example starts wherever the positions do not continue the previous token's. One that
    starts at position 0 is a root (no prefix); one that starts at p > 0 is a branch that
    shares the first p tokens of the latest root (data/pack.py, shared prefixes)."""
    pos = position_ids[0]
    breaks = ((pos[1:] != pos[:-1] + 1).nonzero().squeeze(-1) + 1).tolist()
    starts = [0] + breaks
    ends = breaks + [pos.shape[0]]
    first = pos[starts].tolist()
    out, root = [], None
    for s, e, p in zip(starts, ends, first):
        if p == 0:
            root = s
        elif root is None or p > s - root:
            raise RuntimeError(f"packed row: an example starts at position {p} with no root to share it from")
        out.append((s, e, root, p))
    return out


def packed_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    if query.shape[0] != 1 or query.shape[2] != key.shape[2] or kwargs.get("position_ids") is None:
        raise RuntimeError("packed attention needs one packed row with position_ids and no KV cache")
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # once for the whole row: cheaper on CPU than enable_gqa per segment
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scaling = scaling if scaling is not None else query.shape[-1] ** -0.5
    outs = []
    for g0, g1, segments in _groups(_segments(kwargs["position_ids"])):
        if len(segments) > 1 and g1 - g0 <= EAGER_MAX_LEN:
            # a root and its branches, short (classification scoring: a prompt and its labels):
            # one masked attention instead of one small call per branch
            blocked = ~_group_mask(segments, g0, g1, query.device)
            outs.append(_eager(query[:, :, g0:g1], key[:, :, g0:g1], value[:, :, g0:g1], blocked, scaling))
            continue
        for s, e, r, p in segments:
            outs.append(_segment_attention(query, key, value, s, e, r, p, scaling))
    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    return out.transpose(1, 2).contiguous(), None


def _groups(segments: list[tuple[int, int, int, int]]) -> list[tuple[int, int, list]]:
    """Consecutive segments with the same root: (start, end, segments), the root first."""
    out: list[tuple[int, int, list]] = []
    for seg in segments:
        s, e, r, p = seg
        if p and out and out[-1][0] == r:
            out[-1] = (r, e, out[-1][2] + [seg])
        else:
            out.append((s, e, [seg]))
    return out


def _group_mask(segments, g0: int, g1: int, device) -> torch.Tensor:
    """[n, n] True where a token of the group may attend: earlier tokens of its own segment and,
    for a branch with prefix p, the root's first p tokens (the root starts the group)."""
    n = g1 - g0
    seg = torch.empty(n, dtype=torch.long, device=device)
    prefix = torch.zeros(n, dtype=torch.long, device=device)
    for k, (s, e, _, p) in enumerate(segments):
        seg[s - g0:e - g0] = k
        prefix[s - g0:e - g0] = p
    idx = torch.arange(n, device=device)
    own = (seg[:, None] == seg[None, :]) & (idx[None, :] <= idx[:, None])
    shared = (seg[None, :] == 0) & (idx[None, :] < prefix[:, None])
    return own | shared


def _segment_attention(query, key, value, s: int, e: int, r: int, p: int, scaling: float) -> torch.Tensor:
    q, k, v = query[:, :, s:e], key[:, :, s:e], value[:, :, s:e]
    if p:  # a branch: the root's first p keys, then its own
        k = torch.cat([key[:, :, r:r + p], k], dim=2)
        v = torch.cat([value[:, :, r:r + p], v], dim=2)
    n = e - s
    if n > EAGER_MAX_LEN:
        if not p:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling)
        allowed = torch.ones(n, p + n, dtype=torch.bool, device=q.device).tril(p)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=scaling)
    future = torch.ones(n, p + n, dtype=torch.bool, device=q.device).triu(p + 1)
    return _eager(q, k, v, future, scaling)


def _eager(q, k, v, blocked: torch.Tensor, scaling: float) -> torch.Tensor:
    """softmax(q k^T) v with `blocked` keys masked out; softmax in float32."""
    w = torch.matmul(q * scaling, k.transpose(2, 3))  # scaling the [n, d] queries, not the [n, n] scores
    w = w.float()  # a new tensor in bf16; in fp32 the product itself, which autograd does not keep
    w = w.masked_fill_(blocked, float("-inf")).softmax(-1).to(v.dtype)
    return torch.matmul(w, v)


_registered = False


def _register() -> None:
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(NAME, packed_attention_forward)
        _registered = True


def _configs(model) -> list:
    seen, configs = set(), []
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation") and id(config) not in seen:
            seen.add(id(config))
            configs.append(config)
    return configs


@contextlib.contextmanager
def packed_attention(model):
    """Within this block the model's attention splits packed rows at position_ids restarts."""
    _register()
    configs = _configs(model)
    before = [c._attn_implementation for c in configs]
    for c in configs:
        c._attn_implementation = NAME  # read by every attention layer at each forward
    try:
        yield model
    finally:
        for c, impl in zip(configs, before):
            c._attn_implementation = impl
