"""Metrics sinks: RUN_DIR/metrics.jsonl always, plus TensorBoard (default) or W&B."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Appends one JSON object per event to metrics.jsonl and mirrors scalars to a tracker."""

    def __init__(self, run_dir: Path, report_to: str = "tensorboard", run_name: str = "", enabled: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        if report_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        elif report_to == "wandb":
            try:
                import wandb
            except ImportError:
                from agentmill.errors import AgentmillError

                raise AgentmillError("report_to: wandb needs the wandb package: pip install 'agentmill[wandb]'") from None
            self._wandb = wandb.init(project="agentmill", name=run_name, dir=str(run_dir))

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        prefix = record["stage"] + (f"/{record['task']}" if record.get("task") else "")
        scalars = {f"{prefix}/{record['split']}_{k}": v for k, v in record.items()
                   if k in ("loss", "lr", "tokens_per_s", "mfu") and v is not None}
        if self._tb is not None:
            for tag, value in scalars.items():
                self._tb.add_scalar(tag, value, record["step"])
        if self._wandb is not None:
            self._wandb.log(scalars)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
