"""``python -m services.worker`` as a real process on a test's private topology."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from services.worker.app import Worker
from shared.messaging.signing import Role
from tests.conftest import AMQP_URL, Amqp, SigningKeys
from tests.deploy.k8s import ROOT
from tests.worker.conftest import worker_settings
from tests.worker.jobs import KINDS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class WorkerProcess:
    proc: asyncio.subprocess.Process
    url: str
    _stderr: asyncio.Task[bytes]

    async def stderr(self) -> str:
        """Everything it wrote to stderr (waits for it to exit)."""
        return (await self._stderr).decode(errors="replace")

    async def metric(self, http: aiohttp.ClientSession, name: str) -> float | None:
        """The value of the unlabelled sample ``name`` on /metrics (None: not there yet)."""
        try:
            async with http.get(self.url + "/metrics") as r:
                text = await r.text()
        except aiohttp.ClientError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    async def until(
        self, http: aiohttp.ClientSession, name: str, value: float, limit: float = 30.0
    ) -> None:
        """Until /metrics shows ``name`` at ``value`` (polled: it is another process)."""
        async with asyncio.timeout(limit):
            while await self.metric(http, name) != value:  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    async def until_serving(self, http: aiohttp.ClientSession, limit: float = 30.0) -> None:
        """Until /metrics answers (the worker consumes by then)."""
        async with asyncio.timeout(limit):
            while await self.metric(http, "stager_worker_running") is None:
                if self.proc.returncode is not None:
                    raise AssertionError((await self.stderr())[-3000:])
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def worker_process(
    amqp: Amqp, signing_keys: SigningKeys, state: Path, transfer_kind: str = "slow"
) -> AsyncIterator[WorkerProcess]:
    """A worker process with the stand-in job kinds of tests/worker/jobs.py; killed (its
    whole process group) if still running afterwards; its retry queues are deleted."""
    settings = worker_settings(amqp.names, state, transfer_kind=transfer_kind)
    amqp.topologies.append(Worker(settings).topology)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGER_")}
    env |= signing_keys.env(Role.WORKER)
    env |= {
        "PYTHONPATH": str(ROOT),
        "STAGER_LOG_JSON": "true",
        "STAGER_BROKER__URL": AMQP_URL,
        "STAGER_BROKER__PREFIX": amqp.names.prefix,
        "STAGER_HTTP_PORT": str(port),
        "STAGER_STATE_DIR": str(state),
        "STAGER_JOB_KINDS": json.dumps(KINDS),
        "STAGER_TRANSFER_KIND": transfer_kind,
        "STAGER_SERVICE_CREDENTIALS": json.dumps({"streamer": {"user": "svc", "password": "pw"}}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.worker",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    running = WorkerProcess(
        proc, f"http://127.0.0.1:{port}", asyncio.create_task(proc.stderr.read())
    )
    try:
        yield running
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        with contextlib.suppress(Exception):
            await running.stderr()
