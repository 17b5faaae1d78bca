"""Fused LoRA Linear layers: the same loss and LoRA gradients as peft's own forward."""

import contextlib

import pytest
import torch
from peft import LoraConfig, get_peft_model

from agentmill.model.frozen import frozen_linear_weights
from agentmill.model.fused_lora import fused_lora
from agentmill.model.load import tiny_model


def _model(tokenizer, **lora):
    base = tiny_model(tokenizer, seed=3)
    for p in base.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)
    return get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                           init_lora_weights=False, **lora))


def _loss_and_grads(model, ids, bf16: bool):
    model.zero_grad(set_to_none=True)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with ctx:
        logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), ids[0, 1:])
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _patched(model) -> int:
    return sum(1 for m in model.modules() if "forward" in m.__dict__)


def test_fused_layers_give_peft_loss_and_gradients_in_fp32(tokenizer):
    model = _model(tokenizer)
    ids = torch.randint(0, len(tokenizer), (1, 48), generator=torch.Generator().manual_seed(1))
    loss, grads = _loss_and_grads(model, ids, bf16=False)
    with fused_lora(model):
        assert _patched(model) == 7 * model.config.num_hidden_layers  # q k v o gate up down of every layer
        fused_loss, fused_grads = _loss_and_grads(model, ids, bf16=False)
    assert _patched(model) == 0  # peft's forward again afterwards
    assert fused_loss == pytest.approx(loss, rel=1e-6)
    assert grads.keys() == fused_grads.keys() and len(grads) == 14 * model.config.num_hidden_layers
    for n, g in grads.items():
        assert torch.allclose(fused_grads[n], g, rtol=1e-4, atol=1e-6), n


def _error(grads, reference):
    return max(((grads[n] - g).norm() / g.norm()).item() for n, g in reference.items())


def test_fused_layers_in_bf16_are_as_close_to_fp32_as_peft_in_bf16(tokenizer):
    """bf16 rounds differently (peft rounds the low-rank term and the sum separately, the fused
    product once), so both are held to the fp32 gradients: fused must not be further from them."""
    model = _model(tokenizer)
    ids = torch.randint(0, len(tokenizer), (1, 48), generator=torch.Generator().manual_seed(1))
    loss, exact = _loss_and_grads(model, ids, bf16=False)
    with frozen_linear_weights(model, torch.bfloat16):
        peft_loss, peft_grads = _loss_and_grads(model, ids, bf16=True)
        with fused_lora(model):
            assert _patched(model) == 7 * model.config.num_hidden_layers
            fused_loss, fused_grads = _loss_and_grads(model, ids, bf16=True)
    assert all(g.dtype == torch.float32 for g in fused_grads.values())
    assert abs(fused_loss - loss) <= 1.5 * abs(peft_loss - loss) + 1e-3
    assert _error(fused_grads, exact) <= 1.5 * _error(peft_grads, exact)
    assert _error(fused_grads, exact) < 0.1


def test_layers_peft_routes_differently_keep_its_forward(tokenizer):
    with_dropout = _model(tokenizer, lora_dropout=0.1)
    with fused_lora(with_dropout):
        assert _patched(with_dropout) == 0
    model = _model(tokenizer)
    ids = torch.randint(0, len(tokenizer), (1, 16))
    with torch.no_grad():
        with model.disable_adapter():
            base = model(input_ids=ids).logits
        with fused_lora(model), model.disable_adapter():  # disabled adapters: the base model's logits
            assert torch.equal(model(input_ids=ids).logits, base)
        with fused_lora(model, enabled=False):
            assert _patched(model) == 0


def test_training_loop_trains_the_same_adapter_fused_or_not(tokenizer, tmp_path):
    """train.fused_lora on and off: the loop's per-step losses and the trained LoRA weights agree."""
    from accelerate import Accelerator

    from agentmill.config import TrainSpec
    from agentmill.data.render import Example
    from agentmill.train.loop import train_loop

    g = torch.Generator().manual_seed(0)
    examples = []
    for length in (60, 35, 80, 50, 70, 45):
        ids = torch.randint(0, len(tokenizer), (length,), generator=g).tolist()
        examples.append(Example(input_ids=ids, labels=[-100] * (length // 2) + ids[length // 2:]))
    results = {}
    for fused in (False, True):
        model = _model(tokenizer)
        losses = []

        class Log:
            def log(self, record):
                if record.get("split") == "train":
                    losses.append(record["loss"])

        spec = TrainSpec(max_length=128, lr=1e-2, grad_accum=1, max_steps=4, fused_lora=fused, precision="fp32",
                         eval_every=10**6, checkpoint_every=10**6)
        train_loop(model, examples, [], spec, accelerator=Accelerator(cpu=True), ckpt_dir=tmp_path / str(fused),
                   logger=Log(), stage="t", eval_at_end=False, seed=0)
        results[fused] = losses, {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    (plain_losses, plain), (fused_losses, fused) = results[False], results[True]
    assert len(plain_losses) == 4 and plain_losses[-1] < plain_losses[0]  # it trains
    assert fused_losses == pytest.approx(plain_losses, rel=1e-5)
    for n, w in plain.items():
        # Adam moves every entry by up to lr a step: rounding-level gradient differences stay far below it
        assert (fused[n] - w).abs().max() < 1e-2 * spec.lr, n
    init = dict(_model(tokenizer).named_parameters())  # the same seeded init both arms started from
    assert all(not torch.equal(w, init[n]) for n, w in plain.items())  # every LoRA matrix moved
