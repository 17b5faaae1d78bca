"""Stage `pretrain`: continued pre-training on unlabelled domain text (causal-LM loss).

Documents are joined with EOS separators and cut into max_length blocks; every token is
trained. Reported: held-out loss and perplexity before and after.
"""

from __future__ import annotations

from agentmill.config import PretrainStage
from agentmill.train.common import (StageContext, eval_datasets, examples_of, finish_stage, keep_result,
                                    replay_stage, stage_dir_of, summary, train_adapter)


def run(ctx: StageContext, stage: PretrainStage, index: int) -> dict:
    stage_dir = stage_dir_of(ctx, index, "pretrain")
    if (stage_dir / "done.json").exists():
        return replay_stage(ctx, stage_dir)
    spec = ctx.recipe.stage_train(stage)
    heldout = [("domain", s) for s in (stage.eval_data or stage.data)]

    train = examples_of(ctx, stage.data, spec)
    eval_examples = examples_of(ctx, stage.eval_data or stage.data, spec, part="heldout")
    before = eval_datasets(ctx, ctx.model, heldout, spec).get("domain", {})
    model, result = train_adapter(ctx, stage_dir, train, eval_examples, spec, stage="pretrain")
    after = eval_datasets(ctx, model, heldout, spec).get("domain", {})
    adapter = keep_result(ctx, model, stage_dir)

    return finish_stage(stage_dir, {"stage": "pretrain", "index": index, "adapter": adapter,
                                    "before": before, "after": after, **summary(result)})
