"""Per-attempt limits: wall-clock ``timeout`` and ``timeout_noprogress``.

Progress means bytes or files advanced; a heartbeat (a progress line with the same
counters) is not progress. ``0`` means no limit. The watchdog only decides; the
caller enforces by killing the child's process group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Counters that make up "progress" in a child's progress line.
PROGRESS_KEYS = ("bytes_done", "files_done", "files_failed", "files_skipped")


@dataclass
class Expired:
    """Why an attempt was stopped; ``str()`` is the user-facing reason."""

    kind: str  # "timeout" | "noprogress"
    limit: float

    def __str__(self) -> str:
        if self.kind == "timeout":
            return (
                f"timed out: the attempt ran longer than timeout={self.limit:g}s: if it keeps"
                " timing out, give the job a longer timeout (0: none)"
            )
        return (
            f"no progress: no bytes or files advanced for timeout_noprogress={self.limit:g}s:"
            " if it keeps stalling, check that source and destination answer"
        )


@dataclass
class Watchdog:
    """Tracks one attempt against its two limits (seconds, 0 = none)."""

    timeout: float = 0
    noprogress: float = 0
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    last_progress: float = field(init=False)
    _marks: tuple[int, ...] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.started = self.last_progress = self.clock()

    def observe(self, line: Mapping[str, Any]) -> bool:
        """Feed a progress line; True when it advanced bytes or files."""
        marks = tuple(int(line.get(k) or 0) for k in PROGRESS_KEYS)
        if marks == self._marks:
            return False
        advanced = self._marks is None or any(
            new > old for new, old in zip(marks, self._marks, strict=True)
        )
        self._marks = marks
        if advanced:
            self.last_progress = self.clock()
        return advanced

    def check(self) -> Expired | None:
        """The limit that has run out, if any."""
        now = self.clock()
        if self.timeout > 0 and now - self.started >= self.timeout:
            return Expired("timeout", self.timeout)
        if self.noprogress > 0 and now - self.last_progress >= self.noprogress:
            return Expired("noprogress", self.noprogress)
        return None

    def next_deadline(self) -> float | None:
        """Seconds until the nearest limit could run out (None: no limits)."""
        now = self.clock()
        waits = []
        if self.timeout > 0:
            waits.append(self.started + self.timeout - now)
        if self.noprogress > 0:
            waits.append(self.last_progress + self.noprogress - now)
        return max(0.0, min(waits)) if waits else None
