"""The one thread that owns the model: continuous batching of every generation, plus exclusive jobs.

Requests join the running batch at the next step boundary (up to `max_batch` rows): their
prompts are prefilled together and merged into the batch's KV cache (serve/batch.py), then
every step decodes one token for every row with each row's own adapter. A row leaves when
it ends (end-of-turn, a stop string, max_new_tokens, or its consumer cancelled it) and a
waiting request takes its place at once. Greedy rows give the same tokens as alone.

Each generation reports through its `emit` callback (serve/generation.py), called on this
thread and never allowed to block, so a slow HTTP client only grows its own queue.

Exclusive jobs (`call`) run between steps with a task's adapter selected the classic way
(`RunModel.use_task`): routing, constrained tool-call repair. Nothing else touches the model.

Which thread: `start()` runs the worker on a thread of its own (tests, embedders);
`agentmill serve` runs it on the main thread instead (`run_here`), the one that loaded the
model. torch's OpenMP (libgomp) stops spinning its workers once a process holds more OpenMP
threads than cores, and a second thread doing torch work starts a second team: every
parallel op then waits for sleeping workers. Measured on an AMX Xeon (2 cores, bf16): a
[1, 576] x [576, 3072] product takes 114 us on the thread that loaded the model, 209 us on
another; batch-1 decoding 60 vs 33 tokens/s.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable

import torch

from agentmill.model.constrain import CallConstraint
from agentmill.model.decoder import pick_token, sampling_rng
from agentmill.model.generate import _pad_id, _stop_ids
from agentmill.serve.batch import make_batch
from agentmill.serve.errors import ApiError
from agentmill.serve.generation import Delta, Event, Failed, Finished, Generation
from agentmill.serve.text import IncrementalDecoder, StopStrings

log = logging.getLogger("agentmill.serve")


# ---------------------------------------------------------------- the worker

class _Row:
    def __init__(self, gen: Generation, tokenizer):
        self.gen = gen
        self.ids: list[int] = []
        self.decoder = IncrementalDecoder(tokenizer)
        self.stops = StopStrings(gen.stop)
        self.done = False
        self.rng = sampling_rng(gen.temperature, gen.seed)
        self.constraint = CallConstraint(tokenizer, gen.tools, gen.written) if gen.tools else None


_NO_TASK = object()


class Engine:
    def __init__(self, run, max_batch: int = 16, max_waiting: int = 512, decoder: str = "auto"):
        self.run, self.tokenizer = run, run.tokenizer
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self.stop_ids = set(_stop_ids(run.tokenizer))
        self.batch, self.batch_kind = make_batch(run, _pad_id(run.tokenizer), decoder)
        log.info("decoding with the %s", self.batch_kind)
        self.rows: list[_Row] = []
        self._pending: deque[Generation] = deque()
        self._jobs: deque = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._started_thread = False  # True: `start()` made the worker thread (close() joins it)
        self._closed = False
        self.steps = 0  # decode steps run (for tests and /health)
        self.widest = 0  # most rows ever decoded in one step
        self.joins = 0  # admissions into a batch that was already decoding

    # ------------------------------------------------------------ client side (any thread)

    def start(self) -> None:
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="agentmill-engine", daemon=True)
                self._started_thread = True
                self._thread.start()

    def hold(self) -> None:
        """Reserve the worker's place for the calling thread (`run_here` follows): requests that
        arrive before it runs wait for it instead of starting a thread of their own."""
        with self._cond:
            if self._thread is not None and self._thread is not threading.current_thread():
                raise RuntimeError("the engine's worker is already running on another thread")
            self._thread = threading.current_thread()

    def run_here(self, stop: Callable[[], bool] | None = None, poll_s: float = 0.5) -> None:
        """Be the worker on the calling thread until `close()`, or until `stop()` (asked while idle)."""
        self.hold()
        self._loop(stop, poll_s)

    def submit(self, gen: Generation) -> Generation:
        self.start()
        with self._cond:
            if self._closed:
                raise ApiError(503, "the server is shutting down", code="shutting_down")
            if len(self._pending) >= self.max_waiting:
                raise ApiError(429, f"the server is busy ({len(self._pending)} requests waiting); retry shortly",
                               code="server_busy", headers={"Retry-After": "1"})
            self._pending.append(gen)
            self._cond.notify()
        return gen

    def call(self, fn: Callable, task=_NO_TASK) -> concurrent.futures.Future:
        """Run `fn()` on the worker between two steps; with `task`, that task's adapter (None: none)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.start()
        with self._cond:
            if self._closed:
                raise ApiError(503, "the server is shutting down", code="shutting_down")
            self._jobs.append((fn, task, future))
            self._cond.notify()
        return future

    def load(self) -> dict:
        with self._cond:
            return {"running": len(self.rows), "waiting": len(self._pending), "max_batch": self.max_batch}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._started_thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    # ------------------------------------------------------------ worker side

    def _loop(self, stop: Callable[[], bool] | None = None, poll_s: float = 0.5) -> None:
        with torch.no_grad():
            while True:
                with self._cond:
                    while not (self._pending or self._jobs or self.rows or self._closed):
                        self._cond.wait(timeout=poll_s if stop is not None else None)
                        if stop is not None and stop():
                            self._closed = True
                    if self._closed:
                        break
                    jobs = list(self._jobs)
                    self._jobs.clear()
                    new = []
                    while self._pending and len(self.rows) + len(new) < self.max_batch:
                        gen = self._pending.popleft()
                        if gen.cancelled.is_set():
                            _safe_emit(gen, Finished("cancelled", len(gen.prompt_ids), 0, []))
                        else:
                            new.append(gen)
                for job in jobs:
                    self._run_job(*job)
                try:
                    if new:
                        self._admit(new)
                    if self.rows:
                        self._step()
                except Exception as err:  # noqa: BLE001 - a bug must not kill the worker: fail the batch
                    log.error("engine step failed", exc_info=True)
                    self._fail_all(err, new)
        self._shutdown()

    def _fail_all(self, err: BaseException, new: list[Generation] = ()) -> None:
        gens = {id(r.gen): r.gen for r in self.rows} | {id(g): g for g in new}
        self.rows = []  # before the clients hear of it: a client that got its error sees no running row
        try:
            self.batch.reset()
        finally:
            for gen in gens.values():
                _safe_emit(gen, Failed(err))

    def _run_job(self, fn, task, future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            if task is not _NO_TASK:
                self.run.use_task(task)
            try:
                result = fn()
            finally:  # before the caller wakes: it may look at (or use) the model at once
                if task is not _NO_TASK:
                    self.run.use_task(None)
            future.set_result(result)
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            future.set_exception(err)

    def _admit(self, new: list[Generation]) -> None:
        try:
            logits = self.batch.join([g.prompt_ids for g in new], [g.adapter for g in new])
        except Exception as err:  # noqa: BLE001 - the running rows are untouched
            log.error("prefill failed", exc_info=True)
            for gen in new:
                _safe_emit(gen, Failed(err))
            return
        rows = [_Row(g, self.tokenizer) for g in new]
        self.joins += bool(self.rows)
        self.rows += rows
        self._advance(rows, logits)

    def _step(self) -> None:
        try:
            logits = self.batch.step([row.ids[-1] for row in self.rows])
        except Exception as err:  # noqa: BLE001 - every row of the batch fails, the worker goes on
            log.error("decode step failed", exc_info=True)
            self._fail_all(err)
            return
        self.steps += 1
        self.widest = max(self.widest, len(self.rows))
        self._advance(self.rows, logits)

    def _advance(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Pick each row's next token, stream its text, finish rows that are done, drop them."""
        for row, row_logits in zip(rows, logits):
            gen = row.gen
            if gen.cancelled.is_set():
                self._finish(row, "cancelled")
                continue
            if row.constraint is not None:
                row.constraint.mask(row_logits)
            token = pick_token(row_logits, gen.temperature, gen.top_p, row.rng)
            if row.constraint is not None:
                row.constraint.advance(token)
            row.ids.append(token)
            if token in self.stop_ids:
                self._finish(row, "stop")
                continue
            text, hit = row.stops.push(row.decoder.push(token))
            if text and not _safe_emit(gen, Delta(text)):
                self._finish(row, "cancelled")
            elif hit:
                self._finish(row, "stop", flush=False)
            elif len(row.ids) >= gen.max_new_tokens:
                self._finish(row, "length")
        keep = [i for i, row in enumerate(self.rows) if not row.done]
        if len(keep) < len(self.rows):
            self.batch.keep(keep)
            self.rows = [self.rows[i] for i in keep]

    def _finish(self, row: _Row, reason: str, flush: bool = True) -> None:
        if flush and reason != "cancelled":
            text, _ = row.stops.push(row.decoder.flush())
            text += row.stops.flush()
            if text:
                _safe_emit(row.gen, Delta(text))
        row.done = True
        _safe_emit(row.gen, Finished(reason, len(row.gen.prompt_ids), len(row.ids), list(row.ids)))

    def _shutdown(self) -> None:
        error = ApiError(503, "the server is shutting down", code="shutting_down")
        for row in self.rows:
            _safe_emit(row.gen, Failed(error))
        for gen in self._pending:
            _safe_emit(gen, Failed(error))
        for _, _, future in self._jobs:
            future.set_exception(error)
        self.rows, self._pending = [], deque()
        self.batch.reset()


def _safe_emit(gen: Generation, event: Event) -> bool:
    """Hand an event to the consumer; a consumer that is gone (closed loop) cancels its row."""
    try:
        gen.emit(event)
        return True
    except Exception:  # noqa: BLE001
        gen.cancelled.set()
        return False
