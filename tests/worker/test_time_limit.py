"""The watchdog: wall-clock timeout, no-progress, heartbeats, 0 = none."""

from __future__ import annotations

import pytest

from services.worker.time_limit import Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_zero_means_no_limit() -> None:
    clock = Clock()
    w = Watchdog(0, 0, clock=clock)
    clock.now += 10**6
    assert w.check() is None and w.next_deadline() is None


def test_wall_clock_timeout_counts_even_with_progress() -> None:
    clock = Clock()
    w = Watchdog(timeout=5, clock=clock)
    for i in range(4):
        clock.now += 1
        w.observe({"bytes_done": i * 100})
        assert w.check() is None
    clock.now += 1
    expired = w.check()
    assert expired is not None and expired.kind == "timeout" and "timeout=5s" in str(expired)


def test_heartbeat_is_not_progress() -> None:
    clock = Clock()
    w = Watchdog(noprogress=3, clock=clock)
    assert w.observe({"bytes_done": 10, "files_done": 0}) is True
    for _ in range(2):
        clock.now += 1
        assert w.observe({"bytes_done": 10, "files_done": 0, "rate": 0.0}) is False
    clock.now += 1
    expired = w.check()
    assert expired is not None and expired.kind == "noprogress"
    assert "timeout_noprogress=3s" in str(expired)


@pytest.mark.parametrize("key", ["bytes_done", "files_done", "files_failed", "files_skipped"])
def test_bytes_or_files_advancing_is_progress(key: str) -> None:
    clock = Clock()
    w = Watchdog(noprogress=3, clock=clock)
    w.observe({key: 1})
    for n in range(2, 8):
        clock.now += 2
        assert w.observe({key: n}) is True
        assert w.check() is None
    assert w.next_deadline() == pytest.approx(3)


def test_next_deadline_is_the_nearest_limit() -> None:
    clock = Clock()
    w = Watchdog(timeout=10, noprogress=4, clock=clock)
    clock.now += 1
    assert w.next_deadline() == pytest.approx(3)
    w.observe({"bytes_done": 1})
    clock.now += 7
    assert w.next_deadline() == 0.0
