"""sha256 in the iRODS form (`sha2:` + base64 of the raw digest), computed beside transfers."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from services.isync.ranges import ByteRange

CHUNK = 8 * 1024 * 1024


def irods_sha256(digest: bytes) -> str:
    return "sha2:" + base64.b64encode(digest).decode("ascii")


def file_checksum(path: str, cancelled: Callable[[], bool] = lambda: False) -> str:
    """The iRODS-form sha256 of a whole local file."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(mv[:n])
            if cancelled():
                raise InterruptedError
    return irods_sha256(h.digest())


class ChasingHasher(threading.Thread):
    """Hashes a file front to back while ranges of it are still being written.

    It reads through a duplicate of the transfer's own descriptor (never the path again),
    and only bytes whose range reports them done, so a get can be verified as it lands
    (page cache, no second pass afterwards). For a put every range is "done" from the
    start and it simply hashes the source alongside the streams.
    """

    def __init__(
        self, fd: int, ranges: Sequence[ByteRange], stop: threading.Event, size: int
    ) -> None:
        super().__init__(name="isync-hash", daemon=True)
        #: its own duplicate of the descriptor the transfer reads or writes: it hashes the
        #: very file the streams move, never a file that took its name since
        self.fd = os.dup(fd)
        self.ranges = sorted(ranges, key=lambda r: r.start)
        self.stop = stop
        self.size = size
        self.result: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._hash()
        except BaseException as e:  # reported to the caller through .error
            self.error = e

    def _hash(self) -> str | None:
        h = hashlib.sha256()
        buf = bytearray(CHUNK)
        mv = memoryview(buf)
        fd = self.fd
        try:
            for rng in self.ranges:
                pos = rng.start
                while pos < rng.end:
                    ready = rng.start + rng.done
                    if ready <= pos:
                        if self.stop.is_set():
                            return None
                        time.sleep(0.005)
                        continue
                    n = os.preadv(fd, [mv[: min(CHUNK, ready - pos)]], pos)
                    if n <= 0:
                        raise OSError("file shrank while it was being hashed")
                    h.update(mv[:n])
                    pos += n
        finally:
            os.close(fd)
        return irods_sha256(h.digest())

    def wait(self) -> str:
        self.join()
        if self.error is not None:
            raise self.error
        if self.result is None:
            raise InterruptedError
        return self.result


def remote_checksum(session: Any, path: str) -> str:
    """Ask iRODS for the object's sha256 (it computes it when the catalog has none)."""
    return str(session.data_objects.chksum(path))
