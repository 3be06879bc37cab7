"""Splitting a file into byte ranges, one per stream."""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 1024 * 1024


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


def split(size: int, parts: int, align: int = ALIGN) -> list[ByteRange]:
    """Split [0, size) into at most `parts` contiguous ranges, boundaries aligned to `align`."""
    if size <= 0:
        return []
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
