"""Do the defaults fit a user's small data? A recipe with only `base_model` and one
classification task, every option at its default, trained on 100, 500 and 2,000 records of a
news-topic set built here (bench/topics.py), scored on 400 held-out records it never saw;
then the same data with tuned settings, to show how far the defaults are from the best found.

Arms (each a `key=value` override list on that recipe; `defaults` has none):
  defaults      what a user gets
  one-pass      epochs=1 keep_best=false: the defaults before they adapted to the data size
  lr=X          the defaults with train.lr=X
  steps=N       max_steps=N without early stopping
Each run is its own process. Writes bench/results/small-data-DATE-CPUMODEL.json.

Run:  .venv/bin/python bench/small_data.py [--sizes 100 500 2000] [--arms defaults one-pass lr=1e-3 ...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import topics  # noqa: E402

HELDOUT = 400
AGENTMILL = str(Path(sys.executable).parent / "agentmill")
ARMS = {
    "defaults": [],
    "one-pass": ["train.epochs=1", "train.keep_best=false"],
}


def arm_overrides(arm: str) -> list[str]:
    if arm in ARMS:
        return ARMS[arm]
    key, _, value = arm.partition("=")
    if key == "lr":
        return [f"train.lr={value}"]
    if key == "steps":
        return [f"train.max_steps={value}", "train.patience=null"]
    raise SystemExit(f"unknown arm {arm!r}: defaults, one-pass, lr=X or steps=N")


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def run_arm(work: Path, size: int, arm: str, heldout: Path) -> dict:
    out = work / f"run-{size}-{re.sub(r'[^A-Za-z0-9.]+', '_', arm)}"
    cmd = [AGENTMILL, "train", str(work / f"recipe-{size}.yaml"), "--out", str(out),
           *arm_overrides(arm)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    train_s = time.perf_counter() - started
    if done.returncode:
        return {"size": size, "arm": arm, "error": done.stderr[-2000:]}
    subprocess.run([AGENTMILL, "eval", str(out), "--data", str(heldout), "--format",
                    "classification", "--task", "topic", "--all-records"], capture_output=True, text=True,
                   check=True)
    ev = json.loads((out / "eval.json").read_text())["tasks"]
    manifest = json.loads((out / "manifest.json").read_text())
    stage = manifest["stages"][0]
    return {"size": size, "arm": arm, "overrides": arm_overrides(arm),
            "heldout_accuracy": ev[f"topic:{heldout.name}"]["accuracy"],
            "own_split_accuracy": ev["topic"]["accuracy"], "steps": stage["steps"], "train_s": round(train_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000])
    ap.add_argument("--arms", nargs="+", default=["defaults", "one-pass", "lr=1e-3", "lr=2e-3", "steps=300"])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "small-data")
    args = ap.parse_args()
    from agentmill.hardware import cpu_model

    args.work.mkdir(parents=True, exist_ok=True)
    held = topics.records(HELDOUT, seed=999)
    heldout = args.work / "heldout.jsonl"
    write_jsonl(heldout, held)
    results = []
    for size in args.sizes:
        write_jsonl(args.work / f"train-{size}.jsonl", topics.records(size, seed=1, exclude={r["text"] for r in held}))
        (args.work / f"recipe-{size}.yaml").write_text(
            f"base_model: smollm2-135m-instruct\nstages:\n  - stage: finetune\n    tasks:\n"
            f"      - {{name: topic, data: {{path: train-{size}.jsonl, format: classification}}}}\n")
        for arm in args.arms:
            r = run_arm(args.work, size, arm, heldout)
            results.append(r)
            print(json.dumps(r), flush=True)
    print(f"\n{'size':>5}  {'arm':<12} {'held-out acc':>12} {'steps':>6} {'train s':>8}")
    for r in results:
        if "error" in r:
            print(f"{r['size']:>5}  {r['arm']:<12} failed: {r['error'][-200:]}")
            continue
        print(f"{r['size']:>5}  {r['arm']:<12} {r['heldout_accuracy']:>12.3f} {r['steps']:>6} {r['train_s']:>8.0f}")
    stamp = datetime.date.today().isoformat()
    cpu = re.sub(r"[^A-Za-z0-9]+", "-", cpu_model()).strip("-")
    path = HERE / "results" / f"small-data-{stamp}-{cpu}.json"
    path.write_text(json.dumps({"cpu": cpu_model(), "heldout": HELDOUT, "results": results}, indent=1))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
