"""The two wires of the fork server: control packets, and a child's JSON lines.

Worker ↔ fork server: a ``SOCK_SEQPACKET`` socketpair, one JSON object per packet,
``op`` saying what it is (:class:`Op`). A ``spawn`` request carries the job kind, the
user and the parameters, after the JSON a NUL byte and the secret (:func:`spawn_packet`:
never inside the JSON, so the fork server never holds it as an immutable ``str``), and as
``SCM_RIGHTS`` the write end of the child's output pipe (and, for a reusable child, the
read end of its task pipe). The fork server receives into one reused ``bytearray`` and
wipes the secret once the child is forked (:func:`receive_into`, :func:`wipe`).

Child → worker: one JSON object per line on the output pipe (``progress``, ``report`` …)
ending each task with exactly one final line, ``result`` or ``error``. An error line
carries an :class:`~shared.errors.ErrorKind` value, whether the error is permanent, and
a message (:class:`ErrorLine`).
"""

from __future__ import annotations

import array
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.errors import ErrorKind, StagerError, kind_of

#: Largest control packet (a spawn request with its parameters).
MAX_PACKET = 1 << 20
#: Most descriptors one packet carries (output pipe, task pipe).
MAX_FDS = 2


class Op(StrEnum):
    """What a control packet is."""

    READY = "ready"  # server → worker, once: everything is imported
    SPAWN = "spawn"  # worker → server, with the pipe(s) as SCM_RIGHTS
    SPAWNED = "spawned"  # server → worker: the child's pid
    REFUSED = "refused"  # server → worker: not forked, and why
    EXIT = "exit"  # server → worker: a child's exit code


#: ``kind`` of a ``refused`` packet when the user may not run jobs (root, system, unknown).
REFUSED_USER = "refused"

RESULT = "result"
ERROR = "error"
#: The final line of a task (the child writes exactly one per task).
FINAL_TYPES = (RESULT, ERROR)


def rights(fds: Sequence[int]) -> list[tuple[int, int, bytes]]:
    """The ancillary data that passes ``fds`` with a packet."""
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []


#: Ends a spawn request's JSON; the secret follows (JSON text never holds a NUL byte).
SECRET_SEP = b"\0"


def spawn_packet(req: Mapping[str, Any], secret: str | None) -> bytes:
    """A spawn request: its JSON, then (if any) ``SECRET_SEP`` and the secret."""
    data = json.dumps(req).encode()
    return data if secret is None else data + SECRET_SEP + secret.encode()


def receive_into(sock: socket.socket, buf: bytearray) -> tuple[int, list[int]]:
    """One packet into ``buf`` and the descriptors that came with it (blocking; 0 at close)."""
    fds = array.array("i")
    n, ancdata, _, _ = sock.recvmsg_into(
        [memoryview(buf)], socket.CMSG_SPACE(MAX_FDS * fds.itemsize)
    )
    for level, type_, cdata in ancdata:
        if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    return n, list(fds)


def split_secret(buf: bytearray, n: int) -> tuple[bytes, bytearray | None]:
    """The JSON of the packet in ``buf[:n]`` and its secret (a fresh ``bytearray``, to wipe)."""
    end = buf.find(SECRET_SEP, 0, n)
    if end < 0:
        return bytes(buf[:n]), None
    return bytes(buf[:end]), buf[end + 1 : n]


def wipe(buf: bytearray | None, n: int | None = None) -> None:
    """Overwrite ``buf`` (its first ``n`` bytes) with zeros, in place."""
    if buf is not None:
        end = len(buf) if n is None else n
        buf[:end] = bytes(end)


@dataclass(frozen=True)
class ErrorLine:
    """A task's ``error`` line: what went wrong, whether a retry can help, and a message."""

    kind: ErrorKind
    permanent: bool
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorLine:
        """The line for ``exc``: a stager error's own kind and ``permanent``, else the kind's."""
        kind = kind_of(exc)
        permanent = exc.permanent if isinstance(exc, StagerError) else kind.permanent
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return cls(kind, permanent, message)

    @classmethod
    def parse(cls, line: Mapping[str, Any]) -> ErrorLine:
        """Read an ``error`` line back (a kind this worker does not know is ``internal``)."""
        try:
            kind = ErrorKind(str(line.get("kind")))
        except ValueError:
            kind = ErrorKind.INTERNAL
        message = line.get("message") or line.get("kind") or ErrorKind.FAILED
        return cls(kind, bool(line.get("permanent")), str(message))

    def to_line(self) -> dict[str, Any]:
        return {
            "type": ERROR,
            "kind": self.kind,
            "permanent": self.permanent,
            "message": self.message,
        }
