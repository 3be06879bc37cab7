"""End to end through REST: API + a real worker (fork server, setuid, isync) + the iRODS test
server, on real RabbitMQ.  Upload, download, listing as the user, cancel."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.worker.app import Worker
from services.worker.settings import WorkerSettings
from shared.messaging.signing import Role
from shared.messaging.topology import delete_topology
from tests.api.conftest import ALICE, BOB, DR_PASS, Api, job
from tests.conftest import AMQP_URL, signing_key_set

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the worker runs transfers as the user"),
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def alice_dir(unix_user: Callable[..., pwd.struct_passwd]) -> Iterator[Path]:
    """A directory owned by alice under a traversable temp dir."""
    pw = unix_user(ALICE)
    base = Path(tempfile.mkdtemp(prefix="stager-api-e2e-"))
    base.chmod(0o711)
    home = base / "alice"
    home.mkdir()
    (home / "src").mkdir()
    (home / "src" / "a.txt").write_text("alpha\n")
    (home / "src" / "sub").mkdir()
    (home / "src" / "sub" / "b.bin").write_bytes(os.urandom(70_000))
    for p in [home, *home.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid)
    home.chmod(0o700)
    yield home
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def start_stack(
    make_api: Any, keypair: tuple[bytes, bytes], irods_server: Any, tmp_path: Path
) -> AsyncIterator[Any]:
    """Factory: ``await start_stack(api_kw={make_api kwargs}, **worker_settings) ->
    (Api, Worker)`` on one prefix."""
    from shared.settings import IrodsSettings

    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "k1.pem").write_bytes(keypair[0])
    irods = IrodsSettings(
        host=irods_server.host,
        port=irods_server.port,
        zone=irods_server.zone,
        user=irods_server.admin_user,
        password=irods_server.admin_password,
    )
    workers: list[tuple[Api, Worker]] = []

    async def start(api_kw: dict[str, Any] | None = None, **over: Any) -> tuple[Api, Worker]:
        api = await make_api(irods=irods, **(api_kw or {}))
        settings: dict[str, Any] = dict(
            broker={"url": AMQP_URL, "prefix": api.names.prefix},
            irods=irods,
            private_keys_dir=keys,
            state_dir=tmp_path / "state",
            http_port=0,
            concurrency=2,
            progress_interval=0.2,
            cancel_grace=0.5,
            retry={"max_attempts": 3, "base_delay": 0.3, "factor": 2, "max_delay": 2},
            signing=signing_key_set().settings(Role.WORKER),
        )
        settings.update(over)
        worker = Worker(WorkerSettings(**settings))
        workers.append((api, worker))
        await worker.start()
        return api, worker

    yield start
    for api, w in workers:
        await w.close()
        channel = await api.amqp.channel()
        await delete_topology(channel, w.topology)  # its retry queues too
        await channel.close()


@pytest.fixture
async def stack(start_stack: Any) -> tuple[Api, Worker]:
    """API and a worker running real transfers."""
    return await start_stack()


async def until(api: Api, task_id: str, states: set[str], limit: float = 30.0) -> dict:
    body: dict = {}
    async with asyncio.timeout(limit):
        while True:
            r = await api.client.get(f"/v1/job/{task_id}", headers=api.bearer())
            body = await r.json()
            if body["status"]["status"] in states:
                return body
            await asyncio.sleep(0.1)


async def test_upload_download_list(
    stack: tuple[Api, Worker], alice_dir: Path, irods_user: Any, irods_server: Any
) -> None:
    api, _worker = stack
    name, session = irods_user(password=DR_PASS)
    coll = f"/{irods_server.zone}/home/{name}/up"
    try:
        await _upload_download(api, alice_dir, name, session, coll)
    finally:  # the user is removed after the test: its home must be empty
        if session.collections.exists(coll):
            session.collections.remove(coll, recurse=True, force=True)


async def _upload_download(api: Api, alice_dir: Path, name: str, session: Any, coll: str) -> None:
    # rsync semantics: a trailing slash copies the directory's contents
    up = job(drUser=name, srcURL=f"{alice_dir / 'src'}/", dstURL=f"irods:{coll}")
    r = await api.client.post("/v1/job", json=up, headers=api.bearer())
    assert r.status == 200, await r.text()
    done = await until(api, (await r.json())["id"], {"completed", "archived"})
    assert done["status"]["status"] == "completed", done
    assert done["status"]["progress"]["total"] == 2
    with session.data_objects.open(f"{coll}/a.txt", "r") as fh:
        assert fh.read() == b"alpha\n"

    down = job(drUser=name, srcURL=f"irods:{coll}/", dstURL=str(alice_dir / "down"))
    r = await api.client.post("/v1/job", json=down, headers=api.bearer())
    done = await until(api, (await r.json())["id"], {"completed", "archived"})
    assert done["status"]["status"] == "completed", done
    got = alice_dir / "down" / "sub" / "b.bin"
    assert got.read_bytes() == (alice_dir / "src" / "sub" / "b.bin").read_bytes()
    assert got.stat().st_uid == pwd.getpwnam(ALICE).pw_uid
    assert DR_PASS not in api.logs.getvalue()


async def test_listing_and_cancel_through_worker(
    stack: tuple[Api, Worker], alice_dir: Path
) -> None:
    api, _worker = stack
    src = str(alice_dir / "src")
    r = await api.client.get("/v1/dir", params={"path": src}, headers=api.bearer())
    assert r.status == 200, await r.text()
    entries = {e["name"]: e for e in (await r.json())["entries"]}
    mtime = int((alice_dir / "src" / "a.txt").stat().st_mtime)
    assert entries["a.txt"] == {"name": "a.txt", "type": "regular", "size": 6, "mtime": mtime}
    assert entries["sub"]["type"] == "dir"
    # bob may not look into alice's 0700 directory: the listing runs as bob
    bob = api.bearer(BOB)
    r = await api.client.get("/v1/dir", params={"path": src}, headers=bob)
    assert r.status == 403, await r.text()
    r = await api.client.get("/v1/dir", params={"path": src + "/nope"}, headers=api.bearer())
    assert r.status == 404


async def test_cancel_stops_the_running_transfer(start_stack: Any, alice_dir: Path) -> None:
    from tests.worker.jobs import KINDS

    api, worker = await start_stack(job_kinds=KINDS, transfer_kind="slow")
    body = job(srcURL=str(alice_dir / "src"), dstURL="irods:/tempZone/x")
    r = await api.client.post("/v1/job", json=body, headers=api.bearer())
    task_id = (await r.json())["id"]
    await until(api, task_id, {"active"})
    assert task_id in worker.cancels._running
    t0 = asyncio.get_running_loop().time()
    r = await api.client.delete(f"/v1/job/{task_id}", headers=api.bearer())
    assert r.status == 200 and (await r.json())["status"]["status"] == "cancelled"
    async with asyncio.timeout(2.0):
        while task_id in worker.cancels._running:  # noqa: ASYNC110 - the worker's state
            await asyncio.sleep(0.02)
    assert asyncio.get_running_loop().time() - t0 < 2.0
    await asyncio.sleep(0.3)  # the worker's own cancelled/retry event must not change it
    r = await api.client.get(f"/v1/job/{task_id}", headers=api.bearer())
    assert r.status == 200 and (await r.json())["status"]["status"] == "cancelled"
