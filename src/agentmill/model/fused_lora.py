"""LoRA Linear layers as one fused product each while an adapter trains.

peft computes a LoRA layer as `base(x) + lora_B(lora_A(x)) * scaling`: the low-rank term's
[tokens, out] result is written, read again to scale it, and read again to add it, and its
backward scales and sums [tokens, out] gradients the same way. With the frozen base in
place these passes over wide activations (the MLP's 1,536 columns) cost as much as a
quarter of the base's own matrix products on a CPU. Here the base output is computed and the
low-rank product accumulates into it in place (`addmm_` with `alpha=scaling`); the backward
scales only the [tokens, r] intermediate. The frozen weight gets no gradient.

Measured by bench/fused_lora.py (one 2,048-token tool row a step, 2-core Zen 4): 1.16-1.22x
on the AVX2 fp32 path, 1.14x in bf16 (README, "Speed"). Same loss and gradients as peft's
path up to float rounding (tests/test_fused_lora.py). Plain LoRA only:
one active adapter, no dropout, no variant (DoRA), no bias on B, a Linear base; any other
layer, and any forward peft would route differently (disabled or merged adapters, mixed
`adapter_names`), keeps peft's own forward.
"""

from __future__ import annotations

import contextlib

import torch


class _LoraLinear(torch.autograd.Function):
    """y = x W^T + b + s (x A^T) B^T, with W and b frozen."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float):
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        low = flat @ lora_a.t()
        y = torch.addmm(bias, flat, weight.t()) if bias is not None else flat @ weight.t()
        y.addmm_(low, lora_b.t(), alpha=scaling)
        ctx.save_for_backward(flat, weight, lora_a, lora_b, low)
        ctx.scaling, ctx.shape = scaling, shape
        return y.view(*shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        flat, weight, lora_a, lora_b, low = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        grad_low = (g @ lora_b).mul_(ctx.scaling)  # [tokens, r]: the only scaled tensor
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ weight).addmm_(grad_low, lora_a).view(ctx.shape)
        grad_a = grad_low.t() @ flat
        grad_b = (g.t() @ low).mul_(ctx.scaling)
        return grad_x, None, None, grad_a, grad_b, None


def _fusable(module) -> str | None:
    """The adapter name of a plain LoRA Linear layer this module can fuse, else None."""
    from agentmill.model.row_lora import layer_unsupported

    if layer_unsupported(module) is not None:
        return None
    base = module.get_base_layer()
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return None
    active = [a for a in module.active_adapters if a in module.lora_A]
    if len(active) != 1 or not isinstance(module.lora_dropout[active[0]], torch.nn.Identity):
        return None
    return active[0]


def _fused_forward(module, name: str, peft_forward):
    base = module.get_base_layer()

    def forward(x, *args, **kwargs):
        if args or kwargs or module.disable_adapters or module.merged or module.active_adapters != [name]:
            return peft_forward(x, *args, **kwargs)
        a, b = module.lora_A[name].weight, module.lora_B[name].weight
        weight, bias = base.weight, base.bias
        device = x.device.type
        if torch.is_autocast_enabled(device):  # the products in autocast's dtype, as peft's would run
            dtype = torch.get_autocast_dtype(device)
            x, a, b = x.to(dtype), a.to(dtype), b.to(dtype)
            weight = weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
            with torch.autocast(device, enabled=False):
                return _LoraLinear.apply(x, weight, bias, a, b, module.scaling[name])
        x = x.to(a.dtype)
        return _LoraLinear.apply(x, weight, bias, a, b, module.scaling[name])

    return forward


@contextlib.contextmanager
def fused_lora(model, enabled: bool = True):
    """Within the block, every plain LoRA Linear layer of `model` runs `_LoraLinear`."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    patched = []
    if enabled:
        for module in model.modules():
            if isinstance(module, LoraLinear) and (name := _fusable(module)) is not None:
                patched.append((module, module.__dict__.get("forward")))
                module.forward = _fused_forward(module, name, module.forward)
    try:
        yield model
    finally:
        for module, own in patched:
            if own is None:
                del module.forward  # the class's forward again
            else:
                module.forward = own
