"""Per-key limits: requests per minute (sliding 60 s window) and requests in flight at once.

Both answer 429 with a Retry-After header (seconds). A `Slot` is held while a request runs,
including the whole of a streamed response, and released exactly once.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque

from agentmill.serve.errors import ApiError

WINDOW_S = 60.0


class Slot:
    def __init__(self, limiter: "Limiter", key: str):
        self._limiter, self._key, self._open = limiter, key, True

    def release(self) -> None:
        if self._open:
            self._open = False
            self._limiter._release(self._key)


class Limiter:
    def __init__(self, rate_per_minute: int, concurrency: int, clock=time.monotonic):
        self.rate, self.concurrency, self.clock = rate_per_minute, concurrency, clock
        self._starts: dict[str, deque] = defaultdict(deque)
        self._running: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> Slot:
        now = self.clock()
        with self._lock:
            starts = self._starts[key]
            while starts and now - starts[0] >= WINDOW_S:
                starts.popleft()
            if len(starts) >= self.rate:
                wait = max(1, math.ceil(starts[0] + WINDOW_S - now))
                raise ApiError(429, f"rate limit reached: {self.rate} requests per minute; retry in {wait} s",
                               code="rate_limit_exceeded", headers={"Retry-After": str(wait)})
            if self._running[key] >= self.concurrency:
                raise ApiError(429, f"too many requests in flight: at most {self.concurrency} at once per key",
                               code="concurrency_limit_exceeded", headers={"Retry-After": "1"})
            starts.append(now)
            self._running[key] += 1
        return Slot(self, key)

    def _release(self, key: str) -> None:
        with self._lock:
            self._running[key] -= 1
            if self._running[key] <= 0:
                del self._running[key]
