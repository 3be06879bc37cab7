"""The hasher that follows a transfer; the iRODS checksum forms are ``shared.checksums``.

A zone hashes in its ``default_hash_scheme`` (SHA256 or MD5); isync hashes a local file in
the scheme of the checksum it compares with, and in the zone's scheme (client hints, API
10215) when it sends one to be verified. The names below are re-exported for isync's
modules.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

from services.isync.ranges import ByteRange
from shared.checksums import (
    CHUNK,
    MD5,
    SHA256,
    checksum_of,
    file_checksum,
    irods_form,
    irods_sha256,
    new_hash,
    remote_checksum,
    scheme_of,
    zone_scheme,
)

__all__ = [
    "CHUNK",
    "MD5",
    "SHA256",
    "ChasingHasher",
    "checksum_of",
    "file_checksum",
    "irods_form",
    "irods_sha256",
    "new_hash",
    "remote_checksum",
    "scheme_of",
    "zone_scheme",
]


class ChasingHasher(threading.Thread):
    """Hashes a file front to back while ranges of it are still being written.

    It reads through a duplicate of the transfer's own descriptor (never the path again),
    and only bytes whose range reports them done, so a get can be verified as it lands
    (page cache, no second pass afterwards). For a put every range is "done" from the
    start and it simply hashes the source alongside the streams.
    """

    def __init__(
        self,
        fd: int,
        ranges: Sequence[ByteRange],
        stop: threading.Event,
        size: int,
        scheme: str = SHA256,
    ) -> None:
        super().__init__(name="isync-hash", daemon=True)
        #: its own duplicate of the descriptor the transfer reads or writes: it hashes the
        #: very file the streams move, never a file that took its name since
        self.fd = os.dup(fd)
        self.ranges = sorted(ranges, key=lambda r: r.start)
        self.stop = stop
        self.size = size
        self.scheme = scheme
        self.result: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._hash()
        except BaseException as e:  # reported to the caller through .error
            self.error = e

    def _hash(self) -> str | None:
        h = new_hash(self.scheme)
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
        return irods_form(h, self.scheme)

    def wait(self) -> str:
        self.join()
        if self.error is not None:
            raise self.error
        if self.result is None:
            raise InterruptedError
        return self.result
