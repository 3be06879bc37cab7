"""A file operation stuck on a silent iRODS connection times out, and its thread is freed:
the worker shuts the stuck connection down (seen here by a TCP proxy that stops forwarding)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from services.ingest.store import JobState
from tests.ingest.conftest import make_tree


class StallingProxy:
    """Forwards TCP to iRODS until ``stall`` exists; then holds what the client sends."""

    def __init__(self, host: str, port: int, stall: Path) -> None:
        self.upstream = (host, port)
        self.stall = stall
        self.stalled_at: float | None = None
        self.closed_after_stall: list[float] = []  # when a stalled client hung up
        self.hung_up = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        down = asyncio.create_task(self._pipe(up_reader, writer))
        stalled = False
        try:
            while data := await reader.read(65536):
                if self.stall.exists():
                    stalled = True
                    self.stalled_at = self.stalled_at or time.monotonic()
                    continue  # swallowed: the client waits for an answer that never comes
                up_writer.write(data)
                await up_writer.drain()
        except OSError:
            pass
        finally:
            if stalled:
                self.closed_after_stall.append(time.monotonic())
                self.hung_up.set()
            down.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


async def test_timeout_frees_the_thread_stuck_on_irods(ingest, irods_server, tmp_path):
    src = make_tree(tmp_path / "src", 1)
    stall = tmp_path / "stall"
    proxy = StallingProxy(irods_server.host, irods_server.port, stall)
    port = await proxy.start()
    ingest.account = ingest.account.model_copy(update={"port": port})
    try:
        await ingest.start(1)
        # the register call after pre_data_obj_create gets no answer
        job = await ingest.run(
            ingest.configured(src, op="REGISTER_SYNC", touch=str(stall), timeout=0.5)
        )
        assert job.state is JobState.COMPLETED
        assert job.counters["files_failed"] == 1 and job.counters["files_created"] == 0
        assert proxy.stalled_at is not None
        # the stuck connection was shut down by the worker, not left hanging
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proxy.hung_up.wait(), 5)
        assert proxy.closed_after_stall, "the stuck connection was never shut down"
        assert proxy.closed_after_stall[0] - proxy.stalled_at < 3
    finally:
        await proxy.close()
