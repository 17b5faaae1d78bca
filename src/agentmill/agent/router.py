"""Which task answers a message: the run's router scores every task name.

The pipeline trains the router (crosstask, `router: true`) on "routing message -> task name"
from every task's records. By default (`router_kind: embedding`) it is a classifier on sentence
embeddings (model/text_classifier.py); `router_kind: adapter` trains a classification adapter
of the language model instead, scored like the classification stage: each task name as a
continuation of the assistant turn. A run without a router answers with the task the user
forced, else the bare backbone.
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
        classifier = getattr(self.run, "router_classifier", None)
        if classifier is not None:
            log_probs = classifier.log_probs([text])[0].tolist()
            scores = [log_probs[classifier.labels.index(t)] for t in self.labels]
        else:
            with self.run.adapter(ROUTER) as model:
                scores = score_continuations(model, self.run.tokenizer, classification_messages(text, self.labels),
                                             self.labels)
        ranked = dict(sorted(zip(self.labels, scores), key=lambda kv: -kv[1]))
        return next(iter(ranked)), {k: round(v, 3) for k, v in ranked.items()}
