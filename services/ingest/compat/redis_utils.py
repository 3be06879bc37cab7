"""``get_redis(config)``: the anchor's Redis handle, backed by the ingest job store.

What the anchor's handlers do with Redis (``get``, ``set``, ``incr``/``incrby``,
``decr``/``decrby``, ``delete``, ``exists``) works on keys of the handler's own job: every
job has its own namespace, kept in the job store (not Redis) and shared by all workers,
so ``retry.py`` counts a path's failures across retries on any worker. Values come back
as ``bytes``, as from Redis. Keys ``failures:/JOB``, ``retries:/JOB``, ``tasks:/JOB`` and
``count:/JOB`` (what ``redis_key.failures_key_handle`` etc. name) read the job's own
counters (failed files, retries, tasks still to do, tasks in the pass) and cannot be set.
Lists, sets, hashes and expiry are not provided: a call to them raises ``AttributeError``.
"""

from __future__ import annotations

from typing import Any

from services.ingest.compat import transport


class JobStoreRedis:
    """A Redis-like handle on one job's keys."""

    def __init__(self, job: str) -> None:
        self.job = job

    def __repr__(self) -> str:
        return f"JobStoreRedis(job={self.job!r})"

    def get(self, name: Any) -> bytes | None:
        text = transport.call(self.job, "get", _key(name)).value
        return None if text is None else text.encode("utf-8")

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> bool:
        transport.call(self.job, "set", _key(name), transport.to_text(value))
        return True

    def incrby(self, name: Any, amount: int = 1) -> int:
        number = transport.call(self.job, "incr", _key(name), amount=int(amount)).number
        return int(number or 0)

    def incr(self, name: Any, amount: int = 1) -> int:
        return self.incrby(name, amount)

    def decrby(self, name: Any, amount: int = 1) -> int:
        return self.incrby(name, -int(amount))

    def decr(self, name: Any, amount: int = 1) -> int:
        return self.incrby(name, -int(amount))

    def delete(self, *names: Any) -> int:
        return sum(int(transport.call(self.job, "delete", _key(n)).number or 0) for n in names)

    def exists(self, *names: Any) -> int:
        return sum(int(transport.call(self.job, "exists", _key(n)).number or 0) for n in names)


def _key(name: Any) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def get_redis(config: dict[str, Any]) -> JobStoreRedis:
    """The handle for the job whose ``meta["config"]`` this is."""
    try:
        job = config["store"]["job"]
    except (KeyError, TypeError):
        raise ValueError("get_redis() takes meta['config'] (the config of a running job)") from None
    return JobStoreRedis(str(job))
