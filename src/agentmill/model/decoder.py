"""Decoding Llama-family models with a preallocated KV cache, fused projections, per-row LoRA and,
where it is faster on this CPU, int8 weights: what the serve engine runs every step.

Why not the model's own forward: at one token per row the cost is not the arithmetic. Measured
on an AMX Xeon (2 cores, bf16, SmolLM2-135M): transformers' forward with a DynamicCache takes
34 ms per token at batch 1, and the engine's old path (a cache rebuilt and a 4D mask per step)
58 ms. The weights are read from memory once per token, so batch 1 is bound by their size:
int8 weights (per-output-channel scales, `torch.ops.aten._weight_int8pack_mm`) read half the
bytes of bf16 and take 16 ms; `hardware.decode_weights` measures per machine whether that
kernel beats the dense one (it has an AVX-512 bf16 path; fp32 inputs run a scalar loop).

Layout (as serve/batch.py always had): rows are right-aligned in one cache, row i's real tokens
are the last ones, `mask` marks them and `positions` counts them, so each row sees exactly the
positions and keys it would alone. The cache is one preallocated tensor per layer
[rows, kv heads, capacity, head dim]; a step writes one column in place.

Supported: models whose layers are the Llama shape (q/k/v/o and gate/up/down projections, two
RMSNorms, rotary positions, SiLU, full attention): Llama, SmolLM, Mistral without a sliding
window, Qwen2 (biases included). Anything else keeps the model's own forward
(`unsupported` says why); so do adapters that `row_lora` cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from agentmill.model.row_lora import BASE, adapter_names, adapter_rank, lora_stack, row_mask

GROUPS = {"qkv": ("self_attn", ("q_proj", "k_proj", "v_proj")), "o": ("self_attn", ("o_proj",)),
          "gate_up": ("mlp", ("gate_proj", "up_proj")), "down": ("mlp", ("down_proj",))}
CAPACITY_STEP = 256  # cache columns added when a batch outgrows its cache
# int8 weights serve products of at most this many tokens (decode steps of small batches); measured
# on an AMX Xeon, [M, 576] x [576, 3072] bf16: M=4 84 us int8 vs 115 dense, M=8 175 vs 117
INT8_MAX_TOKENS = 4


def _base_model(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unsupported(model) -> str | None:
    """Why `Decoder` cannot run this model (None: it can)."""
    from agentmill.model.row_lora import unsupported as lora_unsupported

    base = _base_model(model)
    cfg = base.config
    inner = getattr(base, "model", None)
    for part in ("layers", "embed_tokens", "norm", "rotary_emb"):
        if not hasattr(inner, part):
            return f"{type(base).__name__} has no model.{part} (not a Llama-shaped model)"
    if not hasattr(base, "lm_head") or not isinstance(base.lm_head, torch.nn.Linear):
        return "lm_head is not a plain Linear layer"
    if getattr(cfg, "hidden_act", None) != "silu":
        return f"activation {getattr(cfg, 'hidden_act', None)!r}, not silu"
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return "sliding-window attention"
    for layer in inner.layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None or hasattr(attn, "q_norm"):
            return f"{type(layer).__name__} is not a Llama decoder layer"
        for part, names in GROUPS.values():
            for name in names:
                if not hasattr(getattr(layer, part), name):
                    return f"{type(layer).__name__} has no {part}.{name}"
    if getattr(model, "peft_config", None):
        from peft.utils import ModulesToSaveWrapper

        if any(isinstance(m, ModulesToSaveWrapper) for m in model.modules()):
            return "an adapter trains whole modules (modules_to_save)"
        return lora_unsupported(model)
    return None


def quantize_int8(weight: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: (int8 weight [out, in], scale [out] in `dtype`)."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
    return torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous(), scale.to(dtype)


@dataclass
class Projection:
    """One fused projection of a layer: dense or int8 weight, bias, the adapters' stacked LoRA."""

    weight: torch.Tensor  # [out, in]; with `int8`, those weights dequantized (for many-token products)
    int8: tuple[torch.Tensor, torch.Tensor] | None  # (weight, scale): used for few-token products
    bias: torch.Tensor | None
    lora_a: torch.Tensor | None  # [k·n·r, in]: the A of every adapted member, adapters concatenated
    lora_b: torch.Tensor | None  # [out, k·n·r]: block-diagonal over members, scaling folded in
    repeats: int  # k: members with LoRA (the row mask is repeated k times)

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x [tokens, in]; mask [tokens, n·r] (1 on each token's adapter columns) or None."""
        if self.int8 is not None and x.shape[0] <= INT8_MAX_TOKENS:
            y = torch.ops.aten._weight_int8pack_mm(x, *self.int8)
        else:
            y = F.linear(x, self.weight)
        if self.bias is not None:
            y = y + self.bias
        if self.lora_a is not None and mask is not None:
            low = F.linear(x, self.lora_a) * (mask.repeat(1, self.repeats) if self.repeats > 1 else mask)
            y = y.addmm_(low, self.lora_b.t())
        return y


def _projection(modules: list, names: list[str], rank: int, int8: bool) -> Projection:
    from peft.tuners.lora import LoraLayer

    bases = [m.get_base_layer() if isinstance(m, LoraLayer) else m for m in modules]
    dtype = bases[0].weight.dtype
    weight = bases[0].weight.detach()
    if len(bases) > 1:
        # one fused weight, and the model's own weights become views of it (no second copy)
        weight = torch.cat([b.weight.detach() for b in bases])
        start = 0
        for b in bases:
            b.weight.data = weight[start:start + b.out_features]
            start += b.out_features
    bias = None
    if any(b.bias is not None for b in bases):
        bias = torch.cat([b.bias.detach() if b.bias is not None
                          else torch.zeros(b.out_features, dtype=dtype, device=weight.device) for b in bases])
    stacks = [(i, lora_stack(m, names, rank)) for i, m in enumerate(modules) if isinstance(m, LoraLayer)]
    lora_a = lora_b = None
    if stacks and names:
        width = len(names) * rank
        lora_a = torch.cat([a for _, (a, _) in stacks])
        lora_b = torch.zeros(weight.shape[0], width * len(stacks), dtype=dtype, device=weight.device)
        offsets = [0]
        for b in bases:
            offsets.append(offsets[-1] + b.out_features)
        for k, (i, (_, b)) in enumerate(stacks):
            lora_b[offsets[i]:offsets[i + 1], k * width:(k + 1) * width] = b
    packed = None
    if int8:
        packed = quantize_int8(weight, dtype)
        # larger products run the dense kernel on the same int8-rounded weights, so an answer does
        # not depend on how many rows share its batch (beyond float rounding)
        weight = (packed[0].to(torch.float32) * packed[1].to(torch.float32)[:, None]).to(dtype)
    return Projection(weight, packed, bias, lora_a, lora_b, len(stacks))


MODES = ("auto", "int8", "dense", "model")


def build_weights(model, mode: str = "auto") -> tuple["DecoderWeights | None", str]:
    """The decoder's weights for `model` in `mode`, and a line saying what runs and why.

    mode: "auto" (the fast decoder, int8 weights where `hardware.decode_weights` measured them
    faster on this machine), "int8" or "dense" (the fast decoder with those weights), "model"
    (None: the model's own forward, for any architecture). A model the decoder cannot run gets
    None whatever the mode."""
    from agentmill.hardware import decode_weights

    if mode not in MODES:
        raise ValueError(f"decoder must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "model":
        return None, "the model's own forward (asked for)"
    reason = unsupported(model)
    if reason is not None:
        return None, f"the model's own forward ({reason})"
    why = "asked for"
    if mode == "auto":
        param = next(model.parameters())
        mode, why = decode_weights(param.dtype, param.device)
    return DecoderWeights(model, int8=mode == "int8"), f"fast decoder, {mode} weights ({why})"


class DecoderWeights:
    """What `Decoder` reads of a model: fused projections (int8 copies too where asked), norms, the
    adapters' stacked LoRA. Built once per loaded model; any number of `Decoder`s share it.

    `int8=True` rounds the frozen projections and the output layer to int8 (per output channel):
    products of up to `INT8_MAX_TOKENS` tokens (decode steps) read the int8 weights, larger ones
    (prefills, wide batches) the same weights dequantized, with the dense kernel that is faster
    there. The caller decides where that pays (`hardware.decode_weights`). The adapters are read when this is built:
    build it for a model that is done training."""

    def __init__(self, model, int8: bool = False):
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"the fast decoder cannot run this model: {reason}")
        base = _base_model(model)
        cfg = base.config
        self.embed, self.rotary = base.model.embed_tokens, base.model.rotary_emb
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        self.names = adapter_names(model) if getattr(model, "peft_config", None) else []
        self.rank = adapter_rank(model) if self.names else 0
        self.layers = []
        for layer in base.model.layers:
            groups = {key: _projection([getattr(getattr(layer, part), n) for n in names], self.names, self.rank, int8)
                      for key, (part, names) in GROUPS.items()}
            self.layers.append((layer.input_layernorm.weight.detach(), layer.post_attention_layernorm.weight.detach(),
                                groups))
        self.norm = base.model.norm.weight.detach()
        self.head = _projection([base.lm_head], [], 0, int8)
        self.dtype = self.norm.dtype
        self.device = self.norm.device


def active_adapter(model) -> str | None:
    """The adapter a PEFT model's forward applies now (BASE: none), or None if that is not one
    plain adapter (several active at once): then only the model's own forward is right."""
    from peft.tuners.lora import LoraLayer

    if not getattr(model, "peft_config", None):
        return BASE
    layer = next((m for m in model.modules() if isinstance(m, LoraLayer)), None)
    if layer is None or layer.disable_adapters:
        return BASE
    active = layer.active_adapters
    return active[0] if len(active) == 1 else None


class Rows:
    """What a decoding batch tracks per row, right-aligned: `mask` [rows, width] marks each row's
    real columns (its last ones), `positions` [rows] the position of its next token, `adapters`
    its adapter (BASE: none). `Decoder` and serve/batch.py's `Batch` share it."""

    def reset(self) -> None:
        self.mask: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        self.adapters: list[str] = []

    def __len__(self) -> int:
        return len(self.adapters)

    @property
    def width(self) -> int:
        return 0 if self.mask is None else self.mask.shape[1]

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (in this order), trimming columns that are padding in all of them."""
        if not rows:
            self.reset()
            return
        idx = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        start = int(self.mask[idx].any(0).nonzero()[0])
        width = self.width
        self.mask = self.mask[idx, start:]
        self.positions = self.positions[idx]
        self.adapters = [self.adapters[i] for i in rows]
        self._keep_cache(idx, start, width)

    def _keep_cache(self, idx: torch.Tensor, start: int, width: int) -> None:
        """Keep rows `idx` and columns start..width of the KV cache."""
        raise NotImplementedError


class Decoder(Rows):
    """Prefill and decode for a batch of rows of one Llama-shaped model (optionally PEFT-wrapped).

    `join(prompts, adapters)` prefills new rows and appends them, `step(tokens)` decodes one
    token for every row, `keep(rows)` drops the others; each returns float next-token logits.
    `source`: a `DecoderWeights`, or a model to build them from (with `int8`)."""

    def __init__(self, source, pad_id: int, int8: bool = False):
        self.weights = source if isinstance(source, DecoderWeights) else DecoderWeights(source, int8)
        self.pad_id = pad_id
        self.dtype, self.device = self.weights.dtype, self.weights.device
        self.reset()

    # ------------------------------------------------------------ the batch

    def reset(self) -> None:
        super().reset()  # mask: bool, True = real token
        self.keys: list[torch.Tensor] = []  # per layer [rows, kv heads, capacity, head dim]
        self.values: list[torch.Tensor] = []

    def _row_mask(self, adapters: list[str]) -> torch.Tensor | None:
        """[rows, n·r]: 1 on the columns of each row's adapter (None: no adapter in the batch)."""
        if all(a == BASE for a in adapters):
            return None
        return row_mask(adapters, self.weights.names, self.weights.rank, self.dtype, self.device)  # checks the names

    @torch.no_grad()
    def join(self, prompts: list[list[int]], adapters: list[str]) -> torch.Tensor:
        """Prefill new rows (left-padded among themselves) and append them; their logits [new, vocab]."""
        ids, mask, positions = left_padded(prompts, self.pad_id, self.device)
        width = ids.shape[1]
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        # a left pad (a query without any real key) sees itself, so no row of the softmax is empty
        attend = (causal & mask[:, None, :]) | torch.eye(width, dtype=torch.bool, device=self.device)
        logits, keys, values = self._forward(ids, positions, attend[:, None], None, self._row_mask(adapters))
        lengths = mask.sum(-1)
        if self.mask is None:
            self.keys, self.values, self.mask, self.positions = keys, values, mask, lengths
        else:
            full = max(self.width, width)
            self.keys = [torch.cat([pad_left(old, full, self.width), pad_left(new, full, width)])
                         for old, new in zip(self.keys, keys)]
            self.values = [torch.cat([pad_left(old, full, self.width), pad_left(new, full, width)])
                           for old, new in zip(self.values, values)]
            self.mask = torch.cat([pad_left(self.mask, full, self.width), pad_left(mask, full, width)])
            self.positions = torch.cat([self.positions, lengths])
        self.adapters += list(adapters)
        return logits

    @torch.no_grad()
    def step(self, tokens: list[int]) -> torch.Tensor:
        """Feed each row its last token; next-token logits [rows, vocab]."""
        column = self.width
        if column == self.keys[0].shape[2]:
            self.keys = [_grow(k, column + CAPACITY_STEP) for k in self.keys]
            self.values = [_grow(v, column + CAPACITY_STEP) for v in self.values]
        ids = torch.tensor(tokens, dtype=torch.long, device=self.device)[:, None]
        self.mask = torch.cat([self.mask, torch.ones((len(tokens), 1), dtype=torch.bool, device=self.device)], 1)
        logits, _, _ = self._forward(ids, self.positions[:, None], self.mask[:, None, None, :], column,
                                     self._row_mask(self.adapters))
        self.positions = self.positions + 1
        return logits

    def _keep_cache(self, idx, start, width):
        self.keys = [k[idx, :, start:width] for k in self.keys]
        self.values = [v[idx, :, start:width] for v in self.values]

    # ------------------------------------------------------------ the forward

    def _forward(self, ids, positions, attend, column, lora_mask):
        """ids [rows, T]. column None: a prefill from an empty cache (returns its keys and values);
        else T == 1 and the new key/value go into column `column` of the cache."""
        w = self.weights
        rows, length = ids.shape
        heads, kv_heads, dim = w.heads, w.kv_heads, w.head_dim
        x = w.embed(ids).to(self.dtype)
        cos, sin = w.rotary(x, positions)
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
        x = x.view(rows * length, -1)
        token_mask = None
        if lora_mask is not None:
            token_mask = lora_mask if length == 1 else lora_mask.repeat_interleave(length, dim=0)
        keys_out, values_out = [], []
        for i, (norm1, norm2, proj) in enumerate(w.layers):
            h = F.rms_norm(x, (x.shape[-1],), norm1, w.eps)
            q, k, v = proj["qkv"](h, token_mask).split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
            q = _rotate(q.view(rows, length, heads, dim), cos, sin).transpose(1, 2)
            k = _rotate(k.view(rows, length, kv_heads, dim), cos, sin).transpose(1, 2)
            v = v.view(rows, length, kv_heads, dim).transpose(1, 2)
            if column is None:
                keys, values = k.contiguous(), v.contiguous()
                keys_out.append(keys)
                values_out.append(values)
            else:
                self.keys[i][:, :, column] = k[:, :, 0]
                self.values[i][:, :, column] = v[:, :, 0]
                keys, values = self.keys[i][:, :, :column + 1], self.values[i][:, :, :column + 1]
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=attend, enable_gqa=heads != kv_heads)
            x = x + proj["o"](o.transpose(1, 2).reshape(rows * length, heads * dim), token_mask)
            h = F.rms_norm(x, (x.shape[-1],), norm2, w.eps)
            gate, up = proj["gate_up"](h, token_mask).chunk(2, dim=-1)
            x = x + proj["down"](F.silu(gate) * up, token_mask)
        last = x.view(rows, length, -1)[:, -1]
        logits = w.head(F.rms_norm(last, (last.shape[-1],), w.norm, w.eps), None)
        return logits.float(), keys_out, values_out


def left_padded(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, mask (bool, True = real), positions) [rows, longest]: prompts right-aligned, pads on the left."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = True
    ids, mask = ids.to(device), mask.to(device)
    return ids, mask, (mask.long().cumsum(-1) - 1).clamp(min=0)


# below this a temperature is greedy decoding (as vLLM does): logits / 1e-217 overflow to nan
GREEDY_BELOW = 1e-5


def is_greedy(temperature: float | None) -> bool:
    return temperature is None or temperature < GREEDY_BELOW


def sampling_rng(temperature: float | None, seed: int | None) -> torch.Generator | None:
    """The generator `pick_token` samples from: None (greedy) at a temperature of (about) 0, else
    seeded with `seed`, or with a fresh random seed."""
    if is_greedy(temperature):
        return None
    import secrets

    return torch.Generator().manual_seed(seed if seed is not None else secrets.randbits(63))


def pick_token(logits: torch.Tensor, temperature: float, top_p: float, rng) -> int:
    """Greedy when `rng` is None (temperature about 0), else nucleus sampling from that seeded generator."""
    if rng is None:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=rng))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def pad_left(t: torch.Tensor, width: int, used: int | None = None) -> torch.Tensor:
    """The first `used` (default: all) columns of a cache [b, h, cap, d] or mask [b, L], zero-padded
    on the left to `width`."""
    dim = 2 if t.dim() == 4 else 1
    used = t.shape[dim] if used is None else used
    t = t.narrow(dim, 0, used)
    missing = width - used
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)


def _grow(cache: torch.Tensor, capacity: int) -> torch.Tensor:
    rows, heads, used, dim = cache.shape
    out = torch.zeros(rows, heads, capacity, dim, dtype=cache.dtype, device=cache.device)
    out[:, :, :used] = cache
    return out
