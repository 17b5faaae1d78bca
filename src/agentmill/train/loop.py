"""The one training loop. The only place that steps an optimizer.

Reads top to bottom: pack → plan steps → (resume) → for each step: micro-batches,
loss normalised by the trained tokens of the whole step, clip, step, log, eval,
checkpoint. Runs unchanged under ``accelerate launch`` (DDP): every process takes its
own rows of each step, and the loss is normalised by the step's global token count.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from agentmill.config import DEFAULT_LR, TrainSpec
from agentmill.data.pack import SharedPrefixes, collate, pack, row_drops, shared_prefixes
from agentmill.data.render import Example
from agentmill.errors import AgentmillError
from agentmill.hardware import peak_gflops, trim_heap
from agentmill.model.attention import packed_attention
from agentmill.model.flops import StepFlops, attention_pairs
from agentmill.model.frozen import frozen_linear_weights, remove_stale_masters
from agentmill.model.fused_lora import fused_lora


@dataclass
class LoopResult:
    steps: int
    tokens: int  # trained (labelled) tokens, all processes
    seen_tokens: int  # all tokens run through the model, all processes
    wall_s: float
    tokens_per_s: float  # seen tokens per second of training
    final_loss: float
    eval_loss: float | None
    shared_tokens: int = 0  # prefix tokens not run again thanks to shared prefixes (seen excludes them)
    mfu: float = 0.0  # model FLOPs utilisation of this process against the measured peak (model/flops.py)


@dataclass
class Rows:
    """A stage's examples packed into rows (lists of example indices, in row order)."""

    rows: list[list[int]]
    prefixes: SharedPrefixes | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def groups(self) -> list[int] | None:
        """Each row's shared-prefix group (its first example's; -1: none), None without prefixes."""
        if self.prefixes is None:
            return None
        return [self.prefixes.group[row[0]] for row in self.rows]

    def batch(self, examples: list[Example], r: int) -> dict:
        row = self.rows[r]
        return collate([examples[i] for i in row], row_drops(row, self.prefixes))


def make_rows(examples: list[Example], spec: TrainSpec, seed: int | None = None) -> Rows:
    """Pack example indices into rows (or one example per row without packing).

    Training passes its seed: rows of randomly mixed examples (see `pack`)."""
    budget = spec.micro_batch_tokens or spec.max_length
    lengths = [len(e.input_ids) for e in examples]
    if not spec.packing:
        return Rows([[i] for i in range(len(examples))])
    prefixes = shared_prefixes(examples) if spec.share_prefix else None
    return Rows(pack(lengths, max(budget, max(lengths)), seed=seed, prefixes=prefixes), prefixes)


def _epoch_order(n_rows: int, seed: int, epoch: int, groups: list[int] | None = None) -> list[int]:
    """A seeded random order of the rows; with `groups` (each row's shared-prefix group), each
    group's rows spread evenly over the epoch (stratified), so a step mixes the groups.

    Rows with shared prefixes hold one group each (one task's system prompt and tools), while
    randomly packed rows mix them; drawn at random, a step of few rows is then often one task.
    Measured on the bench (bench/train_compare.py, 96 tool conversations of 2 tasks, 2 rows per
    step, AMX Xeon, seeds 0-2): held-out loss 0.2057 / 0.1772 / 0.1788 (mean 0.187) stratified,
    against 0.2095 / 0.1872 (seeds 0-1) drawn at random; TRL's packed rows 0.187 / 0.180 / 0.203."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n_rows, generator=g).tolist()
    if not groups or len(set(groups)) < 2:
        return order
    jitter = torch.rand(n_rows, generator=g).tolist()
    sizes = Counter(groups)
    taken: Counter = Counter()
    key = {}
    for r in order:  # the k-th row of a group of n sits at (k + jitter) / n of the epoch
        key[r] = (taken[groups[r]] + jitter[r]) / sizes[groups[r]]
        taken[groups[r]] += 1
    return sorted(order, key=key.__getitem__)


def rows_of_step(step: int, n_rows: int, per_step: int, seed: int, groups: list[int] | None = None) -> list[int]:
    """The global rows of optimizer step `step` (0-based); epochs wrap around cyclically."""
    steps_per_epoch = max(1, math.ceil(n_rows / per_step))
    epoch, k = divmod(step, steps_per_epoch)
    order = _epoch_order(n_rows, seed, epoch, groups)
    return [order[(k * per_step + j) % n_rows] for j in range(per_step)]


def total_steps(n_rows: int, per_step: int, spec: TrainSpec) -> int:
    """`max_steps`, else `epochs` passes, else one pass raised to `min_steps` (at most
    `max_auto_epochs` passes): small data gets enough steps to learn from."""
    if spec.max_steps:
        return spec.max_steps
    per_epoch = math.ceil(n_rows / per_step)
    if spec.epochs is not None:
        return max(1, math.ceil(spec.epochs * per_epoch))
    return max(1, per_epoch, min(spec.min_steps, math.ceil(spec.max_auto_epochs * per_epoch)))


def eval_interval(n_steps: int, spec: TrainSpec) -> int:
    return spec.eval_every or max(1, min(100, math.ceil(n_steps / 5)))


@dataclass
class _Best:
    """The lowest held-out loss so far and its step; its weights are in `path` unless it is the
    current step's (written only when a later step moves on from it)."""

    path: Path
    loss: float = math.inf
    step: int = 0
    stale: int = 0  # evaluations since the best one

    def update(self, loss: float, step: int, model, save: bool) -> None:
        """Record an evaluation; with `save`, write the weights when it is the new best."""
        if not loss < self.loss:
            self.stale += 1
            return
        self.loss, self.step, self.stale = loss, step, 0
        if save:
            tmp = self.path.with_suffix(".tmp")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            _save_trainable(model, tmp)
            os.replace(tmp, self.path)

    def restore(self, model) -> None:
        _load_trainable(model, self.path)


def row_loss(model, batch: dict) -> tuple[torch.Tensor, int, int]:
    """Summed next-token loss of one packed row, computing logits only where trained."""
    device = next(model.parameters()).device
    targets = batch["targets"][0].to(device)
    keep = (targets != -100).nonzero().squeeze(-1)
    if keep.numel() == 0:
        return None, 0, batch["input_ids"].shape[1]
    # On CPU each packed example attends alone (model/attention.py, ~1.45x); on GPU keep
    # transformers' own kernels, which isolate examples through the position_ids mask, unless
    # the row shares prefixes, which only model/attention.py understands.
    ours = device.type == "cpu" or batch.get("dropped")
    attention = packed_attention(model) if ours else contextlib.nullcontext()
    with attention:
        out = model(input_ids=batch["input_ids"].to(device), position_ids=batch["position_ids"].to(device),
                    use_cache=False, logits_to_keep=keep)
    logits = out.logits[0].float()
    loss = F.cross_entropy(logits, targets[keep], reduction="sum")
    return loss, keep.numel(), batch["input_ids"].shape[1]


@torch.no_grad()
def evaluate_loss(model, examples: list[Example], spec: TrainSpec, accelerator=None) -> tuple[float, int]:
    """Mean loss per trained token over `examples` (packed like training). Returns (loss, tokens)."""
    if not examples:
        return float("nan"), 0
    was_training = model.training
    model.eval()
    rows = make_rows(examples, spec)
    rank = accelerator.process_index if accelerator else 0
    world = accelerator.num_processes if accelerator else 1
    total, count = 0.0, 0
    ctx = accelerator.autocast() if accelerator else contextlib.nullcontext()
    with ctx:
        for r in range(rank, len(rows), world):
            loss, n, _ = row_loss(model, rows.batch(examples, r))
            if n:
                total += loss.item()
                count += n
    if accelerator and world > 1:
        t = accelerator.reduce(torch.tensor([total, float(count)], device=accelerator.device), reduction="sum")
        total, count = t[0].item(), int(t[1].item())
    model.train(was_training)
    return (total / count if count else float("nan")), count


def accumulate_gradients(model, batches: list[dict], accelerator, params) -> tuple[float, int, int]:
    """Backward over one optimizer step's micro-batches.

    The loss is normalised by the number of trained tokens of the whole step, across all
    micro-batches and all processes, so every trained token weighs the same however the
    tokens fall into rows. Returns (summed loss, trained tokens, seen tokens), all processes.
    """
    world = accelerator.num_processes
    local = torch.tensor([float(b["num_targets"]) for b in batches], device=accelerator.device).sum()
    global_count = accelerator.reduce(local.clone(), reduction="sum").item() if world > 1 else local.item()
    step_loss, step_seen = 0.0, 0
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        sync = contextlib.nullcontext() if last or world == 1 else accelerator.no_sync(model)
        with sync:
            loss, n, n_seen = row_loss(model, batch)
            step_seen += n_seen
            if n == 0:
                # keep DDP's collective in step: a zero loss that touches every parameter
                loss = sum(p.sum() * 0.0 for p in params)
            # DDP averages gradients over processes; scale so the result is sum / global_count
            accelerator.backward(loss * (world / max(global_count, 1.0)))
            step_loss += loss.item()
        del loss
        trim_heap()  # this row's activations are free: return their pages (hardware.trim_heap)
    stats = torch.tensor([step_loss, float(step_seen)], device=accelerator.device)
    if world > 1:
        stats = accelerator.reduce(stats, reduction="sum")
    return stats[0].item(), int(global_count), int(stats[1].item())


def add_proximal_gradient(params, anchors, mu: float) -> None:
    """FedProx's term: grad += mu·(w - w0), the gradient of (mu/2)·||w - w0||², with no extra backward."""
    with torch.no_grad():
        for p, w0 in zip(params, anchors):
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.add_(p - w0, alpha=mu)


def _checkpoint_paths(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.exists():
        return []
    done = [p for p in ckpt_dir.glob("step-*") if (p / "state.pt").exists() and not p.name.endswith(".tmp")]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def _save_checkpoint(ckpt_dir: Path, step: int, model, optimizer, scheduler, extra: dict, keep: int = 2) -> None:
    """Trainable weights (safetensors) + optimizer/scheduler/RNG state, written atomically."""
    final = ckpt_dir / f"step-{step}"
    tmp = ckpt_dir / f"step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _save_trainable(model, tmp / "trainable.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(), "step": step}, tmp / "state.pt")
    (tmp / "progress.json").write_text(json.dumps(extra))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in _checkpoint_paths(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _save_trainable(model, path: Path) -> None:
    """The parameters that train (safetensors), as the checkpoints and the best weights keep them."""
    save_file({n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}, str(path))


def _load_trainable(model, path: Path) -> None:
    trainable = load_file(str(path))
    params = dict(model.named_parameters())
    missing = [n for n in trainable if n not in params]
    if missing:
        raise AgentmillError(f"checkpoint {path} does not match this model (e.g. {missing[0]}); start a new run")
    with torch.no_grad():
        for n, t in trainable.items():
            params[n].copy_(t)


def _load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    _load_trainable(model, path / "trainable.safetensors")
    state = torch.load(path / "state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return json.loads((path / "progress.json").read_text())


def train_loop(model, train: list[Example], eval_examples: list[Example], spec: TrainSpec, *,
               accelerator, ckpt_dir: Path, logger, stage: str, task: str | None = None,
               seed: int = 42, resume: bool = False, progress=None, eval_at_end: bool = True,
               proximal_mu: float = 0.0) -> LoopResult:
    """Train `model` (only its parameters with requires_grad) on `train`; returns what happened.

    Held-out loss is measured every `eval_interval` steps and, with `eval_at_end`, after the
    last step; the pipeline's stages measure that one themselves (their "after" metrics) and
    log it, so they turn it off rather than pay for it twice, unless `keep_best` needs it to
    compare with the earlier evaluations. With `keep_best` the model ends with the weights of
    the lowest held-out loss; with `patience` training stops after that many evaluations
    without a new lowest one.

    `proximal_mu` (FedProx): every step adds the gradient of (mu/2)·||w - w0||², w0 the trainable
    weights the loop was called with (a federated round's global adapter); logged losses are the
    task's alone."""
    from transformers import get_cosine_schedule_with_warmup

    rows = make_rows(train, spec, seed=seed)
    groups = rows.groups()
    world, rank = accelerator.num_processes, accelerator.process_index
    per_step = spec.grad_accum * world
    n_steps = total_steps(len(rows), per_step, spec)
    every = eval_interval(n_steps, spec)
    best = _Best(ckpt_dir / "best.safetensors")

    params = [p for p in model.parameters() if p.requires_grad]
    anchors = [p.detach().clone() for p in params] if proximal_mu else None  # before any checkpoint is loaded
    lr = spec.lr if spec.lr is not None else DEFAULT_LR["lora"]  # recipes resolve it by method (stage_train)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=spec.weight_decay, betas=(0.9, 0.95))
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(spec.warmup_ratio * n_steps), n_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)

    step_flops = StepFlops.of(raw_model)
    peak = peak_gflops("bf16" if accelerator.mixed_precision == "bf16" else "fp32", accelerator.device) * 1e9
    start, tokens, seen, shared, flops, loss_value, elapsed_before = 0, 0, 0, 0, 0.0, float("nan"), 0.0
    checkpoints = _checkpoint_paths(ckpt_dir) if resume else []
    if checkpoints:
        extra = _load_checkpoint(checkpoints[-1], raw_model, optimizer, scheduler)
        start, tokens, seen, shared = extra["step"], extra["tokens"], extra["seen"], extra.get("shared", 0)
        flops = extra.get("flops", 0.0)
        loss_value, elapsed_before = extra["loss"], extra["elapsed"]
        if "best" in extra and best.path.exists():
            best.loss, best.step, best.stale = extra["best"]
    elif ckpt_dir.exists() and accelerator.is_main_process:
        shutil.rmtree(ckpt_dir)

    label = f"{stage}" + (f" [{task}]" if task else "")
    bar = progress.add_task(label, total=n_steps, completed=start, loss=loss_value, tps=0.0, mfu=0.0) if progress else None
    model.train()
    t0 = time.perf_counter()
    eval_loss = None
    # frozen Linear weights in bf16 for the loop: the casts autocast would redo every forward; their
    # fp32 masters wait in a file in the checkpoint folder (model/frozen.py); a killed run's is stale
    fast = torch.bfloat16 if accelerator.mixed_precision == "bf16" else None
    if accelerator.is_main_process:
        remove_stale_masters(ckpt_dir)
    accelerator.wait_for_everyone()
    with frozen_linear_weights(raw_model, fast, offload=ckpt_dir), fused_lora(raw_model, spec.fused_lora):
        for step in range(start, n_steps):
            my_rows = rows_of_step(step, len(rows), per_step, seed, groups)[rank * spec.grad_accum:
                                                                              (rank + 1) * spec.grad_accum]
            batches = [rows.batch(train, r) for r in my_rows]
            step_loss, global_count, step_seen = accumulate_gradients(model, batches, accelerator, params)
            if anchors is not None:
                add_proximal_gradient(params, anchors, proximal_mu)
            accelerator.clip_grad_norm_(params, spec.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            loss_value = step_loss / max(global_count, 1.0)
            tokens += int(global_count)
            seen += step_seen
            shared += sum(b["dropped"] for b in batches) * world  # about: ranks' rows are alike
            flops += sum(step_flops.flops(b["input_ids"].shape[1], b["num_targets"], attention_pairs(b["position_ids"]))
                         for b in batches)  # this process's own work
            elapsed = elapsed_before + time.perf_counter() - t0
            tps = seen / elapsed if elapsed > 0 else 0.0
            mfu = flops / elapsed / peak if elapsed > 0 else 0.0
            done = step + 1
            if accelerator.is_main_process:
                logger.log({"stage": stage, "task": task, "split": "train", "step": done, "loss": loss_value,
                            "lr": scheduler.get_last_lr()[0], "tokens_per_s": tps, "mfu": mfu, "tokens": tokens,
                            "seen": seen, "flops": flops, "time": elapsed})
            if bar is not None:
                progress.update(bar, completed=done, loss=loss_value, tps=tps, mfu=mfu)
            last = done == n_steps
            compare = spec.keep_best and best.step > 0  # the last step's loss decides between it and the best
            if eval_examples and (done % every == 0 and not last or last and (eval_at_end or compare)):
                eval_loss, _ = evaluate_loss(model, eval_examples, spec, accelerator)
                if accelerator.is_main_process and (eval_at_end or not last):  # else the stage logs its own
                    logger.log({"stage": stage, "task": task, "split": "eval", "step": done, "loss": eval_loss,
                                "tokens": tokens, "time": elapsed})
                best.update(eval_loss, done, raw_model, save=spec.keep_best and not last and accelerator.is_main_process)
                accelerator.wait_for_everyone()
                if spec.patience and best.stale >= spec.patience and not last:
                    if progress is not None and accelerator.is_main_process:
                        progress.console.print(f"{label}: stopped early at step {done} of {n_steps}: held-out loss "
                                               f"{best.loss:.4f} at step {best.step}, not lower in {best.stale} "
                                               "evaluations since (train.patience)", highlight=False)
                    n_steps = done
                    if bar is not None:
                        progress.update(bar, total=done)
            if done % spec.checkpoint_every == 0 and done < n_steps:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    _save_checkpoint(ckpt_dir, done, raw_model, optimizer, scheduler,
                                     {"step": done, "tokens": tokens, "seen": seen, "shared": shared, "flops": flops,
                                      "loss": loss_value, "elapsed": elapsed,
                                      "best": [best.loss, best.step, best.stale]})
                accelerator.wait_for_everyone()
            if done == n_steps:
                break
        if spec.keep_best and best.step and best.step != n_steps and best.path.exists():
            best.restore(raw_model)
            if progress is not None and accelerator.is_main_process:
                progress.console.print(f"{label}: kept the weights of step {best.step}: held-out loss {best.loss:.4f}, "
                                       f"{eval_loss:.4f} at step {n_steps} (train.keep_best)", highlight=False)
            eval_loss = best.loss
            if accelerator.is_main_process:
                logger.log({"stage": stage, "task": task, "split": "best", "step": best.step, "loss": best.loss,
                            "tokens": tokens, "time": elapsed_before + time.perf_counter() - t0})

    wall = elapsed_before + time.perf_counter() - t0
    accelerator.free_memory()
    return LoopResult(steps=n_steps, tokens=tokens, seen_tokens=seen, wall_s=wall,
                      tokens_per_s=seen / wall if wall > 0 else 0.0, shared_tokens=shared, final_loss=loss_value,
                      eval_loss=eval_loss, mfu=flops / wall / peak if wall > 0 else 0.0)
