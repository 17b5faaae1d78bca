"""`agentmill demo` / `make demo`: the finance-advisor example end to end on the embedded model."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from agentmill.errors import AgentmillError

EXAMPLE = Path("examples") / "finance-advisor"


def find_example() -> Path:
    """The example folder: under the current directory, else beside the source checkout."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (root / EXAMPLE / "recipe.yaml").exists():
            return root / EXAMPLE
    raise AgentmillError(f"cannot find {EXAMPLE}/recipe.yaml: run the demo from the agentmill checkout")


def run_demo(out: Path, profile: str, console) -> Path:
    from agentmill.config import load_recipe
    from agentmill.eval.report import print_eval_table
    from agentmill.model.run import RunModel
    from agentmill.train.pipeline import partial_dir, train_recipe
    from agentmill.eval.script import load_script
    from agentmill.paths import write_json_atomic
    from agentmill.ui.chat import checked_chat

    example = find_example()
    script = load_script(example / "demo_chat.yaml")  # a broken script fails before training, not after
    recipe = load_recipe(example / "recipe.yaml", [f"profile={profile}"] if profile else [])
    for old in (out, partial_dir(out)):  # the demo owns its output folder
        if old.exists():
            if old == out and not (old / "manifest.json").exists():
                raise AgentmillError(f"{out} exists and is not a run directory; pick another --out")
            shutil.rmtree(old)
    start = time.perf_counter()
    run_dir = train_recipe(recipe, out, console=console)
    train_s = time.perf_counter() - start

    console.rule("held-out evaluation")
    print_eval_table(json.loads((run_dir / "eval.json").read_text()), console)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for stage in manifest["stages"]:
        console.print(f"{stage['stage']:<10} {stage['steps']:>4} steps  {stage['wall_s']:>7.1f} s  "
                      f"{stage['tokens_per_s']:>8,.0f} tok/s  MFU {stage.get('mfu', 0):.0%}")

    console.rule("scripted conversation")
    played = checked_chat(RunModel.load(run_dir), script, console=console)
    passed = sum(t["ok"] for t in played)
    write_json_atomic(run_dir / "demo_checks.json", {"passed": passed, "turns": played})
    console.rule()
    mark = "[bold green]✓" if passed == len(played) else "[bold red]✗"
    console.print(f"{mark} {passed}/{len(played)} turns show what they must[/] (demo_checks.json)")
    console.print(f"[bold green]demo finished[/]: training + evaluation {train_s:.0f} s; run in {run_dir} "
                  f"(report: {run_dir / 'report.md'})")
    return run_dir
