"""Stage `finetune`: supervised learning on labelled task data, several tasks at once.

Classification records become a system prompt listing the labels, the text as the user turn,
and the label as the answer; evaluation scores every label as a continuation. Instruction
tasks are evaluated by greedy generation (exact match, token F1). A classification task with
`classifier: embedding` is fitted as a classifier on sentence embeddings instead, kept beside
the backbone in RUN_DIR/classifiers/TASK, where later stages cannot make it forget.
"""

from __future__ import annotations

import json

from agentmill.config import FinetuneStage
from agentmill.train.common import (StageContext, eval_datasets, examples_of, finish_stage, fit_classifier,
                                    keep_result, replay_examples, replay_stage, stage_dir_of, summary,
                                    train_adapter)


def run(ctx: StageContext, stage: FinetuneStage, index: int) -> dict:
    stage_dir = stage_dir_of(ctx, index, "finetune")
    for task in stage.tasks:
        ctx.tasks[task.name] = {"stage": "finetune", "format": task.data.format, "adapter": None,
                                **_labels(ctx, task)}
        if task.classifier == "embedding":
            ctx.tasks[task.name]["classifier"] = f"classifiers/{task.name}"
    if (stage_dir / "done.json").exists():
        done = json.loads((stage_dir / "done.json").read_text())
        # a stage of classifiers only left the model as it was; otherwise rebuild its backbone
        # (LoRA: the merged adapter; method full: the saved weights, with adapter None)
        return done if done.get("steps") == 0 else replay_stage(ctx, stage_dir)
    # classification tasks with `classifier: embedding` are fitted beside the language model
    fitted = {t.name: _fit(ctx, t) for t in stage.tasks if t.classifier == "embedding"}
    tasks = [t for t in stage.tasks if t.classifier != "embedding"]
    if not tasks:
        return finish_stage(stage_dir, {"stage": "finetune", "index": index, "adapter": None, "before": {},
                                        "after": {n: f["after"] for n, f in fitted.items()}, "steps": 0, "train_tokens": 0, "tokens_per_s": 0,
                                        "wall_s": round(sum(f.get("wall_s", 0) for f in fitted.values()), 2)}, ctx)
    spec = ctx.recipe.stage_train(stage)
    heldout = [(t.name, t.eval_data or t.data) for t in tasks]

    train = [e for t in tasks for e in examples_of(ctx, [t.data], spec)]
    replayed = replay_examples(ctx, index, stage, len(train), spec)
    train += replayed
    eval_examples = [e for t in tasks for e in examples_of(ctx, [t.eval_data or t.data], spec, "heldout",
                                                           labels=ctx.dataset(t.data).labels)]
    # "before" scores labels and measures loss, without generation: an untrained model's exact
    # match and F1 are near 0 and generating them costs as much as the "after" measurement
    before = eval_datasets(ctx, ctx.model, heldout, spec, generate=False)
    model, result = train_adapter(ctx, stage_dir, train, eval_examples, spec, stage="finetune")
    after = {**eval_datasets(ctx, model, heldout, spec), **{n: f["after"] for n, f in fitted.items()}}
    adapter = keep_result(ctx, model, stage_dir)

    return finish_stage(stage_dir, {"stage": "finetune", "index": index, "adapter": adapter,
                                    "before": before, "after": after, **summary(result),
                                    "replayed_examples": len(replayed)}, ctx)


def _fit(ctx: StageContext, task) -> dict:
    data = ctx.dataset(task.data)
    held = ctx.dataset(task.eval_data or task.data).heldout  # as eval_datasets reads held-out data
    return fit_classifier(ctx, task.name, data.train, held, data.labels, ctx.work_dir / "classifiers" / task.name)


def _labels(ctx: StageContext, task) -> dict:
    labels = ctx.dataset(task.data).labels
    return {"labels": labels} if labels else {}
