"""`make quality`: does the example's agent hold up across seeds? Trains the finance-advisor
recipe (profile quick, what `make demo` runs) with 3 seeds, scores every held-out record of
every task (not the demo's 32), plays the demo's self-checking conversation on each run, and
reports each metric as mean and min-max against the quality issue's targets.

Each seed trains in its own process (nothing carried over between runs). Writes
bench/results/quality-DATE-CPUMODEL.json.

Run:  .venv/bin/python bench/quality.py [--seeds 0 1 2] [--profile quick] [--keep DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "finance-advisor"

# (task, metric): (target mean, target min); None: no bound on that side
TARGETS = {
    ("intent", "accuracy"): (0.95, 0.92),
    ("router", "accuracy"): (0.97, None),
    ("customer_service", "tool_call_exact"): (0.95, 0.90),
    ("finance_advisor", "tool_call_exact"): (0.95, 0.90),
    ("customer_service", "tool_answer_match"): (0.95, None),
    ("finance_advisor", "tool_answer_match"): (0.95, None),
    ("dialogue", "memory_recall"): (0.95, None),
    ("customer_service", "memory_recall"): (0.95, None),
}
REPORTED = list(TARGETS) + [("finance_qa", "token_f1"), ("tutoring", "eval_loss"), ("domain", "perplexity")]


def one_seed(seed: int, profile: str, out: Path, reuse: bool = False) -> dict:
    """Train, evaluate every held-out record, play the demo script; runs in its own process.
    `reuse`: a finished run already in `out` trained from this very recipe is scored, not trained
    again (its training time is then the sum of its stages' wall times, from another process)."""
    from rich.console import Console

    from agentmill.config import dump_recipe, load_recipe
    from agentmill.eval.run_eval import evaluate_run
    from agentmill.eval.script import load_script
    from agentmill.model.run import RunModel
    from agentmill.train.pipeline import partial_dir, train_recipe
    from agentmill.ui.chat import checked_chat

    console = Console(stderr=True)
    recipe = load_recipe(EXAMPLE / "recipe.yaml", [f"profile={profile}", f"seed={seed}"])
    reused = reuse and (out / "manifest.json").exists() and (out / "recipe.yaml").read_text() == dump_recipe(recipe)
    if reused:
        run_dir = out
        stages = json.loads((out / "manifest.json").read_text())["stages"]
        train_s = sum(s.get("wall_s", 0) + sum(t.get("wall_s", 0) for t in (s.get("per_task") or {}).values())
                      for s in stages)
        console.print(f"seed {seed}: {out} was trained from this recipe: scored, not trained again")
    else:
        for old in (out, partial_dir(out)):
            if old.exists():
                shutil.rmtree(old)
        started = time.perf_counter()
        run_dir = train_recipe(recipe, out, console=console)
        train_s = time.perf_counter() - started
    started = time.perf_counter()
    full = evaluate_run(run_dir, console=console, all_records=True, out_name="eval-all.json")
    eval_s = time.perf_counter() - started
    played = checked_chat(RunModel.load(run_dir), load_script(EXAMPLE / "demo_chat.yaml"), console=console)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {"seed": seed, "train_s": round(train_s, 1), "reused_run": reused, "eval_all_s": round(eval_s, 1),
            "precision": manifest.get("precision"), "tasks": full["tasks"],
            "demo": {"passed": sum(t["ok"] for t in played), "turns": played}}


def summarise(runs: list[dict]) -> dict:
    table = {}
    for task, metric in REPORTED:
        values = [r["tasks"].get(task, {}).get(metric) for r in runs]
        values = [v for v in values if isinstance(v, (int, float))]
        if not values:
            continue
        row = {"mean": round(statistics.fmean(values), 4), "min": round(min(values), 4),
               "max": round(max(values), 4), "values": [round(v, 4) for v in values],
               "records": [r["tasks"].get(task, {}).get(_count_key(metric)) for r in runs]}
        target = TARGETS.get((task, metric))
        if target:
            mean_t, min_t = target
            row["target"] = {"mean": mean_t, "min": min_t}
            row["met"] = row["mean"] >= mean_t and (min_t is None or row["min"] >= min_t)
        table[f"{task}.{metric}"] = row
    demo = [r["demo"]["passed"] for r in runs]
    turns = len(runs[0]["demo"]["turns"]) if runs else 0
    table["demo.turns_passed"] = {"values": demo, "of": turns, "met": all(d == turns for d in demo)}
    return table


def _count_key(metric: str) -> str:
    return {"tool_call_exact": "tool_records", "tool_answer_match": "tool_answer_records",
            "memory_recall": "memory_records"}.get(metric, "records")


def print_table(table: dict, runs: list[dict]) -> None:
    print(f"\n{'metric':<36} {'mean':>7} {'min':>7} {'max':>7}  target        met")
    for name, row in table.items():
        if name == "demo.turns_passed":
            print(f"{'demo turns ✓ per seed':<36} {' / '.join(map(str, row['values'])):>23}  all {row['of']}"
                  f"          {'yes' if row['met'] else 'NO'}")
            continue
        target = row.get("target")
        t = f">= {target['mean']}" + (f" ({target['min']})" if target and target["min"] else "") if target else ""
        met = ("yes" if row["met"] else "NO") if "met" in row else ""
        print(f"{name:<36} {row['mean']:>7.3f} {row['min']:>7.3f} {row['max']:>7.3f}  {t:<13} {met}")
    for r in runs:
        trained = "trained earlier" if r.get("reused_run") else "trained"
        print(f"seed {r['seed']}: {trained} in {r['train_s']:.0f} s, every record scored in {r['eval_all_s']:.0f} s, "
              f"demo {r['demo']['passed']}/{len(r['demo']['turns'])} ✓")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--keep", type=Path, default=ROOT / "runs" / "quality", help="Folder for the runs.")
    ap.add_argument("--reuse", action="store_true",
                    help="Score a finished run already in KEEP/seed-N that was trained from the same recipe "
                         "instead of training it again (a slow host can then train one seed per sitting).")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one seed in this process
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        args.result.write_text(json.dumps(one_seed(args.one, args.profile, args.keep / f"seed-{args.one}",
                                                   args.reuse)))
        return

    sys.path.insert(0, str(HERE))
    from run import cpu_slug, machine

    started = time.perf_counter()
    runs = []
    args.keep.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        result = args.keep / f"seed-{seed}.json"
        proc = subprocess.run([sys.executable, __file__, "--one", str(seed), "--profile", args.profile,
                               "--keep", str(args.keep), "--result", str(result)] + ["--reuse"] * args.reuse,
                              check=False)
        if proc.returncode != 0:
            sys.exit(f"seed {seed}: training or evaluation failed (exit {proc.returncode}); see above")
        runs.append(json.loads(result.read_text()))
    table = summarise(runs)
    print_table(table, runs)
    info = machine()
    out = {"date": datetime.date.today().isoformat(), "profile": args.profile, "seeds": args.seeds,
           "wall_s": round(time.perf_counter() - started, 1), "machine": info, "table": table, "runs": runs}
    cpu = cpu_slug(info["cpu"]["model"])
    path = HERE / "results" / f"quality-{out['date']}-{cpu}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwall time {out['wall_s'] / 60:.1f} min; written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
