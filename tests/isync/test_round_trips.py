"""Round trips per transfer, counted on the wire: a whole ``isync`` process talks to the
test server through a counting proxy (``bench/_wiretap.py``), and every request of a
new-object put and of a get is listed. Deterministic (no timing): when a change adds a
request per file or per MiB, the table below fails.

For comparison, python-irodsclient's ``data_objects.put`` of a new 256 MiB object sends 90
requests (6 GenQueries, 7 seeks, 64 writes) and its get 156 (75 seeks, 64 reads).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from irods import keywords as kw

from tests.isync.conftest import run_cli_via

MiB = 1024 * 1024
SIZE = 64 * MiB  # 8 writes or reads of 8 MiB, two streams of 32 MiB

#: Per connection: RODS_CONNECT, two native-authentication requests, RODS_DISCONNECT.
LOGIN = {"RODS_CONNECT": 1, "AUTHENTICATION_APN": 2, "RODS_DISCONNECT": 1}


def per_connection(connections: int) -> Counter[str]:
    return Counter({k: v * connections for k, v in LOGIN.items()})


def run_cli(args: list[str], environ: dict[str, str], port: int) -> None:
    proc = run_cli_via(args, environ, port)
    assert proc.returncode == 0, proc.stderr


def test_new_object_put_and_get_round_trips(
    tmp_path: Path, isync_environ: dict[str, str], irods_session: Any, coll: str, tap: Any
) -> None:
    irods_session.collections.create(coll)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(SIZE))

    run_cli(["-N", "2", str(src), f"i:{coll}/big.bin"], isync_environ, tap.port)
    tap.wait_closed()  # the CLI has exited; its last frames may still be in the tap
    put = tap.counts()
    assert put == per_connection(2) + Counter(
        {
            "GEN_QUERY_AN": 2,  # are DST and its parent collections; does the object exist
            "DATA_OBJ_OPEN_AN": 2,  # the part object, then the second stream with its token
            "GET_FILE_DESCRIPTOR_INFO_APN": 1,  # the replica token
            "DATA_OBJ_LSEEK_AN": 1,  # the second stream to its range (none to offset 0)
            "DATA_OBJ_WRITE_AN": SIZE // (8 * MiB),
            "REPLICA_CLOSE_APN": 1,
            "DATA_OBJ_CLOSE_AN": 1,
            "DATA_OBJ_RENAME_AN": 1,  # the part object onto its name, nothing asked first
        }
    ), put
    assert tap.payload_bytes() == SIZE
    assert irods_session.data_objects.get(f"{coll}/big.bin").size == SIZE

    tap.reset()
    back = tmp_path / "back.bin"
    run_cli(["-N", "2", f"i:{coll}/big.bin", str(back)], isync_environ, tap.port)
    tap.wait_closed()
    get = tap.counts()
    assert get == per_connection(2) + Counter(
        {
            "GEN_QUERY_AN": 1,  # the object's size and checksum
            "DATA_OBJ_OPEN_AN": 2,
            "GET_FILE_DESCRIPTOR_INFO_APN": 1,
            "DATA_OBJ_LSEEK_AN": 1,
            "DATA_OBJ_READ_AN": SIZE // (8 * MiB),  # 8 MiB per read, PRC asks 4 MiB
            "REPLICA_CLOSE_APN": 1,
            "DATA_OBJ_CLOSE_AN": 1,
        }
    ), get
    assert back.read_bytes() == src.read_bytes()


def test_default_streams_follow_the_cores(
    tmp_path: Path, isync_environ: dict[str, str], irods_session: Any, coll: str, tap: Any
) -> None:
    """Without -N a 64 MiB object gets two streams on any machine (one per 32 MiB, at
    least two); a 40 MiB one only one (its own connection: nothing to join)."""
    irods_session.collections.create(coll)
    for size, streams in ((64 * MiB, 2), (40 * MiB, 1)):
        src = tmp_path / f"f{size}.bin"
        src.write_bytes(os.urandom(size))
        tap.reset()
        run_cli([str(src), f"i:{coll}/"], isync_environ, tap.port)
        tap.wait_closed()
        counts = tap.counts()
        assert tap.connections() == streams, counts
        assert counts["DATA_OBJ_OPEN_AN"] == streams
        assert counts["GET_FILE_DESCRIPTOR_INFO_APN"] == (1 if streams > 1 else 0)


#: Keywords that make the server hash a replica (``regChksum``, ``verifyChksum``,
#: ``forceChksum``): none belongs in a put that sends no ``-K``.
CHECKSUM_KEYWORDS = {kw.REG_CHKSUM_KW, kw.VERIFY_CHKSUM_KW, kw.FORCE_CHKSUM_KW}


def test_overwrite_put_asks_the_server_for_no_checksum(
    tmp_path: Path, isync_environ: dict[str, str], irods_session: Any, coll: str, tap: Any
) -> None:
    """The bench's overwrite (a same-size stale copy, other bytes in its first MiB, the
    source newer): a new-object put plus one sampled read of the old object and its
    unlink before the rename; no checksum request and no keyword that makes the server
    hash (its CPU on an overwrite is the vault's page cache, not a checksum)."""
    irods_session.collections.create(coll)
    data = os.urandom(SIZE)
    src, old = tmp_path / "big.bin", tmp_path / "old.bin"
    src.write_bytes(data)
    old.write_bytes(os.urandom(MiB) + data[MiB:])
    obj = f"{coll}/big.bin"
    irods_session.data_objects.put(str(old), obj)
    os.utime(src, (time.time() + 2, time.time() + 2))

    run_cli(["-N", "2", "-f", str(src), f"i:{obj}"], isync_environ, tap.port)
    tap.wait_closed()
    assert tap.counts() == per_connection(2) + Counter(
        {
            "GEN_QUERY_AN": 2,
            "DATA_OBJ_OPEN_AN": 3,  # the sample's read open, then the two streams
            "DATA_OBJ_READ_AN": 1,  # the first 64 KiB differ: no more samples
            "DATA_OBJ_CLOSE_AN": 2,  # the sample's, then the part object's
            "GET_FILE_DESCRIPTOR_INFO_APN": 1,
            "DATA_OBJ_LSEEK_AN": 1,
            "DATA_OBJ_WRITE_AN": SIZE // (8 * MiB),
            "REPLICA_CLOSE_APN": 1,
            "DATA_OBJ_UNLINK_AN": 1,  # the old object, once the new one is complete
            "DATA_OBJ_RENAME_AN": 1,
        }
    ), tap.counts()
    keywords = tap.keywords()
    assert keywords[kw.FORCE_FLAG_KW] == 1, keywords  # the tap does see keywords: the unlink's
    assert not CHECKSUM_KEYWORDS & set(keywords), keywords
    back = tmp_path / "back.bin"
    irods_session.data_objects.get(obj, str(back))
    assert back.read_bytes() == data
