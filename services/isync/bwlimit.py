"""A token bucket shared by every stream of a transfer (`--bwlimit`)."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """Allows `rate` bytes per second on average, bursts up to `burst` (default rate/10)."""

    def __init__(self, rate: int, burst: int | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate // 10, 1))
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, nbytes: int) -> float:
        """Take `nbytes` tokens, sleeping as long as needed; returns the time slept."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= nbytes
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return wait


class NoLimit:
    """The bucket used when there is no limit."""

    def acquire(self, nbytes: int) -> float:
        return 0.0
