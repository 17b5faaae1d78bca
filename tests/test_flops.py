"""MFU's numerator: FLOPs of a LoRA step counted from the model's shapes and the row's positions."""

import torch
from peft import LoraConfig, get_peft_model

from agentmill.model.flops import StepFlops, attention_pairs


def test_step_flops_counts_frozen_matmuls_adapters_head_and_attention(tiny):
    model = get_peft_model(tiny, LoraConfig(r=4, target_modules="all-linear"))
    try:
        f = StepFlops.of(model)
        # hidden 64, 2 layers, 4 heads (head dim 16), 2 kv heads, MLP 128: q,o 64x64; k,v 64x32; gate,up,down 64x128
        assert f.layer_params == 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128)
        assert f.lora_params == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
        assert f.head_params == tiny.config.vocab_size * 64
        assert f.attention == 2 * 4 * 16
        assert f.flops(10, 3, 55) == 4 * f.layer_params * 10 + 6 * f.lora_params * 10 + 4 * f.head_params * 3 \
            + 12 * f.attention * 55
    finally:
        model.unload()


def test_attention_pairs_follow_causal_packed_and_shared_prefix_positions():
    # two packed examples of 3 and 2 tokens: 1+2+3 + 1+2 keys
    assert attention_pairs(torch.tensor([[0, 1, 2, 0, 1]])) == 9
    # a branch after a 4-token shared prefix attends to the prefix and itself: 5 + 6
    assert attention_pairs(torch.tensor([[0, 1, 2, 3, 4, 5]])[:, 4:]) == 11
    # padding carries no work
    assert attention_pairs(torch.tensor([[0, 1, 2, 3]]), torch.tensor([[1, 1, 0, 0]])) == 3
