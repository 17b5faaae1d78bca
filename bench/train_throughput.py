"""Tokens/s of one LoRA training step (fwd + bwd + AdamW) on PACKED rows, SmolLM2-135M, CPU.

A packed row is [1, T]: several examples (lengths ~60-200) back to back, `position_ids`
restarting at 0 at each example, no attention mask, `use_cache=False`, loss only at the
trained positions (`logits_to_keep=idx`), exactly like `agentmill.train.loop.row_loss`.
tok/s counts all T tokens of the row (seen tokens); half of each example is trained.

Compared (one factor at a time around the baseline "sdpa, T=1024, fp32 weights + autocast"):
  attention     sdpa          transformers' SDPA; packed position_ids -> [T, T] block-diagonal
                              boolean mask -> CPU flash kernel with a mask, K/V repeated
                eager         transformers' eager attention with the same mask
                varlen        (this file) CPU flash SDPA per example, is_causal, no mask
                varlen_eager  (this file) per example: matmul + causal mask + fp32 softmax
                              Both varlen kinds read the example boundaries from position_ids;
                              registered with AttentionInterface under a name without a mask
                              function, so transformers builds no [T, T] mask at all.
  row length    T = 256, 512, 1024
  dtypes        fp32+ac   fp32 weights, torch.autocast("cpu", bf16)
                fp32      fp32 weights, no autocast
                bf16b+ac  base weights stored bf16, LoRA fp32, autocast
                bf16b     base weights bf16, LoRA fp32, no autocast (peft casts x to fp32 for LoRA)
                bf16all   base and LoRA in bf16, no autocast (AdamW on bf16 params: imprecise)
  threads       torch.set_num_threads(1) vs torch's default (2 = the cores here)
  layers        LoRA on all 30 layers vs the top half only (peft layers_to_transform)
  compile       --compile: per-decoder-layer torch.compile(dynamic=True); the first step
                (column "1st step s") includes the compile time

Then a correctness section: for each attention x dtype setup, one packed row vs each of
its examples run alone (max/mean |logit diff|, argmax agreement; the |alone - fp32 sdpa|
column gives the size of plain bf16 rounding for scale), plus, in fp32, the LoRA gradients
of the packed row vs the sum of the examples' gradients.

Run (≈ 8-10 min on 2 quiet cores; the "others" column shows CPU taken by other processes):
    .venv/bin/python bench/train_throughput.py                      # full suite + correctness
    .venv/bin/python bench/train_throughput.py --suite quick        # T=1024 only
    .venv/bin/python bench/train_throughput.py --only varlen_eager  # configs whose name contains it
    .venv/bin/python bench/train_throughput.py --suite none         # correctness only
    .venv/bin/python bench/train_throughput.py --no-check --steps 3
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from agentmill.model.attention import packed_attention_forward
from agentmill.model.load import load_model

MODEL = "smollm2-135m-instruct"
LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


# ---------------------------------------------------------------- packed rows

def make_row(T: int, seed: int, vocab: int, lo: int = 60, hi: int = 200, trained_frac: float = 0.5) -> dict:
    """One packed row of exactly T tokens: examples of random length lo..hi (the last one cut).

    Trained positions: the last `trained_frac` of each example (an assistant reply after a
    prompt), targets shifted within the example, -100 elsewhere (as in data.pack.collate).
    """
    g = torch.Generator().manual_seed(seed)
    lengths: list[int] = []
    while sum(lengths) < T:
        lengths.append(min(int(torch.randint(lo, hi + 1, (1,), generator=g)), T - sum(lengths)))
    ids = torch.randint(3, vocab, (T,), generator=g)
    targets = torch.full((T,), -100)
    start = 0
    for n in lengths:
        first = start + n - 1 - max(1, int(n * trained_frac))
        for t in range(max(first, start), start + n - 1):
            targets[t] = ids[t + 1]
        start += n
    pos = torch.cat([torch.arange(n) for n in lengths])
    return {"input_ids": ids[None], "position_ids": pos[None], "targets": targets[None], "lengths": lengths}


# ---------------------------------------------------------------- varlen attention

def _segments(kwargs) -> list[tuple[int, int]]:
    pos = kwargs["position_ids"][0]
    starts = (pos == 0).nonzero().squeeze(-1).tolist() + [pos.shape[0]]
    return [(s, e) for s, e in zip(starts[:-1], starts[1:]) if e > s]


def _repeat_kv(query, key, value):
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # once for the whole row (faster on CPU than enable_gqa per segment)
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    return key, value


def varlen_sdpa_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """SDPA (CPU flash kernel) run separately on each packed example: causal, no mask.

    Cost sum(L_i^2) instead of T^2. Registered under a name that has no mask function, so
    transformers builds no mask and passes `position_ids` (restarting at 0) down to here.
    """
    assert query.shape[0] == 1 and query.shape[2] == key.shape[2], "varlen: one packed row, no cache"
    key, value = _repeat_kv(query, key, value)
    outs = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e],
                                           is_causal=e - s > 1, scale=scaling) for s, e in _segments(kwargs)]
    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    return out.transpose(1, 2).contiguous(), None


# per example: matmul + causal mask + fp32 softmax; this study's winner became the library's
# packed attention (agentmill/model/attention.py), so the bench measures that very function
varlen_eager_attention = packed_attention_forward


def register_varlen():
    from transformers import AttentionInterface

    AttentionInterface.register("varlen", varlen_sdpa_attention)
    AttentionInterface.register("varlen_eager", varlen_eager_attention)


# ---------------------------------------------------------------- configurations

@dataclass(frozen=True)
class Cfg:
    attn: str = "sdpa"          # sdpa | eager | varlen | varlen_eager
    T: int = 1024
    dtype: str = "fp32+ac"      # fp32+ac | fp32 | bf16b+ac | bf16b | bf16all
    threads: int = 0            # 0: torch default
    layers: str = "all"         # all | top
    compile: bool = False

    @property
    def name(self) -> str:
        return (f"{self.attn} T{self.T} {self.dtype}" + (f" thr{self.threads}" if self.threads else "")
                + (" top-half" if self.layers == "top" else "") + (" compiled" if self.compile else ""))


BASE = Cfg()
ATTNS = ("sdpa", "eager", "varlen", "varlen_eager")


def suite(name: str, best_attn: str = "varlen_eager") -> list[Cfg]:
    cfgs = []
    if name in ("full", "quick"):
        Ts = (256, 512, 1024) if name == "full" else (1024,)
        cfgs += [Cfg(attn=a, T=T) for T in Ts for a in ATTNS]  # 1 + 2
        for attn in ("sdpa", best_attn):  # 3
            cfgs += [Cfg(attn=attn, dtype=d) for d in ("fp32", "bf16b+ac", "bf16b", "bf16all")]
        if name == "full":
            cfgs += [Cfg(attn=best_attn, threads=1)]  # 4 (torch's default here is 2 = the cores)
            cfgs += [Cfg(attn=best_attn, T=512, dtype="bf16b+ac")]
        cfgs += [Cfg(layers="top"), Cfg(attn=best_attn, layers="top"),  # 6
                 Cfg(attn=best_attn, dtype="bf16b+ac", layers="top")]
    return list(dict.fromkeys(cfgs))


def build(base, cfg: Cfg):
    """A fresh LoRA model for `cfg` (peft modifies the base in place, so copy it)."""
    from peft import LoraConfig, get_peft_model

    model = copy.deepcopy(base)
    model.config._attn_implementation = cfg.attn
    if cfg.dtype.startswith("bf16"):
        model.to(torch.bfloat16)
    n = model.config.num_hidden_layers
    # the list is what "all-linear" selects on Llama; peft needs a list for layers_to_transform
    lora = LoraConfig(r=16, lora_alpha=32, target_modules=LINEAR,
                      layers_to_transform=list(range(n // 2, n)) if cfg.layers == "top" else None)
    # autocast_adapter_dtype=True (peft's default) keeps LoRA weights fp32 on a bf16 base
    model = get_peft_model(model, lora, autocast_adapter_dtype=cfg.dtype != "bf16all")
    model.train()
    return model


def autocast_of(cfg: Cfg):
    return torch.autocast("cpu", dtype=torch.bfloat16) if cfg.dtype.endswith("+ac") else contextlib.nullcontext()


def row_loss(model, row, ctx):
    targets = row["targets"][0]
    keep = (targets != -100).nonzero().squeeze(-1)
    with ctx:
        out = model(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False,
                    logits_to_keep=keep)
        loss = F.cross_entropy(out.logits[0].float(), targets[keep], reduction="sum")
    return loss, keep.numel()


# ---------------------------------------------------------------- timing

def cpu_busy() -> tuple[float, float]:
    """(seconds of CPU used by the whole machine, by this process) since boot / start."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    machine = (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    t = os.times()
    return machine, t.user + t.system



def time_config(base, cfg: Cfg, steps: int, warmup: int) -> dict:
    default_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        model = build(base, cfg)
        if cfg.compile:  # regional: one graph per decoder layer (whole-model compile took > 10 min)
            for layer in model.base_model.model.model.layers:
                layer.compile(dynamic=True)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)
        vocab = base.config.vocab_size
        times = []
        for i in range(warmup + steps):
            row = make_row(cfg.T, seed=1000 + i, vocab=vocab)
            if i == warmup:
                busy0, t0 = cpu_busy(), time.perf_counter()
            t = time.perf_counter()
            loss, n = row_loss(model, row, autocast_of(cfg))
            (loss / n).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t)
        busy1, wall = cpu_busy(), time.perf_counter() - t0
        # share of the machine's CPUs used by OTHER processes while timing (0 = quiet)
        others = ((busy1[0] - busy0[0]) - (busy1[1] - busy0[1])) / (wall * os.cpu_count())
        del model, opt
    finally:
        torch.set_num_threads(default_threads)
    s = statistics.median(times[warmup:])
    return {"s_step": s, "tok_s": cfg.T / s, "first_s": times[0], "others": max(others, 0.0),
            "loss": loss.item() / n}


# ---------------------------------------------------------------- correctness

def logits_of(model, ids, pos, ctx):
    with torch.no_grad(), ctx:
        return model(input_ids=ids, position_ids=pos, use_cache=False).logits[0].float()


def check_isolation(base, dtype: str, ref: dict | None) -> list[dict]:
    """For each attention: packed row vs each example alone (max and mean |logit diff|), and
    the alone logits vs fp32 sdpa (the size of plain bf16 rounding, for scale). In fp32 also
    the LoRA gradients of the packed row vs the sum of the examples' gradients."""
    torch.manual_seed(0)  # same LoRA A init in every build
    model = build(base, Cfg(dtype=dtype))
    torch.manual_seed(1)
    for n, p in model.named_parameters():  # non-zero LoRA B so LoRA is part of the function
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.02)
    model.eval()
    ctx = autocast_of(Cfg(dtype=dtype))
    row = make_row(400, seed=7, vocab=base.config.vocab_size)
    ids, pos, lengths = row["input_ids"], row["position_ids"], row["lengths"]
    results = []
    for attn in ATTNS:
        model.config._attn_implementation = attn  # read at every forward
        packed = logits_of(model, ids, pos, ctx)
        alone, s = [], 0
        for n in lengths:
            alone.append(logits_of(model, ids[:, s:s + n], pos[:, s:s + n], ctx))
            s += n
        alone = torch.cat(alone)
        d = (packed - alone).abs()
        res = {"attn": attn, "dtype": dtype, "max": d.max().item(), "mean": d.mean().item(),
               "argmax": (packed.argmax(-1) == alone.argmax(-1)).float().mean().item(),
               "lengths": lengths, "alone": alone,
               "vs_ref": (alone - ref["alone"]).abs().max().item() if ref else 0.0}
        ref = ref or res
        if dtype == "fp32":  # gradients: one packed backward == sum over the examples alone
            params = [p for p in model.parameters() if p.requires_grad]

            def grads(fn):
                for p in params:
                    p.grad = None
                fn()
                return torch.cat([p.grad.flatten() for p in params])

            def packed_bwd():
                row_loss(model, row, ctx)[0].backward()

            def alone_bwd():
                s = 0
                for n in lengths:
                    sub = {k: row[k][:, s:s + n] for k in ("input_ids", "position_ids", "targets")}
                    row_loss(model, sub, ctx)[0].backward()
                    s += n

            g1, g2 = grads(packed_bwd), grads(alone_bwd)
            res["grad_rel"] = ((g1 - g2).norm() / g2.norm()).item()
        results.append(res)
    return results


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="full", choices=["full", "quick", "none"])
    ap.add_argument("--only", default="", help="comma-separated: run only configs whose name contains one of them")
    ap.add_argument("--best-attn", default="varlen_eager", help="attention used for the dtype/thread/layer variants")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per config (median reported)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="also time per-layer torch.compile (sdpa and best attn, bf16b+ac)")
    ap.add_argument("--no-check", action="store_true", help="skip the correctness section")
    args = ap.parse_args()

    register_varlen()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")
    base = load_model(MODEL)  # fp32, sdpa
    base.requires_grad_(False)

    cfgs = suite(args.suite, args.best_attn)
    if args.compile:
        cfgs += [Cfg(attn="sdpa", dtype="bf16b+ac", compile=True), Cfg(attn=args.best_attn, dtype="bf16b+ac", compile=True)]
    cfgs = [c for c in cfgs if any(o.strip() in c.name for o in args.only.split(","))]

    if cfgs:
        print(f"\n{'config':38s} {'tok/s':>7s} {'s/step':>7s} {'vs base':>8s} {'1st step s':>10s} {'others':>6s} {'loss':>6s}")
        results = {}
        for cfg in cfgs:
            r = time_config(base, cfg, args.steps, args.warmup + (1 if cfg.compile else 0))
            results[cfg] = r
            rel = f"{r['tok_s'] / results[BASE]['tok_s']:.2f}x" if BASE in results else "-"
            print(f"{cfg.name:38s} {r['tok_s']:7.0f} {r['s_step']:7.2f} {rel:>8s} {r['first_s']:10.1f} "
                  f"{r['others']:6.0%} {r['loss']:6.2f}", flush=True)
        print("others: share of the CPUs used by other processes while timing; above ~10% the row is pessimistic")

    if not args.no_check:
        print("\ncorrectness: a packed row of 400 tokens vs each example alone (logits, no mask given)")
        print(f"{'attn':12s} {'dtype':9s} {'max|packed-alone|':>18s} {'mean':>9s} {'argmax same':>11s} "
              f"{'max|alone-fp32 sdpa|':>21s} {'grad rel diff':>14s}")
        ref = None
        for dtype in ("fp32", "fp32+ac", "bf16b"):
            for r in check_isolation(base, dtype, ref):
                if ref is None:
                    ref = r
                    print(f"  example lengths {r['lengths']}")
                g = f"{r['grad_rel']:.1e}" if "grad_rel" in r else "-"
                print(f"{r['attn']:12s} {dtype:9s} {r['max']:18.2e} {r['mean']:9.1e} {r['argmax']:11.3f} "
                      f"{r['vs_ref']:21.2e} {g:>14s}", flush=True)

if __name__ == "__main__":
    main()
