"""689 BULK_DATA_OBJ_PUT on the test server, sent over the wire by isync's client
(``services/isync/bulk.py``) on a python-irodsclient connection: catalog rows, vault bytes,
checksums, the refusals of iRODS 5 (``forceFlag``, no ``delete_object`` on the collection,
an existing object) and what a failure in the middle leaves behind."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import irods.keywords as kw
import pytest
from irods.exception import (
    CAT_NO_ROWS_FOUND,
    OVERWRITE_WITHOUT_FORCE_FLAG,
    SYS_INVALID_INPUT_PARAM,
    UNMATCHED_KEY_OR_INDEX,
    USER_CHKSUM_MISMATCH,
    USER_INCOMPATIBLE_PARAMS,
    USER_PACKSTRUCT_INPUT_ERR,
    iRODSException,
)
from irods.message import iRODSMessage

from services.isync import bulk, wire


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


@contextmanager
def connection(session: Any) -> Iterator[Any]:
    conn = session.pool.get_connection()
    ok = False
    try:
        yield conn
        ok = True
    finally:
        conn.release(destroy=not ok)


def put(
    session: Any,
    coll: str,
    blobs: dict[str, bytes],
    checksums: list[str] | None = None,
    opts: dict[str, str] | None = None,
) -> None:
    files = [(f"{coll}/{name}", 0o640, len(b)) for name, b in blobs.items()]
    data = memoryview(b"".join(blobs.values()))
    with connection(session) as conn:
        bulk.send(conn, coll, files, data, checksums, dict(opts or {}))


def rows(session: Any, coll: str) -> dict[str, tuple[int, str, str]]:
    """name -> (size, replica status, checksum) of every replica row in ``coll``."""
    from irods.models import Collection, DataObject

    q = session.query(
        DataObject.name, DataObject.size, DataObject.replica_status, DataObject.checksum
    ).filter(Collection.name == coll)
    return {
        r[DataObject.name]: (
            int(r[DataObject.size]),
            str(r[DataObject.replica_status]),
            r[DataObject.checksum] or "",
        )
        for r in q
    }


def blobs_of(n: int, size: int = 1000) -> dict[str, bytes]:
    return {f"f{i:02}.bin": os.urandom(size + i) for i in range(n)}


def test_files_become_good_replicas_with_their_bytes(irods_session, coll, irods_server):
    blobs = blobs_of(48)
    blobs["empty"] = b""
    blobs["ünï & <odd>.txt"] = b"x" * 7
    put(irods_session, coll, blobs)
    found = rows(irods_session, coll)
    assert found == {name: (len(b), "1", "") for name, b in blobs.items()}
    for name, data in blobs.items():
        with irods_session.data_objects.open(f"{coll}/{name}", "r") as fh:
            assert fh.read() == data
    owner = irods_session.data_objects.get(f"{coll}/f00.bin").owner_name
    assert owner == "rods"


def test_verify_checksum_registers_each_files_checksum(irods_session, coll):
    blobs = blobs_of(5)
    put(
        irods_session,
        coll,
        blobs,
        [sha2(b) for b in blobs.values()],
        {kw.VERIFY_CHKSUM_KW: ""},
    )
    assert rows(irods_session, coll) == {n: (len(b), "1", sha2(b)) for n, b in blobs.items()}


def test_reg_checksum_has_the_server_compute_them(irods_session, coll):
    blobs = blobs_of(3)
    put(irods_session, coll, blobs, None, {kw.REG_CHKSUM_KW: ""})
    assert {n: c for n, (_, _, c) in rows(irods_session, coll).items()} == {
        n: sha2(b) for n, b in blobs.items()
    }


def test_a_checksum_mismatch_stops_there_and_leaves_that_replica_stale(irods_session, coll):
    blobs = blobs_of(4)
    sums = [sha2(b) for b in blobs.values()]
    sums[2] = sha2(b"other bytes")
    with pytest.raises(USER_CHKSUM_MISMATCH):
        put(irods_session, coll, blobs, sums, {kw.VERIFY_CHKSUM_KW: ""})
    found = rows(irods_session, coll)
    assert set(found) == {"f00.bin", "f01.bin", "f02.bin"}  # f03 never tried
    assert found["f00.bin"][1] == found["f01.bin"][1] == "1"
    assert found["f02.bin"][1] == "0"  # as iRODS: kept, stale, with what it computed


def test_verify_checksum_without_the_checksum_column_is_refused(irods_session, coll):
    with pytest.raises(UNMATCHED_KEY_OR_INDEX):
        put(irods_session, coll, blobs_of(2), None, {kw.VERIFY_CHKSUM_KW: ""})
    assert rows(irods_session, coll) == {}


def test_force_flag_is_refused_and_nothing_written(irods_session, coll):
    blobs = blobs_of(2)
    with pytest.raises(USER_INCOMPATIBLE_PARAMS) as e:
        put(irods_session, coll, blobs, None, {kw.FORCE_FLAG_KW: ""})
    assert "Force flag keyword is not allowed for bulk puts." in str(e.value)
    assert rows(irods_session, coll) == {}


def test_an_existing_object_is_not_overwritten_and_stops_the_rest(irods_session, coll):
    irods_session.data_objects.create(f"{coll}/f01.bin")
    with irods_session.data_objects.open(f"{coll}/f01.bin", "w") as fh:
        fh.write(b"theirs")
    blobs = blobs_of(3)
    with pytest.raises(OVERWRITE_WITHOUT_FORCE_FLAG):
        put(irods_session, coll, blobs)
    found = rows(irods_session, coll)
    assert found["f00.bin"] == (len(blobs["f00.bin"]), "1", "")
    assert found["f01.bin"][0] == len(b"theirs")
    assert "f02.bin" not in found
    with irods_session.data_objects.open(f"{coll}/f01.bin", "r") as fh:
        assert fh.read() == b"theirs"


def test_missing_collections_are_made(irods_session, coll):
    files = [(f"{coll}/new/a", 0o644, 1), (f"{coll}/new/deeper/b", 0o644, 2)]
    with connection(irods_session) as conn:
        bulk.send(conn, f"{coll}/new", files, memoryview(b"122"), None, {})
    assert rows(irods_session, f"{coll}/new") == {"a": (1, "1", "")}
    assert rows(irods_session, f"{coll}/new/deeper") == {"b": (2, "1", "")}


def test_write_without_delete_object_on_the_collection_finds_no_row(
    irods_user, irods_server, irods_session
):
    """iRODS checks the collection with an access-checked GenQuery for delete_object
    (checkCollAccessPerm): modify_object is not enough, and the answer is no row."""
    owner_name, owner = irods_user()
    other, other_session = irods_user()
    shared = f"/{irods_server.zone}/home/{owner_name}/shared"
    owner.collections.create(shared)
    owner.acls.set(_acl("write", other, shared))
    with pytest.raises(CAT_NO_ROWS_FOUND):
        put(other_session, shared, {"x": b"1"})
    assert rows(irods_session, shared) == {}
    other_session.data_objects.create(f"{shared}/y")  # one file at a time it may
    owner.acls.set(_acl("delete_object", other, shared))
    put(other_session, shared, {"x": b"1", "z": b"22"})
    assert rows(irods_session, shared) == {"x": (1, "1", ""), "y": (0, "1", ""), "z": (2, "1", "")}


def _acl(level: str, user: str, path: str) -> Any:
    from irods.access import iRODSAccess

    return iRODSAccess(level, path, user)


def _raw(session: Any, body: bytes, data: bytes) -> None:
    head = iRODSMessage.pack_header("RODS_API_REQ", len(body), 0, len(data), bulk.API) + body
    with connection(session) as conn:
        wire.sendall_parts(conn.socket, head, memoryview(data))
        wire.recv_reply(conn)


def test_offsets_past_the_bytes_sent_are_refused_before_writing(irods_session, coll):
    body = bulk.request_body(coll, [(f"{coll}/a", 0o644, 3), (f"{coll}/b", 0o644, 10)], None, {})
    with pytest.raises(SYS_INVALID_INPUT_PARAM):
        _raw(irods_session, body, b"abc")
    assert rows(irods_session, coll) == {}


def test_more_than_50_files_are_refused(irods_session, coll):
    files = [(f"{coll}/f{i}", 0o644, 1) for i in range(51)]
    body = bulk.request_body(coll, files, None, {})
    with pytest.raises(iRODSException) as e:
        _raw(irods_session, body, b"x" * 51)
    assert getattr(e.value, "code", None) == -113000  # SYS_REQUESTED_BUF_TOO_LARGE
    assert rows(irods_session, coll) == {}


def test_a_short_sql_result_array_does_not_unpack(irods_session, coll):
    """The C unpacker reads all MAX_SQL_ATTR (50) SqlResult_PI of a GenQueryOut_PI."""
    body = bulk.request_body(coll, [(f"{coll}/a", 0o644, 1)], None, {})
    empty = b"<SqlResult_PI><attriInx>0</attriInx><reslen>0</reslen></SqlResult_PI>"
    short = body.replace(empty * 47, empty * 46)
    assert short != body
    with pytest.raises(USER_PACKSTRUCT_INPUT_ERR):
        _raw(irods_session, short, b"1")
    assert rows(irods_session, coll) == {}


def test_bytes_land_in_the_vault(irods_session, coll, irods_server):
    blobs = blobs_of(3, 5000)
    put(irods_session, coll, blobs)
    for name, data in blobs.items():
        (phys,) = [
            p for p in Path(irods_server.data_dir).rglob(name) if coll.rsplit("/", 1)[-1] in str(p)
        ]
        assert phys.read_bytes() == data
