"""Cancellation: control messages from the fanout exchange stop running tasks.

Every worker hears every cancel. A task running here is stopped through its
registered callback; a cancel for a task not (yet) running here is remembered for a
while, so the task is dropped if it is delivered to this worker later.

A control message is obeyed only when the API signed it, less than
``signing.control_max_age`` ago, and it was not seen before (:class:`ControlConsumer`):
anyone else who can publish to the control exchange cancels nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from shared.messaging.messages import ControlMessage
from shared.messaging.signing import Gate, ReplayGuard, Role
from shared.messaging.topology import TYPE_CONTROL

#: How long a cancel for a task that is not running here is remembered.
REMEMBER_SECONDS = 3600.0


@dataclass
class CancelRegistry:
    """Running tasks' stop callbacks and recently cancelled task ids."""

    remember: float = REMEMBER_SECONDS
    clock: Callable[[], float] = time.time
    _running: dict[str, Callable[[], None]] = field(default_factory=dict)
    _cancelled: dict[str, float] = field(default_factory=dict)

    def register(
        self, task_id: str, stop: Callable[[], None], issued_at: float | None = None
    ) -> None:
        """``stop`` is called when a cancel for ``task_id`` arrives."""
        self._running[task_id] = stop
        if self.is_cancelled(task_id, issued_at):
            stop()

    def unregister(self, task_id: str) -> None:
        self._running.pop(task_id, None)

    def cancel(self, task_id: str) -> bool:
        """Stop ``task_id`` if it runs here; True when it did."""
        self._forget_old()
        self._cancelled[task_id] = self.clock()
        stop = self._running.get(task_id)
        if stop is not None:
            stop()
        return stop is not None

    def is_cancelled(self, task_id: str, issued_at: float | None = None) -> bool:
        """True when a cancel arrived (after a task issued at ``issued_at``, epoch s)."""
        seen = self._cancelled.get(task_id)
        if seen is None or self.clock() - seen >= self.remember:
            return False
        return issued_at is None or issued_at <= seen

    def _forget_old(self) -> None:
        now = self.clock()
        for tid, seen in list(self._cancelled.items()):
            if now - seen >= self.remember:
                del self._cancelled[tid]


class ControlConsumer:
    """Consumer of this worker's control queue: verified, fresh, first-seen cancels only.

    Parameters:
        registry: what a cancel stops.
        gate: verifies the API's signature (and counts what fails).
        max_age: seconds after signing a cancel is still obeyed.
    """

    def __init__(self, registry: CancelRegistry, gate: Gate, max_age: float) -> None:
        self.registry = registry
        self.gate = gate
        self.max_age = max_age
        self.replay = ReplayGuard()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=False):
            verified = self.gate.admit(
                message,
                type_=TYPE_CONTROL,
                accept=[Role.API],
                max_age=self.max_age,
                replay=self.replay,
            )
            if verified is None:
                return
            try:
                ctl = ControlMessage.model_validate_json(message.body)
            except ValidationError:
                return
            if ctl.action == "cancel":
                self.registry.cancel(ctl.task_id)
