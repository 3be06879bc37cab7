"""Replica status, size, mtime and checksum after registration, 622 and a close, as
iRODS 4.3.4 leaves them (issue 14, item 4); each test names the source it follows.
Driven by the unmodified python-irodsclient (its message classes for the raw calls)."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import irods.keywords as kw
from irods.api_number import api_number
from irods.message import FileOpenRequest, OpenedDataObjRequest, StringStringMap, iRODSMessage

O_WRONLY, O_CREAT, O_TRUNC = 1, 64, 512


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def replicas(session: Any, path: str) -> list[Any]:
    return sorted(session.data_objects.get(path).replicas, key=lambda r: r.number)


def _file(tmp_path: Path, name: str, data: bytes, mtime: int = 1_400_000_000) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def test_register_as_replica_with_a_size_stales_the_others(
    irods_session: Any, coll: str, second_resc: str, tmp_path: Path
) -> None:
    """``verify_and_update_replica`` (``server/api/src/rsRegReplica.cpp``): DATA_SIZE_KW
    makes a modDataObjMeta with ALL_REPL_STATUS_KW: the new replica good, the original
    stale; the new row copies the source's checksum scheme (recomputed for its file) and
    is stamped with the registration time, not the file's mtime."""
    one = _file(tmp_path, "one", b"registered")
    two = _file(tmp_path, "two", b"registered")
    path = f"{coll}/reg"
    irods_session.data_objects.register(str(one), path, **{kw.REG_CHKSUM_KW: ""})
    before = time.time()
    irods_session.data_objects.register(
        str(two),
        path,
        **{kw.REG_REPL_KW: "", kw.RESC_NAME_KW: second_resc, kw.DATA_SIZE_KW: "10"},
    )
    first, new = replicas(irods_session, path)
    assert (first.status, new.status) == ("0", "1")
    assert new.checksum == sha2(b"registered") and new.size == 10
    assert new.modify_time.timestamp() >= int(before)
    irods_session.data_objects.unregister(path)


def test_register_as_replica_of_the_same_bytes_without_a_size_keeps_both_good(
    irods_session: Any, coll: str, second_resc: str, tmp_path: Path
) -> None:
    """Nothing to update (same size, no checksum on the source): no modDataObjMeta."""
    one = _file(tmp_path, "one", b"same")
    two = _file(tmp_path, "two", b"same")
    path = f"{coll}/same"
    irods_session.data_objects.register(str(one), path)
    irods_session.data_objects.register(
        str(two), path, **{kw.REG_REPL_KW: "", kw.RESC_NAME_KW: second_resc}
    )
    assert [r.status for r in replicas(irods_session, path)] == ["1", "1"]
    irods_session.data_objects.unregister(path)


def test_mod_data_obj_meta_all_repl_status_stales_the_other_replicas(
    irods_session: Any, coll: str, second_resc: str
) -> None:
    """``db_mod_data_obj_meta_op`` (``plugins/database/src/db_plugin.cpp``): with
    ALL_REPL_STATUS_KW this replica is marked good and the others stale."""
    path = f"{coll}/pair"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"v1")
    irods_session.data_objects.replicate(path, second_resc)
    irods_session.data_objects.modDataObjMeta(
        {"objPath": path, "replNum": 1}, {"dataSize": 2, kw.ALL_REPL_STATUS_KW: "1"}
    )
    assert [r.status for r in replicas(irods_session, path)] == ["0", "1"]


def test_register_keeps_the_modify_time_it_is_given_else_now(
    irods_session: Any, coll: str, tmp_path: Path
) -> None:
    """``filePathReg`` (``register_physical_path.cpp``): DATA_MODIFY_KW is stored as given;
    without it the catalog's now, not the file's mtime (here 1400000000)."""
    f = _file(tmp_path, "f", b"x")
    irods_session.data_objects.register(
        str(f), f"{coll}/given", **{kw.DATA_MODIFY_KW: "1500000000"}
    )
    assert irods_session.data_objects.get(f"{coll}/given").modify_time.timestamp() == 1500000000
    before = int(time.time())
    irods_session.data_objects.register(str(f), f"{coll}/now")
    assert irods_session.data_objects.get(f"{coll}/now").modify_time.timestamp() >= before
    for name in ("given", "now"):
        irods_session.data_objects.unregister(f"{coll}/{name}")


def test_an_overwrite_clears_the_checksum_unless_one_is_asked_for(
    irods_session: Any, coll: str
) -> None:
    """``close_replica`` (``server/api/src/rsDataObjClose.cpp``): bytes written clear the
    checksum; only regChksum/verifyChksum compute a new one."""
    path = f"{coll}/sum"
    with irods_session.data_objects.open(path, "w", **{kw.REG_CHKSUM_KW: ""}) as f:
        f.write(b"one")
    assert irods_session.data_objects.get(path).checksum == sha2(b"one")
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"two")
    assert not irods_session.data_objects.get(path).checksum
    with irods_session.data_objects.open(path, "w", **{kw.REG_CHKSUM_KW: ""}) as f:
        f.write(b"three")
    assert irods_session.data_objects.get(path).checksum == sha2(b"three")


def _send(conn: Any, api: str, msg: Any, bs: bytes = b"") -> Any:
    conn.send(iRODSMessage("RODS_API_REQ", msg=msg, bs=bs, int_info=api_number[api]))
    return conn.recv()


def test_a_close_short_of_the_declared_size_leaves_the_replica_stale_yet_succeeds(
    irods_session: Any, coll: str
) -> None:
    """``update_replica_size_and_throw_on_failure``: dataSize > 0 and a different size in
    the vault (no noChkCopyLen): the replica is published stale with the vault's size and
    the close answers the byte count (success). With noChkCopyLen it is good."""
    for opts, status in (({}, "0"), ({kw.NO_CHK_COPY_LEN_KW: ""}, "1")):
        path = f"{coll}/short{status}"
        with irods_session.pool.get_connection() as conn:
            inp = FileOpenRequest(
                objPath=path,
                createMode=0o644,
                openFlags=O_WRONLY | O_CREAT | O_TRUNC,
                offset=0,
                dataSize=1000,
                numThreads=0,
                oprType=1,
                KeyValPair_PI=StringStringMap(opts),
            )
            fd = _send(conn, "DATA_OBJ_OPEN_AN", inp).int_info
            w = OpenedDataObjRequest(
                l1descInx=fd, len=10, whence=0, oprType=0, offset=0, bytesWritten=0,
                KeyValPair_PI=StringStringMap({}),
            )  # fmt: skip
            assert _send(conn, "DATA_OBJ_WRITE_AN", w, b"0123456789").int_info == 10
            c = OpenedDataObjRequest(
                l1descInx=fd, len=0, whence=0, oprType=0, offset=0, bytesWritten=0,
                KeyValPair_PI=StringStringMap({}),
            )  # fmt: skip
            assert _send(conn, "DATA_OBJ_CLOSE_AN", c).int_info >= 0
        [r] = replicas(irods_session, path)
        assert (r.status, r.size) == (status, 10)


def test_an_overwrite_shows_size_zero_and_no_checksum_while_it_runs(
    irods_server: Any, irods_session: Any, coll: str
) -> None:
    """``open_replica`` (``server/api/src/rsDataObjOpen.cpp``): a write-open with O_TRUNC
    publishes size 0 and no checksum at once ("operations following the open may depend
    on the size and checksum"; a 5.0.2 zone showed size 0 during an overwrite); the close
    sets the new size. A write-open without O_TRUNC keeps both."""
    path = f"{coll}/over"
    with irods_session.data_objects.open(path, "w", **{kw.REG_CHKSUM_KW: ""}) as f:
        f.write(b"x" * 1000)
    with irods_server.session() as other:
        f = irods_session.data_objects.open(path, "a")  # O_WRONLY without O_TRUNC
        [r] = replicas(other, path)
        assert (r.status, r.size, r.checksum) == ("2", 1000, sha2(b"x" * 1000))
        f.close()
        f = irods_session.data_objects.open(path, "w")  # O_WRONLY | O_TRUNC | O_CREAT
        f.write(b"y" * 10)
        f.flush()
        [r] = replicas(other, path)
        assert (r.status, r.size, r.checksum) == ("2", 0, None)
        f.close()
        [r] = replicas(other, path)
        assert (r.status, r.size, r.checksum) == ("1", 10, None)
