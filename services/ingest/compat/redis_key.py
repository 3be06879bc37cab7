"""The anchor's key handles (``redis_key.*_key_handle``) over :mod:`.redis_utils`.

A handle names the key ``CATEGORY + ":/" + IDENTIFIER`` and reads, sets or resets it;
the typed ones convert what they read (int, float). ``failures_key_handle(r, JOB)`` and
``retries_key_handle(r, JOB)`` read the job's failed-file and retry counters.
"""

from __future__ import annotations

from typing import Any

DELIMITER = ":/"


class redis_key_handle:
    """One key: ``get_value``, ``set_value``, ``reset``."""

    def __init__(
        self, redis_handle: Any, key_category: str, identifier: str, delimiter: str = DELIMITER
    ) -> None:
        self.redis_handle = redis_handle
        self.category = key_category
        self.identifier = identifier
        self.delimiter = delimiter

    def get_key(self) -> str:
        return f"{self.category}{self.delimiter}{self.identifier}"

    def get_value(self) -> Any:
        """The value; a number when it holds one (the anchor returned Redis's bytes, so
        its ``statistics.py`` failed computing ``t1 - t0``), else bytes; ``None``: absent."""
        raw = self.redis_handle.get(self.get_key())
        if not isinstance(raw, bytes):
            return raw
        for kind in (int, float):
            try:
                return kind(raw)
            except ValueError:
                continue
        return raw

    def set_value(self, value: Any) -> None:
        self.redis_handle.set(self.get_key(), value)

    def reset(self) -> None:
        self.redis_handle.delete(self.get_key())


class incremental_redis_key_handle(redis_key_handle):
    """An integer key."""

    def get_value(self) -> int | None:
        raw = super().get_value()
        return None if raw is None else int(raw)

    def incr(self) -> None:
        self.redis_handle.incr(self.get_key())

    def incrby(self, amount: int = 1) -> None:
        self.redis_handle.incrby(self.get_key(), amount)

    def decr(self) -> int:
        return int(self.redis_handle.decr(self.get_key()))

    def decrby(self, amount: int = 1) -> None:
        self.redis_handle.decrby(self.get_key(), amount)


class float_redis_key_handle(redis_key_handle):
    """A float key."""

    def get_value(self) -> float | None:
        raw = super().get_value()
        return None if raw is None else float(raw)


class json_redis_key_handle(redis_key_handle):
    """A key holding JSON text (read and written as text, as in the anchor)."""


class sync_time_key_handle(float_redis_key_handle):
    def __init__(self, redis_handle: Any, path: str) -> None:
        super().__init__(redis_handle, "sync_time", path)


class stop_key_handle(redis_key_handle):
    def __init__(self, redis_handle: Any, job_name: str) -> None:
        super().__init__(redis_handle, "stop", job_name)


class tasks_key_handle(incremental_redis_key_handle):
    """The job's tasks still to do in this pass (read-only)."""

    def __init__(self, redis_handle: Any, job_name: str) -> None:
        super().__init__(redis_handle, "tasks", job_name)


class count_key_handle(incremental_redis_key_handle):
    """The job's tasks in this pass (read-only; the anchor kept a list of their ids)."""

    def __init__(self, redis_handle: Any, job_name: str) -> None:
        super().__init__(redis_handle, "count", job_name)

    def llen(self) -> int:
        return int(self.get_value() or 0)


class failures_key_handle(incremental_redis_key_handle):
    """The job's failed files and tasks in this pass (read-only)."""

    def __init__(self, redis_handle: Any, job_name: str) -> None:
        super().__init__(redis_handle, "failures", job_name)


class retries_key_handle(incremental_redis_key_handle):
    """The job's retries in this pass (read-only)."""

    def __init__(self, redis_handle: Any, job_name: str) -> None:
        super().__init__(redis_handle, "retries", job_name)
