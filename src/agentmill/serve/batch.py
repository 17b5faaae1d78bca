"""Sequences decoding together: one left-padded KV cache, one adapter per row, rows join and leave.

`make_batch` picks the engine's batch: model/decoder.py's `Decoder` (preallocated cache, fused
projections, int8 weights where they are faster here) for Llama-shaped models, else `Batch`
below, which runs the model's own forward and works for any causal LM.

Rows are right-aligned: row i's real tokens are the last ones of its cache, `mask` marks them,
and `positions` counts them (a row's positions are 0.. whatever its padding, as if alone).
`join` prefills new prompts (left-padded among themselves) and merges their cache into the
running one, padding the shorter on the left; `step` feeds each row's last token; `keep` drops
finished rows and trims columns that are padding for every remaining row.

Adapters: one per row ("__base__" = no adapter), so rows of different tasks share each matmul
of the backbone. Plain LoRA runs through `model/row_lora.py` (all rows' adapters in two matmuls
per layer, however many adapters the batch mixes: bench/decode.py's mixed-adapter batch);
anything else (DoRA, ...) through peft's ``adapter_names``, with the adapter layers re-enabled before every forward because
`RunModel.use_task(None)` (run by exclusive jobs on the same thread, e.g. routing) disables
them, and peft ignores ``adapter_names`` then.
The cache is held as plain (key, value) tensors per layer and wrapped in a `DynamicCache`
for each forward: models with full attention in every layer (Llama/SmolLM2 and the like).
"""

from __future__ import annotations

import contextlib

import torch

from agentmill.model.decoder import Decoder, Rows, left_padded, pad_left
from agentmill.model.generate import _cache_kwarg, returned_cache
from agentmill.model.row_lora import BASE as BASE_ADAPTER  # noqa: F401 - the engine and tests name it so
from agentmill.model.row_lora import RowLora, unsupported


def make_batch(run, pad_id: int, mode: str = "auto"):
    """The batch the engine decodes with (`Decoder` where the run's model allows it, else `Batch`),
    and a line saying which and why; `mode` as in `model.decoder.build_weights`."""
    weights, why = run.decoder(mode)
    return (Decoder(weights, pad_id) if weights is not None else Batch(run.model, pad_id)), why


class Batch(Rows):
    def __init__(self, model, pad_id: int):
        self.model, self.pad_id = model, pad_id
        self.device = next(model.parameters()).device
        self.uses_adapters = bool(getattr(model, "peft_config", None))
        self.row_lora = None
        if self.uses_adapters and unsupported(model) is None:
            self.row_lora = RowLora(model)
        self.cache_kw = _cache_kwarg(model)
        self.reset()

    def reset(self) -> None:
        super().reset()  # mask: long, 1 = real token
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def _forward(self, ids, mask, positions, cache, adapters):
        from transformers import DynamicCache

        kwargs, rows = {}, contextlib.nullcontext()
        if self.row_lora is not None:
            rows = self.row_lora.rows(adapters)
        elif self.uses_adapters:
            self.model.base_model.enable_adapter_layers()
            kwargs["adapter_names"] = list(adapters)
        past = DynamicCache(ddp_cache_data=cache) if cache else DynamicCache()
        with rows:
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             logits_to_keep=1, **{self.cache_kw: past}, **kwargs)
        past = returned_cache(out)
        return out.logits[:, -1, :].float(), [(layer.keys, layer.values) for layer in past.layers]

    @torch.no_grad()
    def join(self, prompts: list[list[int]], adapters: list[str]) -> torch.Tensor:
        """Prefill new rows and append them; their next-token logits [new rows, vocab]."""
        ids, mask, positions = left_padded(prompts, self.pad_id, self.device)
        mask = mask.long()
        width = ids.shape[1]
        logits, cache = self._forward(ids, mask, positions, None, adapters)
        lengths = mask.sum(-1)
        if self.cache is None:
            self.cache, self.mask, self.positions = cache, mask, lengths
        else:
            full = max(self.width, width)
            self.cache = [(torch.cat([pad_left(k0, full), pad_left(k1, full)]),
                           torch.cat([pad_left(v0, full), pad_left(v1, full)]))
                          for (k0, v0), (k1, v1) in zip(self.cache, cache)]
            self.mask = torch.cat([pad_left(self.mask, full), pad_left(mask, full)])
            self.positions = torch.cat([self.positions, lengths])
        self.adapters += list(adapters)
        return logits

    @torch.no_grad()
    def step(self, tokens: list[int]) -> torch.Tensor:
        """Feed each row its last token; next-token logits [rows, vocab]."""
        ids = torch.tensor(tokens, dtype=torch.long, device=self.device)[:, None]
        mask = torch.cat([self.mask, torch.ones((len(tokens), 1), dtype=torch.long, device=self.device)], dim=1)
        logits, cache = self._forward(ids, mask, self.positions[:, None], self.cache, self.adapters)
        self.cache, self.mask = cache, mask
        self.positions = self.positions + 1
        return logits

    def _keep_cache(self, idx, start, width):
        self.cache = [(k[idx, :, start:], v[idx, :, start:]) for k, v in self.cache]
