"""A small loopback TCP proxy that can cut every connection on demand (fault tests).

    with TcpProxy("127.0.0.1", 5672) as proxy:   # listens on 127.0.0.1:<proxy.port>
        ...                                        # point the client at proxy.port
        proxy.cut()                                # close every open connection, both ends

It runs its own event loop in a daemon thread, so the caller may block (a subprocess, an
iRODS call) without stalling the bytes it relays. New connections are accepted again at
once after a cut; while the target does not answer, a client's connection is closed as
soon as it is accepted (as a dead server would look).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

CHUNK = 256 * 1024


class TcpProxy:
    """Relay ``listen_host:port`` (``port`` 0: a free one) to ``target_host:target_port``."""

    def __init__(
        self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = port
        #: connections accepted / cut so far
        self.accepted = 0
        self.cut_total = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

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

    def open_connections(self) -> int:
        """How many client connections are being relayed right now."""
        return len(self._writers) // 2

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

    async def _cut(self) -> int:
        writers = list(self._writers)
        for w in writers:
            with contextlib.suppress(Exception):
                w.transport.abort()  # an RST-like close: no graceful FIN handshake
        self._writers.clear()
        n = len(writers) // 2
        self.cut_total += n
        return n

    async def _relay(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.transport.abort()
            return
        pair = {c_writer, s_writer}
        self._writers |= pair
        try:
            await asyncio.gather(
                _pipe(c_reader, s_writer), _pipe(s_reader, c_writer), return_exceptions=True
            )
        finally:
            for w in pair:
                self._writers.discard(w)
                with contextlib.suppress(Exception):
                    w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF or an error, then close the writing side."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()
