"""The tasks already taken or settled, remembered in files under ``state_dir``.

A task signed by the API stays valid for ``signing.task_max_age`` (7 days). Whoever can
read a task message and publish could send it again in that time; kept only in a
worker's memory, the "already taken" mark is lost at a restart and unknown to the other
workers, and the replay would run the transfer again and move its finished job back
through ``active``. So the marks live in files that every worker sharing ``state_dir``
appends to and reads (one line per key, ``O_APPEND``; root's, 0600):

* ``task:<id>:<run>:<attempt>`` when an attempt is taken: a later delivery of it that the
  broker does not mark *redelivered* is a replay;
* ``done:<id>:<run>`` when a run is settled (completed, cancelled or archived): any later
  delivery of that run, redelivered or not, is acked without running (a redelivery after
  a crash between the final event and the ack has nothing left to do).

Keys are written to the file of the current window (``.seen-<n>``, ``n = now // window``,
``window`` = the task max age) and looked up in it and the previous one, so a key is
remembered at least ``window`` seconds; older files are removed. Each lookup first reads
what other workers appended since (a ``pread`` from the last offset).
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from services.worker.state_dir import StateDirError, open_base

PREFIX = ".seen-"
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


class _File:
    """One window's file: its descriptor, how far it was read, the keys read."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.offset = 0
        self.partial = b""
        self.keys: set[str] = set()

    def catch_up(self) -> None:
        while chunk := os.pread(self.fd, 1 << 16, self.offset):
            self.offset += len(chunk)
            *lines, self.partial = (self.partial + chunk).split(b"\n")
            self.keys.update(line.decode(errors="replace") for line in lines if line)

    def append(self, key: str) -> None:
        os.write(self.fd, key.encode() + b"\n")
        self.keys.add(key)


class SeenTasks:
    """Keys of tasks taken or settled by any worker sharing ``state_dir`` (see above)."""

    def __init__(
        self, state_dir: Path, window: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.state_dir = state_dir
        self.window = max(window, 60.0)
        self._clock = clock
        self._files: dict[int, _File] = {}
        self._current = -1
        self._roll()

    def _roll(self) -> None:
        """Hold the current and the previous window's files; remove older ones."""
        now = int(self._clock() // self.window)
        if now == self._current:
            return
        base = open_base(self.state_dir)
        try:
            for n in (now - 1, now):
                if n not in self._files:
                    self._files[n] = _File(_open(base, f"{PREFIX}{n}", self.state_dir))
            for n in [n for n in self._files if n < now - 1]:
                os.close(self._files.pop(n).fd)
            for name in os.listdir(base):
                suffix = name.removeprefix(PREFIX)
                if name.startswith(PREFIX) and suffix.isdigit() and int(suffix) < now - 1:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=base)
        finally:
            os.close(base)
        self._current = now

    def _refresh(self) -> None:
        self._roll()
        for f in self._files.values():
            f.catch_up()

    def __contains__(self, key: str) -> bool:
        self._refresh()
        return any(key in f.keys for f in self._files.values())

    def add(self, key: str) -> None:
        """Remember ``key`` (in the current window's file)."""
        self._roll()
        self._files[self._current].append(key)

    def check_and_add(self, key: str) -> bool:
        """True (and remembered) the first time ``key`` is seen by any worker, else False."""
        if key in self:
            return False
        self.add(key)
        return True

    def close(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):
                os.close(f.fd)
        self._files.clear()
        self._current = -1


def _open(base: int, name: str, state_dir: Path) -> int:
    """``name`` in ``base``: root's regular 0600 file, never through a link."""
    where = state_dir / name
    try:
        fd = os.open(name, _FLAGS, 0o600, dir_fd=base)
    except OSError as e:
        raise StateDirError(f"state_dir: cannot open {where}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
        os.close(fd)
        raise StateDirError(f"state_dir: {where} is not the worker's own file (remove it)")
    os.fchmod(fd, 0o600)
    return fd
