"""The `agentmill` command. Thin: parse, call one function, print."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from agentmill.errors import AgentmillError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn an open LLM into a specialised agent from one YAML recipe.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and validate data.")
app.add_typer(data_app, name="data")
# Not a terminal (CI logs, pipes): wide enough for the tables instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 120)


@app.command(context_settings={"allow_extra_args": False})
def train(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. train.epochs=2 profile=quick"),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/NAME)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
):
    """Run the recipe's stages and write a run directory."""
    from agentmill.config import load_recipe
    from agentmill.train.pipeline import train_recipe

    cfg = load_recipe(recipe, overrides or [])
    run_dir = train_recipe(cfg, out, resume=resume, console=console)
    _print_eval(run_dir)
    console.print(f"[bold green]run written to {run_dir}[/]")


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., help="Run directory written by `agentmill train`."),
    data: Optional[Path] = typer.Option(None, "--data", help="Evaluate this file instead of the run's held-out data."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Format of --data (text, instruction, classification, chat)."),
    task: Optional[str] = typer.Option(None, "--task", help="Task (adapter) to evaluate with."),
):
    """Evaluate a run: prints a table and writes eval.json."""
    from agentmill.eval.report import print_eval_table
    from agentmill.eval.run_eval import evaluate_run

    result = evaluate_run(run_dir, console=console, data=data, fmt=fmt, task=task)
    print_eval_table(result, console)


@app.command()
def chat(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    task: Optional[str] = typer.Option(None, "--task", help="Start with this task's adapter."),
    max_new_tokens: int = typer.Option(256, help="Longest answer in tokens."),
):
    """Multi-turn chat in the terminal (/reset, /task NAME, /quit)."""
    from agentmill.model.run import RunModel
    from agentmill.ui.chat import chat_loop

    chat_loop(RunModel.load(run_dir), task=task, console=console, max_new_tokens=max_new_tokens)


@data_app.command("check")
def data_check(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides"),
):
    """Validate every data file of a recipe and print per-file statistics; trains nothing."""
    from agentmill.train.datacheck import check_recipe_data

    check_recipe_data(recipe, overrides or [], console)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/finance-advisor-demo"), "--out", help="Run directory for the demo."),
    profile: str = typer.Option("quick", help="Recipe profile (quick finishes in minutes on 2 CPU cores)."),
):
    """Build the finance-advisor example end to end, print its evaluation and a scripted chat."""
    from agentmill.demo import run_demo

    run_demo(out, profile, console)


def _print_eval(run_dir: Path) -> None:
    import json

    from agentmill.eval.report import print_eval_table

    path = Path(run_dir) / "eval.json"
    if path.exists():
        print_eval_table(json.loads(path.read_text()), console)


def main() -> None:
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # deprecation chatter from peft/transformers internals is not actionable for our users
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        app()
    except AgentmillError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
