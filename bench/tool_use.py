"""Tool use that generalises: tools a model never trained on, scored against the untrained base model.

The held-out set is generated (data/toolgen.py) from UNSEEN_TOOLS only: domains, tool names and
parameters that no training record shows. Each record offers one to four of them with one
question; about a fifth offer none that fits. Scored on the same records:
  base            the run's base model, untrained (as `agentmill serve` would run it without a run)
  backbone        the run's backbone with no task adapter (what a request without a task gets)
  TASK            each task adapter of the run
Metrics: unseen_tool_exact (the exact call, schema defaults filled), no_tool_when_none_fits,
asks_when_values_missing (no call when the question says none of the tool's required values),
tool_call_parsed (calls written that parse into an offered tool); each arm decoded with tool calls
held to the offered schemas (model/constrain.py, the default) and without. Writes
bench/results/tool-use-DATE-CPUMODEL-RUN.json.

Run:  .venv/bin/python bench/tool_use.py RUN_DIR [--records 150] [--seed 42]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    from accelerate import Accelerator

    from agentmill.data.toolgen import general_tool_use
    from agentmill.eval.evaluate import evaluate_general_tools
    from agentmill.hardware import choose_precision
    from agentmill.model.load import load_model
    from agentmill.model.run import RunModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--records", type=int, default=150)
    parser.add_argument("--seed", type=int, default=42, help="the generator's seed (a run's own: its recipe seed)")
    parser.add_argument("--no-base", action="store_true", help="skip the untrained base model")
    parser.add_argument("--only", nargs="*", help="score only these arms (base, backbone, task names)")
    parser.add_argument("--misses", action="store_true",
                        help="also write every record's question, gold answer and output (constrained arms)")
    args = parser.parse_args()

    precision = choose_precision("auto")
    accelerator = Accelerator(mixed_precision=precision.accelerate, cpu=not torch.cuda.is_available())
    records = general_tool_use(args.records, "unseen", args.seed)
    run = RunModel.load(args.run, dtype=torch.float32)
    results: dict[str, dict] = {}
    misses: dict[str, list] = {}

    def score(name, model):
        for constrain in (True, False):
            arm = name if constrain else f"{name} (unconstrained)"
            started = time.perf_counter()
            outcomes = [] if args.misses and constrain else None
            results[arm] = evaluate_general_tools(model, run.tokenizer, records, accelerator=accelerator,
                                                  constrain=constrain, outcomes=outcomes)
            if outcomes is not None:
                misses[arm] = [o for o in outcomes if not o["right"]]
            results[arm]["wall_s"] = round(time.perf_counter() - started, 1)
            print(f"{arm:<34} " + "  ".join(f"{k} {v:.3f}" for k, v in results[arm].items()
                                            if not k.endswith("records")), flush=True)

    def wanted(arm: str) -> bool:
        return args.only is None or arm in args.only

    if not args.no_base and wanted("base"):
        base = load_model(run.manifest["base_model"], dtype=torch.float32)
        score("base", base)
        del base
    run.use_task(None)
    if wanted("backbone"):
        score("backbone", run.model)
    for task in run.chat_tasks():
        if run.has_adapter(task) and wanted(task):
            run.use_task(task)
            score(task, run.model)

    cpu = cpu_model()
    out = HERE / "results" / f"tool-use-{datetime.date.today()}-{re.sub(r'[^A-Za-z0-9]+', '-', cpu).strip('-')}-{args.run.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cpu": cpu, "precision": precision.name, "run": str(args.run),
                               "records": args.records, "seed": args.seed, "results": results,
                               **({"misses": misses} if misses else {})}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
