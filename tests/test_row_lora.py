"""Per-row LoRA (model/row_lora.py): one bmm per layer for a batch mixing adapters, same logits as peft."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from agentmill.model.row_lora import RowLora, unsupported
from serve_util import chatty_tiny


def _three_adapters(tokenizer, dora=False):
    torch.manual_seed(0)
    model = get_peft_model(chatty_tiny(tokenizer), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                              init_lora_weights=False, use_dora=dora), adapter_name="one")
    # two: another rank and scaling; six: only some layers
    model.add_adapter("two", LoraConfig(r=2, lora_alpha=6, target_modules="all-linear", init_lora_weights=False))
    model.add_adapter("six", LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    return model.eval()


def test_row_lora_matches_peft_mixed_batches(tokenizer):
    model = _three_adapters(tokenizer)
    ids = torch.randint(0, len(tokenizer), (5, 12))
    names = ["one", "__base__", "six", "two", "one"]
    with torch.no_grad():
        model.base_model.enable_adapter_layers()
        want = model(input_ids=ids, adapter_names=names).logits
        row_lora = RowLora(model)
        with row_lora.rows(names):
            got = model(input_ids=ids).logits
        alone = model(input_ids=ids[3:4], adapter_names=["two"]).logits  # the hooks are idle outside `rows`
    row_lora.close()
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(alone, want[3:4], atol=1e-5)
    # the adapters really differ per row (else the test could not fail)
    assert not torch.allclose(want[0], want[3], atol=1e-3) and not torch.allclose(want[1], want[2], atol=1e-3)


def test_row_lora_refuses_what_it_cannot_run(tokenizer):
    model = _three_adapters(tokenizer, dora=True)
    assert "variant" in unsupported(model)
    with pytest.raises(ValueError, match="per-row LoRA cannot run this model"):
        RowLora(model)
    with pytest.raises(ValueError, match="unknown adapter"):
        with RowLora(_three_adapters(tokenizer)).rows(["zz"]):
            pass
