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


async def _ended(pid: int) -> bool:
    for _ in range(150):
        if not _alive(pid):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_stuck_pre_job_is_stopped_by_the_timeout_and_fails_the_job(ingest, tmp_path):
    """automated ingest 0.7.0 calls ``pre_job`` in its main task, which it enqueues with no
    ``soft_time_limit`` (``sync_actions.start_job``; only ``utils.enqueue_task`` passes the
    handler's ``timeout()``), so a stuck ``pre_job`` holds its worker for ever. Ours is
    bounded like every hook (docs/ingest.md *Timeouts*): the job fails saying so, and the
    process stuck in it is ended."""
    src = make_tree(tmp_path / "src", 2)
    pid_file, log = tmp_path / "pre.pid", tmp_path / "hooks.log"
    await ingest.start(1)
    started = time.monotonic()
    job = ingest.configured(
        src, timeout=1, hang_job={"hook": "pre_job", "pid": str(pid_file)}, log=str(log)
    )
    done = await ingest.run(job, limit=30)
    assert time.monotonic() - started < 20
    assert done.state is JobState.FAILED
    assert done.error is not None
    assert done.error.startswith("pre_job failed: timed out after 1 s"), done.error
    assert "replaced and ended" in done.error
    assert await _ended(int(pid_file.read_text())), "the child stuck in pre_job still runs"
    assert "pre_data_obj_create" not in (log.read_text() if log.exists() else "")
    # the worker goes on: a new child runs the next job
    again = await ingest.run(ingest.configured(make_tree(tmp_path / "src2", 1)), limit=30)
    assert again.state is JobState.COMPLETED and again.counters["files_failed"] == 0


async def test_a_stuck_post_job_is_stopped_and_shown_as_the_jobs_error(ingest, tmp_path):
    """The anchor calls ``post_job`` in ``after_return`` of the pass's last task, outside its
    time limit. Ours: bounded; the pass still ends (its files are in), with the error."""
    src = make_tree(tmp_path / "src", 2)
    pid_file = tmp_path / "post.pid"
    await ingest.start(1)
    job = ingest.configured(src, timeout=1, hang_job={"hook": "post_job", "pid": str(pid_file)})
    done = await ingest.run(job, limit=30)
    assert done.state is JobState.COMPLETED
    assert done.counters["files_created"] == 2
    assert done.error is not None
    assert done.error.startswith("post_job failed: timed out after 1 s"), done.error
    assert await _ended(int(pid_file.read_text())), "the child stuck in post_job still runs"


HANG_PRE_JOB = """
import os, time
from shared.ingest.core import Core

class event_handler(Core):
    @staticmethod
    def pre_job(hdlr_mod, logger, meta):
        with open(meta["append_json"]["pid"], "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(3600)
"""


async def test_the_jobs_timeout_bounds_a_handler_without_a_timeout_hook(ingest, tmp_path):
    """The job's ``timeout`` option (REST ``timeout``, as the anchor's REST API took it;
    ``--timeout``) is the limit when the handler has no ``timeout()``."""
    src = make_tree(tmp_path / "src", 1)
    pid_file = tmp_path / "pre.pid"
    await ingest.start(1)
    job = ingest.job(src, None, append_json={"pid": str(pid_file)}, timeout=1.5)
    job.handler, job.handler_label = HANG_PRE_JOB, "hang.py"
    done = await ingest.run(job, limit=30)
    assert done.state is JobState.FAILED
    assert done.error is not None and "timed out after 1.5 s" in done.error
    assert await _ended(int(pid_file.read_text()))
