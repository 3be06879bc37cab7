"""The iRODS test server's frame reader and request parser.

The input is what a client sends on one connection. Frames are read from it with
``wire.read_frame`` exactly as the connection loop does (the bytes arrive through the
channel's ``BufferedProtocol`` callbacks, in pieces), until the stream ends or a frame is
refused. The message of each frame is parsed like the server does: ``RODS_CONNECT`` as a
``StartupPack_PI`` (defusedxml), ``RODS_API_REQ`` with ``Request.parse`` and the message
class the handlers read that API's request with.

Contract: ``read_frame`` ends with ``EOFError`` or ``FrameError``; ``Request.parse``
returns a message or raises ``IrodsError``, or the ``ValueError`` / ``TypeError`` that
python-irodsclient's own unpacking raises for a field that is not of its type (by design,
``tests/irods_server/test_dispatch.py``: the loop answers that request with
``SYS_LIBRARY_ERROR`` and the connection survives); a startup pack either parses or raises
``ParseError`` (the loop closes the connection). Anything else is a finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree as SafeET
from irods import message as m

from devtools.irods_server import wire
from devtools.irods_server.dispatch import Request
from devtools.irods_server.errors import IrodsError

#: the message class the handlers parse each API's request with (``req.parse(...)``)
BY_API: dict[int, type] = {
    601: m.FileOpenRequest,  # DATA_OBJ_CREATE
    602: m.FileOpenRequest,  # DATA_OBJ_OPEN
    615: m.FileOpenRequest,  # DATA_OBJ_UNLINK
    633: m.FileOpenRequest,  # OBJ_STAT
    673: m.OpenedDataObjRequest,  # DATA_OBJ_CLOSE
    675: m.OpenedDataObjRequest,  # DATA_OBJ_READ
    676: m.OpenedDataObjRequest,  # DATA_OBJ_WRITE
    679: m.CollectionRequest,  # RM_COLL
    681: m.CollectionRequest,  # COLL_CREATE
    701: m.GeneralAdminRequest,
    702: m.GenQueryRequest,
    704: m.AuthResponse,
    706: m.MetadataRequest,
    707: m.ModAclRequest,
    714: m.UserAdminRequest,
    722: m.SpecificQueryRequest,
    723: m.TicketAdminRequest,
    724: m.GetTempPasswordForOtherRequest,
    725: m.PamAuthRequest,
    1201: m.PluginAuthMessage,
    110000: m.BinBytesBuf,  # AUTHENTICATION (JSON in a BinBytesBuf)
}
#: any other API number picks one of them
CLASSES = sorted(set(BY_API.values()), key=lambda c: c.__name__)
_LOOP = asyncio.new_event_loop()
#: most frames one input may yield (a tiny input can hold many empty frames)
MAX_FRAMES = 64


def _feed(channel: wire.Channel, data: bytes) -> None:
    """Deliver ``data`` as a transport would: into the buffers the channel hands out."""
    pos, piece = 0, 1
    while pos < len(data):
        buf = channel.get_buffer(-1)
        n = min(len(buf), len(data) - pos, piece)
        buf[:n] = data[pos : pos + n]
        channel.buffer_updated(n)
        pos += n
        piece = piece * 3 + 1  # 1, 4, 13, ... bytes: frames straddle the pieces
    channel.eof_received()


async def _frames(channel: wire.Channel) -> list[wire.Frame]:
    frames: list[wire.Frame] = []
    try:
        while len(frames) < MAX_FRAMES:
            frame = await wire.read_frame(channel)
            frame.bs = bytes(frame.bs)  # the view is only valid until the next read
            frames.append(frame)
    except (EOFError, wire.FrameError):
        pass
    return frames


def parse(frame: wire.Frame) -> None:
    """Parse one frame's message as the server would."""
    if frame.type == "RODS_CONNECT":
        with contextlib.suppress(ET.ParseError, defusedxml.DefusedXmlException):
            SafeET.fromstring(frame.msg.replace(b"\0", b""))
        return
    cls = BY_API.get(frame.int_info) or CLASSES[frame.int_info % len(CLASSES)]
    with contextlib.suppress(IrodsError, ValueError, TypeError):
        Request(api=frame.int_info, msg=frame.msg, bs=frame.bs).parse(cls)


def test_one_input(data: bytes) -> None:
    channel = wire.Channel()
    _feed(channel, data)
    for frame in _LOOP.run_until_complete(_frames(channel)):
        parse(frame)
