"""A quick look before the checksums: do a few sampled ranges of the two sides differ?

Deciding whether a same-size destination changed costs a sha256 pass over the local file
and, when the catalog holds no checksum, the server computing one over the whole object:
seconds for a GiB on either side. When the destination did change, its bytes usually
differ somewhere a few small reads can see: `SAMPLE` bytes at the start, the middle and
the end are read from both sides (one open, a seek and a read per range, one close: at
most 7 requests and 192 KiB) and compared. A difference settles it (changed: no checksum
of either side is needed); equal samples prove nothing, and the skip policy's sha256
comparison runs as before. Only for files of at least `MIN_SIZE`, where the checksums cost
more than these round trips, only under the checksum skip policy, and only where that
policy would hash: `skip.unchanged` calls `differs` after its size and modification-time
decisions, just before it would hash.
"""

from __future__ import annotations

import os
import stat

from services.isync import wire
from services.isync.context import Context

SAMPLE = 64 * 1024
MIN_SIZE = 32 * 1024 * 1024


def ranges(size: int) -> list[tuple[int, int]]:
    """(offset, length) of the sampled ranges of a `size`-byte file: start, middle, end."""
    n = min(SAMPLE, size)
    offsets = sorted({0, max(0, size // 2 - n // 2), size - n})
    return [(off, n) for off in offsets]


def differs(ctx: Context, irods_path: str, local_path: str, size: int) -> bool:
    """True when a sampled range of the data object and of the local file (both `size`
    bytes) differ; False when they agree, or when either could not be read this way (the
    checksums then decide, and report any error)."""
    if size < MIN_SIZE or ctx.options.skip_policy != "checksum":
        return False
    try:
        local = _local_samples(local_path, size)
        if local is None:
            return False
        with ctx.connection() as conn:
            fd = wire.open_object(conn, irods_path, wire.O_RDONLY)
            try:
                for (offset, length), mine in zip(ranges(size), local, strict=True):
                    wire.seek(conn, fd, offset)
                    if _read(conn, fd, length) != mine:
                        return True
            finally:
                wire.close(conn, fd)
    except Exception:  # the look is only a shortcut: any trouble leaves it to the checksums
        return False
    return False


def _local_samples(path: str, size: int) -> list[bytes] | None:
    """The sampled ranges of a regular file of `size` bytes (never waits on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return None
        return [os.pread(fd, length, offset) for offset, length in ranges(size)]
    finally:
        os.close(fd)


def _read(conn: object, fd: int, length: int) -> bytes:
    buf = memoryview(bytearray(length))
    got = 0
    while got < length:
        n = wire.read_into(conn, fd, buf[got:])
        if n <= 0:
            break
        got += n
    return bytes(buf[:got])
