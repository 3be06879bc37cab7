"""Benchmarks: ``python -m bench [MODULE ...]`` runs every ``bench/*.py`` with a ``run()``.

A benchmark module exposes ``run() -> list[BenchResult]``; see ``bench/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchResult:
    """One measured figure, e.g. ``BenchResult("put 1 GiB parallel", 512.0, "MiB/s")``."""

    name: str
    value: float
    unit: str
    note: str = ""

    def line(self) -> str:
        note = f"  ({self.note})" if self.note else ""
        return f"{self.name}: {self.value:.1f} {self.unit}{note}"
