"""`agentmill eval RUN_DIR`: evaluate every task of a run (or one file) and write eval.json."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import torch
import yaml

from agentmill.config import TrainSpec
from agentmill.data.formats import apply_task_prompt, read_records
from agentmill.errors import AgentmillError
from agentmill.eval.evaluate import capped, evaluate_classifier, evaluate_task
from agentmill.eval.metrics import format_metrics
from agentmill.paths import write_json_atomic, write_text_atomic
from agentmill.tools.setup import task_prompt


def _media(run):
    from agentmill.media import MediaBackends
    from agentmill.media.settings import media_settings_of

    return MediaBackends(media_settings_of(run))


def _heldout_records(info: dict, spec: TrainSpec, seed: int, media=None):
    from agentmill.train.common import split_heldout

    data = info["eval_data"]
    records = read_records(data["path"], data["format"], media)
    if data.get("split") == "heldout":
        records = split_heldout(records, spec.eval_fraction, seed)[1]
    return records


def evaluate_run(run_dir: Path, console=None, data: Path | None = None, fmt: str | None = None,
                 task: str | None = None, allow_partial: bool = False, known: dict | None = None,
                 decoder: str = "model", all_records: bool = False, out_name: str | None = None,
                 misses: Path | None = None) -> dict:
    """Evaluate and write RUN_DIR/eval.json; returns its content.

    `known`: metrics of tasks already evaluated on this exact model (the pipeline passes the
    per-task adapters' and the router's), written as they are instead of measured again.
    `decoder`: "model" (the default) evaluates as the pipeline does: fp32 weights under the run's
    autocast, answers from `model.generate`. "auto", "int8" or "dense" evaluate what `agentmill
    serve` and `chat` run on this machine: the weights in the run's precision, answers from the
    fast decoder with those weights (model/decoder.py); written to eval-decoder-MODE.json.
    `all_records`: score every record instead of the recipe's `eval_max_records` per task.
    `out_name`: the file written in RUN_DIR instead of those.
    `misses`: a JSONL file that gets every case a metric scored wrong (task, metric, record
    source, question, gold, output), to see what a number is made of."""
    from agentmill.model.run import ROUTER, RunModel, run_precision

    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.exists():
        raise AgentmillError(f"{run_dir} is not a finished run directory (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    spec = TrainSpec(**recipe["train"])
    if all_records:
        spec = spec.model_copy(update={"eval_max_records": None})
    seed = recipe.get("seed", 42)
    if decoder == "model":
        # fp32 weights under autocast, exactly as the pipeline evaluates its own model
        run = RunModel.load(run_dir, dtype=torch.float32, allow_partial=allow_partial)
        weights = None
    else:
        run = RunModel.load(run_dir, allow_partial=allow_partial)  # in the run's precision, as served
        weights, why = run.decoder(decoder)
        if weights is None:
            raise AgentmillError(f"--decoder {decoder}: this run's model cannot use the fast decoder: {why}")
        if console is not None:
            console.print(f"[dim]answers from the {why}[/]")
    device = next(run.model.parameters()).device
    precision = run_precision(manifest, device)
    tasks = manifest["tasks"]

    if data is not None:
        if fmt is None:
            raise AgentmillError("--data needs --format (text, instruction, classification or chat)")
        if task is not None and task not in tasks:
            raise AgentmillError(f"unknown task '{task}'; tasks: {', '.join(tasks)}")
        records = read_records(data, fmt, _media(run))
        labels = None
        if fmt == "classification":
            labels = (tasks.get(task) or {}).get("labels") or sorted({r.label for r in records})
            unseen = sorted({r.label for r in records} - set(labels))
            if unseen:
                raise AgentmillError(f"{data}: labels never seen in training: {', '.join(unseen)}")
        encoding = (tasks.get(task) or {}).get("encoding", {})
        jobs = [(f"{task or 'base'}:{Path(data).name}", task, fmt, records, labels, spec.model_copy(update=encoding))]
        if task is not None:
            apply_task_prompt(records, fmt, *task_prompt(run, task))
    else:
        jobs = []
        for name, info in tasks.items():
            if task is not None and name != task:
                continue
            records = _heldout_records(info, spec, seed, _media(run))
            apply_task_prompt(records, info["format"], *task_prompt(run, name))
            jobs.append((name, name if info.get("adapter") else None, info["format"], records, info.get("labels"),
                         spec.model_copy(update=info.get("encoding", {}))))
        router = manifest.get("router")
        if router and task in (None, ROUTER):
            records = read_records(run_dir / router["heldout"], "classification")
            jobs.append((ROUTER, ROUTER, "classification", records, router["labels"], spec))
        if task is not None and not jobs:
            raise AgentmillError(f"unknown task '{task}'; tasks: {', '.join(tasks)}")

    results = {}
    known = known or {}
    scored: list[dict] = []
    for name in [j[0] for j in jobs if j[0] in known]:
        results[name] = known[name]
        if console is not None:
            console.print(f"[dim]{name}: measured after its adapter was trained (final), not again[/]")
    jobs = [j for j in jobs if j[0] not in known]
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision.name == "bf16" and weights is None
                else contextlib.nullcontext())
    with autocast:
        for name, adapter_task, task_fmt, records, labels, task_spec in jobs:
            started = time.perf_counter()
            # the task a job scores: its name, or for --data "TASK:FILE" the part before the colon
            owner = name.split(":", 1)[0]
            classifier = run.router_classifier if adapter_task == ROUTER else run.classifiers.get(owner)
            outcomes = [] if misses is not None else None
            if classifier is not None:
                results[name] = evaluate_classifier(classifier, records, labels, outcomes)
                task_spec = task_spec.model_copy(update={"eval_max_records": None})  # all were scored
            elif adapter_task == ROUTER:
                with run.adapter(ROUTER) as model:
                    results[name] = evaluate_task(model, run.tokenizer, task_fmt, records, task_spec, labels=labels,
                                                  decoder=weights, outcomes=outcomes)
            else:
                run.use_task(adapter_task)
                results[name] = evaluate_task(run.model, run.tokenizer, task_fmt, records, task_spec, labels=labels,
                                              decoder=weights, outcomes=outcomes)
            scored.extend({"task": name, **o} for o in outcomes or [])
            if console is not None:
                used = len(capped(records, task_spec))
                of = "" if used == len(records) else (f" of {len(records)} (train.eval_max_records; "
                                                      "--all-records scores every one)")
                console.print(f"evaluated [bold]{name}[/] on {used}{of} records "
                              f"in {time.perf_counter() - started:.0f} s: {format_metrics(results[name])}",
                              highlight=False)

    media_files = (manifest.get("media") or {}).get("eval_data")
    media = {}
    if media_files and data is None and task is None:  # what OCR and speech recognition read, against the truth
        from agentmill.eval.media import evaluate_media_files

        started = time.perf_counter()
        media = evaluate_media_files(Path(media_files), _media(run))
        if console is not None:
            console.print(f"evaluated [bold]media[/] ({Path(media_files).name}) in {time.perf_counter() - started:.0f} s: "
                          f"{format_metrics(media)}", highlight=False)

    if misses is not None:
        _write_misses(Path(misses), scored, console)

    out_path = run_dir / (out_name or ("eval.json" if decoder == "model" else f"eval-decoder-{decoder}.json"))
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    merged = {"tasks": {**previous.get("tasks", {}), **results},
              "stages": {s["stage"]: {"before": s.get("before", {}), "after": s.get("after", {})}
                         for s in manifest.get("stages", [])}}
    if media or previous.get("media"):
        merged["media"] = media or previous["media"]
    write_json_atomic(out_path, merged)
    return merged


def _write_misses(path: Path, scored: list[dict], console=None) -> None:
    """The wrong cases as JSONL (written whole, then moved into place)."""
    wrong = [o for o in scored if not o["right"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(json.dumps(o, ensure_ascii=False, default=str) + "\n" for o in wrong))
    if console is not None:
        console.print(f"{len(wrong)} of {len(scored)} scored cases wrong, written to {path}", highlight=False)
