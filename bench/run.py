"""`make bench` / `make bench-quick`: agentmill against the tools users would pick instead, side by
side, in one run, on this machine. Ratios measured in the same run are what count.

Sections (each in bench/): train_compare.py (TRL SFTTrainer defaults, TRL's best CPU setup,
agentmill), decode.py (transformers `generate`, agentmill, llama.cpp; mixed-adapter batch),
serve_compare.py (agentmill serve vs llama.cpp's OpenAI server at concurrency 1/4/16). A
section or an arm that cannot run here is recorded as skipped with the reason.

Writes bench/results/DATE-CPUMODEL.json (with the machine's facts and lscpu flags) and prints
the targets of the performance issue with the measured ratios.

Run:  .venv/bin/python bench/run.py [--quick] [--only train,decode,serve]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SECTIONS = ("train", "decode", "serve")


def machine() -> dict:
    from agentmill.hardware import environment

    info = environment()
    try:
        info["lscpu"] = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as err:
        info["lscpu"] = f"unavailable: {err}"
    return info


def run_section(name: str, quick: bool) -> dict:
    started = time.perf_counter()
    try:
        if name == "train":
            import train_compare as module
        elif name == "decode":
            import decode as module
        else:
            import serve_compare as module
        result = module.run(quick=quick)
    except Exception as err:  # noqa: BLE001 - a section that cannot run is reported, not fatal
        result = {"skipped": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=5)}
    result["section_s"] = round(time.perf_counter() - started, 1)
    return result


def _get(d: dict, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def targets(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(what, target, measured, met) for each target of the issue that this run measured."""
    rows = []
    t = results.get("train", {})
    ratios = t.get("ratios", {})

    def add(what, target, value, ok, fmt="{:.2f}x"):
        rows.append((what, target, "n/a" if value is None else fmt.format(value), None if value is None else ok))

    v = ratios.get("trained_tps_vs_trl_default")
    add("training trained-tokens/s vs TRL default", ">= 2x", v, v is not None and v >= 2)
    v = ratios.get("trained_tps_vs_trl_best")
    add("training trained-tokens/s vs TRL best", ">= 1.3x", v, v is not None and v >= 1.3)
    v = ratios.get("heldout_loss_rel_vs_trl_best")
    # quality must not pay for speed: lower is better, so only a loss more than 2 % above TRL's fails
    add("held-out loss vs TRL best", "<= +2 %", v, v is not None and v <= 0.02, "{:+.1%}")
    v = ratios.get("rss_vs_trl_best")
    add("training peak RSS vs TRL best", "<= 1x", v, v is not None and v <= 1)
    v = _get(t, "agentmill", "mfu")
    add("training MFU (agentmill)", ">= 25 %", v, v is not None and v >= 0.25, "{:.1%}")
    d = results.get("decode", {})
    transformers_b1 = _get(d, "arms", "transformers", "b1", "decode_tok_s")
    ours = [_get(d, "arms", arm, "b1", "decode_tok_s") for arm in ("agentmill", "agentmill-generate")]
    ours = max((v for v in ours if v), default=None)
    v = ours / transformers_b1 if ours and transformers_b1 else None
    add("decode batch 1 vs transformers generate (best agentmill path)", ">= 1.5x", v, v is not None and v >= 1.5)
    llama_b1 = _get(d, "arms", "llama.cpp", "b1", "decode_tok_s")
    v = ours / llama_b1 if ours and llama_b1 else None
    add("decode batch 1 vs llama.cpp (Q4_1)", "(stated)", v, True if v is not None else None)
    v = _get(d, "mixed_adapters", "sequential_over_mixed")
    add("mixed-adapter batch vs the sequential run (one request at a time)", ">= 3x", v, v is not None and v >= 3)
    v = _get(d, "mixed_adapters", "grouped_over_mixed")
    add("mixed-adapter batch vs grouped by adapter (bound: 3x)", "(stated)", v, True if v is not None else None)
    s = results.get("serve", {})
    ours, peer = _get(s, "arms", "agentmill", "c16", "tokens_per_s"), _get(s, "arms", "llama.cpp", "c16", "tokens_per_s")
    v = ours / peer if ours and peer else None
    add("serving generated tokens/s at 16 concurrent vs llama.cpp server", ">= 1x", v, v is not None and v >= 1)
    return rows


def print_targets(rows) -> None:
    width = max(len(r[0]) for r in rows)
    for what, target, measured, ok in rows:
        mark = {True: "met", False: "NOT met", None: "not measured"}[ok]
        print(f"  {what:<{width}}  {target:>10}  {measured:>9}  {mark}")


def cpu_slug(cpu: str) -> str:
    """A CPU model as the file-name part of a result: "Intel(R) Xeon(R) Processor" -> "Intel-R-Xeon-R-Processor"."""
    return re.sub(r"[^A-Za-z0-9]+", "-", cpu).strip("-")[:60] or "cpu"


def results_path(cpu: str) -> Path:
    return HERE / "results" / f"{datetime.date.today().isoformat()}-{cpu_slug(cpu)}.json"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (<= 10 minutes on 2 cores)")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ", ".join(SECTIONS))
    ap.add_argument("--out", help="result file (default bench/results/DATE-CPUMODEL.json)")
    args = ap.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    started = time.perf_counter()
    results = {"machine": machine(), "quick": args.quick, "started": datetime.datetime.now().isoformat(timespec="seconds")}
    cpu = results["machine"]["cpu"]["model"]
    print(f"bench on {cpu} ({', '.join(results['machine']['cpu']['flags'])}), "
          f"precision auto = {results['machine']['precision']['cpu']['name']}", flush=True)
    for name in wanted:
        print(f"\n== {name}", flush=True)
        results[name] = run_section(name, args.quick)
        if "skipped" in results[name]:
            print(f"  skipped: {results[name]['skipped']}")
        else:
            import importlib

            module = importlib.import_module({"train": "train_compare", "decode": "decode", "serve": "serve_compare"}[name])
            print(module.table(results[name]))
    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = [dict(zip(("what", "target", "measured", "met"), r)) for r in targets(results)]
    out = Path(args.out) if args.out else results_path(cpu)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\n== targets ({cpu}, {results['wall_s']:.0f} s)")
    print_targets(targets(results))
    print(f"\nresults written to {out}")


if __name__ == "__main__":
    main()
