"""Stage `pretrain`: continued pre-training on unlabelled domain text (causal-LM loss).

Documents are joined with EOS separators and cut into max_length blocks; every token is
trained. Reported: held-out loss and perplexity before and after (as task "domain").
"""

from __future__ import annotations

from agentmill.config import PretrainStage
from agentmill.train.common import StageContext, run_data_stage


def run(ctx: StageContext, stage: PretrainStage, index: int) -> dict:
    return run_data_stage(ctx, stage, index)
