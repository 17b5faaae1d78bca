"""The `agentmill` command. Thin: parse, call one function, print."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from agentmill.errors import AgentmillError
from agentmill.ui.sessions_cmd import sessions_app

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn an open LLM into a specialised agent from one YAML recipe.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and validate data.")
app.add_typer(data_app, name="data")
app.add_typer(sessions_app, name="sessions")
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

    _train_run(load_recipe(recipe, overrides or []), out, resume)


def _train_run(cfg, out: Optional[Path], resume: bool) -> None:
    from agentmill.train.pipeline import train_recipe

    run_dir = train_recipe(cfg, out, resume=resume, console=console)
    _print_eval(run_dir)
    console.print(f"[bold green]run written to {run_dir}[/]")


@app.command(context_settings={"allow_extra_args": False})
def federate(
    recipe: Path = typer.Argument(..., help="Recipe YAML file with a `stage: federated` (clients, rounds)."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. stages.0.rounds=2"),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/NAME)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run (finished stages are kept)."),
    app: Optional[Path] = typer.Option(None, "--app", help=(
        "Write a Flower App to this folder instead of simulating: `flwr run DIR SUPERLINK` then trains on "
        "SuperNodes on the data owners' own machines (the folder's README says how).")),
):
    """Train a task adapter federated on Flower: each client keeps its data, the server averages adapters."""
    from agentmill.config import FederatedStage, load_recipe

    cfg = load_recipe(recipe, overrides or [])
    if not any(isinstance(s, FederatedStage) for s in cfg.stages):
        raise AgentmillError(f"{recipe}: no `stage: federated` (clients, rounds) to run; `agentmill train` runs "
                             f"recipes without one")
    if app is not None:
        from agentmill.train.federated_app import write_app

        folder = write_app(cfg, recipe, overrides or [], out or Path("runs") / cfg.name, app)
        console.print(f"wrote the Flower App {folder}: start a SuperLink and one SuperNode per client, then "
                      f"`flwr run {folder} SUPERLINK` ({folder / 'README.md'})", highlight=False)
        return
    _train_run(cfg, out, resume)


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., help="Run directory written by `agentmill train`."),
    data: Optional[Path] = typer.Option(None, "--data", help="Evaluate this file instead of the run's held-out data."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Format of --data (text, instruction, classification, chat)."),
    task: Optional[str] = typer.Option(None, "--task", help="Task (adapter) to evaluate with."),
    decoder: str = typer.Option("model", "--decoder", help=(
        "model: as the pipeline evaluates (fp32 weights, autocast, model.generate). auto, int8 or dense: "
        "answers from the fast decoder, as serve and chat run on this machine (writes eval-decoder-MODE.json).")),
    all_records: bool = typer.Option(False, "--all-records", help=(
        "Score every record of each file (default: the recipe's train.eval_max_records per task).")),
    misses: Optional[Path] = typer.Option(None, "--misses", help=(
        "Write every case scored wrong (task, metric, question, gold, output) to this JSONL file.")),
):
    """Evaluate a run: prints a table and writes eval.json."""
    from agentmill.eval.report import print_eval_table
    from agentmill.eval.run_eval import evaluate_run
    from agentmill.model.decoder import MODES

    if decoder not in MODES:
        raise typer.BadParameter(f"choose one of {', '.join(MODES)}", param_hint="--decoder")
    result = evaluate_run(run_dir, console=console, data=data, fmt=fmt, task=task, decoder=decoder,
                          all_records=all_records, misses=misses)
    print_eval_table(result, console)


def _store(db: Optional[Path], no_store: bool):
    if no_store:
        return None
    from agentmill.store.sessions import open_store

    return open_store(db)


@app.command()
def chat(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    task: Optional[str] = typer.Option(None, "--task", help="Force this task (default: the router picks one per message)."),
    session: Optional[str] = typer.Option(None, "--session", help="Resume this stored session (see `agentmill sessions list`)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Session database (default $AGENTMILL_HOME/sessions.db)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not store this conversation."),
    max_new_tokens: int = typer.Option(256, help="Longest answer in tokens."),
    image: list[Path] = typer.Option([], "--image", help="One shot: send this image (read with OCR); repeatable."),
    audio: list[Path] = typer.Option([], "--audio", help="One shot: send this recording (transcribed); repeatable."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="One shot: send this text, print the answer, exit."),
):
    """Multi-turn chat with the run's agent (/reset, /task NAME, /image FILE, /audio FILE, /quit); stored as a session."""
    from agentmill.model.run import RunModel
    from agentmill.ui.chat import chat_loop

    if session and no_store:
        raise AgentmillError("--session resumes a stored session and cannot be combined with --no-store")
    for path in [*image, *audio]:
        if not path.is_file():
            raise AgentmillError(f"{path}: no such file")
    store = _store(db, no_store)
    if session:
        store.get(session)  # an unknown id is an error before the model loads
    chat_loop(RunModel.load(run_dir), task=task, console=console, max_new_tokens=max_new_tokens, store=store,
              session_id=session, attach=[str(p) for p in [*image, *audio]], message=message)


@app.command("run")
def run_(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    goal: str = typer.Option(..., "--goal", help="What the agent should achieve."),
    max_steps: int = typer.Option(8, "--max-steps", min=1, help="Most tool-calling steps."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run every tool call without asking."),
    task: Optional[str] = typer.Option(None, "--task", help="Force this task (default: the router picks one)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Session database (default $AGENTMILL_HOME/sessions.db)."),
    max_new_tokens: int = typer.Option(256, help="Longest output per step in tokens."),
    image: list[Path] = typer.Option([], "--image", help="An image the goal comes with (read with OCR); repeatable."),
    audio: list[Path] = typer.Option([], "--audio", help="A recording the goal comes with (transcribed); repeatable."),
):
    """Goal mode: plan, call tools (each approved unless --yes), observe, answer; stored as a session."""
    from agentmill.ui.goal import goal_run

    if not yes and not sys.stdin.isatty():
        raise AgentmillError("tool calls need your approval and stdin is not a terminal: pass --yes to allow them")
    for path in [*image, *audio]:
        if not path.is_file():
            raise AgentmillError(f"{path}: no such file")
    goal_run(run_dir, goal, max_steps=max_steps, yes=yes, task=task, store=_store(db, False), console=console,
             max_new_tokens=max_new_tokens, attach=[str(p) for p in [*image, *audio]])


@app.command()
def serve(
    run_dir: Path = typer.Argument(..., help="Run directory."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (non-loopback needs --api-key)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    api_key: Optional[list[str]] = typer.Option(None, "--api-key", help="Required bearer key (repeatable; "
                                                "also AGENTMILL_API_KEYS, comma-separated)."),
    insecure_public: bool = typer.Option(False, "--insecure-public", help="Allow a non-loopback address without keys."),
    db: Optional[Path] = typer.Option(None, "--db", help="Session database (default $AGENTMILL_HOME/sessions.db)."),
    decoder: str = typer.Option("auto", "--decoder", help=(
        "auto: the fast decoder, int8 weights where measured faster on this machine; int8 or dense: "
        "the fast decoder with those weights; model: the model's own forward (any architecture).")),
    log_content: bool = typer.Option(False, "--log-content", help=(
        "Log what clients send and agent answers (INFO, logger agentmill.serve.content): debugging only; "
        "without it no log line carries message content.")),
):
    """Serve the run: OpenAI-compatible API (/v1), agent sessions (/v1/agent) and a chat page (/)."""
    from agentmill.model.decoder import MODES
    from agentmill.serve.server import serve as run_server
    from agentmill.serve.settings import ServeSettings

    if decoder not in MODES:
        raise typer.BadParameter(f"choose one of {', '.join(MODES)}", param_hint="--decoder")
    run_server(run_dir, host=host, port=port, api_keys=api_key, insecure_public=insecure_public, db=db,
               console=console, decoder=decoder, settings=ServeSettings(log_content=log_content))


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A finished run directory."),
    to: str = typer.Option(..., "--to", help="hf (merged folders), gguf (llama.cpp), ollama (GGUF + Modelfile) or "
                                            "vllm (backbone + adapters + serve.sh)."),
    out: Path = typer.Option(..., "--out", help="Folder to write (must not exist, or be empty)."),
    task: Optional[str] = typer.Option(None, "--task", help="Export this task only (default: every chat task)."),
    all_tasks: bool = typer.Option(False, "--all", help="Export every chat task (the default)."),
    gguf_type: str = typer.Option("q8_0", "--type", help="GGUF type for gguf/ollama: f16, q8_0 or q4_k_m."),
    dtype: str = typer.Option("fp32", "--dtype", help="Weights of hf/vllm folders: fp32 (exact), bf16 or fp16."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
):
    """Take a trained run to Hugging Face, llama.cpp/Ollama or vLLM."""
    from agentmill.export import export_run

    if task and all_tasks:
        raise typer.BadParameter("give --task NAME or --all, not both", param_hint="--task")
    manifest = export_run(run_dir, to, out, task=task, gguf_type=gguf_type, dtype=dtype, force=force, console=console)
    size = sum(f["bytes"] for f in manifest["files"].values())
    console.print(f"exported {', '.join(manifest['tasks'])} to {out} ({to}, {size / 1e6:,.0f} MB, "
                  f"{manifest['seconds']:.0f} s); see {out}/README.md")


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


@app.command()
def env(json_out: bool = typer.Option(False, "--json", help="Print the facts as JSON.")):
    """What a bug report needs: versions, CPU and flags, threads, GPU, measured matmul speed, precision."""
    from agentmill.ui.env_cmd import print_environment

    print_environment(console, as_json=json_out)


def _print_eval(run_dir: Path) -> None:
    import json

    from agentmill.eval.report import print_eval_table

    path = Path(run_dir) / "eval.json"
    if path.exists():
        print_eval_table(json.loads(path.read_text()), console)


def main() -> None:
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # our own progress bars only
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
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
