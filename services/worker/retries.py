"""Retry policy: exponential backoff between attempts, archive after the last."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.messaging.topology import DEFAULT_MAX_ATTEMPTS


class RetryPolicy(BaseModel):
    """``delay(n)`` is the wait before attempt ``n + 1``: ``base * factor**(n-1)``, capped.

    It is also the worker's ``retry`` setting (``STAGER_RETRY__MAX_ATTEMPTS`` …).
    """

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=50)
    base_delay: float = Field(default=10.0, gt=0)
    factor: float = Field(default=3.0, ge=1)
    max_delay: float = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> Self:
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must be at least base_delay")
        return self

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * self.factor ** max(0, attempt - 1)))

    def delays(self) -> list[float]:
        """Every delay this policy can ask for (the delay queues to declare)."""
        return [self.delay(n) for n in range(1, self.max_attempts)]

    def should_retry(self, attempt: int, *, permanent: bool = False) -> bool:
        """True when a failed ``attempt`` gets another try."""
        return not permanent and attempt < self.max_attempts
