"""services/isync/sample.py: a same-size destination that differs in a sampled range is
known changed without a checksum of either side; anything else goes to the checksums as
before. Counted on the wire (``bench/_wiretap.py``) with whole ``isync`` processes."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from services.isync import sample
from tests.isync.conftest import run_cli_via

MiB = 1024 * 1024
SIZE = 40 * MiB  # above sample.MIN_SIZE, one stream


def make_older(path: Path) -> None:
    """Back-date `path` an hour: the skip policy's modification-time rule then cannot
    say "unchanged" (the destination is not newer than its source), so it would hash."""
    past = time.time() - 3600
    os.utime(path, (past, past))


def stale(data: bytes, at: int) -> bytes:
    """`data` with 4 KiB changed at offset `at`: same size, other bytes."""
    return data[:at] + bytes(b ^ 0xFF for b in data[at : at + 4096]) + data[at + 4096 :]


def test_ranges_cover_start_middle_and_end() -> None:
    assert sample.ranges(10 * MiB) == [
        (0, sample.SAMPLE),
        (5 * MiB - sample.SAMPLE // 2, sample.SAMPLE),
        (10 * MiB - sample.SAMPLE, sample.SAMPLE),
    ]
    assert sample.ranges(100) == [(0, 100)]  # a tiny file: one range, the whole of it


@pytest.mark.parametrize(
    ("changed_at", "reads", "checksums"),
    [
        (0, 1, 0),  # the first sample differs: no checksum anywhere
        (SIZE - 4096, 3, 0),  # the last one does
        (3 * MiB, 3, 1),  # no sample sees it: the sha256 comparison finds it
    ],
)
def test_put_overwrite_of_a_changed_object(
    tmp_path: Path,
    isync_environ: dict[str, str],
    irods_session: Any,
    coll: str,
    tap: Any,
    changed_at: int,
    reads: int,
    checksums: int,
) -> None:
    irods_session.collections.create(coll)
    data = os.urandom(SIZE)
    src, old = tmp_path / "big.bin", tmp_path / "old.bin"
    src.write_bytes(data)
    old.write_bytes(stale(data, changed_at))
    obj = f"{coll}/big.bin"
    irods_session.data_objects.put(str(old), obj)
    os.utime(src, (time.time() + 2, time.time() + 2))  # the source changed after that put

    proc = run_cli_via(["-f", str(src), f"i:{obj}"], isync_environ, tap.port)
    assert proc.returncode == 0, proc.stderr
    tap.wait_closed()
    counts = tap.counts()
    assert counts["DATA_OBJ_READ_AN"] == reads, counts
    assert counts["DATA_OBJ_CHKSUM_AN"] == checksums, counts
    back = tmp_path / "back.bin"
    irods_session.data_objects.get(obj, str(back))
    assert back.read_bytes() == data


def test_changed_object_without_force_is_refused(
    tmp_path: Path, isync_environ: dict[str, str], irods_session: Any, coll: str, tap: Any
) -> None:
    irods_session.collections.create(coll)
    data = os.urandom(SIZE)
    src, old = tmp_path / "big.bin", tmp_path / "old.bin"
    src.write_bytes(data)
    old.write_bytes(stale(data, 0))
    obj = f"{coll}/big.bin"
    irods_session.data_objects.put(str(old), obj)
    os.utime(src, (time.time() + 2, time.time() + 2))

    proc = run_cli_via([str(src), f"i:{obj}"], isync_environ, tap.port)
    assert proc.returncode != 0
    assert "exists and differs (use -f to overwrite)" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    back = tmp_path / "back.bin"
    irods_session.data_objects.get(obj, str(back))
    assert back.read_bytes() == old.read_bytes()  # left as it was


def test_identical_object_is_still_skipped_by_checksum(
    tmp_path: Path, isync_environ: dict[str, str], irods_session: Any, coll: str, tap: Any
) -> None:
    irods_session.collections.create(coll)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(SIZE))
    obj = f"{coll}/big.bin"
    irods_session.data_objects.put(str(src), obj)
    os.utime(src, (time.time() + 2, time.time() + 2))  # times cannot say: the policy hashes

    proc = run_cli_via(["-f", str(src), f"i:{obj}"], isync_environ, tap.port)
    assert proc.returncode == 0, proc.stderr
    tap.wait_closed()
    counts = tap.counts()
    assert counts["DATA_OBJ_READ_AN"] == 3, counts  # every sample agreed
    assert counts["DATA_OBJ_CHKSUM_AN"] == 1, counts  # then sha256 said: the same
    assert counts["DATA_OBJ_WRITE_AN"] == 0, counts  # skipped: nothing sent


def test_no_sample_where_the_policy_skips_by_modification_time(
    tmp_path: Path, isync_environ: dict[str, str], irods_session: Any, coll: str, tap: Any
) -> None:
    """No catalog checksum and an object written after its source changed: the skip
    policy's own decision (unchanged, nothing hashed) stands and nothing is read."""
    irods_session.collections.create(coll)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(SIZE))
    make_older(src)
    obj = f"{coll}/big.bin"
    irods_session.data_objects.put(str(src), obj)

    proc = run_cli_via(["-f", str(src), f"i:{obj}"], isync_environ, tap.port)
    assert proc.returncode == 0, proc.stderr
    tap.wait_closed()
    counts = tap.counts()
    assert counts["DATA_OBJ_OPEN_AN"] == 0, counts
    assert counts["DATA_OBJ_READ_AN"] == 0, counts
    assert counts["DATA_OBJ_CHKSUM_AN"] == 0, counts


def test_get_overwrite_of_a_changed_file_needs_no_checksum(
    tmp_path: Path, isync_environ: dict[str, str], irods_session: Any, coll: str, tap: Any
) -> None:
    irods_session.collections.create(coll)
    data = os.urandom(SIZE)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    obj = f"{coll}/big.bin"
    irods_session.data_objects.put(str(src), obj)
    dst = tmp_path / "dst.bin"
    dst.write_bytes(stale(data, SIZE // 2))
    make_older(dst)  # an old local copy: the policy would hash both sides

    proc = run_cli_via(["-f", f"i:{obj}", str(dst)], isync_environ, tap.port)
    assert proc.returncode == 0, proc.stderr
    tap.wait_closed()
    counts = tap.counts()
    assert counts["DATA_OBJ_CHKSUM_AN"] == 0, counts
    assert dst.read_bytes() == data
