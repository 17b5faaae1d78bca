"""Where a LoRA training step of agentmill spends its time: torch.profiler over the bench's steps.

The same setup as bench/train_compare.py's agentmill arm (SmolLM2-135M, LoRA r16 all-linear, the
example's tool conversations, packed rows of 1,024 with shared prefixes, `precision: auto`):
one warm-up step, then `--steps` profiled. Prints the top operators by self CPU time and the
share of the step spent in matrix products (what MFU counts) against everything else.

Run: .venv/bin/python bench/profile_train.py [--steps 2] [--examples 24] [--out profile.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
           "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def main() -> None:
    from torch.profiler import ProfilerActivity, profile

    from agentmill.config import TrainSpec
    from agentmill.hardware import choose_precision, cpu_model
    from agentmill.model.load import load_model, load_tokenizer
    from agentmill.train.loop import train_loop
    from train_compare import LR, MODEL, ROW_TOKENS, _accelerator, load_examples, lora_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--examples", type=int, default=24)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    precision = choose_precision("auto")
    tokenizer = load_tokenizer(MODEL)
    train, _ = load_examples(tokenizer, args.examples, 0)
    model = lora_model(load_model(MODEL))
    spec = TrainSpec(max_length=ROW_TOKENS, lr=LR, epochs=1, grad_accum=2, max_steps=1 + args.steps,
                     precision=precision.requested, eval_every=10**6, checkpoint_every=10**6)
    accelerator = _accelerator(precision)

    class Profiled:
        """Starts the profiler after the first (warm-up) step's log line."""

        prof = None

        def log(self, record):
            if record.get("split") == "train" and self.prof is None:
                self.prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
                self.prof.__enter__()
                self.started = time.perf_counter()

    hook = Profiled()
    with tempfile.TemporaryDirectory() as tmp:
        train_loop(model, train, [], spec, accelerator=accelerator, ckpt_dir=Path(tmp) / "ckpt", logger=hook,
                   stage="profile", eval_at_end=False, seed=0)
    wall = time.perf_counter() - hook.started
    hook.prof.__exit__(None, None, None)
    events = hook.prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMULS)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:20]
    rows = [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 1), "calls": e.count,
             "share": round(e.self_cpu_time_total / total, 3)} for e in top]
    print(f"{MODEL} LoRA r16 on {cpu_model()}, {precision.name}, {args.steps} profiled steps, {wall:.1f} s wall")
    print(f"matrix products {matmul / total:.1%} of self CPU time; the rest {1 - matmul / total:.1%}")
    for r in rows:
        print(f"  {r['op']:<60} {r['self_ms']:>9.1f} ms {r['calls']:>7} calls {r['share']:>6.1%}")
    copies = sorted((e for e in hook.prof.key_averages(group_by_input_shape=True) if e.key == "aten::copy_"),
                    key=lambda e: -e.self_cpu_time_total)[:8]
    print("largest copies (input shapes):")
    for e in copies:
        print(f"  {str(e.input_shapes)[:90]:<90} {e.self_cpu_time_total / 1e3:>8.1f} ms {e.count:>6} calls")
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_model(), "precision": precision.name, "steps": args.steps,
                                        "wall_s": wall, "matmul_share": matmul / total, "top": rows}, indent=2))


if __name__ == "__main__":
    main()
