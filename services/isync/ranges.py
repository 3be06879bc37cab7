"""Splitting a file into byte ranges, one per stream, and how many streams a file gets."""

from __future__ import annotations

import os
from dataclasses import dataclass

ALIGN = 1024 * 1024

#: Most streams isync opens by itself; each one costs a connection, a login and an agent.
MAX_AUTO_STREAMS = 4
#: Least bytes per stream: below this another stream costs more (connection, login, open,
#: seek, close) than it gains.
MIN_STREAM_BYTES = 32 * 1024 * 1024


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def stream_count(size: int, requested: int | None = None, cores: int | None = None) -> int:
    """Streams for one large file: `-N` when given, else one per 32 MiB of the object,
    at most one per core (at least 2, so one stream's round trip overlaps another's
    transfer) and at most 4."""
    if requested is not None:
        return requested
    cap = min(MAX_AUTO_STREAMS, max(2, usable_cores() if cores is None else cores))
    return max(1, min(cap, size // MIN_STREAM_BYTES))


@dataclass
class ByteRange:
    """[start, end) with `done` bytes already transferred from `start`."""

    start: int
    end: int
    done: int = 0

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def next_offset(self) -> int:
        return self.start + self.done

    @property
    def remaining(self) -> int:
        return self.length - self.done

    @property
    def complete(self) -> bool:
        return self.done >= self.length


def split(size: int, parts: int | None, align: int = ALIGN) -> list[ByteRange]:
    """Split [0, size) into at most `parts` contiguous ranges, boundaries aligned to `align`
    (`parts` None: as many as `stream_count` gives)."""
    if size <= 0:
        return []
    parts = stream_count(size, parts)
    parts = max(1, min(parts, -(-size // align)))
    step = -(-size // parts)
    step = -(-step // align) * align
    out: list[ByteRange] = []
    start = 0
    while start < size:
        end = min(size, start + step)
        out.append(ByteRange(start, end))
        start = end
    return out
