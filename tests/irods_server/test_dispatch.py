"""The request parser: the fast message unpacking gives exactly what python-irodsclient's
own ``unpack`` gives, for every message class the server parses."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import irods.message as m
import pytest

from devtools.irods_server.dispatch import Request, unpack
from devtools.irods_server.errors import IrodsError


def values(msg: Any) -> Any:
    """A message as plain data (sub-messages recursively), for comparison."""
    if isinstance(msg, m.Message):
        return (type(msg).__name__, {k: values(v) for k, v in msg._values.items()})
    if isinstance(msg, list):
        return [values(v) for v in msg]
    return msg


def kv(**pairs: str) -> m.StringStringMap:
    return m.StringStringMap(pairs)


MESSAGES: list[Any] = [
    m.FileOpenRequest(
        objPath="/tempZone/home/rods/a & <b> 'c' \"d\" é",
        createMode=0o644,
        openFlags=577,
        offset=0,
        dataSize=-1,
        numThreads=0,
        oprType=1,
        KeyValPair_PI=kv(destRescName="demoResc", forceFlag="", regChksum="x&y"),
    ),
    m.FileOpenRequest(objPath="/tempZone/home/rods/x", KeyValPair_PI=kv()),
    m.OpenedDataObjRequest(
        l1descInx=3,
        len=4096,
        whence=0,
        oprType=0,
        offset=1 << 40,
        bytesWritten=0,
        KeyValPair_PI=kv(),
    ),
    m.GenQueryRequest(
        maxRows=500,
        continueInx=0,
        partialStartIndex=0,
        options=0,
        KeyValPair_PI=kv(zone="tempZone"),
        InxIvalPair_PI=m.IntegerIntegerMap({403: 1, 401: 1}),
        InxValPair_PI=m.IntegerStringMap({501: "= '/tempZone/home/rods'", 403: "like 'a%'"}),
    ),
    m.ModAclRequest(recursiveFlag=1, accessLevel="read", userName="u", zone="", path="/p"),
    m.GeneralAdminRequest("add", "user", "alice", "rodsuser", "", ""),
    m.MetadataRequest("add", "-d", "/tempZone/home/rods/x", "attr", "value <&>", "unit"),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda msg: type(msg).__name__)
def test_fast_unpack_equals_the_clients_unpack(msg: Any) -> None:
    raw = msg.pack().encode()
    fast, slow = type(msg)(), type(msg)()
    unpack(fast, ET.fromstring(raw))  # noqa: S314 - our own test input
    slow.unpack(ET.fromstring(raw))  # noqa: S314
    assert values(fast) == values(slow)
    assert values(Request(api=0, msg=raw + b"\0").parse(type(msg))) == values(slow)


def test_missing_fields_are_none_as_in_the_client() -> None:
    parsed = Request(api=0, msg=b"<DataObjInp_PI><objPath>/a</objPath></DataObjInp_PI>").parse(
        m.FileOpenRequest
    )
    assert parsed.objPath == "/a"
    assert parsed.openFlags is None and parsed.KeyValPair_PI is None


def test_empty_integer_fails_as_in_the_client() -> None:
    raw = b"<OpenedDataObjInp_PI><l1descInx></l1descInx></OpenedDataObjInp_PI>"
    with pytest.raises(TypeError):
        m.OpenedDataObjRequest().unpack(ET.fromstring(raw))  # noqa: S314
    with pytest.raises(TypeError):
        Request(api=0, msg=raw).parse(m.OpenedDataObjRequest)


def test_entity_declarations_go_through_defusedxml() -> None:
    bomb = (
        b'<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<DataObjInp_PI><objPath>&b;</objPath></DataObjInp_PI>"
    )
    with pytest.raises(IrodsError):
        Request(api=0, msg=bomb).parse(m.FileOpenRequest)


def test_control_characters_fall_back_to_the_quasi_xml_parser() -> None:
    raw = b"<DataObjInp_PI><objPath>/a\x01b</objPath><openFlags>2</openFlags></DataObjInp_PI>"
    parsed = Request(api=0, msg=raw).parse(m.FileOpenRequest)
    assert parsed.objPath == "/a\x01b" and parsed.openFlags == 2


@pytest.mark.parametrize("text", ["", "no such /tempZone/home/rods/a&b", "a<b>&\"' \x01 é"])
def test_error_reply_body_is_what_the_client_packs(text: str) -> None:
    from devtools.irods_server.server import error_reply_body

    expected = m.Error(count=1, RErrMsg_PI=[m.ErrorMessage(status=-808000, msg=text)]).pack()
    assert error_reply_body(-808000, text) == expected.encode()
