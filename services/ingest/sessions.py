"""python-irodsclient sessions for the threads of an owner's child (one per thread and
per proxied user).

python-irodsclient is blocking; ingest calls it only from a bounded thread pool, and
each thread keeps its own sessions so no connection is shared between threads.

Idle disconnect (the anchor's ``--irods_idle_disconnect_seconds``): a session fetched with
``idle_seconds`` has its pooled connections closed once they sit unused (in
python-irodsclient's ``Pool.idle`` set) longer than that; a reaper thread checks a few times
per period.  The session stays usable: its next call opens a new connection, as
python-irodsclient does whenever the idle set is empty.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import socket
import threading
from typing import Any

from irods.exception import SYS_RESC_DOES_NOT_EXIST
from irods.session import iRODSSession

from shared.irods import IrodsAccount, connect


class SessionPool:
    """Thread-local sessions keyed by ``as_user`` (``None``: the account itself)."""

    def __init__(self, account: IrodsAccount) -> None:
        self.account = account
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[iRODSSession] = []
        #: id(session) -> seconds its connections may stay idle
        self._idle_limits: dict[int, float] = {}
        self._reaper: threading.Thread | None = None
        self._closed = threading.Event()

    def get(
        self, as_user: tuple[str, str] | None = None, idle_seconds: float | None = None
    ) -> iRODSSession:
        """This thread's session for ``as_user`` (created on first use).

        ``idle_seconds``: close its connections idle longer than that (the latest value
        asked for a session applies; ``None`` leaves the session's limit as it was)."""
        sessions: dict[Any, iRODSSession] | None = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        session = sessions.get(as_user)
        if session is None:
            session = connect(self.account, proxy_for=as_user)
            _track_idle_time(session)
            sessions[as_user] = session
            with self._lock:
                self._all.append(session)
        if idle_seconds is not None and self._idle_limits.get(id(session)) != idle_seconds:
            with self._lock:
                self._idle_limits[id(session)] = idle_seconds
            self._start_reaper()
        return session

    def discard(self) -> None:
        """Drop this thread's sessions (their connections were lost: a server restart, a
        reset); the next :meth:`get` opens new ones."""
        sessions: dict[Any, iRODSSession] = getattr(self._local, "sessions", None) or {}
        dropped = list(sessions.values())
        sessions.clear()
        with self._lock:
            self._all = [s for s in self._all if all(s is not d for d in dropped)]
            for d in dropped:
                self._idle_limits.pop(id(d), None)
        for d in dropped:
            with contextlib.suppress(Exception):  # the server may be gone: best effort
                d.cleanup()

    def idle_connections(self) -> int:
        """How many pooled connections of every session are open and unused."""
        with self._lock:
            sessions = list(self._all)
        return sum(len(s.pool.idle) for s in sessions)

    def disconnect_idle(self, now: datetime.datetime | None = None) -> int:
        """Close the connections idle longer than their session's limit; returns how many.

        Under the pool's own lock a connection is either in ``idle`` (unused) or taken by
        ``get_connection``: one taken out here can no longer be handed to a thread."""
        now = now or datetime.datetime.now()
        with self._lock:
            limited = [(s, self._idle_limits.get(id(s))) for s in self._all]
        closed = 0
        for session, limit in limited:
            if limit is None:
                continue
            pool = session.pool
            with pool._lock:
                stale = [c for c in pool.idle if (now - c.last_used_time).total_seconds() > limit]
                pool.idle.difference_update(stale)
            for conn in stale:
                with contextlib.suppress(Exception):
                    conn.disconnect()
                closed += 1
        return closed

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is not None or self._closed.is_set():
                return
            self._reaper = threading.Thread(
                target=self._reap, name="ingest-idle-disconnect", daemon=True
            )
        self._reaper.start()

    def _reap(self) -> None:
        while True:
            with self._lock:
                shortest = min(self._idle_limits.values(), default=60.0)
            if self._closed.wait(min(5.0, max(0.1, shortest / 4))):
                return
            with contextlib.suppress(Exception):  # a reaper that dies would leak silently
                self.disconnect_idle()

    def close(self) -> None:
        """Close every session of every thread."""
        self._closed.set()
        with self._lock:
            sessions, self._all = self._all, []
            self._idle_limits.clear()
        for s in sessions:
            try:
                s.cleanup()
            except Exception:  # noqa: S112 - best effort at shutdown
                continue


def _track_idle_time(session: Any) -> None:
    """Have python-irodsclient stamp ``last_used_time`` on each connection it releases.

    It does so only with its connection refresh on; an infinite refresh time keeps the
    refresh itself off (a refresh the iRODS environment asked for is kept)."""
    pool = session.pool
    if not pool.refresh_connection:
        pool.connection_refresh_time = math.inf
        pool.refresh_connection = True


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


def resource_list_stale(exc: BaseException) -> bool:
    """Whether ``exc`` may only mean that the agents behind a session's connections loaded
    the resource list before the resource was created: a real agent reads it once, when it
    starts (``resc_mgr.init_from_catalog`` in ``initServerInfo``,
    ``server/core/src/initServer.cpp``), so it answers ``SYS_RESC_DOES_NOT_EXIST`` for a
    resource made later, however long its connection lives."""
    return isinstance(exc, SYS_RESC_DOES_NOT_EXIST)


def renew_connections(session: Any) -> None:
    """Close ``session``'s pooled connections: its next call connects afresh, to a new
    agent that loads the current resource list. Only for this thread's own session, with
    none of its connections in use."""
    session.cleanup()
