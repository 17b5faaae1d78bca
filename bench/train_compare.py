"""LoRA training side by side: TRL's SFTTrainer (defaults), TRL's best CPU setup, agentmill.

Same model (SmolLM2-135M-Instruct), same LoRA (r16, alpha 32, all-linear, same seeded init),
same examples (the finance-advisor example's tool conversations: customer_service and
finance_advisor, rendered with their system prompt and tool list), same tokens and loss mask
(every arm gets agentmill's token ids and labels: TRL takes a pre-tokenised dataset with a
`labels` column as is, so the mask is identical by construction, not by two templates
agreeing), same learning rate, cosine schedule, warm-up, AdamW betas, clipping, one epoch.

Arms:
  trl_default  SFTTrainer with its defaults (batch 8 padded, gradient checkpointing on, bf16 on)
               plus what CPU needs: `use_cpu=True`; bf16 only where the CPU has it natively
               (elsewhere TRL's default bf16 would run ~170x slower than fp32: not a fair arm)
  trl_best     packing (bfd, padding-free), no gradient checkpointing, rows of 1,024 tokens,
               4 rows per step, the precision that is fast here
  agentmill    `agentmill.train.loop.train_loop` as a recipe runs it: packed rows of 1,024 with
               shared prefixes, 4 rows per step, `precision: auto`

Seeds: TRL best and agentmill run 3 seeds of data order (0, 1, 2: one process each; held-out
loss compared as the mean, speed as the median), TRL defaults one (quick mode: one each).
Checked first: every arm's epoch holds the same number of loss tokens (agentmill's last step
may wrap around into the next epoch's first rows: `trained_tokens` counts what ran), and the step-0 loss of a fixed
batch (LoRA B = 0, so the base model's) agrees within 1 %. Reported: trained and seen tokens/s
(steady state: the first step dropped, the rest in 3 windows, median), MFU (model/flops.py,
against the matmul peak of the dtype, measured in the same run), peak RSS (each arm in its own
process), final train loss, held-out loss after training (one evaluator for all arms).

Run:  .venv/bin/python bench/train_compare.py [--quick] [--out FILE.json]
      .venv/bin/python bench/train_compare.py --arm agentmill --examples 24   # one arm, JSON to stdout
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "finance-advisor"
MODEL = "smollm2-135m-instruct"
ARMS = ("trl_default", "trl_best", "agentmill")
LR, ROW_TOKENS, ROWS_PER_STEP, WARMUP = 1e-3, 1024, 4, 0.0  # no warm-up: the step counts differ by arm
TASKS = ("customer_service", "finance_advisor")


def load_examples(tokenizer, n_train: int, n_held: int, seed: int = 0):
    """The example's tool conversations as agentmill encodes them: (train, held-out) Examples."""
    import yaml

    from agentmill.tools.builtin import builtin_tools
    from shared_prefix import task_examples

    recipe = yaml.safe_load((EXAMPLE / "recipe.yaml").read_text())
    registry = builtin_tools(recipe["tools"]["settings"], EXAMPLE)
    tasks = {t["name"]: t for t in recipe["stages"][3]["tasks"]}
    parts, rng = [], random.Random(seed)
    for key, n in (("data", n_train), ("eval_data", n_held)):
        part = [e for name in TASKS for e in task_examples(tokenizer, tasks[name], registry, key) if not e.truncated]
        rng.shuffle(part)
        parts.append(part[:n])
    return parts[0], parts[1]


def _accelerator(precision):
    """A fresh accelerate state in `precision` (a second arm in one process may need another)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=precision.accelerate)


def lora_model(base, seed: int = 0):
    from peft import LoraConfig, get_peft_model

    for p in base.parameters():
        p.requires_grad_(False)
    torch.manual_seed(seed)
    return get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                           task_type="CAUSAL_LM"))


def steady(records: list[tuple[float, int, int, float]]) -> dict:
    """records: (time, trained, seen, flops), cumulative, at the start and after each optimizer
    step. The first step (warm-up) is dropped; the rest is cut in 3 windows; median of them."""
    if len(records) < 5:
        raise RuntimeError(f"only {len(records) - 1} steps: too few to measure a steady state (use more examples)")
    base, rest = records[1], records[2:]
    k = len(rest) // 3
    edges = [base, rest[k - 1], rest[2 * k - 1], rest[-1]]
    windows = []
    for start, end in zip(edges, edges[1:]):
        dt = end[0] - start[0]
        windows.append(((end[1] - start[1]) / dt, (end[2] - start[2]) / dt, (end[3] - start[3]) / dt))
    return {"trained_tokens_per_s": statistics.median(w[0] for w in windows),
            "seen_tokens_per_s": statistics.median(w[1] for w in windows),
            "flops_per_s": statistics.median(w[2] for w in windows),
            "windows_trained_tokens_per_s": [round(w[0], 1) for w in windows]}


# ------------------------------------------------------------------ the arms


def run_agentmill(model, train, held, precision, seed: int = 0, share_prefix: bool = True) -> dict:
    from agentmill.config import TrainSpec
    from agentmill.data.pack import pack
    from agentmill.train.loop import evaluate_loss, make_rows, train_loop

    spec = TrainSpec(max_length=ROW_TOKENS, lr=LR, epochs=1, grad_accum=ROWS_PER_STEP, warmup_ratio=WARMUP,
                     precision=precision.requested, eval_every=10**6, checkpoint_every=10**6,
                     share_prefix=share_prefix)
    # Shared prefixes fit ~2x the examples in a row: the same effective batch (examples per
    # optimizer step, as TRL's 4 packed rows hold) takes proportionally fewer rows per step.
    plain_rows = len(pack([len(e.input_ids) for e in train], ROW_TOKENS, seed=0))
    shared_rows = len(make_rows(train, spec, seed=seed))
    spec = spec.model_copy(update={"grad_accum": max(1, round(ROWS_PER_STEP * shared_rows / plain_rows))})
    accelerator = _accelerator(precision)
    model.to(accelerator.device)
    step0, _ = evaluate_loss(model, train[:8], spec, accelerator)

    class Recorder:
        rows: list = []

        def log(self, r):
            if r.get("split") == "train":
                self.rows.append((r["time"], r["tokens"], r["seen"], r["flops"]))

    recorder = Recorder()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = train_loop(model, train, [], spec, accelerator=accelerator, ckpt_dir=Path(tmp) / "ckpt",
                            logger=recorder, stage="bench", eval_at_end=False, seed=seed)
    held_loss, _ = evaluate_loss(model, held, spec, accelerator)
    return {"step0_loss": step0, "steps": result.steps, "rows_per_step": spec.grad_accum,
            "epoch_loss_tokens": sum(sum(1 for x in e.labels[1:] if x != -100) for e in train),
            "trained_tokens": result.tokens,
            "seen_tokens": result.seen_tokens, "final_train_loss": result.final_loss, "heldout_loss": held_loss,
            "wall_s": result.wall_s, **steady([(0.0, 0, 0, 0.0)] + recorder.rows)}


def run_trl(model, tokenizer, train, held, precision, best: bool, seed: int = 0) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from agentmill.config import TrainSpec
    from agentmill.model.flops import StepFlops, attention_pairs
    from agentmill.train.loop import evaluate_loss

    flops_of = StepFlops.of(model)
    counts = {"trained": 0, "seen": 0, "flops": 0.0}
    records: list = [(0.0, 0, 0, 0.0)]
    t0 = [None]

    class Counted(SFTTrainer):
        def training_step(self, model, inputs, *args, **kwargs):
            labels = inputs["labels"]
            trained = int((labels[:, 1:] != -100).sum())
            mask = inputs.get("attention_mask")
            seen = int(mask.sum()) if mask is not None else labels.numel()
            positions = inputs.get("position_ids")
            if positions is None:
                positions = torch.arange(labels.shape[1]).expand_as(labels)
            counts["trained"] += trained
            counts["seen"] += seen
            counts["flops"] += flops_of.flops(seen, trained, attention_pairs(positions, mask))
            return super().training_step(model, inputs, *args, **kwargs)

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if t0[0] is None:
                t0[0] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            records.append((time.perf_counter() - t0[0], counts["trained"], counts["seen"], counts["flops"]))

    data = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in train])
    bf16 = precision.name == "bf16"
    common = dict(output_dir=os.environ.get("TMPDIR", "/tmp") + "/agentmill-bench-trl", use_cpu=not torch.cuda.is_available(),
                  learning_rate=LR, num_train_epochs=1, lr_scheduler_type="cosine", warmup_steps=WARMUP,  # < 1: a ratio
                  adam_beta2=0.95, weight_decay=0.0, max_grad_norm=1.0, max_length=ROW_TOKENS, bf16=bf16,
                  report_to="none", save_strategy="no", logging_steps=1, seed=seed, data_seed=seed,
                  dataloader_num_workers=0, disable_tqdm=True)
    if best:
        config = SFTConfig(**common, packing=True, packing_strategy="bfd", padding_free=True,
                           per_device_train_batch_size=1, gradient_accumulation_steps=ROWS_PER_STEP,
                           gradient_checkpointing=False)
    else:
        config = SFTConfig(**common)  # TRL's defaults: batch 8, gradient checkpointing, no packing
    trainer = Counted(model=model, args=config, train_dataset=data, processing_class=tokenizer, callbacks=[Clock()])
    model.eval()
    if best:  # the packed dataset mixes examples: score the fixed 8 examples one by one instead
        step0 = _loss_of_examples(model, train[:8], bf16)
    else:  # the same 8 examples through TRL's own collator (one padded batch, as it trains)
        fixed = trainer.data_collator([trainer.train_dataset[i] for i in range(min(8, len(trainer.train_dataset)))])
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            step0 = float(model(**{k: v for k, v in fixed.items()
                                   if k in ("input_ids", "labels", "attention_mask", "position_ids")}).loss)
    model.train()
    started = time.perf_counter()
    out = trainer.train()
    wall = time.perf_counter() - started
    spec = TrainSpec(max_length=ROW_TOKENS, precision=precision.requested)
    accelerator = _accelerator(precision)
    model.eval()
    held_loss, _ = evaluate_loss(model, held, spec, accelerator)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"step0_loss": step0, "steps": trainer.state.global_step, "epoch_loss_tokens": counts["trained"],
            "trained_tokens": counts["trained"],
            "seen_tokens": counts["seen"], "final_train_loss": losses[-1] if losses else out.training_loss,
            "heldout_loss": held_loss, "wall_s": wall, **steady(records)}


def _loss_of_examples(model, examples, bf16: bool) -> float:
    """Mean loss per trained token of examples run one by one with plain HF labels."""
    total, count = 0.0, 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for e in examples:
            ids = torch.tensor([e.input_ids])
            labels = torch.tensor([e.labels])
            n = int((labels[:, 1:] != -100).sum())
            total += float(model(input_ids=ids, labels=labels).loss) * n
            count += n
    return total / count


def run_arm(arm: str, n_train: int, n_held: int, seed: int = 0, share_prefix: bool = True) -> dict:
    from agentmill.hardware import choose_precision, peak_gflops
    from agentmill.model.load import load_model, load_tokenizer

    precision = choose_precision("auto")
    tokenizer = load_tokenizer(MODEL)
    train, held = load_examples(tokenizer, n_train, n_held)
    model = lora_model(load_model(MODEL))
    if arm == "agentmill":
        result = run_agentmill(model, train, held, precision, seed=seed, share_prefix=share_prefix)
    else:
        result = run_trl(model, tokenizer, train, held, precision, best=(arm == "trl_best"), seed=seed)
    peak = peak_gflops(precision.name) * 1e9
    result.update(arm=arm, precision=precision.name, peak_gflops=peak / 1e9, mfu=result["flops_per_s"] / peak,
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, examples=len(train))
    return result


# ------------------------------------------------------------------ side by side


def run_seeds(arm: str, n_train: int, n_held: int, seeds: tuple[int, ...]) -> dict:
    """One process per seed; the first seed's full result, plus every seed's held-out loss and
    speed. Speed: the median over seeds; peak RSS: the largest; held-out loss: the mean (one
    96-example epoch moves by +-6 % from seed to seed, more than the 2 % being compared)."""
    runs = []
    for seed in seeds:
        cmd = [sys.executable, __file__, "--arm", arm, "--examples", str(n_train), "--heldout", str(n_held),
               "--seed", str(seed)]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"skipped": f"seed {seed}: exit {proc.returncode}: " + " | ".join(tail)}
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]) | {"seed": seed,
                                                                        "process_s": round(time.perf_counter() - started, 1)})
    out = dict(runs[0])
    losses = [r["heldout_loss"] for r in runs]
    out.update(seeds=list(seeds), heldout_loss_seeds=losses, heldout_loss=statistics.mean(losses),
               trained_tokens_per_s=statistics.median(r["trained_tokens_per_s"] for r in runs),
               seen_tokens_per_s=statistics.median(r["seen_tokens_per_s"] for r in runs),
               mfu=statistics.median(r["mfu"] for r in runs), peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
               process_s=sum(r["process_s"] for r in runs))
    return out


def run(quick: bool = False, arms=ARMS) -> dict:
    n_train, n_held = (32, 16) if quick else (96, 32)
    # the held-out loss is compared over 3 seeds (TRL's defaults, 3x slower, once: their speed is the point)
    seeds = {arm: (0,) if quick or arm == "trl_default" else (0, 1, 2) for arm in arms}
    results = {arm: run_seeds(arm, n_train, n_held, seeds[arm]) for arm in arms}
    ok = {a: r for a, r in results.items() if "skipped" not in r}
    checks = {}
    if "agentmill" in ok:
        ref = ok["agentmill"]
        for arm, r in ok.items():
            checks[arm] = {"same_loss_tokens": r["epoch_loss_tokens"] == ref["epoch_loss_tokens"],
                           "step0_rel_diff": abs(r["step0_loss"] - ref["step0_loss"]) / ref["step0_loss"]}
        ratios = {}
        for arm in ("trl_default", "trl_best"):
            if arm in ok:
                ratios[f"trained_tps_vs_{arm}"] = ref["trained_tokens_per_s"] / ok[arm]["trained_tokens_per_s"]
                ratios[f"heldout_loss_rel_vs_{arm}"] = ref["heldout_loss"] / ok[arm]["heldout_loss"] - 1
                ratios[f"rss_vs_{arm}"] = ref["peak_rss_mb"] / ok[arm]["peak_rss_mb"]
        results["ratios"] = ratios
    results["checks"] = checks
    results["setup"] = {"examples": n_train, "heldout": n_held, "lr": LR, "row_tokens": ROW_TOKENS,
                        "rows_per_step": ROWS_PER_STEP, "lora": "r16 alpha32 all-linear", "tasks": list(TASKS)}
    return results


def table(results: dict) -> str:
    cols = ("trained tok/s", "seen tok/s", "MFU", "steps", "loss tokens", "step-0 loss", "final loss",
            "held-out loss", "peak RSS MB")
    lines = [f"{'arm':<12}" + "".join(f"{c:>14}" for c in cols)]
    for arm in ARMS:
        r = results.get(arm)
        if r is None:
            continue
        if "skipped" in r:
            lines.append(f"{arm:<12}  skipped: {r['skipped']}")
            continue
        vals = (f"{r['trained_tokens_per_s']:.0f}", f"{r['seen_tokens_per_s']:.0f}", f"{r['mfu']:.1%}",
                r["steps"], r["trained_tokens"], f"{r['step0_loss']:.4f}", f"{r['final_train_loss']:.4f}",
                f"{r['heldout_loss']:.4f}", f"{r['peak_rss_mb']:.0f}")
        lines.append(f"{arm:<12}" + "".join(f"{v:>14}" for v in vals))
        if len(r.get("seeds", [])) > 1:
            losses = r["heldout_loss_seeds"]
            lines.append(f"{'':<12}  held-out loss over seeds {r['seeds']}: mean {r['heldout_loss']:.4f} "
                         f"(min {min(losses):.4f}, max {max(losses):.4f}); speed: median, RSS: largest")
    for k, v in results.get("ratios", {}).items():
        lines.append(f"  {k}: {v:.3f}")
    for arm, c in results.get("checks", {}).items():
        lines.append(f"  check {arm}: same loss tokens {c['same_loss_tokens']}, "
                     f"step-0 loss differs {c['step0_rel_diff']:.2%}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--arm", choices=ARMS)
    ap.add_argument("--examples", type=int, default=96)
    ap.add_argument("--heldout", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="data order (one arm)")
    ap.add_argument("--no-share-prefix", action="store_true", help="agentmill arm: plain packing (one arm)")
    ap.add_argument("--out")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.arm:
        import warnings

        warnings.filterwarnings("ignore")
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        print(json.dumps(run_arm(args.arm, args.examples, args.heldout, seed=args.seed,
                                 share_prefix=not args.no_share_prefix)))
        return
    results = run(quick=args.quick)
    print(table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
