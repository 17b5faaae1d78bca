"""Integration tests on the real embedded SmolLM2-135M-Instruct weights (marked `integration`)."""

import importlib.util
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from agentmill.config import TrainSpec
from agentmill.data.formats import read_records
from agentmill.data.render import encode_text
from agentmill.hardware import choose_precision
from agentmill.model.generate import generate
from agentmill.model.load import ALIASES, load_model, load_tokenizer
from agentmill.train.loop import evaluate_loss, train_loop

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finance-advisor" / "data"


@pytest.fixture(scope="module")
def real():
    return load_model("smollm2-135m-instruct"), load_tokenizer("smollm2-135m-instruct")


def test_converted_folder_matches_the_gguf_weights(real):
    from transformers import AutoModelForCausalLM

    model, tokenizer = real
    package, filename = ALIASES["smollm2-135m-instruct"]
    folder = Path(importlib.util.find_spec(package).origin).parent
    gguf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    ids = tokenizer("Compound interest grows because", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a = model(input_ids=ids).logits
        b = gguf(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4)


def test_embedded_model_answers_and_stops(real):
    model, tokenizer = real
    answer = generate(model, tokenizer, [{"role": "user", "content": "What is the capital of France?"}],
                      max_new_tokens=40)
    assert "Paris" in answer
    assert "<|im_end|>" not in answer and "<|im_start|>" not in answer


def test_a_few_lora_steps_on_domain_text_lower_held_out_loss(real, tmp_path):
    from peft import LoraConfig, get_peft_model

    base, tokenizer = real
    spec = TrainSpec(max_length=256, lr=1e-3, max_steps=6, grad_accum=1, warmup_ratio=0.0,
                     eval_every=1000, checkpoint_every=1000, precision="auto")
    train_texts = [r.text for r in read_records(EXAMPLE / "corpus.txt", "text")][:60]
    held_texts = [r.text for r in read_records(EXAMPLE / "corpus_heldout.txt", "text")][:15]
    train = encode_text(tokenizer, train_texts, 256)
    held = encode_text(tokenizer, held_texts, 256)
    # the mixed-precision state is a process-wide singleton that an earlier in-process run (fp32) may
    # have set: a fresh Accelerator asks for this machine's precision, as train_recipe does
    AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=True, mixed_precision=choose_precision(spec.precision, "cpu").accelerate)
    for p in base.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    before, n = evaluate_loss(model, held, spec, accelerator)

    class Sink:
        def log(self, record):
            pass

    result = train_loop(model, train, [], spec, accelerator=accelerator, ckpt_dir=tmp_path / "ckpt",
                        logger=Sink(), stage="pretrain")
    after, _ = evaluate_loss(model, held, spec, accelerator)
    model.unload()
    assert n > 500 and result.steps == 6
    assert after < before - 0.05, (before, after)
