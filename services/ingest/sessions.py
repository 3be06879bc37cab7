"""python-irodsclient sessions for the threads of an owner's child (one per thread and
per proxied user).

python-irodsclient is blocking; ingest calls it only from a bounded thread pool, and
each thread keeps its own sessions so no connection is shared between threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from irods.session import iRODSSession

from shared.irods import IrodsAccount, connect


class SessionPool:
    """Thread-local sessions keyed by ``as_user`` (``None``: the account itself)."""

    def __init__(self, account: IrodsAccount) -> None:
        self.account = account
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[iRODSSession] = []

    def get(self, as_user: tuple[str, str] | None = None) -> iRODSSession:
        """This thread's session for ``as_user`` (created on first use)."""
        sessions: dict[Any, iRODSSession] | None = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        session = sessions.get(as_user)
        if session is None:
            session = connect(self.account, proxy_for=as_user)
            sessions[as_user] = session
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        """Close every session of every thread."""
        with self._lock:
            sessions, self._all = self._all, []
        for s in sessions:
            try:
                s.cleanup()
            except Exception:  # noqa: S112 - best effort at shutdown
                continue


def interrupt(session: Any) -> int:
    """Shut down the sockets of ``session``'s connections in use; returns how many.

    A thread blocked on one of them (a server or network that stopped answering) then
    gets end-of-file, python-irodsclient raises ``NetworkException`` and drops the
    connection, and the thread is free again.  Only for a session no other thread is
    using at the same time (a worker thread's own session while it waits).
    """
    pool = getattr(session, "pool", None)
    if pool is None:
        return 0
    with pool._lock:  # python-irodsclient's pool lock (guards ``active``)
        active = list(pool.active)
    n = 0
    for conn in active:
        sock = getattr(conn, "socket", None)
        if sock is None:
            continue
        with contextlib.suppress(OSError):
            # the plain socket's shutdown, also under TLS (no TLS close_notify exchange)
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
            n += 1
    return n
