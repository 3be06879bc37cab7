"""A small loopback TCP proxy that cuts connections on demand and can limit bandwidth
(fault tests).

    with TcpProxy("127.0.0.1", 5672, rate=8 * 2**20) as proxy:  # 8 MiB/s, both ways
        ...                                   # point the client at 127.0.0.1:<proxy.port>
        proxy.cut()                           # close every open connection now, both ends
        proxy.cut_at_random(rng, 4 * 2**20)   # each open connection dies mid-stream, after
                                              # a random 0..4 MiB more bytes (or 5 s idle)

It runs its own event loop in a daemon thread, so the caller may block (a subprocess, an
iRODS call) without stalling the bytes it relays. New connections are accepted again at
once after a cut; while the target does not answer, a client's connection is closed as
soon as it is accepted (as a dead server would look). A cut is an abort (RST), not a
graceful close, and a random cut falls wherever its byte budget runs out: in the middle of
a frame, a message or a chunk. ``rate`` (bytes per second) is one budget shared by every
connection and both directions, so a large transfer through the proxy takes at least
``size / rate`` seconds; ``None`` relays as fast as it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

CHUNK = 256 * 1024
#: the largest piece sent at once under a rate limit (keeps the relay smooth)
RATE_SLICE = 64 * 1024


class _Bucket:
    """A token bucket: ``take(n)`` waits until ``n`` bytes may pass at ``rate`` bytes/s."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = time.monotonic()

    async def take(self, n: int) -> None:
        now = time.monotonic()
        start = max(self._next, now)
        self._next = start + n / self.rate
        if start > now:
            await asyncio.sleep(start - now)


@dataclass(eq=False)
class _Conn:
    """One relayed client connection: both writers, and a byte budget once a random cut is
    armed (``None``: not armed)."""

    writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter]
    budget: int | None = None
    cut: bool = False
    relayed: int = 0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def abort(self) -> None:
        self.cut = True
        if self.timer is not None:
            self.timer.cancel()
        for w in self.writers:
            with contextlib.suppress(Exception):
                w.transport.abort()  # an RST-like close: no graceful FIN handshake


class TcpProxy:
    """Relay ``listen_host:port`` (``port`` 0: a free one) to ``target_host:target_port``,
    at most ``rate`` bytes per second in all (``None``: unlimited)."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        port: int = 0,
        rate: float | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive bytes per second, not {rate!r}")
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = port
        self.rate = rate
        #: connections accepted / cut so far, bytes relayed (both directions)
        self.accepted = 0
        self.cut_total = 0
        self.relayed = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._relays: set[asyncio.Task[None]] = set()
        self._bucket = _Bucket(rate) if rate else None

    # --- lifecycle (from the caller's thread) -------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def cut(self) -> int:
        """Close every relayed connection now (both sides); the number of connections cut."""
        n: int = asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(10)
        return n

    def cut_at_random(
        self, rng: random.Random, within_bytes: int, *, idle_after: float = 5.0
    ) -> int:
        """Arm a cut on every open connection: each is aborted after a random number of
        further bytes in ``0..within_bytes`` (either direction), mid-chunk if that is where
        the budget ends, or after ``idle_after`` s if it carries fewer. The number armed."""
        budgets = [rng.randint(0, within_bytes) for _ in range(len(self._conns) + 8)]

        async def arm() -> int:
            conns = [c for c in self._conns if c.budget is None and not c.cut]
            for c, b in zip(conns, budgets, strict=False):
                c.budget = b
                c.timer = self._loop.call_later(idle_after, self._expire, c)
            return len(conns)

        n: int = asyncio.run_coroutine_threadsafe(arm(), self._loop).result(10)
        return n

    def open_connections(self) -> int:
        """How many client connections are being relayed right now."""
        return len(self._conns)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- the loop's side ---------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, self.listen_host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()
        for t in list(self._relays):
            t.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _cut(self) -> int:
        conns = list(self._conns)
        for c in conns:
            self._drop(c)
        return len(conns)

    def _drop(self, conn: _Conn) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            self.cut_total += 1
        conn.abort()

    def _expire(self, conn: _Conn) -> None:
        conn.timer = None
        self._drop(conn)

    async def _relay(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        me = asyncio.current_task()
        if me is not None:
            self._relays.add(me)
            me.add_done_callback(self._relays.discard)
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.transport.abort()
            return
        conn = _Conn((c_writer, s_writer))
        self._conns.add(conn)
        try:
            await asyncio.gather(
                self._pipe(conn, c_reader, s_writer),
                self._pipe(conn, s_reader, c_writer),
                return_exceptions=True,
            )
        finally:
            self._conns.discard(conn)
            conn.abort()

    async def _pipe(
        self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Copy until EOF, an error or the connection's cut, then abort the writing side."""
        limit = RATE_SLICE if self._bucket else CHUNK
        try:
            while not conn.cut and (data := await reader.read(limit)):
                if self._bucket is not None:
                    await self._bucket.take(len(data))
                if conn.cut:
                    break
                if conn.budget is not None and len(data) >= conn.budget:
                    self.relayed += conn.budget  # counted first: a reader may look at once
                    writer.write(data[: conn.budget])  # the cut falls inside this piece
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(writer.drain(), 1.0)
                    self._drop(conn)
                    break
                if conn.budget is not None:
                    conn.budget -= len(data)
                conn.relayed += len(data)
                self.relayed += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
