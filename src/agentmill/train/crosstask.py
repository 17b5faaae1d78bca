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
from agentmill.data.render import Example
from agentmill.train.common import (StageContext, eval_datasets, examples_of, finish_stage, keep_result,
                                    replay_stage, stage_dir_of, summary, train_adapter)


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
        eval_examples = [e for t in stage.tasks for e in examples_of(ctx, [t.eval_data or t.data], spec, "heldout")]
        before = eval_datasets(ctx, ctx.model, heldout, spec)
        model, result = train_adapter(ctx, stage_dir, train, eval_examples, spec, stage="crosstask")
        after = eval_datasets(ctx, model, heldout, spec)
        adapter = keep_result(ctx, model, stage_dir)
        record = finish_stage(stage_dir, {"stage": "crosstask", "index": index, "adapter": adapter,
                                          "before": before, "after": after, **summary(result)})
    if stage.mode == "per_task":
        task_spec = ctx.recipe.stage_train(stage, stage.per_task_train)
        record["per_task"] = {t.name: _task_adapter(ctx, index, t, task_spec) for t in stage.tasks}
        for t in stage.tasks:
            ctx.tasks[t.name]["adapter"] = f"adapters/{t.name}"
            record["after"][t.name] = record["per_task"][t.name]["after"]
    return record


def _task_adapter(ctx: StageContext, index: int, task, spec) -> dict:
    """One adapter for one task on top of the shared backbone (kept separate, not merged)."""

    out = ctx.work_dir / "adapters" / task.name
    done = out / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    task_dir = stage_dir_of(ctx, index, f"crosstask-{task.name}")
    task_dir.mkdir(parents=True, exist_ok=True)
    train = examples_of(ctx, [task.data], spec)
    eval_examples = examples_of(ctx, [task.eval_data or task.data], spec, "heldout")
    model, result = train_adapter(ctx, task_dir, train, eval_examples, spec, stage="crosstask", task=task.name)
    after = eval_datasets(ctx, model, [(task.name, task.eval_data or task.data)], spec).get(task.name, {})
    model.save_pretrained(out)
    ctx.model = model.unload()
    record = {"after": after, **summary(result)}
    write_json_atomic(done, record)
    write_json_atomic(task_dir / "done.json", record)
    return record

