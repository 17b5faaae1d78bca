"""FLOPs of a LoRA training step, for MFU (model FLOPs utilisation), as nanoGPT reports it.

Per token, with a frozen base: 4·N_layers (forward + input gradients of the frozen matmuls; no
weight gradients) + 6·N_lora (forward, input and weight gradients of the adapters), plus the
output head at the trained positions only (4·V·d: logits are computed only where there is a
loss), plus attention: 12·L·H·Q FLOPs per (query, key) pair a causal token attends to (2+2 in
the forward for QK^T and AV, x3 with the backward). Counting pairs from `position_ids` gives
the causal halving and packed examples (`T_eff = Σℓ²/Σℓ`) for free, and also a shared-prefix
branch, whose positions start at the prefix length. Padding is never counted: MFU is the
useful work done per second, against the measured matmul peak of the dtype in use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MATMUL_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class StepFlops:
    layer_params: int  # frozen matmul weights of the decoder layers
    lora_params: int  # trainable adapter weights
    head_params: int  # output head, V x d
    attention: int  # L·H·Q: layers x heads x head dim

    @classmethod
    def of(cls, model) -> "StepFlops":
        config = getattr(model, "config", None)
        config = getattr(config, "text_config", None) or config
        layer, lora = 0, 0
        for name, p in model.named_parameters():
            if p.requires_grad:
                lora += 0 if "embed" in name else p.numel()  # a lookup, no matmul
            elif p.dim() == 2 and "lora_" not in name and any(s in name for s in MATMUL_SUFFIXES):
                layer += p.numel()
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(layer_params=layer, lora_params=lora, head_params=config.vocab_size * config.hidden_size,
                   attention=config.num_hidden_layers * heads * head_dim)

    def flops(self, seen_tokens: int, trained_tokens: int, attention_pairs: int) -> float:
        return (4.0 * self.layer_params * seen_tokens + 6.0 * self.lora_params * seen_tokens
                + 4.0 * self.head_params * trained_tokens + 12.0 * self.attention * attention_pairs)


def attention_pairs(position_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> int:
    """(query, key) pairs of causal attention: a token at position p attends to p + 1 keys."""
    keys = position_ids.long() + 1
    if attention_mask is not None:
        keys = keys * attention_mask.long()
    return int(keys.sum().item())
