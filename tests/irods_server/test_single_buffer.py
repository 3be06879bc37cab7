"""606 DATA_OBJ_PUT / 608 DATA_OBJ_GET single-buffer transfers, sent with the unmodified
python-irodsclient's own connection and message classes."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.api_number import api_number
from irods.message import FileOpenRequest, StringStringMap, iRODSMessage

from devtools.irods_server.api_single_buffer import PortalOprOut_PI


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def _inp(path: str, size: int, opts: dict[str, str]) -> FileOpenRequest:
    return FileOpenRequest(
        objPath=path,
        createMode=0o644,
        openFlags=0,
        offset=0,
        dataSize=size,
        numThreads=0,
        oprType=1,  # PUT_OPR
        KeyValPair_PI=StringStringMap(opts),
    )


def put(session: Any, path: str, data: bytes, **opts: str) -> Any:
    """A single-buffer put: the file in the request's bs, ``dataIncluded`` set."""
    with session.pool.get_connection() as conn:
        msg = iRODSMessage(
            "RODS_API_REQ",
            msg=_inp(path, len(data), {kw.DATA_INCLUDED_KW: "", **opts}),
            bs=data,
            int_info=api_number["DATA_OBJ_PUT_AN"],
        )
        conn.send(msg)
        return conn.recv()


def get(session: Any, path: str, **opts: str) -> tuple[Any, bytes]:
    """A single-buffer get: the reply's PortalOprOut_PI and bs."""
    with session.pool.get_connection() as conn:
        inp = _inp(path, 0, opts)
        inp.oprType = 2  # GET_OPR
        conn.send(iRODSMessage("RODS_API_REQ", msg=inp, int_info=api_number["DATA_OBJ_GET_AN"]))
        reply = conn.recv()
        assert reply.int_info == 0
        return reply.get_main_message(PortalOprOut_PI), bytes(reply.bs or b"")


def test_put_new_object_one_round_trip(irods_session: Any, coll: str) -> None:
    data = b"hello single buffer\n" * 50
    reply = put(irods_session, f"{coll}/a.txt", data, **{kw.DATA_TYPE_KW: "text"})
    assert reply.int_info == 0
    assert not reply.bs
    obj = irods_session.data_objects.get(f"{coll}/a.txt")
    assert obj.size == len(data)
    assert obj.replicas[0].status == "1"
    assert obj.replicas[0].resource_name == "demoResc"
    assert obj.modify_time is not None
    with obj.open("r") as f:
        assert f.read() == data


def test_put_existing_without_force_is_refused(irods_session: Any, coll: str) -> None:
    path = f"{coll}/b"
    put(irods_session, path, b"first")
    with pytest.raises(ex.OVERWRITE_WITHOUT_FORCE_FLAG):
        put(irods_session, path, b"second")
    with irods_session.data_objects.open(path, "r") as f:
        assert f.read() == b"first"


def test_put_force_overwrites_and_stales_other_replicas(
    irods_session: Any, coll: str, unique_name: str, tmp_path: Any
) -> None:
    path = f"{coll}/c"
    resc = f"r_{unique_name}"
    irods_session.resources.create(resc, "unixfilesystem", "localhost", str(tmp_path / "v2"))
    try:
        put(irods_session, path, b"old contents")
        irods_session.data_objects.replicate(path, resource=resc)
        put(irods_session, path, b"new", **{kw.FORCE_FLAG_KW: ""})
        obj = irods_session.data_objects.get(path)
        by_resc = {r.resource_name: r for r in obj.replicas}
        assert by_resc["demoResc"].status == "1"
        assert by_resc["demoResc"].size == 3
        assert by_resc[resc].status == "0"
        with obj.open("r") as f:
            assert f.read() == b"new"
        with pytest.raises(ex.HIERARCHY_ERROR):
            put(irods_session, path, b"x", **{kw.FORCE_FLAG_KW: "", kw.DEST_RESC_NAME_KW: "nope"})
        irods_session.data_objects.unlink(path, force=True)
    finally:
        irods_session.resources.remove(resc)


def test_put_checksum_register_verify_and_mismatch(irods_session: Any, coll: str) -> None:
    data = b"checksummed"
    put(irods_session, f"{coll}/reg", data, **{kw.REG_CHKSUM_KW: ""})
    assert irods_session.data_objects.get(f"{coll}/reg").checksum == sha2(data)

    put(irods_session, f"{coll}/ok", data, **{kw.VERIFY_CHKSUM_KW: "", kw.CHKSUM_KW: sha2(data)})
    assert irods_session.data_objects.get(f"{coll}/ok").replicas[0].status == "1"

    with pytest.raises(ex.USER_CHKSUM_MISMATCH):
        put(irods_session, f"{coll}/bad", data, **{kw.VERIFY_CHKSUM_KW: "", kw.CHKSUM_KW: "sha2:x"})
    bad = irods_session.data_objects.get(f"{coll}/bad")
    assert bad.replicas[0].status == "0"  # as iRODS: left stale, size and checksum recorded
    assert bad.replicas[0].checksum == sha2(data)


def test_put_needs_parent_and_permission(
    irods_session: Any, coll: str, irods_user: Callable[..., tuple[str, Any]]
) -> None:
    with pytest.raises(ex.CAT_UNKNOWN_COLLECTION):
        put(irods_session, f"{coll}/missing/x", b"1")
    _, other = irods_user()
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        put(other, f"{coll}/intruder", b"1")
    put(irods_session, f"{coll}/mine", b"1")
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        put(other, f"{coll}/mine", b"2", **{kw.FORCE_FLAG_KW: ""})


def test_put_without_data_included_asks_for_fallback(irods_session: Any, coll: str) -> None:
    with irods_session.pool.get_connection() as conn:
        conn.send(
            iRODSMessage(
                "RODS_API_REQ",
                msg=_inp(f"{coll}/big", 64 * 1024 * 1024, {}),
                int_info=api_number["DATA_OBJ_PUT_AN"],
            )
        )
        with pytest.raises(ex.SYS_NOT_SUPPORTED):
            conn.recv()
    assert not irods_session.data_objects.exists(f"{coll}/big")


def test_get_small_object_in_one_reply(irods_session: Any, coll: str) -> None:
    data = bytes(range(256)) * 40
    path = f"{coll}/g.bin"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(data)
    out, got = get(irods_session, path)
    assert got == data
    assert out.numThreads == 0
    assert not out.chksum
    out, got = get(irods_session, path, **{kw.VERIFY_CHKSUM_KW: ""})
    assert got == data
    assert out.chksum == sha2(data)
    assert irods_session.data_objects.get(path).checksum == sha2(data)  # registered


def test_get_empty_and_missing(irods_session: Any, coll: str) -> None:
    put(irods_session, f"{coll}/empty", b"")
    out, got = get(irods_session, f"{coll}/empty")
    assert got == b""
    assert out.status == 0
    with pytest.raises(ex.OBJ_PATH_DOES_NOT_EXIST):
        get(irods_session, f"{coll}/nothing")


def test_put_then_prc_get_round_trip(irods_session: Any, coll: str, tmp_path: Any) -> None:
    data = b"round trip \x00\xff" * 1000
    put(irods_session, f"{coll}/rt", data)
    local = tmp_path / "rt"
    irods_session.data_objects.get(f"{coll}/rt", str(local))
    assert local.read_bytes() == data


def test_put_size_mismatch_leaves_stale_replica(irods_session: Any, coll: str) -> None:
    path = f"{coll}/short"
    with irods_session.pool.get_connection() as conn:
        msg = _inp(path, 10, {kw.DATA_INCLUDED_KW: ""})
        conn.send(
            iRODSMessage("RODS_API_REQ", msg=msg, bs=b"abc", int_info=api_number["DATA_OBJ_PUT_AN"])
        )
        with pytest.raises(ex.SYS_COPY_LEN_ERR):
            conn.recv()
    assert irods_session.data_objects.get(path).replicas[0].status == "0"
    put(irods_session, path, b"abc", **{kw.FORCE_FLAG_KW: "", kw.NO_CHK_COPY_LEN_KW: ""})
    assert irods_session.data_objects.get(path).replicas[0].status == "1"
