"""A file operation stuck on a silent iRODS connection times out, and its thread is freed:
the worker shuts the stuck connection down (seen here by a TCP proxy that stops forwarding)."""

from __future__ import annotations

import asyncio
import contextlib
import os
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not yet reaped counts as ended
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


async def test_timeout_stops_a_handler_stuck_in_python(ingest, tmp_path):
    """A hook that never returns (no iRODS call to interrupt) is stopped by ``timeout``: the
    file fails with "timed out after N s", the child running it is replaced and ended (which
    ends the stuck thread), and the job goes on with the other files and later passes."""
    src = make_tree(tmp_path / "src", 4)
    pid_file, log_file = tmp_path / "hung.pid", tmp_path / "job.log"
    await ingest.start(1)
    job = ingest.configured(
        src,
        timeout=0.5,
        hang={"name": "2", "pid": str(pid_file)},
        files_per_task=1,
        log_filename=str(log_file),
    )
    started = time.monotonic()
    done = await ingest.run(job, limit=30)
    assert time.monotonic() - started < 20
    assert done.state is JobState.COMPLETED
    assert done.counters["files_failed"] == 1
    assert done.counters["files_created"] == 3
    assert "timed out after 0.5 s" in log_file.read_text()
    hung = int(pid_file.read_text())
    for _ in range(150):
        if not _alive(hung):
            break
        await asyncio.sleep(0.1)
    assert not _alive(hung), "the child stuck in the handler still runs"
    # the worker still works: a new child runs another job (same target: 0 and 1 differ)
    again = await ingest.run(ingest.configured(make_tree(tmp_path / "src2", 2)), limit=30)
    assert again.state is JobState.COMPLETED
    assert again.counters["files_failed"] == 0 and again.counters["files_modified"] == 2
