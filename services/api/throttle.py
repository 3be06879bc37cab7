"""Rate limits of the API: token buckets per key and back-off after failed logins.

* :class:`Buckets`: a token bucket per key (``rate`` tokens a second, at most ``burst``),
  e.g. DAC lookups per principal.  ``take(key)`` answers how long to wait (0: go).
* :class:`BasicThrottle`: HTTP-basic failures.  The policy (docs/api.md, "Throttling"):

  - failures only ever slow down the source address they come from: after
    ``pair_failures`` wrong passwords for one account from one address, that address
    waits ``base_delay`` seconds, doubling with each further failure up to ``max_delay``;
    after ``address_failures`` failures for any accounts, the whole address waits the same
    way.  A failure is forgotten ``window`` seconds after the last one;
  - an account with ``account_alarm`` failures within ``window`` (from all addresses) is
    under attack: each address then has ``attacked_pair_failures`` free failures for it;
  - an address that has not failed is never refused, so the right password from
    another address always works: nobody can lock the real client out;
  - a refused attempt is answered 429 with ``Retry-After`` before the password is
    checked (no scrypt spent), and does not extend the wait.

Every table is bounded (``max_keys``, least recently used dropped first).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from shared.errors import ErrorKind, StagerError


class Throttled(StagerError):
    """Too many requests: try again after ``retry_after`` seconds (HTTP 429)."""

    kind = ErrorKind.UNAVAILABLE
    title = "too many requests"

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"{message}: try again in {self.retry_after} s")


Clock = Callable[[], float]


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLru(Generic[K, V]):
    """A dict that keeps at most ``max_keys`` entries, dropping the least recently used."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._d: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._d.get(key)
        if value is not None:
            self._d.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.max_keys:
            self._d.popitem(last=False)

    def pop(self, key: K) -> None:
        self._d.pop(key, None)

    def __len__(self) -> int:
        return len(self._d)


@dataclass
class _Bucket:
    tokens: float
    at: float


class Buckets:
    """A token bucket per key; at most ``max_keys`` keys are remembered."""

    def __init__(
        self, rate: float, burst: int, *, max_keys: int = 10_000, clock: Clock = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: BoundedLru[str, _Bucket] = BoundedLru(max_keys)

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0 when there was one, else seconds until there is."""
        now = self._clock()
        b = self._buckets.get(key) or _Bucket(tokens=float(self.burst), at=now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
        b.at = now
        self._buckets.put(key, b)
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate if self.rate > 0 else math.inf

    def __len__(self) -> int:
        return len(self._buckets)


class BasicThrottleSettings(BaseModel):
    """Back-off after failed basic logins (``STAGER_AUTH__THROTTLE__…``)."""

    enabled: bool = True
    pair_failures: int = Field(default=5, ge=1, description="free failures per account+address")
    address_failures: int = Field(default=20, ge=1, description="free failures per address")
    account_alarm: int = Field(
        default=50, ge=1, description="failures of one account that mean it is under attack"
    )
    attacked_pair_failures: int = Field(default=1, ge=1)
    window: float = Field(default=900.0, gt=0, description="seconds a failure is remembered")
    base_delay: float = Field(default=1.0, gt=0)
    max_delay: float = Field(default=900.0, gt=0)
    max_keys: int = Field(default=100_000, ge=100)
    trust_forwarded_for: bool = Field(
        default=False,
        description="take the client address from the last X-Forwarded-For entry (only "
        "behind a proxy that sets it)",
    )


@dataclass
class _Failures:
    count: int
    last: float
    until: float = 0.0


class BasicThrottle:
    """Decides whether a basic login may be checked, and learns from its outcome."""

    def __init__(self, settings: BasicThrottleSettings, *, clock: Clock = time.monotonic) -> None:
        self.s = settings
        self._clock = clock
        self._pairs: BoundedLru[tuple[str, str], _Failures] = BoundedLru(settings.max_keys)
        self._addresses: BoundedLru[str, _Failures] = BoundedLru(settings.max_keys)
        self._accounts: BoundedLru[str, _Failures] = BoundedLru(settings.max_keys)

    def _live(self, table: BoundedLru[Any, _Failures], key: Any, now: float) -> _Failures | None:
        rec = table.get(key)
        if rec is not None and now - rec.last > self.s.window and rec.until <= now:
            table.pop(key)
            return None
        return rec

    def check(self, account: str, address: str) -> None:
        """Raise Throttled when ``address`` must wait before trying ``account`` again."""
        if not self.s.enabled:
            return
        now = self._clock()
        for rec in (
            self._live(self._pairs, (account, address), now),
            self._live(self._addresses, address, now),
        ):
            if rec is not None and rec.until > now:
                raise Throttled("too many failed logins from your address", rec.until - now)

    def failed(self, account: str | None, address: str) -> None:
        """Record a wrong name or password (``account`` None: no such account)."""
        if not self.s.enabled:
            return
        now = self._clock()
        self._bump(self._addresses, address, self.s.address_failures, now)
        if account is None:
            return
        acc = self._bump(self._accounts, account, None, now)
        free = self.s.pair_failures
        if acc.count >= self.s.account_alarm:
            free = min(free, self.s.attacked_pair_failures)
        self._bump(self._pairs, (account, address), free, now)

    def succeeded(self, account: str, address: str) -> None:
        """The right password: this address's failures for the account are forgotten."""
        self._pairs.pop((account, address))

    def _bump(
        self, table: BoundedLru[Any, _Failures], key: Any, free: int | None, now: float
    ) -> _Failures:
        rec = self._live(table, key, now) or _Failures(count=0, last=now)
        rec.count += 1
        rec.last = now
        if free is not None and rec.count >= free:
            delay = self.s.base_delay * 2.0 ** min(rec.count - free, 30)
            rec.until = now + min(self.s.max_delay, delay)
        table.put(key, rec)
        return rec
