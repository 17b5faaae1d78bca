"""`agentmill train`: validate everything, run the recipe's stages in order, write the run directory.

The run is built in ``.NAME.partial`` beside the final folder and renamed when complete, so
a failed or killed run never leaves a directory that looks finished; ``--resume`` picks the
partial folder up again (finished stages are replayed from their adapters, the interrupted
one continues from its last checkpoint).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import torch

from agentmill import __version__
from agentmill.paths import write_json_atomic
from agentmill.config import Recipe, dump_recipe
from agentmill.data.formats import apply_task_prompt
from agentmill.errors import AgentmillError, DataError
from agentmill.hardware import announce, choose_precision
from agentmill.train import crosstask, dialogue, federated, finetune, pretrain
from agentmill.train.common import EVAL_NAMES, Dataset, StageContext, read_all, split_heldout, task_schemas

STAGES = {"pretrain": pretrain.run, "finetune": finetune.run, "dialogue": dialogue.run, "crosstask": crosstask.run,
          "federated": federated.run}


def partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def load_datasets(recipe: Recipe) -> dict[str, Dataset]:
    """Read and validate every data file of the recipe; all problems reported together."""
    from agentmill.media import MediaBackends

    problems: list[str] = []
    total = 0
    datasets: dict[str, Dataset] = {}
    media = MediaBackends(recipe.media)  # images and recordings in records: the agent's engines

    def read(spec):
        nonlocal total
        try:
            return read_all(spec, media)
        except DataError as err:
            problems.extend(err.problems)
            total += err.total
        except AgentmillError as err:
            problems.append(str(err))
            total += 1
        return None

    for stage in recipe.stages:
        train_spec = recipe.stage_train(stage)
        pairs = [(t.data, t.eval_data) for t in getattr(stage, "tasks", [])]
        if hasattr(stage, "data"):
            pairs += [(d, None) for d in stage.data]
        for data, eval_data in pairs:
            records = read(data)
            held_records = read(eval_data) if eval_data else None
            if records is None or (eval_data and held_records is None):
                continue
            if eval_data or getattr(stage, "eval_data", None):
                train, held = records, []
            else:
                train, held = split_heldout(records, train_spec.eval_fraction, recipe.seed)
            labels = None
            if data.format == "classification":
                labels = sorted({r.label for r in train})
                unseen = [r for r in (held_records or held) if r.label not in labels]
                for r in unseen[:20]:
                    problems.append(f"{r.source}: label '{r.label}' never appears in the training data "
                                    f"{data.path} (labels: {', '.join(labels)})")
                total += len(unseen)
            datasets[str(data.path)] = Dataset(data, train, held, labels)
            if eval_data:
                datasets[str(eval_data.path)] = Dataset(eval_data, [], held_records, labels)
        for eval_data in getattr(stage, "eval_data", []):
            held_records = read(eval_data)
            if held_records is not None:
                datasets[str(eval_data.path)] = Dataset(eval_data, [], held_records)
    if problems:
        raise DataError(problems, total=total)
    return datasets


def apply_task_prompts(recipe: Recipe, datasets: dict[str, Dataset]) -> None:
    """Give every chat/instruction record of a task the task's system prompt and tool schemas.

    The agent prompts a task with exactly these (agent/prompt.py reads them from the manifest),
    so training and run time render the same system message and tool list by construction.
    Records that bring their own system message or `tools` keep them.
    """
    tasks = [t for t in recipe.tasks() if t.system or t.tools]
    if not tasks:
        return
    from agentmill.tools.setup import registry_from_spec

    registry = registry_from_spec(recipe.tools.model_dump(mode="json"))
    for task in tasks:
        schemas = task_schemas(registry, task)
        for spec in [task.data] + ([task.eval_data] if task.eval_data else []):
            ds = datasets[str(spec.path)]
            apply_task_prompt(ds.train + ds.heldout, spec.format, task.system, schemas)


def check_encoding(ctx: StageContext) -> dict[str, dict]:
    """Tokenise every record once with its stage's options: catches conversations that do not fit."""
    from agentmill.eval.evaluate import encode_records

    problems, stats = [], {}
    for stage in ctx.recipe.stages:
        spec = ctx.recipe.stage_train(stage)
        specs = list(getattr(stage, "data", [])) + list(getattr(stage, "eval_data", []))
        for task in getattr(stage, "tasks", []):
            specs += [task.data] + ([task.eval_data] if task.eval_data else [])
        for s in specs:
            ds = ctx.dataset(s)
            records = ds.train + ds.heldout
            try:
                examples = encode_records(ctx.tokenizer, records, s.format, spec, labels=ds.labels)
            except AgentmillError as err:
                problems.append(str(err))
                continue
            stats[str(s.path)] = {"format": s.format, "records": len(records),
                                  "examples": len(examples),
                                  "tokens": sum(len(e.input_ids) for e in examples),
                                  "trained_tokens": sum(sum(1 for x in e.labels if x != -100) for e in examples),
                                  "truncated": sum(1 for e in examples if e.truncated)}
    if problems:
        raise DataError(problems)
    return stats


def check_distributed(accelerator) -> None:
    """Refuse to train silently undistributed: under a launcher that started N processes
    (WORLD_SIZE), each one alone would train on all the data and race to write the run."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1 and accelerator.num_processes != world:
        raise AgentmillError(
            f"WORLD_SIZE is {world}, but this process trains alone (no process group was formed), so each of the "
            f"{world} processes would train on everything. On CPU launch with ACCELERATE_USE_CPU=true "
            f"(`ACCELERATE_USE_CPU=true torchrun --nproc_per_node {world} -m agentmill.cli train RECIPE`); on GPUs "
            f"use `accelerate launch --num_processes {world} -m agentmill.cli train RECIPE`")


def train_recipe(recipe: Recipe, out: Path | None = None, resume: bool = False, console=None) -> Path:
    from accelerate import Accelerator
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from agentmill.eval.report import write_report
    from agentmill.eval.run_eval import evaluate_run
    from agentmill.model.load import load_model, load_tokenizer
    from agentmill.train.tracking import MetricsLogger

    out = Path(out or Path("runs") / recipe.name)
    work = partial_dir(out)
    if out.exists():
        raise AgentmillError(f"{out} already exists: pick another --out or delete it")
    if resume and not work.exists():
        raise AgentmillError(f"nothing to resume: {work} does not exist")
    if not resume and work.exists():
        raise AgentmillError(f"an interrupted run is in {work}: continue it with --resume, or delete it")

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars only
    datasets = load_datasets(recipe)
    apply_task_prompts(recipe, datasets)
    tokenizer = load_tokenizer(recipe.base_model)
    from accelerate.state import AcceleratorState

    # the mixed-precision state is a process-wide singleton: a second run in the same process
    # (a notebook, the tests) may ask for another precision; the process group is kept
    AcceleratorState._reset_state()
    precision = announce(choose_precision(recipe.train.precision))
    accelerator = Accelerator(mixed_precision=precision.accelerate, cpu=not torch.cuda.is_available())
    check_distributed(accelerator)
    if console is not None:
        console.print(f"[dim]precision {precision.name} ({recipe.train.precision}: {precision.reason})[/]",
                      highlight=False)
    ctx = StageContext(recipe=recipe, tokenizer=tokenizer, model=None, accelerator=accelerator, work_dir=work,
                       logger=None, datasets=datasets, resume=resume)
    check_encoding(ctx)
    ctx.model = load_model(recipe.base_model, dtype=torch.float32).to(accelerator.device)
    for p in ctx.model.parameters():
        p.requires_grad_(False)

    main = accelerator.is_main_process
    if main:
        work.mkdir(parents=True, exist_ok=True)
        (work / "recipe.yaml").write_text(dump_recipe(recipe))
    accelerator.wait_for_everyone()
    ctx.logger = MetricsLogger(work, recipe.train.report_to, recipe.name, enabled=main)
    if resume and main:
        _drop_unfinished_metrics(work)

    records = []
    columns = [TextColumn("{task.description:<24}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"),
               TextColumn("MFU {task.fields[mfu]:.0%}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=not main or os.environ.get("AGENTMILL_PROGRESS") == "0") as progress:
        ctx.progress = progress
        for index, stage in enumerate(recipe.stages, 1):
            ctx.say(f"[bold]stage {index}/{len(recipe.stages)}: {stage.stage}[/]")
            records.append(STAGES[stage.stage](ctx, stage, index))
    ctx.logger.close()

    if main:
        ctx.model.save_pretrained(work / "model")
        tokenizer.save_pretrained(work / "model")
        manifest = {
            "name": recipe.name, "base_model": recipe.base_model, "created": datetime.now(timezone.utc).isoformat(),
            "agentmill_version": __version__, "backbone": "model", "method": recipe.method,
            "template": {"chat_template": tokenizer.chat_template, "eos_token": tokenizer.eos_token},
            "precision": accelerator.mixed_precision, "precision_requested": recipe.train.precision, "stages": records, "tasks": _tasks_with_eval(ctx),
            "router": ctx.router, "tools": recipe.tools.model_dump(mode="json"),
            "media": recipe.media.model_dump(mode="json"),
        }
        write_json_atomic(work / "manifest.json", manifest)
        if console is not None:
            console.print("[bold]final evaluation[/] of every task")
        evaluate_run(work, console=console, allow_partial=True, known=_final_metrics(records))
        write_report(work)
        _point_adapters_at_backbone(work, out)
        os.replace(work, out)
    accelerator.wait_for_everyone()
    return out


def _point_adapters_at_backbone(work: Path, out: Path) -> None:
    """The task adapters apply to RUN_DIR/model (the base with the stages merged), not to the
    base model they were created on: say so in their adapter_config.json, where PEFT's
    AutoPeftModelForCausalLM and other tools look for the base."""
    for config_path in sorted((work / "adapters").glob("*/adapter_config.json")):
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = str(out.resolve() / "model")
        write_json_atomic(config_path, config)


def _final_metrics(records: list[dict]) -> dict[str, dict]:
    """Metrics already measured on the final model: per-task adapters and the router are trained
    last and never change after their own evaluation, so the final evaluation reuses them."""
    known = {}
    for record in records:
        for task, result in (record.get("per_task") or {}).items():
            known[task] = result["after"]
        if record.get("router"):
            known["router"] = record["router"]["after"]
    return known


def _encodings(recipe) -> dict[str, dict]:
    """How each task's held-out data was encoded in training (`agentmill eval` encodes it the same
    way: a profile's longer max_length for one stage would otherwise cut its conversations)."""
    out = {}
    for stage in recipe.stages:
        spec = recipe.stage_train(stage)
        for task in getattr(stage, "tasks", []):
            own = recipe.task_train(stage, task) if getattr(stage, "mode", None) == "per_task" else spec
            out[task.name] = {"max_length": own.max_length, "mask": own.mask}
        if stage.stage in EVAL_NAMES:
            out[EVAL_NAMES[stage.stage]] = {"max_length": spec.max_length, "mask": spec.mask}
    return out


def _tasks_with_eval(ctx: StageContext) -> dict:
    tasks = {}
    encodings = _encodings(ctx.recipe)
    for task in ctx.recipe.tasks():
        spec = task.eval_data or task.data
        info = dict(ctx.tasks.get(task.name, {}))
        info.update({"system": task.system, "tools": list(task.tools), "encoding": encodings[task.name]})
        info["eval_data"] = {"path": str(spec.path), "format": spec.format,
                             "split": "all" if task.eval_data else "heldout"}
        tasks[task.name] = info
    for stage in ctx.recipe.stages:
        if stage.stage in EVAL_NAMES:
            name = EVAL_NAMES[stage.stage]
            specs = stage.eval_data or stage.data
            tasks.setdefault(name, {"stage": stage.stage, "format": specs[0].format, "adapter": None,
                                    "eval_only": True, "encoding": encodings[name],
                                    "eval_data": {"path": str(specs[0].path), "format": specs[0].format,
                                                  "split": "all" if stage.eval_data else "heldout"}})
    return tasks


def _drop_unfinished_metrics(work: Path) -> None:
    """Metrics logged after the last checkpoint will be logged again by the resumed run."""
    path = work / "metrics.jsonl"
    if not path.exists():
        return
    last_ckpt = {}
    for stage_dir in (work / "stages").glob("*"):
        if (stage_dir / "done.json").exists():
            continue
        steps = [int(p.name.split("-")[1]) for p in (stage_dir / "checkpoints").glob("step-*")
                 if not p.name.endswith(".tmp")]
        last_ckpt[stage_dir.name] = max(steps, default=0)
    if not last_ckpt:
        return
    keep_tmp = path.with_suffix(".tmp")
    with path.open() as src, keep_tmp.open("w") as dst:
        for line in src:
            rec = json.loads(line)
            name = rec["stage"] + (f"-{rec['task']}" if rec.get("task") else "")
            cut = next((v for k, v in last_ckpt.items() if k.split("-", 1)[1] == name), None)
            if cut is None or rec["step"] <= cut:
                dst.write(line)
    os.replace(keep_tmp, path)
