"""Every AMQP exchange, queue and routing-key name, in one place.

Names derive from one prefix (``stager`` in production) so tests can run a
whole private topology side by side with others on one broker.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "stager"

#: Routing keys on the task exchange.
ROUTE_NORMAL = "normal"
ROUTE_PRIORITY = "priority"

#: Message type names (AMQP ``type`` property).
TYPE_TASK = "stager.task"
TYPE_EVENT = "stager.event"
TYPE_CONTROL = "stager.control"
TYPE_DIRLIST = "stager.dirlist"

#: Defaults shared by the API and the worker.
DEFAULT_MAX_ATTEMPTS = 5
#: Quorum-queue redeliveries (worker crashes) before a task is dead-lettered.
DEFAULT_DELIVERY_LIMIT = 10


@dataclass(frozen=True)
class Names:
    """The topology's names for one prefix."""

    prefix: str = DEFAULT_PREFIX

    @property
    def tasks_exchange(self) -> str:
        return f"{self.prefix}.tasks"

    @property
    def tasks_queue(self) -> str:
        """Bulk (researcher) jobs."""
        return f"{self.prefix}.tasks"

    @property
    def priority_queue(self) -> str:
        """Streamer (service-account) jobs; workers prefer it."""
        return f"{self.prefix}.tasks.priority"

    @property
    def dead_queue(self) -> str:
        """Tasks that exceeded the delivery limit or could not be decoded."""
        return f"{self.prefix}.tasks.dead"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.tasks.dead"

    def retry_queue(self, route: str, delay_ms: int) -> str:
        """Delay queue: holds a message ``delay_ms`` then dead-letters it back."""
        return f"{self.prefix}.retry.{route}.{delay_ms}"

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def events_queue(self) -> str:
        return f"{self.prefix}.events"

    @property
    def control_exchange(self) -> str:
        """Fanout: every worker hears every cancel."""
        return f"{self.prefix}.control"

    @property
    def dir_rpc_queue(self) -> str:
        return f"{self.prefix}.rpc.dir"

    def queue_for(self, route: str) -> str:
        """The task queue a routing key leads to."""
        return self.priority_queue if route == ROUTE_PRIORITY else self.tasks_queue


DEFAULT_NAMES = Names()
