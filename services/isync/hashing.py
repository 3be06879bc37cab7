"""Checksums in the iRODS forms, computed beside transfers.

A zone hashes in its ``default_hash_scheme``: SHA256 (`sha2:` + base64 of the raw digest,
``lib/hasher/src/SHA256Strategy.cpp``) or MD5 (32 hex digits with no prefix,
``MD5Strategy.cpp``); a checksum already in the catalog keeps its own scheme (policy
``compatible``). isync hashes a local file in the scheme of the checksum it compares with,
and in the zone's scheme (client hints, API 10215) when it sends one to be verified.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from services.isync.ranges import ByteRange

CHUNK = 8 * 1024 * 1024
SHA256 = "SHA256"
MD5 = "MD5"
_HEX = frozenset("0123456789abcdefABCDEF")

log = logging.getLogger(__name__)


def irods_sha256(digest: bytes) -> str:
    return "sha2:" + base64.b64encode(digest).decode("ascii")


def scheme_of(checksum: str | None) -> str | None:
    """The scheme of an iRODS checksum, as ``get_hash_scheme_from_checksum`` reads it
    (``lib/hasher/src/irods_hasher_factory.cpp``): SHA256 for ``sha2:``, MD5 for plain hex;
    None for an empty checksum or one isync cannot compute (sha512:, adler32:, ...)."""
    if not checksum:
        return None
    if checksum.startswith("sha2:"):
        return SHA256
    if len(checksum) == 32 and not set(checksum) - _HEX:
        return MD5
    return None


def new_hash(scheme: str) -> Any:
    """A fresh hashlib object for ``scheme``."""
    return hashlib.md5(usedforsecurity=False) if scheme == MD5 else hashlib.sha256()


def irods_form(h: Any, scheme: str) -> str:
    """The iRODS text of a finished hash of ``scheme``."""
    return h.hexdigest() if scheme == MD5 else irods_sha256(h.digest())


def checksum_of(data: bytes | memoryview, scheme: str = SHA256) -> str:
    """The iRODS-form checksum of bytes in memory."""
    h = new_hash(scheme)
    h.update(data)
    return irods_form(h, scheme)


_ZONE_SCHEMES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def zone_scheme(session: Any) -> str:
    """The zone's ``default_hash_scheme`` from its client hints (API 10215, asked once per
    session); SHA256, a fresh zone's default, when the server will not say."""
    try:
        return _ZONE_SCHEMES[session]
    except (KeyError, TypeError):
        pass
    scheme = SHA256
    try:
        said = str(session.client_hints.get("hash_scheme", "")).strip().upper()
    except Exception as e:  # an old server or a refused API: assume the default
        log.debug("no client hints (%s); assuming SHA256", type(e).__name__)
    else:
        scheme = MD5 if said == MD5 else SHA256
    with contextlib.suppress(TypeError):  # a session that cannot be weakly referenced
        _ZONE_SCHEMES[session] = scheme
    return scheme


def file_checksum(
    path: str, cancelled: Callable[[], bool] = lambda: False, scheme: str = SHA256
) -> str:
    """The iRODS-form checksum (``scheme``: SHA256 or MD5) of a whole local file."""
    h = new_hash(scheme)
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(mv[:n])
            if cancelled():
                raise InterruptedError
    return irods_form(h, scheme)


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


def remote_checksum(session: Any, path: str) -> str:
    """Ask iRODS for the object's checksum (629: it computes and stores one, in the zone's
    scheme, when the catalog has none: a whole read of the object on the server)."""
    return str(session.data_objects.chksum(path))
