"""One-request transfers of small files: DATA_OBJ_PUT (606) and DATA_OBJ_GET (608).

As icommands' iput/iget do for files up to the server's single-buffer limit: a put sends
`DataObjInp_PI` (oprType PUT_OPR, `dataIncluded`, `dataSize`) with the whole file in the
request's byte stream and gets status 0 back; the server creates the replica, writes it
and finalises it (and with `verifyChksum` = our sha2 checks it) in that one call. A get
(oprType GET_OPR) is answered with status 0, a `PortalOprOut_PI` (its `chksum` filled when
`verifyChksum` was asked) and the data in the byte stream; no OPR_COMPLETE follows. A
positive status means the server chose a parallel portal instead: we end it with
OPR_COMPLETE and an error and fall back. A server without these APIs (or refusing them)
is detected on the first file and the run falls back to open/write/close.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from html import escape
from typing import Any

from irods import keywords as kw
from irods.api_number import api_number
from irods.message import iRODSMessage

from services.isync import wire

PUT_OPR, GET_OPR = 1, 2
_PUT = api_number["DATA_OBJ_PUT_AN"]
_GET = api_number["DATA_OBJ_GET_AN"]
_OPR_COMPLETE = api_number["OPR_COMPLETE_AN"]
_SYS_INVALID_PORTAL_OPR = -48000

# Answers meaning "this server does not do single-buffer transfers": switch it off for the run.
UNSUPPORTED = frozenset({"SYS_UNMATCHED_API_NUM", "SYS_NOT_SUPPORTED", "SYS_INVALID_PORTAL_OPR"})

_CHKSUM = re.compile(rb"<chksum>([^<]*)</chksum>")

_totals = {"puts": 0, "gets": 0, "fallbacks": 0}
_totals_lock = threading.Lock()


def totals() -> dict[str, int]:
    """Process-wide counts of one-request puts, gets and fallbacks (for tests and -v)."""
    with _totals_lock:
        return dict(_totals)


def _add(what: str) -> None:
    with _totals_lock:
        _totals[what] += 1


class Unsupported(Exception):
    """The server will not move this file in one request."""


@dataclass
class SingleBuffer:
    """Per-run switch and counters (how many files went the one-request way)."""

    limit: int
    enabled: bool = True
    puts: int = 0
    gets: int = 0
    fallbacks: int = 0
    reason: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def applies(self, size: int) -> bool:
        return self.enabled and self.limit > 0 and size <= self.limit

    def count(self, put: bool) -> None:
        with self._lock:
            if put:
                self.puts += 1
            else:
                self.gets += 1
        _add("puts" if put else "gets")

    def disable(self, reason: str) -> None:
        with self._lock:
            self.fallbacks += 1
            if self.enabled:
                self.enabled, self.reason = False, reason
        _add("fallbacks")


def is_unsupported(error: BaseException) -> bool:
    return isinstance(error, Unsupported) or type(error).__name__ in UNSUPPORTED


def _inp(path: str, size: int, flags: int, opr: int, options: dict[str, str]) -> bytes:
    return (
        f"<DataObjInp_PI><objPath>{escape(path, quote=False)}</objPath>"
        f"<createMode>{0o644}</createMode><openFlags>{flags}</openFlags><offset>0</offset>"
        f"<dataSize>{size}</dataSize><numThreads>0</numThreads><oprType>{opr}</oprType>"
        f"{wire.kvp(options)}</DataObjInp_PI>"
    ).encode()


def put_object(
    conn: Any, path: str, data: memoryview, options: dict[str, str], checksum: str | None
) -> None:
    """DATA_OBJ_PUT with the data included; `checksum` (sha2:...) makes the server verify it.

    Raises python-irodsclient's exception for the server's error (USER_CHKSUM_MISMATCH,
    OVERWRITE_WITHOUT_FORCE_FLAG, SYS_UNMATCHED_API_NUM, ...).
    """
    opts = {**options, kw.DATA_SIZE_KW: str(len(data)), kw.DATA_INCLUDED_KW: ""}
    if checksum is not None:
        # iput -K: verifyChksum carries the client's checksum (the test server reads chksum)
        opts[kw.VERIFY_CHKSUM_KW] = checksum
        opts[kw.CHKSUM_KW] = checksum
    body = _inp(path, len(data), wire.O_WRONLY | wire.O_CREAT | wire.O_TRUNC, PUT_OPR, opts)
    status = wire.call_with_data(conn, _PUT, body, data)
    if status > 0:  # a portal for a parallel put: never asked for, end it
        _abort_portal(conn)


def get_object(conn: Any, path: str, into: memoryview, verify: bool) -> tuple[int, str | None]:
    """DATA_OBJ_GET answered in one reply: (bytes received into `into`, iRODS checksum)."""
    opts = {kw.VERIFY_CHKSUM_KW: ""} if verify else {}
    body = _inp(path, 0, wire.O_RDONLY, GET_OPR, opts)
    frame = iRODSMessage.pack_header("RODS_API_REQ", len(body), 0, 0, _GET) + body
    try:
        conn.socket.sendall(frame)
    except OSError as e:
        conn.release(True)
        raise ConnectionError(f"connection lost: {e.strerror or e}") from e
    status, size, msg = wire.recv_reply(conn, into)
    if status > 0 and size == 0:
        _abort_portal(conn)
    found = _CHKSUM.search(msg)
    checksum = found.group(1).decode() if found and found.group(1) else None
    return size, checksum


def _abort_portal(conn: Any) -> None:
    """OPR_COMPLETE with an error ends a portal operation we will not serve."""
    body = f"<INT_PI><myInt>{_SYS_INVALID_PORTAL_OPR}</myInt></INT_PI>".encode()
    frame = iRODSMessage.pack_header("RODS_API_REQ", len(body), 0, 0, _OPR_COMPLETE) + body
    try:
        conn.socket.sendall(frame)
        wire.recv_reply(conn)
    except Exception:  # noqa: S110 - the connection is dropped below either way
        pass
    raise Unsupported("the server offered a parallel portal instead of one buffer")
