"""Throttle pieces on a fake clock: token buckets refill and stay bounded; failed-login
back-off doubles up to its cap, ends on its own (no lasting lock-out), is forgotten after
the window, and never touches an address that has not failed."""

from __future__ import annotations

import pytest

from services.api.throttle import BasicThrottle, BasicThrottleSettings, Buckets, Throttled


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_buckets_refill_and_are_bounded() -> None:
    clock = Clock()
    b = Buckets(rate=2.0, burst=3, max_keys=100, clock=clock)
    assert [b.take("p") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("p") == pytest.approx(0.5)
    clock.now += 0.5
    assert b.take("p") == 0.0
    for i in range(1000):
        b.take(f"k{i}")
    assert len(b) == 100


def test_failed_logins_back_off_and_end() -> None:
    clock = Clock()
    s = BasicThrottleSettings(pair_failures=3, base_delay=1, max_delay=8, window=60)
    t = BasicThrottle(s, clock=clock)
    for _ in range(2):
        t.check("svc", "a")
        t.failed("svc", "a")
    t.check("svc", "a")
    t.failed("svc", "a")  # the third: wait 1 s
    with pytest.raises(Throttled) as e:
        t.check("svc", "a")
    assert e.value.retry_after == 1
    t.check("svc", "b")  # another address is not touched
    waits = []
    for _ in range(4):
        clock.now += e.value.retry_after
        t.check("svc", "a")
        t.failed("svc", "a")
        with pytest.raises(Throttled) as e:
            t.check("svc", "a")
        waits.append(e.value.retry_after)
    assert waits == [2, 4, 8, 8]  # doubling, capped at max_delay
    clock.now += 8
    t.check("svc", "a")  # the wait ends by itself
    clock.now += 61
    t.failed("svc", "a")  # forgotten after the window: counting starts again
    t.check("svc", "a")
    t.succeeded("svc", "a")


def test_tables_are_bounded() -> None:
    t = BasicThrottle(BasicThrottleSettings(max_keys=100))
    for i in range(1000):
        t.failed("svc", f"10.0.{i // 256}.{i % 256}")
    assert len(t._pairs) == len(t._addresses) == 100
