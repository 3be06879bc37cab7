"""The -K hasher reads the file the transfer moves, through its own descriptor: a file put
in place of the source (or of a get's part file) after the transfer opened it does not
change what is hashed, so the checksum compared with the server's is of the bytes sent."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from services.isync.hashing import ChasingHasher, irods_sha256
from services.isync.ranges import ByteRange


def test_hasher_hashes_the_open_file_not_the_path(tmp_path: Path) -> None:
    sent = os.urandom(3 * 1024 * 1024 + 7)
    src = tmp_path / "data.bin"
    src.write_bytes(sent)
    fd = os.open(src, os.O_RDONLY)
    try:
        hasher = ChasingHasher(
            fd, [ByteRange(0, len(sent), len(sent))], threading.Event(), len(sent)
        )
        swapped = tmp_path / "other.bin"
        swapped.write_bytes(b"x" * len(sent))
        os.replace(swapped, src)  # another file takes the source's name before hashing
        hasher.start()
        assert hasher.wait() == irods_sha256(hashlib.sha256(sent).digest())
    finally:
        os.close(fd)


def test_hasher_closes_only_its_own_descriptor(tmp_path: Path) -> None:
    src = tmp_path / "data.bin"
    src.write_bytes(b"abc")
    fd = os.open(src, os.O_RDONLY)
    try:
        hasher = ChasingHasher(fd, [ByteRange(0, 3, 3)], threading.Event(), 3)
        hasher.start()
        hasher.wait()
        assert os.pread(fd, 3, 0) == b"abc"  # the transfer's descriptor is still open
    finally:
        os.close(fd)
