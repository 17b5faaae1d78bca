"""Stage `crosstask`: several tasks trained together so one agent can switch between them.

Tasks are mixed by temperature sampling: p(task) ~ weight * n_task ** (1 / temperature),
drawn (deterministically) to as many examples as the tasks have together.
`mode: shared` trains one adapter on the mixture and merges it into the backbone.
`mode: per_task` does that, then trains one adapter per task on top of the shared result;
those adapters stay separate (RUN_DIR/adapters/TASK) so the agent can switch at run time.
"""

from __future__ import annotations

import json
import random

from agentmill.paths import write_json_atomic
from agentmill.config import CrosstaskStage
from agentmill.data.formats import Record
from agentmill.data.render import Example
from agentmill.eval.evaluate import encode_records, evaluate_task
from agentmill.train.common import (StageContext, eval_datasets, examples_of, finish_stage, fit_classifier,
                                    keep_result, log_final_eval, replay_examples, replay_stage, stage_dir_of, summary,
                                    train_adapter)


def mix(per_task: list[list[Example]], weights: list[float], temperature: float, seed: int) -> list[Example]:
    """Temperature-sampled mixture with as many examples as all tasks together."""
    sizes = [len(x) for x in per_task]
    scores = [w * (n ** (1.0 / temperature)) for w, n in zip(weights, sizes)]
    total = sum(sizes)
    counts = [round(total * s / sum(scores)) for s in scores]
    rng = random.Random(seed)
    mixed: list[Example] = []
    for examples, count in zip(per_task, counts):
        order = list(range(len(examples)))
        rng.shuffle(order)
        mixed += [examples[order[i % len(order)]] for i in range(count)]
    rng.shuffle(mixed)
    return mixed


def run(ctx: StageContext, stage: CrosstaskStage, index: int) -> dict:
    stage_dir = stage_dir_of(ctx, index, "crosstask")
    spec = ctx.recipe.stage_train(stage)
    heldout = [(t.name, t.eval_data or t.data) for t in stage.tasks]
    for task in stage.tasks:
        ctx.tasks[task.name] = {"stage": "crosstask", "format": task.data.format, "adapter": None}

    if (stage_dir / "done.json").exists():
        record = replay_stage(ctx, stage_dir)
    else:
        per_task = [examples_of(ctx, [t.data], spec) for t in stage.tasks]
        train = mix(per_task, [t.weight for t in stage.tasks], stage.temperature, ctx.recipe.seed)
        replayed = replay_examples(ctx, index, stage, len(train), spec)
        train += replayed
        eval_examples = [e for t in stage.tasks for e in examples_of(ctx, [t.eval_data or t.data], spec, "heldout")]
        # "before" without generation (tool-use metrics of an untrained model are 0 and cost minutes);
        # in per_task mode "after" is measured on each task's own adapter below, not on the shared one
        before = eval_datasets(ctx, ctx.model, heldout, spec, generate=False)
        model, result = train_adapter(ctx, stage_dir, train, eval_examples, spec, stage="crosstask")
        after = eval_datasets(ctx, model, heldout, spec) if stage.mode == "shared" else {}
        adapter = keep_result(ctx, model, stage_dir)
        record = finish_stage(stage_dir, {"stage": "crosstask", "index": index, "adapter": adapter,
                                          "before": before, "after": after, **summary(result),
                                          "replayed_examples": len(replayed)})
    if stage.mode == "per_task":
        record["per_task"] = {t.name: _task_adapter(ctx, index, t, ctx.recipe.task_train(stage, t))
                              for t in stage.tasks}
        for t in stage.tasks:
            ctx.tasks[t.name]["adapter"] = f"adapters/{t.name}"
            record["after"][t.name] = record["per_task"][t.name]["after"]
        if stage.router and len(stage.tasks) > 1:
            labels = sorted(t.name for t in stage.tasks)
            if stage.router_kind == "embedding":
                record["router"] = _router_classifier(ctx, stage)
                ctx.router = {"kind": "embedding", "path": "adapters/router", "labels": labels,
                              "heldout": "adapters/router/heldout.jsonl"}
            else:
                record["router"] = _router_adapter(ctx, index, stage)
                ctx.router = {"kind": "adapter", "adapter": "adapters/router", "labels": labels,
                              "heldout": "adapters/router/heldout.jsonl"}
            record["after"]["router"] = record["router"]["after"]
    return record


def router_records(ctx: StageContext, stage: CrosstaskStage, part: str) -> list[Record]:
    """Classification records "routing message -> task name" from the tasks' own data,
    interleaved task by task (evaluation caps records at eval_max_records: every task counts)."""
    per_task = []
    for t in stage.tasks:
        ds = ctx.dataset(t.data if part == "train" else (t.eval_data or t.data))
        per_task.append([Record(source=r.source, text=text, label=t.name)
                         for r in (ds.train if part == "train" else ds.heldout) if (text := routing_text(r))])
    longest = max((len(p) for p in per_task), default=0)
    return [p[i] for i in range(longest) for p in per_task if i < len(p)]


def routing_text(record: Record) -> str | None:
    """The message that brought the conversation to this task: the last user message before
    its first trained answer (in a conversation handed over mid-way, the earlier turns are
    `weight: 0` context another task wrote)."""
    if record.messages is None:
        return record.text
    text = None
    for m in record.messages:
        if m["role"] == "user" and m.get("content"):
            text = m["content"]
        elif m["role"] == "assistant" and m.get("weight", 1) and text is not None:
            break
    return text


def _write_router_heldout(out, records: list[Record]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "heldout.jsonl").open("w") as f:  # `agentmill eval` re-scores the router on it
        for r in records:
            f.write(json.dumps({"text": r.text, "label": r.label}, ensure_ascii=False) + "\n")


def _router_classifier(ctx: StageContext, stage: CrosstaskStage) -> dict:
    """The router as a classifier on sentence embeddings, scored on every held-out routing message."""
    out = ctx.work_dir / "adapters" / "router"
    held = router_records(ctx, stage, "heldout")
    _write_router_heldout(out, held)
    return fit_classifier(ctx, "router", router_records(ctx, stage, "train"), held,
                          sorted(t.name for t in stage.tasks), out)


def _router_adapter(ctx: StageContext, index: int, stage: CrosstaskStage) -> dict:
    """The router: a classification adapter over the task names, on the shared backbone."""
    spec = ctx.recipe.stage_train(stage, stage.router_train)
    labels = sorted(t.name for t in stage.tasks)
    held_records = router_records(ctx, stage, "heldout")

    def build(out):
        _write_router_heldout(out, held_records)
        train = encode_records(ctx.tokenizer, router_records(ctx, stage, "train"), "classification", spec,
                               labels=labels)
        held = encode_records(ctx.tokenizer, held_records, "classification", spec, labels=labels) if held_records else []
        return train, held

    def measure(model):
        return evaluate_task(model, ctx.tokenizer, "classification", held_records, spec, labels=labels,
                             accelerator=ctx.accelerator) if held_records else {}

    return _kept_adapter(ctx, index, "router", spec, build, measure, {"labels": labels})


def _task_adapter(ctx: StageContext, index: int, task, spec) -> dict:
    """One adapter for one task on top of the shared backbone."""
    held = task.eval_data or task.data

    def build(out):
        return examples_of(ctx, [task.data], spec), examples_of(ctx, [held], spec, "heldout")

    def measure(model):
        return eval_datasets(ctx, model, [(task.name, held)], spec).get(task.name, {})

    return _kept_adapter(ctx, index, task.name, spec, build, measure)


def _kept_adapter(ctx: StageContext, index: int, name: str, spec, build, measure, extra: dict | None = None) -> dict:
    """Train adapter `name` on the shared backbone and keep it separate in adapters/NAME (not merged).

    `build(out)` returns (train, held-out) examples and may write files into `out`; `measure(model)`
    returns its held-out metrics. done.json is written last, so --resume reuses only finished ones."""
    out = ctx.work_dir / "adapters" / name
    done = out / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    task_dir = stage_dir_of(ctx, index, f"crosstask-{name}")
    task_dir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    train, held = build(out)
    model, result = train_adapter(ctx, task_dir, train, held, spec, stage="crosstask", task=name)
    after = measure(model)
    log_final_eval(ctx, result, after, "crosstask", name)
    model.save_pretrained(out)
    ctx.model = model.unload()
    record = {"after": after, **(extra or {}), **summary(result)}
    write_json_atomic(done, record)
    write_json_atomic(task_dir / "done.json", record)
    return record
