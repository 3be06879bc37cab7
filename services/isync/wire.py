"""Low-level data-object calls on one python-irodsclient connection, without extra copies.

python-irodsclient's file object copies every buffer several times (message packing
concatenates header, body and payload); here the payload goes to the socket straight from
our buffer and replies are read into preallocated buffers.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from html import escape
from typing import Any

from irods import keywords as kw
from irods.api_number import api_number
from irods.message import (
    JSON_Message,
    StringStringMap,
    iRODSMessage,
)

O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC = 0, 1, 0o100, 0o1000

_WRITE = api_number["DATA_OBJ_WRITE_AN"]
_READ = api_number["DATA_OBJ_READ_AN"]
_OPEN = api_number["DATA_OBJ_OPEN_AN"]
_CLOSE = api_number["DATA_OBJ_CLOSE_AN"]
_LSEEK = api_number["DATA_OBJ_LSEEK_AN"]


def kvp(options: dict[str, str]) -> str:
    keys = "".join(f"<keyWord>{escape(k, quote=False)}</keyWord>" for k in options)
    values = "".join(f"<svalue>{escape(v, quote=False)}</svalue>" for v in options.values())
    return f"<KeyValPair_PI><ssLen>{len(options)}</ssLen>{keys}{values}</KeyValPair_PI>"


def _opened(fd: int, length: int = 0, offset: int = 0, whence: int = 0) -> bytes:
    """OpenedDataObjInp_PI, packed by hand (python-irodsclient's packer is the hot spot)."""
    return (
        f"<OpenedDataObjInp_PI><l1descInx>{fd}</l1descInx><len>{length}</len>"
        f"<whence>{whence}</whence><oprType>0</oprType><offset>{offset}</offset>"
        "<bytesWritten>0</bytesWritten><KeyValPair_PI><ssLen>0</ssLen></KeyValPair_PI>"
        "</OpenedDataObjInp_PI>"
    ).encode()


_HEADER_FIELDS = re.compile(rb"<(msgLen|errorLen|bsLen|intInfo)>(-?\d+)</")
#: The most a reply's header, message and error may declare (iRODS' own limits: a header
#: is a few hundred bytes, a single buffer at most MAX_SZ_FOR_SINGLE_BUF, 32 MiB); larger
#: or negative lengths are a broken or hostile server, not a buffer to allocate.
MAX_HEADER = 4096
MAX_BUF = 32 * 1024 * 1024


def _exact(sock: Any, n: int, into: memoryview | None = None) -> memoryview:
    view = memoryview(bytearray(n)) if into is None else into[:n]
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("the iRODS server closed the connection")
        got += k
    return view


def _payload(sock: Any, n: int, into: memoryview | None) -> None:
    """Receive a bulk payload in as few system calls as possible.

    With a timeout Python keeps the socket non-blocking, so every recv returns whatever
    trickled in (often a few KiB: hundreds of thousands of calls per GiB). For the payload
    the socket is made blocking with MSG_WAITALL and a kernel-side SO_RCVTIMEO instead.
    """
    if into is None or isinstance(sock, ssl.SSLSocket) or not sock.gettimeout():
        _exact(sock, n, into)
        return
    view = into[:n]
    with _blocking(sock, socket.SO_RCVTIMEO):
        got = 0
        while got < n:
            k = sock.recv_into(view[got:], n - got, socket.MSG_WAITALL)
            if k == 0:
                raise ConnectionError("the iRODS server closed the connection")
            got += k


@contextlib.contextmanager
def _blocking(sock: Any, option: int) -> Iterator[None]:
    """The socket in blocking mode, its Python timeout enforced by the kernel (`option`
    SO_RCVTIMEO or SO_SNDTIMEO) instead: one system call per bulk transfer rather than a
    call, EAGAIN and poll for every few hundred KiB."""
    timeout = sock.gettimeout()
    if not timeout:
        yield
        return
    seconds = int(timeout)
    micros = int((timeout - seconds) * 1_000_000)
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", seconds, micros))
    try:
        yield
    finally:
        sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", 0, 0))
        sock.settimeout(timeout)


_SCRATCH_SIZE = 64 * 1024
_local = threading.local()


class _Reply:
    """One reply's bytes: a first `recv` of up to 64 KiB (usually the whole reply), then
    whatever is missing straight from the socket. One system call per small reply instead
    of one per part (length, header, message), which the small-file path pays three times.
    """

    def __init__(self, sock: Any) -> None:
        scratch = getattr(_local, "scratch", None)
        if scratch is None:
            scratch = _local.scratch = memoryview(bytearray(_SCRATCH_SIZE))
        self.sock, self.view, self.pos, self.got = sock, scratch, 0, 0
        while self.got < 4:
            self._fill()

    def _fill(self) -> None:
        k = self.sock.recv_into(self.view[self.got :])
        if k == 0:
            raise ConnectionError("the iRODS server closed the connection")
        self.got += k

    def take(self, n: int) -> memoryview:
        """The next `n` bytes (a view valid until the next reply on this thread)."""
        end = self.pos + n
        if end > len(self.view):
            out = memoryview(bytearray(n))
            self.take_into(out)
            return out
        while self.got < end:
            self._fill()
        out, self.pos = self.view[self.pos : end], end
        return out

    def take_into(self, dest: memoryview) -> None:
        """The next len(dest) bytes into `dest`: what was buffered, then the socket."""
        have = min(len(dest), self.got - self.pos)
        dest[:have] = self.view[self.pos : self.pos + have]
        self.pos += have
        if have < len(dest):
            _payload(self.sock, len(dest) - have, dest[have:])

    def finish(self) -> None:
        if self.pos != self.got:
            raise ConnectionError("unexpected bytes after a reply")


def recv(conn: Any, into: memoryview | None = None) -> tuple[int, int]:
    """Read one reply: (intInfo, payload length); the payload lands in `into`.

    A negative intInfo raises python-irodsclient's exception for that error code.
    """
    int_info, bs_len, _ = recv_reply(conn, into)
    return int_info, bs_len


def recv_reply(conn: Any, into: memoryview | None = None) -> tuple[int, int, bytes]:
    """As `recv`, also returning the reply's message (XML) bytes."""
    message = b""
    try:
        reply = _Reply(conn.socket)
        (hlen,) = struct.unpack(">i", reply.take(4))
        if not 0 < hlen <= MAX_HEADER:
            raise ConnectionError(f"malformed reply: header length {hlen}")
        head = bytes(reply.take(hlen))
        fields = {k.decode(): int(v) for k, v in _HEADER_FIELDS.findall(head)}
        msg_len, err_len, bs_len = fields["msgLen"], fields["errorLen"], fields["bsLen"]
        int_info = fields["intInfo"]
        if not (0 <= msg_len <= MAX_BUF and 0 <= err_len <= MAX_BUF and bs_len >= 0):
            raise ConnectionError(f"malformed reply: lengths {msg_len}, {err_len}, {bs_len}")
        if msg_len:
            message = bytes(reply.take(msg_len))
        error = bytes(reply.take(err_len)) if err_len else b""
        if bs_len and (into is None or bs_len > len(into)):
            raise ConnectionError(f"unexpected {bs_len}-byte payload from the server")
        if bs_len:
            assert into is not None
            reply.take_into(into[:bs_len])
        reply.finish()
    except (OSError, KeyError, struct.error) as e:
        conn.release(True)
        raise ConnectionError(f"connection lost: {e}") from e
    if int_info < 0:
        from irods.exception import UnknowniRODSError, get_exception_by_code
        from irods.message import Error

        text = None
        if error:
            with contextlib.suppress(Exception):
                text = iRODSMessage(msg=error).get_main_message(Error).RErrMsg_PI[0].msg
        try:
            exc = get_exception_by_code(int_info, text)
        except KeyError:  # a code python-irodsclient does not know (a newer server's)
            exc = UnknowniRODSError(f"iRODS error {int_info}" + (f": {text}" if text else ""))
            exc.code = int_info
        raise exc
    return int_info, bs_len, message


def _call(conn: Any, api: int, body: bytes) -> int:
    """Send one request without payload and return the reply's intInfo."""
    frame = iRODSMessage.pack_header("RODS_API_REQ", len(body), 0, 0, api) + body
    try:
        conn.socket.sendall(frame)
    except OSError as e:
        conn.release(True)
        raise ConnectionError(f"connection lost: {e.strerror or e}") from e
    return recv(conn)[0]


def open_object(
    conn: Any, path: str, flags: int, options: dict[str, str] | None = None, data_size: int = -1
) -> int:
    """DATA_OBJ_OPEN (602) with `flags`; returns the L1 descriptor."""
    body = (
        f"<DataObjInp_PI><objPath>{escape(path, quote=False)}</objPath>"
        f"<createMode>{0o644}</createMode><openFlags>{flags}</openFlags><offset>0</offset>"
        f"<dataSize>{data_size}</dataSize><numThreads>0</numThreads>"
        f"<oprType>{1 if flags & O_WRONLY else 0}</oprType>{kvp(options or {})}</DataObjInp_PI>"
    ).encode()
    return _call(conn, _OPEN, body)


def replica_access_info(conn: Any, fd: int) -> tuple[str, str]:
    """GET_FILE_DESCRIPTOR_INFO (20000): the replica token and resource hierarchy of `fd`."""
    body = JSON_Message({"fd": fd}, server_version=conn.server_version)
    conn.send(
        iRODSMessage("RODS_API_REQ", msg=body, int_info=api_number["GET_FILE_DESCRIPTOR_INFO_APN"])
    )
    info = conn.recv().get_json_encoded_struct()
    token = str(info.get("replica_token", ""))
    hier = str((info.get("data_object_info") or {}).get("resource_hierarchy", ""))
    return token, hier


def secondary_options(token: str, hier: str, streams: int, size: int) -> dict[str, str]:
    """Open keywords for a stream joining an already opened replica."""
    return {
        kw.REPLICA_TOKEN_KW: token,
        kw.RESC_HIER_STR_KW: hier,
        kw.NUM_THREADS_KW: str(streams),
        kw.DATA_SIZE_KW: str(size),
    }


def replica_close(conn: Any, fd: int) -> None:
    """REPLICA_CLOSE (20004): close a secondary stream without finalising the replica."""
    body = JSON_Message(
        {
            "fd": fd,
            "send_notification": False,
            "update_size": False,
            "update_status": False,
            "compute_checksum": False,
        },
        server_version=conn.server_version,
    )
    conn.send(iRODSMessage("RODS_API_REQ", msg=body, int_info=api_number["REPLICA_CLOSE_APN"]))
    conn.recv()


def close(conn: Any, fd: int) -> None:
    """DATA_OBJ_CLOSE (673): finalises size, status and mtime."""
    _call(conn, _CLOSE, _opened(fd))


def seek(conn: Any, fd: int, offset: int) -> None:
    """DATA_OBJ_LSEEK (674) to `offset` from the start; none at 0, where a descriptor
    opens (one round trip less per first stream)."""
    if offset:
        _call(conn, _LSEEK, _opened(fd, offset=offset))


def sendall_parts(sock: Any, head: bytes, payload: memoryview) -> None:
    if isinstance(sock, ssl.SSLSocket):
        sock.sendall(head)
        sock.sendall(payload)
        return
    parts: list[Any] = [head, payload]
    while parts:
        sent = sock.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts[0])
            parts.pop(0)
        if parts and sent:
            parts[0] = memoryview(parts[0])[sent:]


def call_with_data(conn: Any, api: int, body: bytes, data: memoryview) -> int:
    """One API request whose ``data`` follows its message (single-buffer and bulk puts):
    returns the reply's status; a lost connection is released and raised as
    ConnectionError, an iRODS error as python-irodsclient's exception."""
    head = iRODSMessage.pack_header("RODS_API_REQ", len(body), 0, len(data), api) + body
    try:
        sendall_parts(conn.socket, head, data)
    except OSError as e:
        conn.release(True)
        raise ConnectionError(f"connection lost while writing: {e.strerror or e}") from e
    status, _, _ = recv_reply(conn)
    return status


def write(conn: Any, fd: int, payload: memoryview) -> int:
    """DATA_OBJ_WRITE (676) of `payload` at the descriptor's offset; returns bytes written."""
    body = _opened(fd, len(payload))
    head = iRODSMessage.pack_header("RODS_API_REQ", len(body), 0, len(payload), _WRITE) + body
    try:
        sendall_parts(conn.socket, head, payload)
    except OSError as e:
        conn.release(True)
        raise ConnectionError(f"connection lost while writing: {e.strerror or e}") from e
    return recv(conn)[0]


def can_sendfile(conn: Any) -> bool:
    """Plain TCP: file bytes can go to the socket without passing through Python."""
    return not isinstance(conn.socket, ssl.SSLSocket) and hasattr(os, "sendfile")


def write_from_file(conn: Any, fd: int, file_fd: int, offset: int, count: int) -> int:
    """DATA_OBJ_WRITE of `count` bytes of a local file at `offset`, sent with sendfile(2)."""
    body = _opened(fd, count)
    head = iRODSMessage.pack_header("RODS_API_REQ", len(body), 0, count, _WRITE) + body
    sock = conn.socket
    try:
        sock.sendall(head)
        with _blocking(sock, socket.SO_SNDTIMEO):
            sent = 0
            while sent < count:
                try:
                    n = os.sendfile(sock.fileno(), file_fd, offset + sent, count - sent)
                except BlockingIOError:  # SO_SNDTIMEO expired
                    raise TimeoutError("timed out sending to iRODS") from None
                if n == 0:
                    raise OSError("the source file shrank during the transfer")
                sent += n
    except OSError as e:
        conn.release(True)
        raise ConnectionError(f"connection lost while writing: {e.strerror or e}") from e
    return recv(conn)[0]


def read_into(conn: Any, fd: int, buf: memoryview) -> int:
    """DATA_OBJ_READ (675) of up to len(buf) bytes into `buf`; returns bytes read (0 at EOF)."""
    ask_read(conn, fd, len(buf))
    return recv(conn, buf)[1]


def ask_read(conn: Any, fd: int, nbytes: int) -> None:
    """Send DATA_OBJ_READ (675) of up to `nbytes` at the descriptor's offset; the reply is
    read by `recv`."""
    body = _opened(fd, nbytes)
    try:
        conn.socket.sendall(iRODSMessage.pack_header("RODS_API_REQ", len(body), 0, 0, _READ) + body)
    except OSError as e:
        conn.release(True)
        raise ConnectionError(f"connection lost: {e.strerror or e}") from e


class ReadAhead:
    """Sequential reads of one descriptor with the next request already sent while the
    caller writes the chunk just received, so the agent reads its vault file (and the
    socket fills) while the client's disk write runs, instead of one waiting for the other.

    Two buffers alternate: a chunk returned by `read` stays valid until the next `read`.
    Requests are sent only after the previous reply arrived, so the protocol stays one
    request, one reply; `drain` receives a reply still in flight (call it before the
    connection is used for anything else).
    """

    def __init__(self, conn: Any, fd: int, first: memoryview, second: memoryview) -> None:
        self.conn, self.fd = conn, fd
        self.buffers = (first, second)
        self.turn = 0
        self.pending = 0  # bytes asked by the request in flight (0: none)

    def read(self, want: int, then: int) -> memoryview:
        """Receive up to `want` bytes (asking now unless already asked); then, if `then` > 0,
        ask for `then` more before returning. A request already in flight is received
        whatever it asked (`want` is then only its expected size)."""
        if not self.pending:
            ask_read(self.conn, self.fd, want)
            self.pending = want
        buf = self.buffers[self.turn][: self.pending]
        self.pending = 0
        n = recv(self.conn, buf)[1]
        if then > 0 and n > 0:
            ask_read(self.conn, self.fd, then)
            self.pending = then
        self.turn ^= 1
        return buf[:n]

    def drain(self) -> None:
        if self.pending:
            self.pending, n = 0, self.pending
            recv(self.conn, self.buffers[self.turn][:n])


def rename_object(conn: Any, src: str, dst: str) -> None:
    """DATA_OBJ_RENAME (627) of one data object to the exact path `dst`.

    python-irodsclient's ``data_objects.move`` first asks (two GenQueries) whether `dst` is
    a collection; isync always knows the final object path, so it sends the rename alone.
    """
    from irods.message import FileOpenRequest, ObjCopyRequest

    def inp(path: str) -> Any:
        return FileOpenRequest(
            objPath=path,
            createMode=0,
            openFlags=0,
            offset=0,
            dataSize=0,
            numThreads=0,
            oprType=11,  # RENAME_DATA_OBJ
            KeyValPair_PI=StringStringMap({}),
        )

    body = ObjCopyRequest(srcDataObjInp_PI=inp(src), destDataObjInp_PI=inp(dst))
    conn.send(iRODSMessage("RODS_API_REQ", msg=body, int_info=api_number["DATA_OBJ_RENAME_AN"]))
    conn.recv()


def make_collection(conn: Any, path: str) -> bool:
    """COLL_CREATE (681) with parents; an existing collection is not an error.

    True when ``path`` was made by this call, False when it was there already."""
    from irods.exception import CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME
    from irods.message import CollectionRequest

    body = CollectionRequest(
        collName=path, KeyValPair_PI=StringStringMap({kw.RECURSIVE_OPR__KW: ""})
    )
    conn.send(iRODSMessage("RODS_API_REQ", msg=body, int_info=api_number["COLL_CREATE_AN"]))
    reply = conn.recv(acceptable_errors=(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME,))
    return bool(reply.int_info >= 0)
