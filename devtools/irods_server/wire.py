"""Framing of the iRODS protocol over an asyncio buffered protocol.

A frame is a 4-byte big-endian header length, the ``MsgHeader_PI`` XML (type, msgLen,
errorLen, bsLen, intInfo), then the message XML, the error XML and the raw bytes. Every
length is checked against a limit before anything is read, so a bad peer cannot make the
server allocate without bound.

:class:`Channel` is the connection's protocol. Small parts are read from a staging buffer;
a large byte stream (``bs`` of a write) is received by the kernel straight into one
per-connection buffer that is reused for every request, so a 32 MiB write costs no extra
copies or fresh allocations. That buffer is only valid until the next frame is read.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_HEADER = 4096
MAX_MSG = 16 * 1024 * 1024
MAX_ERROR = 1024 * 1024
MAX_BS = 256 * 1024 * 1024
DIRECT_BS = 256 * 1024  # byte streams at least this long are read into the reused buffer
STAGING = 256 * 1024
HIGH_WATER = 2 * 1024 * 1024  # pause reading when this much is buffered and unread
SEND_SLICE = 1024 * 1024  # large byte streams are written (and drained) in slices

_LEN = struct.Struct(">i")
_FIELD = re.compile(rb"<(type|msgLen|errorLen|bsLen|intInfo)>([^<]*)</\1>")
_CANONICAL = re.compile(
    rb"\s*<MsgHeader_PI>\s*<type>([A-Za-z0-9_]*)</type>\s*<msgLen>(\d+)</msgLen>"
    rb"\s*<errorLen>(\d+)</errorLen>\s*<bsLen>(\d+)</bsLen>\s*<intInfo>(-?\d+)</intInfo>"
    rb"\s*</MsgHeader_PI>\s*"
)


class FrameError(Exception):
    """The peer sent something that is not a valid frame; the connection must close."""


@dataclass
class Frame:
    """One decoded frame. ``bs`` may be a view into the channel's reused buffer."""

    type: str
    int_info: int = 0
    msg: bytes = b""
    error: bytes = b""
    bs: bytes | memoryview = b""


class Channel(asyncio.BufferedProtocol):
    """One connection: exact reads (into staging or a caller's buffer), flow-controlled
    writes, TLS upgrade. ``on_open(channel)`` is started as a task when connected."""

    def __init__(self, on_open: Callable[[Channel], Any] | None = None) -> None:
        self.on_open = on_open
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[Any] | None = None
        self._stage = bytearray(STAGING)
        self._lo = self._hi = 0  # unread bytes are _stage[_lo:_hi]
        self._target: memoryview | None = None  # direct-read destination, if any
        self._filled = 0
        self._into_target = False  # whether the last get_buffer() handed out _target
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._bs_buffer = bytearray()

    # -- protocol callbacks ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.on_open is not None:
            self.task = asyncio.get_running_loop().create_task(self.on_open(self))

    def get_buffer(self, sizehint: int) -> memoryview:
        # never hand out an empty buffer: transports treat a 0-byte read as EOF
        self._into_target = self._target is not None and self._filled < len(self._target)
        if self._into_target:
            assert self._target is not None
            return self._target[self._filled :]
        if self._hi == len(self._stage):
            if self._lo:
                unread = self._hi - self._lo
                self._stage[:unread] = self._stage[self._lo : self._hi]
                self._lo, self._hi = 0, unread
            else:
                self._stage.extend(bytes(len(self._stage)))
        return memoryview(self._stage)[self._hi :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._into_target:
            assert self._target is not None
            self._filled += nbytes
            if self._filled >= len(self._target):
                self._target = None  # further data goes to staging
                self._wake()
            return
        self._hi += nbytes
        self._wake()
        if self._hi - self._lo >= HIGH_WATER and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionResetError("connection lost"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # -- reading -------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        if self._eof:
            raise FrameError("connection closed mid-frame")
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    @property
    def buffered(self) -> int:
        return self._hi - self._lo

    async def read_exactly(self, n: int) -> bytes:
        """``n`` bytes (``n`` small: at most a few MiB) as a new bytes object."""
        if n > HIGH_WATER:
            buf = bytearray(n)
            await self.read_into(memoryview(buf))
            return bytes(buf)
        while self._hi - self._lo < n:
            await self._wait()
        data = bytes(memoryview(self._stage)[self._lo : self._lo + n])
        self._lo += n
        if self._lo == self._hi:
            self._lo = self._hi = 0
        return data

    async def read_into(self, view: memoryview) -> None:
        """Fill ``view`` completely; the kernel writes straight into it."""
        n = len(view)
        have = min(self._hi - self._lo, n)
        if have:
            view[:have] = memoryview(self._stage)[self._lo : self._lo + have]
            self._lo += have
            if self._lo == self._hi:
                self._lo = self._hi = 0
        if have == n:
            return
        self._target, self._filled = view, have
        try:
            while self._filled < n:
                await self._wait()
        finally:
            self._target = None

    def bs_view(self, n: int) -> memoryview:
        """A view of ``n`` bytes of the connection's reused byte-stream buffer."""
        if len(self._bs_buffer) < n:
            self._bs_buffer = bytearray(n)
        return memoryview(self._bs_buffer)[:n]

    # -- writing and TLS ---------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        if self._write_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade this connection to TLS (server side)."""
        if self.buffered or self.transport is None:
            raise FrameError("unexpected data before the TLS handshake")
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(self.transport, self, context, server_side=True)
        if transport is None:
            raise ConnectionResetError("TLS upgrade failed")
        self.transport = transport

    def peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# -- frames ----------------------------------------------------------------------------------------


def parse_header(raw: bytes) -> tuple[str, int, int, int, int]:
    """``(type, msgLen, errorLen, bsLen, intInfo)`` of a ``MsgHeader_PI``."""
    m = _CANONICAL.fullmatch(raw)
    if m is not None:  # the layout every client sends: one match, no dict
        mtype, msg_len, err_len, bs_len, int_info = m.groups()
        return mtype.decode("ascii"), int(msg_len), int(err_len), int(bs_len), int(int_info)
    if not raw.lstrip().startswith(b"<MsgHeader_PI>"):
        raise FrameError("not a MsgHeader_PI")
    fields = {m.group(1): m.group(2) for m in _FIELD.finditer(raw)}
    try:
        return (
            fields[b"type"].decode("ascii").strip(),
            int(fields[b"msgLen"]),
            int(fields[b"errorLen"]),
            int(fields[b"bsLen"]),
            int(fields[b"intInfo"]),
        )
    except (KeyError, ValueError, UnicodeDecodeError) as e:
        raise FrameError(f"bad MsgHeader_PI: {e}") from e


async def read_header(ch: Channel) -> tuple[str, int, int, int, int]:
    """Read the length prefix and header; ``EOFError`` on a clean close before a frame."""
    if ch.buffered == 0:
        try:
            prefix = await ch.read_exactly(4)
        except FrameError:
            if ch.buffered == 0:
                raise EOFError from None
            raise
    else:
        prefix = await ch.read_exactly(4)
    (hlen,) = _LEN.unpack(prefix)
    if not 0 < hlen <= MAX_HEADER:
        raise FrameError(f"header length {hlen} out of range")
    return parse_header(await ch.read_exactly(hlen))


async def read_frame(ch: Channel) -> Frame:
    """Read one whole frame, enforcing the size limits."""
    mtype, msg_len, err_len, bs_len, int_info = await read_header(ch)
    if not (0 <= msg_len <= MAX_MSG and 0 <= err_len <= MAX_ERROR and 0 <= bs_len <= MAX_BS):
        raise FrameError(f"frame too large: msg={msg_len} error={err_len} bs={bs_len}")
    msg = await ch.read_exactly(msg_len) if msg_len else b""
    error = await ch.read_exactly(err_len) if err_len else b""
    bs: bytes | memoryview = b""
    if bs_len >= DIRECT_BS:
        bs = ch.bs_view(bs_len)
        await ch.read_into(bs)
    elif bs_len:
        bs = await ch.read_exactly(bs_len)
    return Frame(mtype, int_info, msg, error, bs)


def pack_header(mtype: str, msg_len: int, err_len: int, bs_len: int, int_info: int) -> bytes:
    header = (
        f"<MsgHeader_PI><type>{mtype}</type><msgLen>{msg_len}</msgLen>"
        f"<errorLen>{err_len}</errorLen><bsLen>{bs_len}</bsLen>"
        f"<intInfo>{int_info}</intInfo></MsgHeader_PI>"
    ).encode()
    return _LEN.pack(len(header)) + header


def as_bytes(msg: Any) -> bytes:
    """A message body as bytes: a python-irodsclient ``Message``, str, bytes or None."""
    if msg is None:
        return b""
    if isinstance(msg, bytes | bytearray | memoryview):
        return bytes(msg)
    if isinstance(msg, str):
        return msg.encode()
    packed = msg.pack()
    return packed.encode() if isinstance(packed, str) else bytes(packed)


def write_frame(
    ch: Channel,
    mtype: str,
    msg: Any = None,
    *,
    error: bytes = b"",
    bs: bytes | bytearray | memoryview = b"",
    int_info: int = 0,
) -> None:
    """Queue one frame (the caller drains)."""
    body = as_bytes(msg)
    head = pack_header(mtype, len(body), len(error), len(bs), int_info) + body + error
    ch.write(head + bytes(bs))


async def send_frame(
    ch: Channel,
    mtype: str,
    msg: Any = None,
    *,
    error: bytes = b"",
    bs: bytes | bytearray | memoryview = b"",
    int_info: int = 0,
) -> None:
    """Send one frame and drain. A large ``bs`` goes out in slices, each drained before
    the next, so the transport never copies more than a slice of it: ``bs`` may be a
    reused buffer again as soon as this returns."""
    if len(bs) <= SEND_SLICE:
        write_frame(ch, mtype, msg, error=error, bs=bs, int_info=int_info)
        await ch.drain()
        return
    body = as_bytes(msg)
    ch.write(pack_header(mtype, len(body), len(error), len(bs), int_info) + body + error)
    view = memoryview(bs)
    for start in range(0, len(view), SEND_SLICE):
        ch.write(view[start : start + SEND_SLICE])
        await ch.drain()
