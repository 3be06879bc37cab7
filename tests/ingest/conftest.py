"""Fixtures for ingest: a job store, private queues on the real RabbitMQ, in-process workers.

``ingest`` (function) gives an ``IngestHarness``: ``start(n)`` runs ``n`` workers (each its
own AMQP channel and owners' children, as separate worker processes would), ``run(job)``
creates a job and waits until its pass ends. Jobs belong to ``owner`` (a real Unix user,
made per test), whose child process does the work as on a real worker started as root.

``tmp_path`` is overridden here: a fresh directory under ``/tmp`` that ``owner`` owns (pytest's
own is private to root, so the owner could not read a tree in it); the workers' allowed root.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pydantic import SecretStr

from services.ingest.metrics import IngestMetrics
from services.ingest.owners import ChildPolicy
from services.ingest.store import ACTIVE, IngestOptions, Job, JobState, JobStore
from services.ingest.worker import IngestWorker
from shared.irods import IrodsAccount
from shared.messaging.signing import Gate, Role
from shared.messaging.topology import Names
from tests.conftest import AMQP_URL, signing_key_set

HANDLERS = Path(__file__).parent / "handlers"


def worker_parts(allowed_roots: list[str], **policy: Any) -> dict[str, Any]:
    """The keyword arguments of an ``IngestWorker`` as ``services.ingest.app`` builds them."""
    keys = signing_key_set().settings(Role.INGEST)
    metrics = IngestMetrics()
    policy.setdefault("s3_endpoints", ("127.0.0.1:*",))  # the tests' S3 server
    return {
        "signer": keys.signer(Role.INGEST),
        "gate": Gate(keys.verifier(Role.INGEST), metrics.count_rejected),
        "policy": ChildPolicy(allowed_roots=tuple(allowed_roots), log_json=True, **policy),
        "metrics": metrics,
    }


class IngestHarness:
    def __init__(
        self,
        store: JobStore,
        names: Names,
        account: IrodsAccount,
        tmp: Path,
        owner: pwd.struct_passwd,
    ):
        self.store = store
        self.names = names
        self.account = account
        self.tmp = tmp
        self.owner = owner
        self.allowed_roots = [str(tmp)]
        #: where the workers connect, and who deletes their queues after the test
        self.amqp_url = AMQP_URL
        self.admin_url = AMQP_URL
        #: ``ChildPolicy`` fields for the workers ``start`` makes (e.g. the heartbeat)
        self.policy: dict[str, Any] = {}
        self.connections: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.workers: list[IngestWorker] = []
        self.collection = f"/tempZone/home/rods/{uuid.uuid4().hex[:10]}"

    async def start(self, n: int = 1, concurrency: int = 2) -> None:
        for _ in range(n):
            conn = await aio_pika.connect_robust(self.amqp_url)
            self.connections.append(conn)
            worker = IngestWorker(
                self.store,
                conn,
                self.account,
                concurrency,
                self.names,
                poll=0.1,
                **worker_parts(self.allowed_roots, **self.policy),
            )
            self.workers.append(worker)
            await worker.start()
            self.tasks.append(asyncio.create_task(worker.schedule()))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for w in self.workers:
            await w.close()
        with contextlib.suppress(Exception):
            conn = await aio_pika.connect(self.admin_url)
            async with conn:
                ch = await conn.channel()
                for q in (self.names.ingest_dirs_queue, self.names.ingest_files_queue):
                    await ch.queue_delete(q)
        for c in self.connections:
            with contextlib.suppress(Exception):
                await c.close()

    def job(
        self,
        root: Path,
        handler: str | None = None,
        target: str | None = None,
        interval: float | None = None,
        **options: Any,
    ) -> Job:
        source = None
        if handler:
            source = (HANDLERS / f"{handler}.py").read_text()
        options.setdefault("owner", self.owner.pw_name)
        return Job(
            name="j" + uuid.uuid4().hex[:10],
            root=str(root),
            target=target or self.collection,
            interval=interval,
            handler=source,
            handler_label=handler,
            options=IngestOptions(**options),
        )

    async def wait(self, name: str, limit: float = 60.0, passes: int = 1) -> Job:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            job = await self.store.get(name)
            if job.state not in ACTIVE or (
                job.state is JobState.WAITING and job.passes >= passes and job.finished_at
            ):
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {name} did not finish: {await self.store.get(name)}")

    async def run(self, job: Job, limit: float = 60.0) -> Job:
        await self.store.create(job)
        return await self.wait(job.name, limit)

    async def rerun(self, job: Job, limit: float = 60.0, **append: Any) -> Job:
        """The same job (name, root, target, handler) once more, with extra options."""
        again = job.model_copy(deep=True)
        if append:
            again.options.append_json = {**(again.options.append_json or {}), **append}
        return await self.run(again, limit)

    def configured(self, root: Path, **cfg: Any) -> Job:
        """A job with the configurable handler; ``cfg`` lands in meta["append_json"]
        (``timeout`` too: the handler's ``timeout()`` returns it; job options besides)."""
        fields = set(IngestOptions.model_fields) - {"timeout"}
        extra = {k: cfg.pop(k) for k in list(cfg) if k in fields}
        return self.job(root, "configurable", append_json=cfg, **extra)

    def give(self, *paths: Path) -> None:
        """Make trees the test made as root the owner's (a handler writes in them)."""
        for top in paths:
            for p in [top, *top.rglob("*")]:
                os.lchown(p, self.owner.pw_uid, self.owner.pw_gid)

    def env(self) -> dict[str, str]:
        """What a ``python -m services.ingest`` process of this harness needs besides iRODS:
        the signing keys and the allowed roots."""
        return {
            **signing_key_set().env(Role.INGEST),
            "STAGER_INGEST__ALLOWED_ROOTS": json.dumps(self.allowed_roots),
        }


@pytest.fixture
def owner(unix_user: Callable[..., pwd.struct_passwd]) -> pwd.struct_passwd:
    """The Unix user the test's ingest jobs belong to (and run as)."""
    return unix_user()


@pytest.fixture
def tmp_path(owner: pwd.struct_passwd) -> Iterator[Path]:
    """A fresh directory ``owner`` owns (so it can read the trees and write hook logs)."""
    path = Path(tempfile.mkdtemp(prefix="stager-ingest-test-"))
    os.chown(path, owner.pw_uid, owner.pw_gid)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def rods_account(server: Any) -> IrodsAccount:
    """rods on test server ``server`` (a ServerProcess), zone tempZone."""
    return IrodsAccount(
        host=server.host,
        port=server.port,
        user="rods",
        zone="tempZone",
        password=SecretStr(server.admin_password),
    )


@pytest.fixture
async def ingest(
    irods_server: Any, unique_prefix: str, tmp_path: Path, owner: pwd.struct_passwd
) -> AsyncIterator[IngestHarness]:
    store = await JobStore.open(f"sqlite+aiosqlite:///{tmp_path}/ingest.sqlite")
    names = Names(unique_prefix)
    harness = IngestHarness(store, names, rods_account(irods_server), tmp_path, owner)
    try:
        yield harness
    finally:
        await harness.stop()
        await store.close()


def append(path: Path | bytes | str, data: bytes, later: float | None = 10.0) -> None:
    """Append to (or create) a file and move its mtime ``later`` seconds ahead."""
    with open(path, "ab") as f:
        f.write(data)
    if later is not None:
        t = time.time() + later
        os.utime(path, (t, t))


def mtime(path: Path) -> int:
    return int(os.path.getmtime(path))


def make_tree(root: Path, nfiles: int = 10, depth: int = 0) -> Path:
    """The seed's test tree: files ``0..n-1`` holding ``i`` times "i", ``depth`` levels down."""
    d = root.joinpath(*[f"a{i}" for i in range(depth)])
    d.mkdir(parents=True, exist_ok=True)
    for i in range(nfiles):
        (d / str(i)).write_text("i" * i)
    return d


# --- S3 (tests/ingest/test_s3*.py) ---------------------------------------------------------

#: moto's S3 server on a free loopback port; prints the port, runs until stdin closes.
_S3_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


class S3Server:
    """A real S3-compatible server (moto's server mode) on loopback, with authentication:
    requests must be signed with ``access_key``/``secret_key`` (an IAM user allowed s3:*).
    ``client`` is a minio client with those keys, for tests to make buckets and objects."""

    def __init__(self, port: int) -> None:
        self.endpoint = f"127.0.0.1:{port}"
        self.url = f"http://{self.endpoint}"
        self.access_key = ""
        self.secret_key = ""
        self.client: Any = None

    def enable_auth(self) -> None:
        import boto3
        import requests

        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="ingest")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="ingest", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="ingest")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        # from now on every request must be signed by a known key and allowed
        requests.post(f"{self.url}/moto-api/reset-auth", data=b"0", timeout=30).raise_for_status()
        from minio import Minio

        self.client = Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region="us-east-1",
        )

    def keypair(self, directory: Path, owner: pwd.struct_passwd, mode: int = 0o600) -> Path:
        """A key-pair file in the seed's format, the owner's, with ``mode``."""
        path = directory / f"s3-keypair-{uuid.uuid4().hex[:8]}"
        path.write_text(f"{self.access_key}\n{self.secret_key}\n")
        os.chown(path, owner.pw_uid, owner.pw_gid)
        os.chmod(path, mode)
        return path

    def bucket(self, prefix: str) -> str:
        """A new empty bucket with a unique name."""
        name = f"{prefix.lower().replace('_', '-')[:30]}-{uuid.uuid4().hex[:8]}"
        self.client.make_bucket(name)
        return name

    def drop(self, bucket: str) -> None:
        for obj in self.client.list_objects(bucket, recursive=True):
            self.client.remove_object(bucket, obj.object_name)
        self.client.remove_bucket(bucket)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server in its own process on a free loopback port (session-scoped)."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", _S3_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the S3 test server did not start (exit {proc.poll()})")
        server = S3Server(int(line))
        server.enable_auth()
        yield server
    finally:
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_bucket(s3_server: S3Server, unique_prefix: str) -> Iterator[str]:
    """A fresh bucket on ``s3_server``, emptied and removed after the test."""
    name = s3_server.bucket(unique_prefix)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            s3_server.drop(name)
