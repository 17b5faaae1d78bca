"""One generation as the engine sees it: the request (`Generation`), the events it emits
(`Delta`, then `Finished` or `Failed`), and the two consumer sides of those events.

`emit` is called on the engine thread and must never block: `AsyncStream` hands events to an
asyncio queue with `call_soon_threadsafe`, so a slow HTTP client only grows its own queue;
`SyncStream` serves threads (agent turns).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from agentmill.serve.batch import BASE_ADAPTER


@dataclass
class Delta:
    text: str


@dataclass
class Finished:
    reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    token_ids: list[int]


@dataclass
class Failed:
    error: BaseException


Event = Delta | Finished | Failed


@dataclass
class Generation:
    prompt_ids: list[int]
    emit: Callable[[Event], None]
    adapter: str = BASE_ADAPTER
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    tools: list[dict] | None = None  # offered tools: a call the model writes is held to their schemas
    written: str = ""  # the answer's text already in the prompt (a call forced open by tool_choice)


class AsyncStream:
    """Consumer side in an event loop: ``async for event in stream``; ends after Finished/Failed."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()

    def emit(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def __aiter__(self):
        while True:
            event = await self.queue.get()
            yield event
            if not isinstance(event, Delta):
                return


class SyncStream:
    """Consumer side in a thread: ``for event in stream``."""

    def __init__(self):
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.emit = self.queue.put

    def __iter__(self):
        while True:
            event = self.queue.get()
            yield event
            if not isinstance(event, Delta):
                return


async def merged(iterators: list):
    """(i, item) from each async iterator of `iterators` as items arrive (the choices of a request
    with `n` > 1 streamed side by side). An iterator's exception ends the merge with it; leaving
    early closes them all."""
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(i, iterator):
        try:
            async for item in iterator:
                await queue.put((i, item))
            await queue.put((i, done))
        except Exception as err:  # noqa: BLE001 - raised again in the consumer
            await queue.put((i, err))

    tasks = [asyncio.ensure_future(pump(i, it)) for i, it in enumerate(iterators)]
    try:
        left = len(tasks)
        while left:
            i, item = await queue.get()
            if item is done:
                left -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for iterator in iterators:
            if hasattr(iterator, "aclose"):
                await iterator.aclose()
