"""Progress sinks (null, JSON lines, rich, recording) and the tracker that feeds them."""

from __future__ import annotations

import json
import threading
import time
from typing import IO, Any, Protocol

from services.isync.models import FileOutcome, ProgressEvent


class ProgressSink(Protocol):
    """Receives progress snapshots and per-file outcomes from the core."""

    def update(self, event: ProgressEvent) -> None: ...

    def file_done(self, outcome: FileOutcome) -> None: ...


class NullSink:
    """Discards everything."""

    def update(self, event: ProgressEvent) -> None:
        return None

    def file_done(self, outcome: FileOutcome) -> None:
        return None


class RecordingSink:
    """Keeps every event and outcome (for tests)."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.outcomes: list[FileOutcome] = []
        self._lock = threading.Lock()

    def update(self, event: ProgressEvent) -> None:
        with self._lock:
            self.events.append(event)

    def file_done(self, outcome: FileOutcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)


class JsonLinesSink:
    """One JSON object per line: `{"type": "progress", ...}` and `{"type": "file", ...}`."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def _write(self, kind: str, payload: dict[str, Any]) -> None:
        line = json.dumps({"type": kind, **payload}, ensure_ascii=False)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def update(self, event: ProgressEvent) -> None:
        self._write("progress", event.model_dump())

    def file_done(self, outcome: FileOutcome) -> None:
        self._write("file", outcome.model_dump())


class RichSink:
    """A rich progress bar (for `-P` on a terminal); failures and warnings printed above it."""

    def __init__(self, stream: IO[str], verbose: bool = False) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.verbose = verbose
        self.console = Console(file=stream)
        self.progress = Progress(
            TextColumn("{task.fields[files]}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("isync", total=None, files="")
        self.progress.start()

    def update(self, event: ProgressEvent) -> None:
        finished = event.files_done + event.files_skipped + event.files_failed
        files = f"{finished}/{event.files_total} files"
        self.progress.update(
            self.task, total=event.bytes_total or None, completed=event.bytes_done, files=files
        )

    def file_done(self, outcome: FileOutcome) -> None:
        if outcome.outcome == "failed":
            self.console.print(f"[red]failed[/red] {outcome.src}: {outcome.error}", markup=True)
        elif outcome.reason and outcome.outcome == "skipped":
            self.console.print(f"[yellow]skipped[/yellow] {outcome.src}: {outcome.reason}")
        elif self.verbose:
            self.console.print(f"{outcome.outcome} {outcome.src} -> {outcome.dst}", markup=False)

    def close(self) -> None:
        self.progress.stop()


class ProgressTracker:
    """Thread-safe counters; emits a ProgressEvent at most every `interval` seconds."""

    def __init__(self, sink: ProgressSink, interval: float = 0.5) -> None:
        self.sink = sink
        self.interval = interval
        self.event = ProgressEvent()
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = 0.0

    def add_totals(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.event.files_total += files
            self.event.bytes_total += nbytes
        self.emit()

    def add_bytes(self, done: int, sent: int | None = None, current: str | None = None) -> None:
        """`done` bytes more are complete, of which `sent` went over the network this run."""
        with self._lock:
            self.event.bytes_done += done
            self.event.bytes_sent += done if sent is None else sent
            if current is not None:
                self.event.current = current
        self.emit()

    def file_finished(self, outcome: FileOutcome) -> None:
        with self._lock:
            if outcome.outcome == "failed":
                self.event.files_failed += 1
            elif outcome.outcome == "skipped":
                self.event.files_skipped += 1
            else:
                self.event.files_done += 1
        self.sink.file_done(outcome)
        self.emit()

    def emit(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self.interval:
                return
            self._last = now
            elapsed = max(now - self._start, 1e-6)
            ev = self.event
            ev.rate = ev.bytes_sent / elapsed
            left = ev.bytes_total - ev.bytes_done
            ev.eta = (left / ev.rate) if ev.rate > 0 and left >= 0 else None
            snapshot = ev.model_copy()
        self.sink.update(snapshot)

    @property
    def bytes_sent(self) -> int:
        """Bytes that went over the network in this run so far."""
        with self._lock:
            return self.event.bytes_sent

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start


class LineSink:
    """Plain stderr lines: failures and warnings always, every file with `verbose`."""

    def __init__(self, stream: IO[str], verbose: bool = False) -> None:
        self.stream = stream
        self.verbose = verbose
        self._lock = threading.Lock()

    def update(self, event: ProgressEvent) -> None:
        return None

    def file_done(self, outcome: FileOutcome) -> None:
        if outcome.outcome == "failed":
            line = f"isync: failed: {outcome.error}"
        elif outcome.outcome == "skipped" and outcome.reason != "unchanged":
            line = f"isync: warning: {outcome.src}: {outcome.reason}"
        elif self.verbose:
            line = f"{outcome.outcome}: {outcome.src} -> {outcome.dst}"
        else:
            return
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
