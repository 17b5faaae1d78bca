"""The agent of `agentmill.agent` with every model call going through the serving engine.

The engine's thread owns the model, so a served agent never touches it: its generations are
rows of the shared batch (with the task's adapter), and routing and tool-call validation
(which may run the constrained repair) are exclusive jobs on the engine thread. `RunView`
gives the agent the run without the power to switch adapters: `use_task` only records the task.
Everything else (prompting, tools, budgets, the session store) is the agent's own code.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field

from agentmill.agent.agent import Agent
from agentmill.agent.router import Router
from agentmill.errors import AgentmillError
from agentmill.serve.batch import BASE_ADAPTER
from agentmill.serve.generation import Delta, Failed, Generation, SyncStream
from agentmill.serve.toolcalls import ContentSplitter


class RunView:
    """A RunModel whose adapter state is left alone: ``use_task`` validates and records only."""

    def __init__(self, run):
        self.real = run
        self.task: str | None = None

    def __getattr__(self, name):
        return getattr(self.real, name)

    def use_task(self, name: str | None) -> None:
        if name is not None and name not in self.real.tasks:
            raise AgentmillError(f"unknown task '{name}'; tasks of this run: {', '.join(self.real.tasks) or '(none)'}")
        self.task = name


class EngineRouter:
    """The run's router, scored on the engine thread."""

    def __init__(self, run, engine):
        self._router, self.engine = Router(run), engine

    @property
    def available(self) -> bool:
        return self._router.available

    @property
    def labels(self) -> list[str]:
        return self._router.labels

    def route(self, text: str):
        return self.engine.call(functools.partial(self._router.route, text)).result()


@dataclass
class ServedAgent(Agent):
    engine: object = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        if not isinstance(self.run, RunView):
            self.run = RunView(self.run)
        super().__post_init__()
        self.router = EngineRouter(self.run.real, self.engine)
        self._current: Generation | None = None

    def cancel(self) -> None:
        """Stop the running turn soon: the current and later generations of it end at once."""
        self.cancelled.set()
        if self._current is not None:
            self._current.cancelled.set()

    def _stream(self, prompt_text: str, task, on_event):
        ids = self.run.tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        stream = SyncStream()
        gen = Generation(ids, stream.emit, adapter=task if self.run.has_adapter(task) else BASE_ADAPTER,
                         max_new_tokens=self.budgets.max_new_tokens, tools=self.task_prompt(task)[1])
        if self.cancelled.is_set():
            gen.cancelled.set()
        self._current = gen
        self.engine.submit(gen)
        splitter = ContentSplitter()  # tool-call text is not shown as tokens
        for event in stream:
            if isinstance(event, Failed):
                raise event.error
            if isinstance(event, Delta):
                yield event.text
                shown = splitter.feed(event.text)
                if shown:
                    on_event("token", shown)
        rest = splitter.flush()
        if rest:
            on_event("token", rest)

    def _label(self, task: str, text: str) -> str:
        return self.engine.call(functools.partial(self.run.real.classify, task, text), task=task).result()

    def _valid_calls(self, parsed, task, prompt_text: str):
        job = functools.partial(Agent._valid_calls, self, parsed, task, prompt_text)
        return self.engine.call(job, task=task).result()
