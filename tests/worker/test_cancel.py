"""Cancel registry: running tasks stop; a later delivery of a cancelled task is dropped."""

from __future__ import annotations

from services.worker.cancel import CancelRegistry


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cancel_stops_a_running_task() -> None:
    reg = CancelRegistry()
    stopped: list[str] = []
    reg.register("t1", lambda: stopped.append("t1"))
    assert reg.cancel("t1") is True and stopped == ["t1"]
    assert reg.cancel("other") is False


def test_cancel_before_delivery_is_remembered_for_older_messages_only() -> None:
    clock = Clock()
    reg = CancelRegistry(remember=60, clock=clock)
    reg.cancel("t1")
    assert reg.is_cancelled("t1", issued_at=clock.now - 5)
    assert not reg.is_cancelled("t1", issued_at=clock.now + 5)  # restarted afterwards
    stopped: list[bool] = []
    reg.register("t1", lambda: stopped.append(True), issued_at=clock.now - 1)
    assert stopped == [True]
    clock.now += 61
    assert not reg.is_cancelled("t1")
