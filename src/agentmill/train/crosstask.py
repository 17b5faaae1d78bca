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
import time

from agentmill.paths import write_json_atomic
from agentmill.config import CrosstaskStage
from agentmill.data.formats import Record
from agentmill.data.render import Example
from agentmill.data.toolgen import general_tool_use
from agentmill.errors import AgentmillError
from agentmill.eval.evaluate import encode_records, evaluate_general_tools, evaluate_task
from agentmill.eval.metrics import format_metrics
from agentmill.train.common import (StageContext, eval_datasets, examples_of, finish_stage, fit_classifier, is_main,
                                    keep_result, log_final_eval, replay_examples, replay_stage, settle, stage_dir_of,
                                    summary, train_adapter)


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
        weights = [t.weight for t in stage.tasks]
        eval_examples = [e for t in stage.tasks for e in examples_of(ctx, [t.eval_data or t.data], spec, "heldout")]
        if stage.tool_use == "general":  # one more "task" in the mixture: calling tools in general
            per_task.append(general_examples(ctx, stage, spec, "train"))
            weights.append(1.0)
            eval_examples += general_examples(ctx, stage, spec, "heldout")
        train = mix(per_task, weights, stage.temperature, ctx.recipe.seed)
        replayed = replay_examples(ctx, index, stage, len(train), spec)
        train += replayed
        # "before" without generation (tool-use metrics of an untrained model are 0 and cost minutes);
        # in per_task mode "after" is measured on each task's own adapter below, not on the shared one
        before = eval_datasets(ctx, ctx.model, heldout, spec, generate=False)
        if uses_general_tools(stage):
            before["tool_use"] = score_general_tools(ctx, ctx.model, stage, "before")
        model, result = train_adapter(ctx, stage_dir, train, eval_examples, spec, stage="crosstask")
        after = eval_datasets(ctx, model, heldout, spec) if stage.mode == "shared" else {}
        if stage.tool_use == "general":
            after["tool_use"] = score_general_tools(ctx, model, stage, "after the shared adapter")
        adapter = keep_result(ctx, model, stage_dir)
        record = finish_stage(stage_dir, {"stage": "crosstask", "index": index, "adapter": adapter,
                                          "before": before, "after": after, **summary(result),
                                          "replayed_examples": len(replayed)}, ctx)
    if stage.mode == "per_task":
        record["per_task"] = {t.name: _task_adapter(ctx, index, stage, t, ctx.recipe.task_train(stage, t))
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


def uses_general_tools(stage: CrosstaskStage) -> bool:
    return stage.tool_use == "general" or any(t.tool_use == "general" for t in stage.tasks)


def general_examples(ctx: StageContext, stage: CrosstaskStage, spec, part: str) -> list[Example]:
    """Generated general tool-use examples: training ones from the training tools, held-out ones
    (for the loss) from the tools training never shows."""
    if part == "train":
        records = general_tool_use(stage.tool_use_records, "train", ctx.recipe.seed)
    else:
        records = general_tool_use(stage.tool_use_heldout, "unseen", ctx.recipe.seed)
    examples = []
    for r in records:  # generated, so one that does not fit max_length is left out, not an error
        try:
            examples += encode_records(ctx.tokenizer, [r], "chat", spec)
        except AgentmillError:
            pass
    if len(examples) < len(records):
        ctx.say(f"  general tool use: {len(records) - len(examples)} of {len(records)} generated {part} records "
                f"do not fit max_length {spec.max_length} and are left out")
    return examples


def score_general_tools(ctx: StageContext, model, stage: CrosstaskStage, when: str) -> dict[str, float]:
    """unseen_tool_exact, no_tool_when_none_fits (eval/tooluse.py) on every generated held-out record."""
    started = time.perf_counter()
    records = general_tool_use(stage.tool_use_heldout, "unseen", ctx.recipe.seed)
    metrics = evaluate_general_tools(model, ctx.tokenizer, records, accelerator=ctx.accelerator)
    ctx.say(f"  general tool use {when}, {len(records)} held-out records of unseen tools, "
            f"{time.perf_counter() - started:.0f} s: {format_metrics(metrics)}")
    return metrics


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
    if is_main(ctx):
        _write_router_heldout(out, held)
    return fit_classifier(ctx, "router", router_records(ctx, stage, "train"), held,
                          sorted(t.name for t in stage.tasks), out)


def _router_adapter(ctx: StageContext, index: int, stage: CrosstaskStage) -> dict:
    """The router: a classification adapter over the task names, on the shared backbone."""
    spec = ctx.recipe.stage_train(stage, stage.router_train)
    labels = sorted(t.name for t in stage.tasks)
    held_records = router_records(ctx, stage, "heldout")

    def build(out):
        if is_main(ctx):
            _write_router_heldout(out, held_records)
        train = encode_records(ctx.tokenizer, router_records(ctx, stage, "train"), "classification", spec,
                               labels=labels)
        held = encode_records(ctx.tokenizer, held_records, "classification", spec, labels=labels) if held_records else []
        return train, held

    def measure(model):
        return evaluate_task(model, ctx.tokenizer, "classification", held_records, spec, labels=labels,
                             accelerator=ctx.accelerator) if held_records else {}

    return _kept_adapter(ctx, index, "router", spec, build, measure, {"labels": labels})


def _task_adapter(ctx: StageContext, index: int, stage: CrosstaskStage, task, spec) -> dict:
    """One adapter for one task on top of the shared backbone (with tool_use: general, also
    trained on generated general tool-use records; whenever the stage uses them, each task's
    adapter is scored on unseen tools too: any task may be sent a request's own `tools`)."""
    held = task.eval_data or task.data

    def build(out):
        train, heldout = examples_of(ctx, [task.data], spec), examples_of(ctx, [held], spec, "heldout")
        if task.tool_use == "general":
            train = mix([train, general_examples(ctx, stage, spec, "train")], [1.0, 1.0], 1.0, ctx.recipe.seed)
            heldout += general_examples(ctx, stage, spec, "heldout")
        return train, heldout

    def measure(model):
        metrics = eval_datasets(ctx, model, [(task.name, held)], spec).get(task.name, {})
        if uses_general_tools(stage):
            metrics.update(score_general_tools(ctx, model, stage, f"of {task.name}"))
        return metrics

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
    if is_main(ctx):
        model.save_pretrained(out)
    ctx.model = model.unload()
    record = {"after": after, **(extra or {}), **summary(result)}
    if is_main(ctx):
        write_json_atomic(done, record)
        write_json_atomic(task_dir / "done.json", record)
    settle(ctx)
    return record
