"""Stage `dialogue`: multi-turn conversations, loss on the assistant turns (recipe `train.mask`).

Reported: held-out loss on the trained tokens before and after (as task "dialogue").
"""

from __future__ import annotations

from agentmill.config import DialogueStage
from agentmill.train.common import StageContext, run_data_stage


def run(ctx: StageContext, stage: DialogueStage, index: int) -> dict:
    return run_data_stage(ctx, stage, index)
