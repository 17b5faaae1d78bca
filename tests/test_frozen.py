"""Frozen Linear weights kept in bf16 during training: same loss and LoRA gradients as autocast."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from agentmill.model.frozen import frozen_linear_weights
from agentmill.model.load import tiny_model


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), ids[0, 1:])
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("offload", [False, True])
def test_bf16_frozen_weights_give_the_autocast_numbers_and_restore_the_fp32_master(tokenizer, tmp_path, offload):
    base = tiny_model(tokenizer, seed=3)
    for p in base.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    ids = torch.randint(0, len(tokenizer), (1, 40))
    master = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss, grads = _loss_and_grads(model, ids)
    with frozen_linear_weights(model, torch.bfloat16, offload=tmp_path if offload else None):
        # offloaded: the fp32 masters wait in one file, not in memory
        assert len(list(tmp_path.glob(".frozen-master-*.safetensors"))) == int(offload)
        frozen = {n: p.dtype for n, p in model.named_parameters() if not p.requires_grad}
        fast_loss, fast_grads = _loss_and_grads(model, ids)
        # the tied output head has its own bf16 copy; the embedding lookup keeps fp32
        assert model.base_model.model.lm_head.weight.dtype == torch.bfloat16
        assert model.base_model.model.model.embed_tokens.weight.dtype == torch.float32
    assert torch.bfloat16 in frozen.values()
    assert not list(tmp_path.glob(".frozen-master-*"))  # removed once read back
    assert fast_loss == loss
    for n in grads:
        assert torch.equal(fast_grads[n], grads[n]), n
    after = dict(model.named_parameters())
    for n, p in master.items():  # the fp32 master weights and the tie are back, unchanged
        assert after[n].dtype == p.dtype and torch.equal(after[n].detach(), p), n
    inner = model.base_model.model
    assert inner.lm_head.weight is inner.model.embed_tokens.weight


def test_no_dtype_is_no_change(tokenizer):
    model = tiny_model(tokenizer)
    before = [p for p in model.parameters()]
    with frozen_linear_weights(model, None):
        assert [p for p in model.parameters()] == before
