"""Which task answers a message: the run's router adapter scores every task name.

The router is trained by the pipeline (crosstask, `router: true`) as a classification task
"first user message -> task name", with the same prompt the classification stage uses, and it
is scored the same way: each task name as a continuation of the assistant turn. A run without
a router answers with the task the user forced, else the bare backbone.
"""

from __future__ import annotations

from agentmill.data.formats import classification_messages
from agentmill.model.generate import score_continuations
from agentmill.model.run import ROUTER


class Router:
    def __init__(self, run):
        self.run = run
        info = run.manifest.get("router") or {}
        self.labels: list[str] = [t for t in info.get("labels", []) if t in run.tasks] if run.has_router else []

    @property
    def available(self) -> bool:
        return bool(self.labels)

    def route(self, text: str) -> tuple[str | None, dict[str, float]]:
        """(task, log-prob of each task name); (None, {}) without a router."""
        if not self.available:
            return None, {}
        with self.run.adapter(ROUTER) as model:
            scores = score_continuations(model, self.run.tokenizer, classification_messages(text, self.labels),
                                         self.labels)
        ranked = dict(sorted(zip(self.labels, scores), key=lambda kv: -kv[1]))
        return next(iter(ranked)), {k: round(v, 3) for k, v in ranked.items()}
