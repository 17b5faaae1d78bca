"""Stage `finetune`: supervised learning on labelled task data, several tasks at once.

Classification records become a system prompt listing the labels, the text as the user turn,
and the label as the answer; evaluation scores every label as a continuation. Instruction
tasks are evaluated by greedy generation (exact match, token F1).
"""

from __future__ import annotations

from agentmill.config import FinetuneStage
from agentmill.train.common import (StageContext, eval_datasets, examples_of, finish_stage, keep_result,
                                    replay_examples, replay_stage, stage_dir_of, summary, train_adapter)


def run(ctx: StageContext, stage: FinetuneStage, index: int) -> dict:
    stage_dir = stage_dir_of(ctx, index, "finetune")
    for task in stage.tasks:
        ctx.tasks[task.name] = {"stage": "finetune", "format": task.data.format, "adapter": None,
                                **_labels(ctx, task)}
    if (stage_dir / "done.json").exists():
        return replay_stage(ctx, stage_dir)
    spec = ctx.recipe.stage_train(stage)
    heldout = [(t.name, t.eval_data or t.data) for t in stage.tasks]

    train = [e for t in stage.tasks for e in examples_of(ctx, [t.data], spec)]
    replayed = replay_examples(ctx, index, stage, len(train), spec)
    train += replayed
    eval_examples = [e for t in stage.tasks for e in examples_of(ctx, [t.eval_data or t.data], spec, "heldout",
                                                                 labels=ctx.dataset(t.data).labels)]
    # "before" scores labels and measures loss, without generation: an untrained model's exact
    # match and F1 are near 0 and generating them costs as much as the "after" measurement
    before = eval_datasets(ctx, ctx.model, heldout, spec, generate=False)
    model, result = train_adapter(ctx, stage_dir, train, eval_examples, spec, stage="finetune")
    after = eval_datasets(ctx, model, heldout, spec)
    adapter = keep_result(ctx, model, stage_dir)

    return finish_stage(stage_dir, {"stage": "finetune", "index": index, "adapter": adapter,
                                    "before": before, "after": after, **summary(result),
                                    "replayed_examples": len(replayed)})


def _labels(ctx: StageContext, task) -> dict:
    labels = ctx.dataset(task.data).labels
    return {"labels": labels} if labels else {}
