"""Do the defaults fit a user's small data? A recipe with only `base_model` and one
classification task, every option at its default, trained on 100, 500 and 2,000 records of a
news-topic set built here (bench/topics.py), scored on 400 held-out records it never saw;
then the same data with other settings, to show how far the defaults are from the best found.

Arms:
  defaults             `agentmill train` on the bare recipe (classifier auto: embedding)
  generative           the same with classifier: generative (the model writes the label;
                       adaptive steps: train.min_steps, keep_best, patience)
  generative-one-pass  generative with epochs=1 keep_best=false: the defaults before they adapted
  generative-lr=X      generative with train.lr=X
  embedding-l2=X       the embedding classifier fitted here with another L2 penalty (default 1e-3)
  tfidf                reference: TF-IDF (1-2 grams) + logistic regression (scikit-learn), if installed
The `agentmill train` arms run in their own processes. Writes
bench/results/small-data-DATE-CPUMODEL.json.

Run:  .venv/bin/python bench/small_data.py [--sizes 100 500 2000] [--arms defaults generative ...]
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
GENERATIVE = ["stages.0.tasks.0.classifier=generative"]


def arm_overrides(arm: str) -> list[str] | None:
    """The `agentmill train` overrides of an arm; None for the arms fitted in this process."""
    if arm == "defaults":
        return []
    if arm == "generative":
        return GENERATIVE
    if arm == "generative-one-pass":
        return GENERATIVE + ["train.epochs=1", "train.keep_best=false"]
    if arm.startswith("generative-lr="):
        return GENERATIVE + [f"train.lr={arm.split('=', 1)[1]}"]
    if arm.startswith("embedding-l2=") or arm == "tfidf":
        return None
    raise SystemExit(f"unknown arm {arm!r} (see --help)")


def in_process(arm: str, train: list[dict], held: list[dict]) -> dict:
    started = time.perf_counter()
    texts, labels = [r["text"] for r in train], [r["label"] for r in train]
    if arm == "tfidf":
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
        except ImportError:
            return {"skipped": "scikit-learn is not installed"}
        vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        model = LogisticRegression(C=10, max_iter=2000).fit(vectors.fit_transform(texts), labels)
        predicted = model.predict(vectors.transform([r["text"] for r in held]))
    else:
        from agentmill.model.text_classifier import EmbeddingClassifier

        classifier = EmbeddingClassifier.fit(texts, labels, l2=float(arm.split("=", 1)[1]))
        predicted = classifier.predict([r["text"] for r in held])
    accuracy = sum(p == r["label"] for p, r in zip(predicted, held)) / len(held)
    return {"heldout_accuracy": accuracy, "steps": 0, "train_s": round(time.perf_counter() - started, 1)}


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def run_arm(work: Path, size: int, arm: str, heldout: Path) -> dict:
    """An `agentmill train` arm: train, then `agentmill eval --data` on the held-out file."""
    out = work / f"run-{size}-{re.sub(r'[^A-Za-z0-9.]+', '_', arm)}"
    cmd = [AGENTMILL, "train", str(work / f"recipe-{size}.yaml"), "--out", str(out), *arm_overrides(arm)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    train_s = time.perf_counter() - started
    if done.returncode:
        return {"error": done.stderr[-2000:]}
    subprocess.run([AGENTMILL, "eval", str(out), "--data", str(heldout), "--format", "classification", "--task",
                    "topic", "--all-records"], capture_output=True, text=True, check=True)
    ev = json.loads((out / "eval.json").read_text())["tasks"]
    stage = json.loads((out / "manifest.json").read_text())["stages"][0]
    return {"overrides": arm_overrides(arm), "heldout_accuracy": ev[f"topic:{heldout.name}"]["accuracy"],
            "own_split_accuracy": ev["topic"]["accuracy"], "steps": stage["steps"], "train_s": round(train_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 2000])
    ap.add_argument("--arms", nargs="+", default=["defaults", "embedding-l2=1e-4", "embedding-l2=1e-2", "tfidf"])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "small-data")
    args = ap.parse_args()
    from agentmill.hardware import cpu_model

    args.work.mkdir(parents=True, exist_ok=True)
    held = topics.records(HELDOUT, seed=999)
    heldout = args.work / "heldout.jsonl"
    write_jsonl(heldout, held)
    results = []
    for size in args.sizes:
        train = topics.records(size, seed=1, exclude={r["text"] for r in held})
        write_jsonl(args.work / f"train-{size}.jsonl", train)
        (args.work / f"recipe-{size}.yaml").write_text(
            f"base_model: smollm2-135m-instruct\nstages:\n  - stage: finetune\n    tasks:\n"
            f"      - {{name: topic, data: {{path: train-{size}.jsonl, format: classification}}}}\n")
        for arm in args.arms:
            if arm_overrides(arm) is None:
                r = {"size": size, "arm": arm, **in_process(arm, train, held)}
            else:
                r = {"size": size, "arm": arm, **run_arm(args.work, size, arm, heldout)}
            results.append(r)
            print(json.dumps(r), flush=True)
    print(f"\n{'size':>5}  {'arm':<20} {'held-out acc':>12} {'steps':>6} {'train s':>8}")
    for r in results:
        if "heldout_accuracy" not in r:
            print(f"{r['size']:>5}  {r['arm']:<20} {r.get('skipped') or 'failed: ' + r['error'][-300:]}")
            continue
        print(f"{r['size']:>5}  {r['arm']:<20} {r['heldout_accuracy']:>12.3f} {r['steps']:>6} {r['train_s']:>8.0f}")
    stamp = datetime.date.today().isoformat()
    from run import cpu_slug

    cpu = cpu_slug(cpu_model())
    path = HERE / "results" / f"small-data-{stamp}-{cpu}.json"
    path.write_text(json.dumps({"cpu": cpu_model(), "heldout": HELDOUT, "results": results}, indent=1))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
