"""API micro-benchmark: the API's own CPU per job, submit → release → events → completed.

    python -m bench api_store         # via the runner
    python -m bench.api_store         # alone, same settings

Starts the API (``python -m services.api``) as its own process on a free port, with a
private RabbitMQ prefix, on a fresh SQLite file and on a fresh PostgreSQL database. This
process submits jobs as a service account and plays a stand-in worker that finishes at
once: for every released task it publishes ``active``, one ``progress`` and
``completed`` events (with confirms) that the API applies through its real consumer.
The end is seen the way the pipeline benchmark sees it: polling ``/metrics`` every 0.2 s.
Figures per backend and submit mode: jobs/s from the first submit to the last job
completed, and the API process's CPU ms per job (``/proc/<pid>/stat``; the stand-in
worker's and the client's CPU are not in it).  No root needed.

Settings: ``BENCH_API_STORE_JOBS`` (1000), ``BENCH_API_STORE_BACKENDS``
(``sqlite,postgres``), ``BENCH_API_STORE_MODES`` (``batch,single``: one ``POST /v1/jobs``
per 1000 jobs, or one ``POST /v1/job`` per job with ``BENCH_API_STORE_CLIENTS`` (32) at
a time), ``BENCH_API_STORE_PG`` (admin URL, ``postgresql://postgres@127.0.0.1:5432/postgres``),
``BENCH_API_STORE_AMQP`` (``amqp://guest:guest@127.0.0.1:5672/``), ``BENCH_TMPDIR``,
``BENCH_API_STORE_PROFILE`` (a directory: ``py-spy record --format raw`` of the API
during each run into ``<backend>-<mode>.txt``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg

from bench import BenchResult
from services.api.auth import hash_password
from shared.crypto import generate_keypair
from shared.messaging import broker, signing
from shared.messaging.messages import Progress, TaskEvent, TaskMessage, TaskState
from shared.messaging.topology import TYPE_EVENT, Names, Topology, delete_topology

REPO = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench", "bench-Pa55word-api-store"
STAGER_USER = "stgbench"
BATCH = 1000
DONE_RE = re.compile(r'^stager_jobs_total\{state="completed"\} (\S+)$', re.M)


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "")
    return value.strip() or default


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def _database(backend: str, tmp: Path) -> AsyncIterator[str]:
    """A fresh store URL; a PostgreSQL database is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'tasks.db'}"
        return
    if backend != "postgres":
        raise ValueError(f"BENCH_API_STORE_BACKENDS: unknown backend {backend!r}")
    admin = _env("BENCH_API_STORE_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_api_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


#: The API's signing key, and the stand-in worker's (the API applies only its events).
_API_KEY, _ = signing.generate()
_WORKER_KEY, _WORKER_PUB = signing.generate()
_WORKER_SIGNER = signing.Signer(signing.Role.WORKER, signing.load_private(_WORKER_KEY))


class Api:
    """The API as a child process."""

    def __init__(self, db_url: str, prefix: str, amqp: str, tmp: Path, public_pem: bytes):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        accounts = {USER: {"password_hash": hash_password(PASSWORD), "act_for": ["*"]}}
        self.env = {
            **os.environ,
            "STAGER_HOST": "127.0.0.1",
            "STAGER_PORT": str(self.port),
            "STAGER_DATABASE_URL": db_url,
            "STAGER_PUBLIC_KEYS": json.dumps([public_pem.decode()]),
            "STAGER_BROKER__URL": amqp,
            "STAGER_BROKER__PREFIX": prefix,
            "STAGER_IRODS__ENABLED": "false",
            "STAGER_AUTH__SERVICE_ACCOUNTS": json.dumps(accounts),
            "STAGER_AUTH__CHECK_USERS": "false",
            "STAGER_RUN_RETENTION": "false",
            "STAGER_INGEST__DB_URL": f"sqlite+aiosqlite:///{tmp / 'ingest.sqlite'}",
            "STAGER_LOG_LEVEL": "warning",
            "STAGER_SIGNING__KEY": _API_KEY.decode(),
            "STAGER_SIGNING__WORKER_KEYS": _WORKER_PUB.decode(),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "api.log"

    def launch(self) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.api"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"API exited: {self.log.read_text()[-2000:]}")
                try:
                    async with http.get(f"{self.url}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("API not ready in time")

    def cpu(self) -> float:
        assert self.proc is not None
        return _cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def stand_in_worker(amqp: aio_pika.abc.AbstractRobustConnection, names: Names) -> None:
    """Finish every released task at once: active, progress, completed."""
    channel = await broker.open_channel(amqp, prefetch=256)
    events = await channel.get_exchange(names.events_exchange)
    seq = 0

    async def emit(msg: TaskMessage, state: TaskState, progress: Progress | None) -> None:
        nonlocal seq
        seq += 1
        ev = TaskEvent(
            task_id=msg.task_id, run=msg.run, attempt=msg.attempt, seq=seq, state=state,
            progress=progress,
        )  # fmt: skip
        body = broker.make_message(
            ev.model_dump_json().encode(),
            message_id=msg.task_id,
            type_=TYPE_EVENT,
            signer=_WORKER_SIGNER,
        )
        await broker.publish(events, body, names.events_queue)

    async def on_task(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        msg = TaskMessage.model_validate_json(message.body)
        await emit(msg, TaskState.ACTIVE, None)
        done = Progress(files_total=1, files_processed=1, bytes_total=100, bytes_done=100)
        await emit(msg, TaskState.ACTIVE, done.model_copy(update={"files_processed": 0}))
        await emit(msg, TaskState.COMPLETED, done)
        await message.ack()

    try:
        for queue in (names.tasks_queue, names.priority_queue):
            q = await channel.get_queue(queue)
            await q.consume(on_task)
        await asyncio.Event().wait()
    finally:
        await channel.close()


def profiler(api: Api, name: str) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of the API into ``$BENCH_API_STORE_PROFILE/<name>.txt`` if set."""
    out = os.environ.get("BENCH_API_STORE_PROFILE")
    if not out or api.proc is None:
        return None
    Path(out).mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    cmd = [spy, "record", "--format", "raw", "--rate", "250", "--nonblocking"]
    cmd += ["-o", f"{out}/{name}.txt", "--pid", str(api.proc.pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def submit(http: aiohttp.ClientSession, api: str, n: int, mode: str, clients: int) -> None:
    bodies = [
        {
            "title": f"bench {i}",
            "stagerUser": STAGER_USER,
            "drUser": "rods",
            "srcURL": f"/bench/src/f{i:05d}.txt",
            "dstURL": f"irods:/tempZone/bench/f{i:05d}.txt",
        }
        for i in range(n)
    ]
    if mode == "batch":
        for i in range(0, n, BATCH):
            async with http.post(f"{api}/v1/jobs", json={"jobs": bodies[i : i + BATCH]}) as r:
                if r.status != 200:
                    raise RuntimeError(f"batch submit: {r.status} {(await r.text())[:300]}")
        return
    if mode != "single":
        raise ValueError(f"BENCH_API_STORE_MODES: unknown mode {mode!r}")
    gate = asyncio.Semaphore(clients)

    async def one(body: dict[str, Any]) -> None:
        async with gate, http.post(f"{api}/v1/job", json=body) as r:
            if r.status != 200:
                raise RuntimeError(f"submit: {r.status} {(await r.text())[:300]}")

    await asyncio.gather(*(one(b) for b in bodies))


async def completed(http: aiohttp.ClientSession, api: str) -> int:
    async with http.get(f"{api}/metrics") as r:
        m = DONE_RE.search(await r.text())
    return int(float(m.group(1))) if m else 0


async def measure(backend: str, mode: str, n: int, keys: tuple[bytes, bytes]) -> BenchResult:
    """One run: a fresh API and store; jobs/s with CPU ms per job in the note."""
    amqp_url = _env("BENCH_API_STORE_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
    clients = int(_env("BENCH_API_STORE_CLIENTS", "32"))
    prefix = f"bench{uuid.uuid4().hex[:10]}"
    names = Names(prefix)
    with tempfile.TemporaryDirectory(prefix="bench-api-", dir=os.environ.get("BENCH_TMPDIR")) as t:
        tmp = Path(t)
        async with _database(backend, tmp) as db_url:
            api = Api(db_url, prefix, amqp_url, tmp, keys[1])
            amqp = await aio_pika.connect_robust(amqp_url)
            worker: asyncio.Task[None] | None = None
            try:
                api.launch()
                await api.ready()
                worker = asyncio.create_task(stand_in_worker(amqp, names))
                auth = aiohttp.BasicAuth(USER, PASSWORD)
                conn = aiohttp.TCPConnector(limit=clients)
                async with aiohttp.ClientSession(auth=auth, connector=conn) as http:
                    async with http.get(f"{api.url}/v1/jobs") as r:  # warm the scrypt cache
                        r.raise_for_status()
                    spy = profiler(api, f"{backend}-{mode}")
                    cpu0, t0 = api.cpu(), time.monotonic()
                    await submit(http, api.url, n, mode, clients)
                    idle, last = time.monotonic(), -1
                    while (done := await completed(http, api.url)) < n:
                        if done != last:
                            idle, last = time.monotonic(), done
                        elif time.monotonic() - idle > 60:
                            raise RuntimeError(f"stuck at {done}/{n} completed for 60 s")
                        await asyncio.sleep(0.2)
                    wall, cpu = time.monotonic() - t0, api.cpu() - cpu0
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(30)
            finally:
                if worker is not None:
                    worker.cancel()
                    await asyncio.gather(worker, return_exceptions=True)
                api.stop()
                channel = await amqp.channel()
                await delete_topology(channel, Topology(names=names))
                await amqp.close()
    load = os.getloadavg()[0]
    return BenchResult(
        f"api {backend} {mode}: {n} jobs submit→completed",
        n / wall,
        "jobs/s",
        note=f"API CPU {1000 * cpu / n:.2f} ms/job, {wall:.1f} s, load {load:.1f}",
    )


def run() -> list[BenchResult]:
    n = int(_env("BENCH_API_STORE_JOBS", "1000"))
    keys = generate_keypair(2048)
    out = []
    for backend in _env("BENCH_API_STORE_BACKENDS", "sqlite,postgres").split(","):
        for mode in _env("BENCH_API_STORE_MODES", "batch,single").split(","):
            out.append(asyncio.run(measure(backend.strip(), mode.strip(), n, keys)))
    return out


def main() -> int:
    for result in run():
        print(result.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
