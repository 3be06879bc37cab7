"""Resume journals: which byte ranges of an interrupted large file are already done.

A get keeps its journal next to the file (`NAME.isync-partial`); a put keeps it in a per-user
state directory, keyed by destination path, source size and source mtime. A journal (and
its `.tmp` while saved) is opened only as this user's own regular file
(`paths.open_own_file`): a planted FIFO or link fails the file instead of hanging or
being followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.isync.paths import open_own_file
from services.isync.ranges import ByteRange

SIDECAR_SUFFIX = ".isync-partial"


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_STATE_HOME/isync`, else `~/.local/state/isync`."""
    env = os.environ if environ is None else environ
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(env.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")) / "isync"


def put_journal_path(state_dir: Path, dst: str, size: int, mtime_ns: int) -> Path:
    key = json.dumps([dst, size, mtime_ns]).encode()
    return state_dir / f"put-{hashlib.sha256(key).hexdigest()[:32]}.json"


def get_journal_path(local_dst: str) -> Path:
    return Path(local_dst + SIDECAR_SUFFIX)


class Journal:
    """Completed ranges of one file, saved atomically at most every `interval` seconds."""

    def __init__(self, path: Path, identity: dict[str, Any], ranges: list[ByteRange]) -> None:
        self.path = path
        self.identity = identity
        self.ranges = ranges
        self._lock = threading.Lock()
        self._last_save = 0.0
        self.interval = 0.2

    @classmethod
    def load(cls, path: Path, identity: dict[str, Any]) -> Journal | None:
        """The saved journal if it exists and belongs to the same transfer, else None."""
        try:
            fd = open_own_file(str(path), os.O_RDONLY)  # a FIFO or link there: refused
        except FileNotFoundError:
            return None
        try:
            with os.fdopen(fd, "rb") as fh:
                data = json.loads(fh.read())
            if data.get("identity") != identity:
                return None
            ranges = [ByteRange(int(s), int(e), int(d)) for s, e, d in data["ranges"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if any(r.done < 0 or r.done > r.length for r in ranges):
            return None
        return cls(path, identity, ranges)

    @property
    def bytes_done(self) -> int:
        return sum(r.done for r in self.ranges)

    def advance(self, rng: ByteRange, nbytes: int) -> None:
        """Record `nbytes` more done in `rng` (called after the bytes are safely written)."""
        with self._lock:
            rng.done += nbytes
            now = time.monotonic()
            if now - self._last_save >= self.interval:
                self._save_locked()
                self._last_save = now

    def save(self) -> None:
        with self._lock:
            self._save_locked()

    def _save_locked(self) -> None:
        data = {
            "identity": self.identity,
            "ranges": [[r.start, r.end, r.done] for r in self.ranges],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with os.fdopen(open_own_file(str(tmp), os.O_WRONLY, create=True), "w") as fh:
            fh.write(json.dumps(data))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
