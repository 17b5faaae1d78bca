"""Runs the shared training loop on a tiny model; driven by test_loop.py in a subprocess.

usage: loop_script.py OUT_DIR [--resume] [--die-after STEP] [--grad-accum N] [--steps N]
Writes OUT_DIR/losses.json (train loss per step, main process) when it finishes.
"""

import argparse
import json
import os
import signal
from pathlib import Path

import torch
from accelerate import Accelerator
from peft import LoraConfig, get_peft_model

from agentmill.config import TrainSpec
from agentmill.data.render import Example
from agentmill.model.load import load_tokenizer, tiny_model
from agentmill.train.loop import train_loop


class Recorder:
    def __init__(self, die_after):
        self.losses, self.die_after = {}, die_after

    def log(self, record):
        if record["split"] == "train":
            self.losses[record["step"]] = record["loss"]
            if self.die_after and record["step"] == self.die_after:
                os.kill(os.getpid(), signal.SIGKILL)  # like `kill -9`: no cleanup at all


def examples(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(8, 40, (1,), generator=g))
        ids = torch.randint(0, 1000, (length,), generator=g).tolist()
        cut = int(torch.randint(1, length - 2, (1,), generator=g))
        out.append(Example(input_ids=ids, labels=[-100] * cut + ids[cut:]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--die-after", type=int, default=0)
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(cpu=True)
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    model = tiny_model(tokenizer, seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(1)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=float(os.environ.get("DROP", "0.1"))))
    spec = TrainSpec(max_length=64, lr=1e-2, max_steps=args.steps, grad_accum=args.grad_accum,
                     checkpoint_every=2, eval_every=1000, warmup_ratio=0.2, precision="fp32")
    recorder = Recorder(args.die_after)
    result = train_loop(model, examples(), [], spec, accelerator=accelerator, ckpt_dir=out / "checkpoints",
                        logger=recorder, stage="test", seed=3, resume=args.resume)
    if accelerator.is_main_process:
        (out / "losses.json").write_text(json.dumps({"losses": recorder.losses, "final": result.final_loss,
                                                     "tokens": result.tokens}))


if __name__ == "__main__":
    main()
