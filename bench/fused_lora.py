"""Seconds per LoRA training step with peft's LoRA forward vs the fused one (`train.fused_lora`).

The example's tool conversations (bench/train_compare.py), packed with shared prefixes into rows
of --budget tokens, one row a step (the demo's tool adapters: rows of 2,048), LoRA r16
all-linear on SmolLM2-135M, `precision: auto`. Each arm trains from the same adapter init on
the same rows; the arms alternate --rounds times, so drift of the host hits both. Reported:
median seconds per step after the first (warm-up) step, trained tokens/s, MFU as the loop logs
it, and the losses of both arms (they train the same thing: equal up to float rounding).

Run: .venv/bin/python bench/fused_lora.py [--budget 2048] [--steps 4] [--rounds 2] [--task NAME] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run_arm(fused: bool, train, budget: int, steps: int, precision) -> dict:
    import train_compare
    from agentmill.config import TrainSpec
    from agentmill.model.load import load_model
    from agentmill.train.loop import train_loop

    model = train_compare.lora_model(load_model(train_compare.MODEL))
    spec = TrainSpec(max_length=budget, lr=1e-3, grad_accum=1, max_steps=1 + steps, fused_lora=fused,
                     precision=precision.requested, eval_every=10**6, checkpoint_every=10**6)
    records = []

    class Log:
        def log(self, record):
            if record.get("split") == "train":
                records.append(record)

    with tempfile.TemporaryDirectory() as tmp:
        train_loop(model, train, [], spec, accelerator=train_compare._accelerator(precision),
                   ckpt_dir=Path(tmp) / "ckpt", logger=Log(), stage="bench", eval_at_end=False, seed=0)
    times = [b["time"] - a["time"] for a, b in zip(records, records[1:])]
    tokens = [b["tokens"] - a["tokens"] for a, b in zip(records, records[1:])]
    return {"step_s": times, "trained_tokens": tokens, "losses": [r["loss"] for r in records],
            "mfu": records[-1]["mfu"]}


def main() -> None:
    import train_compare
    from agentmill.hardware import choose_precision, cpu_model
    from agentmill.model.load import load_tokenizer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--examples", type=int, default=96)
    ap.add_argument("--task", choices=train_compare.TASKS, help="one task's conversations (default: both)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.task:
        train_compare.TASKS = (args.task,)
    precision = choose_precision("auto")
    train, _ = train_compare.load_examples(load_tokenizer(train_compare.MODEL), args.examples, 0)
    arms: dict[str, list[dict]] = {"peft": [], "fused": []}
    for _ in range(args.rounds):
        for name in arms:
            arms[name].append(run_arm(name == "fused", train, args.budget, args.steps, precision))
    result = {"cpu": cpu_model(), "precision": precision.name, "budget": args.budget, "steps": args.steps,
              "rounds": args.rounds, "tasks": list(train_compare.TASKS)}
    for name, runs in arms.items():
        step_s = statistics.median(t for r in runs for t in r["step_s"])
        trained = sum(sum(r["trained_tokens"]) for r in runs) / sum(sum(r["step_s"]) for r in runs)
        result[name] = {"median_step_s": round(step_s, 3), "trained_tokens_per_s": round(trained, 1),
                        "mfu": round(statistics.median(r["mfu"] for r in runs), 3), "losses": runs[0]["losses"]}
    result["speedup"] = round(result["peft"]["median_step_s"] / result["fused"]["median_step_s"], 3)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
