"""Retry policy: exponential backoff between attempts, archive after the last."""

from __future__ import annotations

from dataclasses import dataclass

from shared.messaging.topology import DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True)
class RetryPolicy:
    """``delay(n)`` is the wait before attempt ``n + 1``: ``base * factor**(n-1)``, capped."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    base_delay: float = 10.0
    factor: float = 3.0
    max_delay: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay <= 0 or self.factor < 1 or self.max_delay < self.base_delay:
            raise ValueError("need base_delay > 0, factor >= 1 and max_delay >= base_delay")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * self.factor ** max(0, attempt - 1)))

    def delays(self) -> list[float]:
        """Every delay this policy can ask for (the delay queues to declare)."""
        return [self.delay(n) for n in range(1, self.max_attempts)]

    def should_retry(self, attempt: int, *, permanent: bool = False) -> bool:
        """True when a failed ``attempt`` gets another try."""
        return not permanent and attempt < self.max_attempts
