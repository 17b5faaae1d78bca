"""One LoRA adapter per batch row, all rows in the same two matmuls per layer.

peft mixes adapters in a batch (`adapter_names=`) by looping, in every LoRA layer of every
forward, over the adapters present: it rebuilds each adapter's row list in Python, slices the
rows, runs its A and B, and adds the result back. At decode time (one token per row) that
per-layer Python work is the cost, and it grows with the number of adapters in the batch.

`RowLora` concatenates the A matrices of all adapters of a layer once (A: [n·r, in]; the B
matrices likewise, B: [out, n·r], the scaling folded in; a smaller rank is zero-padded) and
adds, per layer, `((x @ A^T) * mask[row]) @ B^T`, where a row's mask keeps its own adapter's r
columns (none for the base model): two plain matmuls with an inner size of n·r (48 for three
r16 adapters, small next to the backbone's), however many adapters the batch mixes. The same
numbers as peft's path up to float rounding (tested). Plain LoRA on Linear
layers only: DoRA and other variants, bias on the adapter, or non-Linear targets are refused
with the reason, and the caller keeps peft's path for them.
"""

from __future__ import annotations

import contextlib

import torch

BASE = "__base__"


def unsupported(model) -> str | None:
    """Why `RowLora` cannot serve this model's adapters (None: it can)."""
    from peft.tuners.lora import LoraLayer

    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and (reason := layer_unsupported(module)) is not None:
            return f"{name}: {reason}"
    return None


def layer_unsupported(module) -> str | None:
    """Why one LoRA layer is not plain LoRA on a Linear layer, unmerged (None: it is)."""
    if not isinstance(module.get_base_layer(), torch.nn.Linear):
        return f"adapts a {type(module.get_base_layer()).__name__}, not a Linear layer"
    if getattr(module, "lora_variant", None):
        return "a LoRA variant (e.g. DoRA)"
    for adapter, b in module.lora_B.items():
        if getattr(b, "bias", None) is not None:
            return f"adapter '{adapter}' has a bias"
    if module.merged_adapters:
        return "adapters are merged into the weights"
    return None


def adapter_names(model) -> list[str]:
    """The LoRA adapters of a PEFT model, sorted (the order of their columns in `lora_stack`)."""
    from peft.tuners.lora import LoraLayer

    return sorted({a for m in model.modules() if isinstance(m, LoraLayer) for a in m.lora_A})


def adapter_rank(model) -> int:
    """The largest LoRA rank of a PEFT model (every adapter's block is padded to it)."""
    from peft.tuners.lora import LoraLayer

    return max((m.r[a] for m in model.modules() if isinstance(m, LoraLayer) for a in m.lora_A), default=0)


def lora_stack(module, names: list[str], rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A LoRA layer's adapters side by side: A [n·r, in] and B [out, n·r] (scaling folded into B),
    adapter `names[i]` in block i, a smaller rank zero-padded, an adapter it lacks all zeros."""
    base = module.get_base_layer()
    dtype, device = base.weight.dtype, base.weight.device
    a_cat = torch.zeros(len(names) * rank, base.in_features, dtype=dtype, device=device)
    b_cat = torch.zeros(base.out_features, len(names) * rank, dtype=dtype, device=device)
    for adapter in module.lora_A:
        start, r = names.index(adapter) * rank, module.r[adapter]
        a_cat[start:start + r] = module.lora_A[adapter].weight.detach().to(dtype)
        b_cat[:, start:start + r] = (module.lora_B[adapter].weight.detach() * module.scaling[adapter]).to(dtype)
    return a_cat, b_cat


def row_mask(adapters: list[str], names: list[str], rank: int, dtype, device) -> torch.Tensor:
    """[rows, n·r]: 1 on the r columns of each row's adapter in `lora_stack`'s layout (BASE: none)."""
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(adapters) - set(index) - {BASE})
    if unknown:
        raise ValueError(f"unknown adapter(s): {', '.join(unknown)}")
    mask = torch.zeros(len(adapters), len(names), rank, dtype=dtype, device=device)
    for row, name in enumerate(adapters):
        if name != BASE:
            mask[row, index[name]] = 1.0
    return mask.view(len(adapters), -1)


class RowLora:
    """Per-row adapters for a PEFT model's LoRA layers; `with row_lora.rows(names): model(...)`."""

    def __init__(self, model):
        from peft.tuners.lora import LoraLayer

        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"per-row LoRA cannot run this model: {reason}")
        self.model = model
        self.names = adapter_names(model)
        self.rank = adapter_rank(model)
        modules = [m for m in model.modules() if isinstance(m, LoraLayer)]
        # id(module) -> A [n·r, in], B [out, n·r]
        self._weights = {id(m): lora_stack(m, self.names, self.rank) for m in modules}
        self._mask: torch.Tensor | None = None
        self._hooks = [m.register_forward_hook(self._add) for m in modules]

    def _add(self, module, inputs, output):
        if self._mask is None:
            return None
        a_cat, b_cat = self._weights[id(module)]
        x = inputs[0].to(a_cat.dtype)
        mask = self._mask.view(-1, *([1] * (x.dim() - 2)), a_cat.shape[0])
        delta = torch.nn.functional.linear(torch.nn.functional.linear(x, a_cat) * mask, b_cat)
        return output + delta.to(output.dtype)

    @contextlib.contextmanager
    def rows(self, adapters: list[str]):
        """Forwards within the block run row i with adapter `adapters[i]` ("__base__": none)."""
        first = next(iter(self._weights.values()), (torch.empty(0),))[0]
        self._mask = row_mask(adapters, self.names, self.rank, first.dtype, first.device)
        self.model.base_model.disable_adapter_layers()  # the LoRA layers run their base layer only
        try:
            yield
        finally:
            self._mask = None
            self.model.base_model.enable_adapter_layers()

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
