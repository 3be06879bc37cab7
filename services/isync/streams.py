"""N connections on one replica (the replica-token protocol), one byte range per stream.

The first stream opens (or creates) the object and asks for its replica token and resource
hierarchy (API 20000); the others open with that token. Secondary streams close with
REPLICA_CLOSE (20004); the first closes last with DATA_OBJ_CLOSE, which finalises the replica.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from services.isync import wire
from services.isync.context import Context
from services.isync.journal import Journal
from services.isync.ranges import ByteRange

Worker = Callable[[Any, int, ByteRange, threading.Event], None]


class StreamSet:
    def __init__(
        self,
        ctx: Context,
        path: str,
        count: int,
        first_flags: int,
        first_options: dict[str, str],
        join_flags: int,
        size: int,
    ) -> None:
        self.ctx = ctx
        self.path = path
        self.count = max(1, count)
        self.first_flags = first_flags
        self.first_options = first_options
        self.join_flags = join_flags
        self.size = size
        self.conns: list[Any] = []
        self.fds: list[int] = []
        self.broken: set[int] = set()

    def open(self) -> None:
        """Open the first stream, then the others with its replica token.

        The other streams connect and log in while the first one opens the object (on a
        real zone each login is an agent start-up), then open at once; the connections
        stay in index order with their descriptors, a failed one marked broken.
        """
        pool = self.ctx.session.pool
        first = pool.get_connection()
        self.conns.append(first)
        joiners = [
            _Joiner(pool, self.path, self.join_flags, self.size) for _ in range(self.count - 1)
        ]
        try:
            self.fds.append(
                wire.open_object(first, self.path, self.first_flags, self.first_options, self.size)
            )
            if joiners:
                token, hier = wire.replica_access_info(first, self.fds[0])
                for j in joiners:
                    j.options = wire.secondary_options(token, hier, self.count, self.size)
        finally:
            if not self.fds:  # the first open failed: keep descriptors aligned with conns
                self.fds.append(-1)
                self.broken.add(0)
            for j in joiners:
                j.go.set()
            error: BaseException | None = None
            for j in joiners:
                j.join()
                if j.conn is not None:
                    if j.fd is None:
                        self.broken.add(len(self.conns))
                    self.conns.append(j.conn)
                    self.fds.append(-1 if j.fd is None else j.fd)
                error = error or j.error
        if error is not None:
            raise error

    def run(self, ranges: list[ByteRange], worker: Worker) -> None:
        """Run `worker(conn, fd, range, stop)` for each range on its own stream and thread."""
        stop = threading.Event()
        errors: list[BaseException] = []

        def body(i: int, rng: ByteRange) -> None:
            try:
                worker(self.conns[i], self.fds[i], rng, stop)
            except BaseException as e:
                self.broken.add(i)
                errors.append(e)
                stop.set()

        threads = [
            threading.Thread(target=body, args=(i, rng), name=f"isync-stream-{i}", daemon=True)
            for i, rng in enumerate(ranges)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def close(self, ok: bool) -> None:
        """Close secondaries with REPLICA_CLOSE, then the first with DATA_OBJ_CLOSE."""
        first_error: BaseException | None = None
        for i in range(len(self.conns) - 1, -1, -1):
            conn, fd = self.conns[i], self.fds[i] if i < len(self.fds) else None
            try:
                if fd is not None and i not in self.broken:
                    if i == 0:
                        wire.close(conn, fd)
                    else:
                        wire.replica_close(conn, fd)
            except BaseException as e:
                self.broken.add(i)
                first_error = first_error or e
            finally:
                with contextlib.suppress(Exception):
                    conn.release(destroy=i in self.broken or not ok)
        self.conns, self.fds = [], []
        if ok and first_error is not None:
            raise first_error


class _Joiner(threading.Thread):
    """One secondary stream: connect and log in now, open once the token is known."""

    def __init__(self, pool: Any, path: str, flags: int, size: int) -> None:
        super().__init__(name="isync-stream-open", daemon=True)
        self.pool, self.path, self.flags, self.size = pool, path, flags, size
        self.options: dict[str, str] | None = None  # set before `go`; None: do not open
        self.go = threading.Event()
        self.conn: Any = None
        self.fd: int | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.conn = self.pool.get_connection()
            self.go.wait()
            if self.options is not None:
                self.fd = wire.open_object(
                    self.conn, self.path, self.flags, self.options, self.size
                )
        except BaseException as e:  # handed to the opening thread
            self.error = e


def run_ranges(
    streams: StreamSet,
    ranges: list[ByteRange],
    worker: Worker,
    *,
    local_fd: int,
    journal: Journal,
    stop_hash: threading.Event,
    open_first: bool = False,
) -> None:
    """Move ``ranges`` over ``streams``, then always: close the local file, close the
    streams (finalising the replica only on success), save the resume journal, and stop
    the checksum thread when the transfer failed."""
    ok = False
    try:
        if open_first:
            streams.open()
        streams.run(ranges, worker)
        ok = True
    finally:
        os.close(local_fd)
        try:
            streams.close(ok)
        finally:
            journal.save()
            if not ok:
                stop_hash.set()
