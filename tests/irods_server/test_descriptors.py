"""20000 GET_FILE_DESCRIPTOR_INFO and 20004 REPLICA_CLOSE as iRODS 4.3.4
(``plugins/api/src/get_file_descriptor_info.cpp``, ``plugins/api/src/replica_close.cpp``),
sent with python-irodsclient's own message classes on the descriptor's connection."""

from __future__ import annotations

import json
from typing import Any

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.api_number import api_number
from irods.message import BinBytesBuf, JSON_Message, iRODSMessage


def _call(f: Any, api: str, doc: dict[str, Any]) -> Any:
    conn = f.raw.conn
    conn.send(
        iRODSMessage(
            "RODS_API_REQ",
            msg=JSON_Message(doc, server_version=conn.server_version),
            int_info=api_number[api],
        )
    )
    return conn.recv()


def info(f: Any) -> dict[str, Any]:
    reply = _call(f, "GET_FILE_DESCRIPTOR_INFO_APN", {"fd": f.raw.desc})
    buf = reply.get_main_message(BinBytesBuf).buf
    return dict(json.loads(bytes(buf).rstrip(b"\0")))


def replica_close(f: Any, **flags: bool) -> Any:
    return _call(f, "REPLICA_CLOSE_APN", {"fd": f.raw.desc, **flags})


def status(session: Any, path: str) -> tuple[str, int]:
    [r] = session.data_objects.get(path).replicas
    return r.status, r.size


def test_descriptor_info_has_the_real_shape_and_names(irods_session: Any, coll: str) -> None:
    path = f"{coll}/shape"
    with irods_session.data_objects.open(path, "w", **{kw.DATA_TYPE_KW: "generic"}) as f:
        doc = info(f)
        f.write(b"abc")
        f.flush()
        assert info(f)["bytes_written"] == 3
    assert doc["open_type"] == 1 and doc["operation_status"] == 0  # CREATE_TYPE
    assert doc["replica_status"] == 2 and doc["replica_token"]
    inp = doc["data_object_input"]
    assert inp["object_path"] == path and inp["open_flags"] & 64  # O_CREAT
    assert {"key": kw.DATA_TYPE_KW, "value": "generic"} in inp["condition_input"]
    obj = doc["data_object_info"]
    assert (obj["resource_hierarchy"], obj["replica_number"]) == ("demoResc", 0)
    assert obj["is_replica_current"] is False and obj["data_owner_name"] == "rods"
    for key in ("obj_path", "key_value_pairs", "oper_status"):  # this server's old names
        assert key not in json.dumps(doc)
    with irods_session.data_objects.open(path, "r+") as f:
        assert info(f)["open_type"] == 3  # OPEN_FOR_WRITE_TYPE
    with irods_session.data_objects.open(path, "r") as f:
        read = info(f)
        assert read["open_type"] == 2 and read["data_object_info"]["is_replica_current"]


def test_replica_close_with_its_defaults_finalizes_from_any_stream(
    irods_session: Any, coll: str
) -> None:
    """``update_size`` and ``update_status`` default to true: the secondary stream's
    close makes the replica good with its size; the first stream's close is then just a
    close."""
    path = f"{coll}/par"
    first = irods_session.data_objects.open(path, "w")
    token, hier = first.raw.replica_access_info()
    second = irods_session.data_objects.open(
        path,
        "a",
        finalize_on_close=False,
        **{kw.RESC_HIER_STR_KW: hier, kw.REPLICA_TOKEN_KW: token},
    )
    second.write(b"12345")
    second.flush()
    assert replica_close(second).int_info == 0
    second.do_close = False
    assert status(irods_session, path) == ("1", 5)
    first.close()
    assert status(irods_session, path) == ("1", 5)


def test_replica_close_update_size_alone_leaves_it_intermediate(
    irods_session: Any, coll: str
) -> None:
    path = f"{coll}/sz"
    f = irods_session.data_objects.open(path, "w")
    f.write(b"1234567")
    f.flush()
    assert replica_close(f, update_size=True, update_status=False).int_info == 0
    f.do_close = False
    assert status(irods_session, path) == ("2", 7)


def test_replica_close_of_a_bad_descriptor_is_bad_input_desc_index(
    irods_session: Any, coll: str
) -> None:
    with irods_session.data_objects.open(f"{coll}/bad", "w") as f:
        conn = f.raw.conn
        conn.send(
            iRODSMessage(
                "RODS_API_REQ",
                msg=JSON_Message({"fd": 999}, server_version=conn.server_version),
                int_info=api_number["REPLICA_CLOSE_APN"],
            )
        )
        with pytest.raises(ex.BAD_INPUT_DESC_INDEX):
            conn.recv()
