"""Stage `dialogue`: multi-turn conversations, loss on the assistant turns (recipe `train.mask`).

Reported: held-out loss on the trained tokens before and after.
"""

from __future__ import annotations

from agentmill.config import DialogueStage
from agentmill.train.common import (StageContext, eval_datasets, examples_of, finish_stage, keep_result,
                                    replay_stage, stage_dir_of, summary, train_adapter)


def run(ctx: StageContext, stage: DialogueStage, index: int) -> dict:
    stage_dir = stage_dir_of(ctx, index, "dialogue")
    if (stage_dir / "done.json").exists():
        return replay_stage(ctx, stage_dir)
    spec = ctx.recipe.stage_train(stage)
    heldout = [("dialogue", s) for s in (stage.eval_data or stage.data)]

    train = examples_of(ctx, stage.data, spec)
    eval_examples = examples_of(ctx, stage.eval_data or stage.data, spec, part="heldout")
    before = eval_datasets(ctx, ctx.model, heldout, spec).get("dialogue", {})
    model, result = train_adapter(ctx, stage_dir, train, eval_examples, spec, stage="dialogue")
    after = eval_datasets(ctx, model, heldout, spec).get("dialogue", {})
    adapter = keep_result(ctx, model, stage_dir)

    return finish_stage(stage_dir, {"stage": "dialogue", "index": index, "adapter": adapter,
                                    "before": before, "after": after, **summary(result)})
