"""How handler code in an owner's child reaches the job store: through the worker.

:mod:`services.ingest.child` installs a function that sends a :class:`Call` on its socket
and waits for the worker's :class:`Answer`; the worker (:mod:`services.ingest.owners`)
answers only for jobs it has work of in flight in that child, from :mod:`.kvstore`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

KvOp = Literal["get", "set", "incr", "delete", "exists", "job"]


class Call(BaseModel):
    """Child → worker: one operation on a job's keys (or ``job``: its counters)."""

    model_config = ConfigDict(extra="forbid")

    call: int = Field(ge=1)
    job: str = Field(max_length=128)
    op: KvOp
    key: str = Field(default="", max_length=1024)
    #: ``set``: the value (UTF-8 text); ``incr``: the amount
    value: str | None = Field(default=None, max_length=1_000_000)
    amount: int = 1


class Answer(BaseModel):
    """Worker → child: the result of a :class:`Call` (or why it failed)."""

    model_config = ConfigDict(extra="forbid")

    call: int
    value: str | None = None
    number: int | None = None
    counters: dict[str, float | int | str | None] | None = None
    error: str | None = Field(default=None, max_length=2000)


Transport = Callable[[Call], Answer]
_transport: Transport | None = None
_ids = iter(range(1, 1 << 62))


def install(transport: Transport | None) -> None:
    """Set (``None``: clear) the way calls reach the worker (the child does this)."""
    global _transport
    _transport = transport


class StoreUnavailable(RuntimeError):
    """Handler state is only reachable from handler code an ingest worker runs."""


def call(job: str, op: KvOp, key: str = "", value: str | None = None, amount: int = 1) -> Answer:
    if _transport is None:
        raise StoreUnavailable(
            "handler state (get_redis) is only available in hooks an ingest worker runs"
        )
    answer = _transport(Call(call=next(_ids), job=job, op=op, key=key, value=value, amount=amount))
    if answer.error is not None:
        raise RuntimeError(answer.error)
    return answer


def to_text(value: object) -> str:
    """A value as Redis would store it (bytes, str, int, float), as text."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("values kept in the job store must be UTF-8 text") from None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    raise TypeError(
        f"invalid value {type(value).__name__}: convert to bytes, str, int or float first"
    )
