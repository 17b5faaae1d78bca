"""The `model` names a client may use, and what each one selects.

- the base model (``manifest["base_model"]``, else the run's name; ``base`` is an alias): the
  backbone with no adapter and no task prompt;
- each task of the run, ``parent`` = the base: its LoRA adapter if it has one, else the
  backbone (a task merged into it), with the task's trained system prompt when the request
  brings none; tasks without an adapter are listed too (``agentmill.adapter: false``) because
  the agent routes to them as well; a classification task answers with its label
  (``agentmill.answers: "label"``); the data stages' evaluation sets are not models;
- ``auto``: the run's router picks the task from the last user message (no router: the base).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from datetime import datetime

from agentmill.agent.router import Router
from agentmill.errors import AgentmillError
from agentmill.serve.batch import BASE_ADAPTER
from agentmill.serve.errors import ApiError
from agentmill.serve.schemas import ModelCard

AUTO, BASE_ALIAS = "auto", "base"


@dataclass
class Target:
    model: str  # the response's `model`: the task that answered, or the base id
    task: str | None
    adapter: str  # a task's adapter name or BASE_ADAPTER
    routed: bool = False
    scores: dict[str, float] = field(default_factory=dict)

    def info(self) -> dict:
        return {"task": self.task, "adapter": None if self.adapter == BASE_ADAPTER else self.adapter,
                "routed": self.routed, "scores": self.scores}


class Catalog:
    def __init__(self, run):
        self.run = run
        manifest = run.manifest
        self.base_id = str(manifest.get("base_model") or manifest.get("name") or BASE_ALIAS)
        self.router = Router(run)
        try:
            self.created = int(datetime.fromisoformat(manifest["created"]).timestamp())
        except (KeyError, TypeError, ValueError):
            self.created = 0

    def names(self) -> list[str]:
        return [self.base_id, *self.run.chat_tasks(), AUTO]

    def cards(self) -> list[ModelCard]:
        base = self.base_id
        cards = [ModelCard(id=base, created=self.created, root=base, agentmill={"kind": "base", "adapter": False})]
        for task in self.run.chat_tasks():
            info = self.run.task_info(task)
            extra = {"answers": "label", "labels": info["labels"]} if self.run.is_classifier(task) else {}
            cards.append(ModelCard(id=task, created=self.created, root=base, parent=base, agentmill={
                "kind": "task", "adapter": self.run.has_adapter(task), "format": info.get("format"),
                "tools": info.get("tools") or [], **extra}))
        cards.append(ModelCard(id=AUTO, created=self.created, root=base, parent=base, agentmill={
            "kind": "auto", "router": self.router.available, "labels": self.router.labels}))
        return cards

    def target(self, task: str | None, routed: bool = False, scores: dict | None = None) -> Target:
        if task is None:
            return Target(self.base_id, None, BASE_ADAPTER, routed, scores or {})
        adapter = task if self.run.has_adapter(task) else BASE_ADAPTER
        return Target(task, task, adapter, routed, scores or {})

    def lookup(self, model: str) -> Target | None:
        """The target of a fixed model name (None for ``auto``); 404 for an unknown one."""
        if model in self.run.chat_tasks():
            return self.target(model)
        if model in (self.base_id, BASE_ALIAS):
            return self.target(None)
        if model == AUTO:
            return None
        if model in self.run.tasks:
            try:
                self.run.check_chat_task(model)
            except AgentmillError as err:
                raise ApiError(404, str(err), param="model", code="model_not_found") from None
        raise ApiError(404, f"the model `{model}` does not exist; this server has: {', '.join(self.names())}",
                       param="model", code="model_not_found")

    async def resolve(self, model: str, text: str, engine) -> Target:
        target = self.lookup(model)
        if target is not None:
            return target
        if not self.router.available:
            return self.target(None, routed=True)
        task, scores = await asyncio.wrap_future(engine.call(functools.partial(self.router.route, text)))
        return self.target(task, routed=True, scores=scores)
