"""`-K` hashes while the data moves: the file's bytes are read for hashing once, never in
a second pass. Counted with the kernel's own per-process byte counter (``rchar`` in
``/proc/self/io``: every byte read by read/pread/readv, and by sendfile, from any file by
any thread of this process), around a large put and get against the test server.

A put without -K sends with sendfile (the bytes are counted once, never copied into
Python); with -K one more pass, the hasher's. A get receives from the socket (recv is not
counted), so without -K nothing is read back, with -K the hasher reads the part file once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from services.isync.engine import transfer
from services.isync.models import TransferOptions
from services.isync.progress import NullSink
from shared.irods import IrodsAccount

MiB = 1024 * 1024
SIZE = 48 * MiB
#: What else the process reads meanwhile: replies, /proc, Python's own files (a few KiB);
#: a second pass over the data would be 48 MiB more.
SLACK = 2 * MiB


def rchar() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def bytes_read(src: str, dst: str, account: IrodsAccount, verify: bool) -> int:
    options = TransferOptions(verify_checksum=verify, streams=2)
    before = rchar()
    report = transfer(src, dst, account, options, NullSink())
    after = rchar()
    assert report.exit_status == 0, report.outcomes
    (outcome,) = report.outcomes
    assert outcome.outcome == "transferred" and (outcome.checksum is not None) == verify
    return after - before


def test_checksum_reads_the_file_once(
    tmp_path: Path, account: IrodsAccount, irods_session: Any, coll: str
) -> None:
    irods_session.collections.create(coll)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(SIZE))
    plain_put = bytes_read(str(src), f"irods:{coll}/plain.bin", account, verify=False)
    assert SIZE <= plain_put < SIZE + SLACK, plain_put  # sendfile's one pass
    checked_put = bytes_read(str(src), f"irods:{coll}/checked.bin", account, verify=True)
    assert 2 * SIZE <= checked_put < 2 * SIZE + SLACK, checked_put  # + the hasher's pass

    plain_get = bytes_read(f"irods:{coll}/plain.bin", str(tmp_path / "a"), account, verify=False)
    assert plain_get < SLACK, plain_get
    checked_get = bytes_read(f"irods:{coll}/checked.bin", str(tmp_path / "b"), account, True)
    assert SIZE <= checked_get < SIZE + SLACK, checked_get  # the part file, once
    assert (tmp_path / "b").read_bytes() == src.read_bytes()
