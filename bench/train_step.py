"""Tokens/s of one LoRA training step on the embedded SmolLM2-135M: fp32 vs bf16 autocast.

Run: .venv/bin/python bench/train_step.py [--tokens 1024] [--full]
"""

import argparse
import time

import torch
import torch.nn.functional as F

from agentmill.model.load import load_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args()
    from peft import LoraConfig, get_peft_model

    base = load_model("smollm2-135m-instruct")
    model = base if args.full else get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, 49152, (1, args.tokens))
    pos = torch.arange(args.tokens)[None]
    for name, ctx in [("fp32", None), ("bf16-autocast", torch.bfloat16)]:
        times = []
        for i in range(args.steps + 1):
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=ctx, enabled=ctx is not None):
                out = model(input_ids=ids, position_ids=pos, use_cache=False)
                loss = F.cross_entropy(out.logits[0, :-1].float(), ids[0, 1:])
            loss.backward()
            opt.step(); opt.zero_grad()
            if i:
                times.append(time.perf_counter() - t)
        s = sum(times) / len(times)
        print(f"{name:15s} {'full' if args.full else 'lora'} {args.tokens} tok/step  {s:.2f} s/step  {args.tokens / s:,.0f} tok/s")


if __name__ == "__main__":
    main()
