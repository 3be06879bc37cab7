"""isync's reply parser: ``services.isync.wire.recv_reply`` reading one server reply.

The input's first byte sets how many bytes each ``recv_into`` delivers (a server may send
a reply in any number of pieces) and the size of the payload buffer; the rest is what the
server sent. Contract: a reply is returned as ``(intInfo, payload length, message)``, or
``ConnectionError`` (the connection is then released) or python-irodsclient's exception
for a negative ``intInfo`` is raised. Anything else, or a buffer sized by a length the
server chose beyond the protocol's limits, is a finding.
"""

from __future__ import annotations

from irods.exception import iRODSException

from services.isync import wire

#: iRODS' largest single buffer (MAX_SZ_FOR_SINGLE_BUF): no reply part may need more
LIMIT = 32 * 1024 * 1024


class _Socket:
    """The server's side of the connection, already written: ``recv_into`` hands it out."""

    def __init__(self, data: bytes, piece: int) -> None:
        self.data, self.pos, self.piece = data, 0, piece

    def recv_into(self, view: memoryview, nbytes: int = 0, flags: int = 0) -> int:
        # a buffer this large was allocated for a length the server declared: only the
        # caller's payload buffer (a few KiB here) may be received into without a limit
        assert len(view) <= LIMIT, f"allocated {len(view)} bytes for a reply"
        n = min(len(view), nbytes or len(view), self.piece, len(self.data) - self.pos)
        view[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def gettimeout(self) -> float | None:
        return None


class _Conn:
    def __init__(self, sock: _Socket) -> None:
        self.socket = sock
        self.released = False

    def release(self, destroy: bool = False) -> None:
        self.released = True


def test_one_input(data: bytes) -> None:
    if not data:
        return
    piece = 1 + data[0] % 64 if data[0] < 192 else 1 << 16
    conn = _Conn(_Socket(data[1:], piece))
    into = memoryview(bytearray(data[0] % 8 * 512))
    try:
        int_info, bs_len, message = wire.recv_reply(conn, into)
    except ConnectionError:
        assert conn.released, "a lost connection must be released"
        return
    except iRODSException:
        return
    assert int_info >= 0 and 0 <= bs_len <= len(into) and isinstance(message, bytes)
