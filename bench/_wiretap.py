"""A TCP proxy that counts iRODS requests by API number: round trips measured on the wire.

    with WireTap(server.host, server.port) as tap:
        ...  # point a client (a whole isync or python-irodsclient process) at tap.port
        tap.counts()  # Counter({"DATA_OBJ_WRITE_AN": 32, "DATA_OBJ_OPEN_AN": 2, ...})
        tap.keywords()  # Counter({"dataSize": 2, "forceFlag": 1, ...}): requests per keyword

Every frame of the iRODS protocol is a 4-byte length, a ``MsgHeader_PI`` (``type``,
``msgLen``, ``errorLen``, ``bsLen``, ``intInfo``) and that many bytes; a request's
``intInfo`` is its API number. The tap forwards each frame whole (header and the first
64 KiB in one ``sendall``, with TCP_NODELAY, so it adds no Nagle delay of its own) and
records the requests of every connection. Plain TCP only: a TLS session is opaque to it.
``WireTap(host, port, renumber={689: 9689})`` forwards those requests under another API
number, so the real server answers as one without the API (``SYS_UNMATCHED_API_NUM``).
Used by the isync benchmarks and by ``tests/isync/test_round_trips.py`` and
``test_bulk.py``.
"""

from __future__ import annotations

import collections
import contextlib
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

_FIELDS = re.compile(rb"<(type|msgLen|errorLen|bsLen|intInfo)>([^<]*)</")
_KEYWORD = re.compile(rb"<keyWord>([^<]*)</keyWord>")
_FIRST = 64 * 1024


@dataclass(frozen=True)
class Request:
    """One request a client sent: its connection (1, 2, ...), message type, API, payload
    and the keywords of its message's ``KeyValPair_PI`` (``forceFlag``, ``regChksum``...)."""

    connection: int
    type: str
    api: int
    payload: int
    keywords: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The API's python-irodsclient name, or the message type for non-API frames."""
        if self.type != "RODS_API_REQ":
            return self.type
        from irods.api_number import api_number

        names = {v: k for k, v in api_number.items()}
        return names.get(self.api, str(self.api))


class WireTap:
    """Listens on a free loopback port and forwards every connection to ``target``."""

    def __init__(self, host: str, port: int, renumber: dict[int, int] | None = None) -> None:
        """``renumber``: API numbers of requests to forward as other numbers (recorded as
        sent), e.g. ``{689: 9689}`` so the server answers as one without that API."""
        self.target = (host, port)
        self._renumber = dict(renumber or {})
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._connections = 0
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="wiretap", daemon=True)
        self._accepter.start()

    # -- results ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def counts(self) -> collections.Counter[str]:
        """Requests per API name (and per frame type for connect/disconnect)."""
        return collections.Counter(r.name for r in self.requests)

    def keywords(self) -> collections.Counter[str]:
        """How many requests carried each keyword (``KeyValPair_PI`` keys)."""
        return collections.Counter(k for r in self.requests for k in set(r.keywords))

    def payload_bytes(self) -> int:
        """Bytes the clients sent as request payloads (the data of writes and puts)."""
        return sum(r.payload for r in self.requests)

    def connections(self) -> int:
        with self._lock:
            return self._connections

    def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait until every connection so far has closed, so a client process that has
        exited has had its last frames (``RODS_DISCONNECT``) recorded."""
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._connections = 0

    # -- proxy ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections += 1
                number = self._connections
                self._sockets += [client, server]
            for args in ((client, server, number), (server, client, 0)):
                t = threading.Thread(target=self._pump, args=args, name="wiretap", daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, number: int) -> None:
        """Forward frames from ``src`` to ``dst``; record them when ``number`` (requests)."""
        try:
            while True:
                length = _read(src, 4)
                (head_len,) = struct.unpack(">i", length)
                head = _read(src, head_len)
                fields = {k.decode(): v.decode() for k, v in _FIELDS.findall(head)}
                sizes = [int(fields.get(k) or 0) for k in ("msgLen", "errorLen", "bsLen")]
                left = sum(sizes)
                first = _read(src, min(left, _FIRST))
                api = int(fields.get("intInfo") or 0)
                if number and api in self._renumber:
                    head = head.replace(
                        f"<intInfo>{api}</intInfo>".encode(),
                        f"<intInfo>{self._renumber[api]}</intInfo>".encode(),
                    )
                    length = struct.pack(">i", len(head))
                dst.sendall(length + head + first)
                left -= len(first)
                while left:
                    chunk = src.recv(min(left, 1 << 20))
                    if not chunk:
                        raise ConnectionError
                    dst.sendall(chunk)
                    left -= len(chunk)
                if number:
                    message = first[: sizes[0]]  # the XML; never the data that follows
                    request = Request(
                        number,
                        fields.get("type", ""),
                        api,
                        sizes[2],
                        tuple(k.decode() for k in _KEYWORD.findall(message)),
                    )
                    with self._lock:
                        self._requests.append(request)
        except (OSError, ConnectionError, struct.error, ValueError):
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._accepter.join(timeout=5)
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            s.close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> WireTap:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _read(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError
        out += chunk
    return bytes(out)
