"""Real transfers: the worker runs the isync core as the user against the iRODS test server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from services.worker.forkserver.client import ForkServer
from services.worker.settings import TransferDefaults
from shared.messaging import broker
from shared.messaging.signing import Role
from shared.messaging.topology import declare_topology
from tests.conftest import AMQP_URL, signing_key_set
from tests.worker.conftest import (
    EventLog,
    irods_worker,
    signed_task,
    task_message,
    worker_settings,
)
from tests.worker.test_pipeline import _no_user_processes

MiB = 1024 * 1024
ROOT = str(Path(__file__).resolve().parents[2])


def _tree(root: Path, uid: int, gid: int) -> dict[str, bytes]:
    files = {"a.txt": b"hello stager\n" * 100, "sub/b.bin": os.urandom(300_000)}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid)
    return files


def _read_object(session, path: str) -> bytes:
    with session.data_objects.open(path, "r") as fh:
        return fh.read()


async def test_upload_then_download_as_the_user(
    start_worker, unix_user, open_dir, irods_server, irods_session, unique_name
) -> None:
    user = unix_user()
    src = open_dir / "up"
    files = _tree(src, user.pw_uid, user.pw_gid)
    w = await start_worker(**irods_worker(irods_server))
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    up = task_message(user.pw_name, src=f"{src}/", dst=f"irods:{coll}")
    await w.submit(up)
    done = await w.events.until(up.task_id, {"completed", "retry", "archived"}, limit=60)
    assert done.state == "completed", done.error
    assert done.progress is not None and done.progress.bytes_done == sum(map(len, files.values()))
    for rel, data in files.items():
        assert _read_object(irods_session, f"{coll}/{rel}") == data

    down_dir = open_dir / "down"
    down_dir.mkdir()
    os.chown(down_dir, user.pw_uid, user.pw_gid)
    down = task_message(user.pw_name, src=f"irods:{coll}/", dst=str(down_dir))
    await w.submit(down)
    done = await w.events.until(down.task_id, {"completed", "retry", "archived"}, limit=60)
    assert done.state == "completed", done.error
    for rel, data in files.items():
        path = down_dir / rel
        assert path.read_bytes() == data
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)  # written as the user
    assert (down_dir / "sub").stat().st_uid == user.pw_uid
    # the download ran in the upload's child, on its logged-in iRODS session
    assert w.worker.runner.pool.reused == 1 and w.worker.runner.pool.spawned == 1


async def test_file_the_user_cannot_read_is_reported(
    start_worker, unix_user, open_dir, irods_server, unique_name
) -> None:
    user = unix_user()
    src = open_dir / "private.dat"
    src.write_bytes(b"root only")
    src.chmod(0o600)
    w = await start_worker(**irods_worker(irods_server))
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    msg = task_message(user.pw_name, src=str(src), dst=f"irods:{coll}/private.dat")
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"completed", "retry", "archived"}, limit=60)
    assert final.state == "archived" and final.attempt == 1  # not retried
    assert "permission" in (final.error or "").lower()
    assert "private.dat" in (final.error or "")


async def _start_worker_process(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    fh = log.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.worker",
        env=env,
        stdout=fh,
        stderr=fh,
        cwd=ROOT,
    )
    fh.close()
    return proc


async def test_worker_sigkilled_mid_transfer_task_is_redelivered_and_completes(
    amqp, start_worker, unix_user, open_dir, irods_server, irods_session, unique_name, tmp_path
) -> None:
    user = unix_user()
    data = os.urandom(6 * MiB)
    src = open_dir / "big.bin"
    src.write_bytes(data)
    os.chown(src, user.pw_uid, user.pw_gid)
    overrides: dict[str, Any] = {
        "transfer": {"bwlimit": 2 * MiB, "large_file_threshold": MiB, "streams": 2},
        "retry": {"max_attempts": 3, "base_delay": 0.3, "factor": 2, "max_delay": 5},
    }
    settings = worker_settings(amqp.names, open_dir / "state", **overrides)
    from services.worker.app import Worker

    topology = Worker(settings).topology
    amqp.topologies.append(topology)
    await declare_topology(amqp.channel, topology)
    events = EventLog()
    await (await amqp.channel.get_queue(amqp.names.events_queue)).consume(events.on_message)

    env = dict(os.environ)
    env.update(
        **signing_key_set().env(Role.WORKER),
        STAGER_BROKER__URL=AMQP_URL,
        STAGER_BROKER__PREFIX=amqp.names.prefix,
        STAGER_IRODS__HOST=irods_server.host,
        STAGER_IRODS__PORT=str(irods_server.port),
        STAGER_IRODS__ZONE=irods_server.zone,
        STAGER_SERVICE_CREDENTIALS=json.dumps(
            {"streamer": {"user": irods_server.admin_user, "password": irods_server.admin_password}}
        ),
        STAGER_STATE_DIR=str(open_dir / "state"),
        STAGER_HTTP_PORT="0",
        STAGER_PROGRESS_INTERVAL="0.2",
        STAGER_TRANSFER__BWLIMIT=str(2 * MiB),
        STAGER_TRANSFER__LARGE_FILE_THRESHOLD=str(MiB),
        STAGER_TRANSFER__STREAMS="2",
        STAGER_RETRY__BASE_DELAY="0.3",
        STAGER_RETRY__FACTOR="2",
        STAGER_RETRY__MAX_DELAY="5",
        STAGER_RETRY__MAX_ATTEMPTS="3",
    )
    proc = await _start_worker_process(env, tmp_path / "worker1.log")
    try:
        coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
        msg = task_message(user.pw_name, src=str(src), dst=f"irods:{coll}/big.bin")
        exchange = await amqp.channel.get_exchange(amqp.names.tasks_exchange)
        await broker.publish(
            exchange,
            signed_task(msg),
            "normal",
        )

        async def halfway() -> int:
            while True:
                for e in events.events:
                    if e.task_id == msg.task_id and e.progress and e.progress.bytes_done >= MiB:
                        return e.progress.bytes_done
                await asyncio.sleep(0.05)

        done_before = await asyncio.wait_for(halfway(), 60)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert done_before < len(data)
    assert await _no_user_processes(user.pw_uid)  # fork server and child died with the worker

    second = await start_worker(**irods_worker(irods_server), **overrides)
    # both event logs consume the one events queue: look at their union
    async with asyncio.timeout(90):
        while not (  # noqa: ASYNC110 - filled by the consumers
            final_events := [
                e
                for e in events.events + second.events.events
                if e.task_id == msg.task_id and e.state in ("completed", "archived")
            ]
        ):
            await asyncio.sleep(0.05)
    final = final_events[0]
    assert final.state == "completed", final.error
    assert final.attempt == 1  # redelivered, not retried
    got = _read_object(irods_session, f"{coll}/big.bin")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    await asyncio.sleep(0.3)  # a duplicate would have arrived by now
    completed = [
        e
        for e in events.events + second.events.events
        if e.task_id == msg.task_id and e.state == "completed"
    ]
    assert len(completed) == 1
    assert len(list(irods_session.collections.get(coll).data_objects)) == 1
    # resumed, not started over: the second worker sent only what was missing
    metrics = second.worker.metrics.render().decode()
    sent = _metric(metrics, 'stager_transfer_bytes_total{direction="upload"}')
    print(f"before SIGKILL ≥ {done_before} bytes; after redelivery sent {sent:.0f} of {len(data)}")
    assert 0 < sent <= len(data) - MiB


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


async def test_cancel_stops_a_real_transfer_within_two_seconds(
    start_worker, unix_user, open_dir, irods_server, unique_name
) -> None:
    user = unix_user()
    src = open_dir / "big.bin"
    src.write_bytes(os.urandom(4 * MiB))
    os.chown(src, user.pw_uid, user.pw_gid)
    w = await start_worker(
        **irods_worker(irods_server),
        transfer={"bwlimit": MiB, "large_file_threshold": MiB, "streams": 2},
    )
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    msg = task_message(user.pw_name, src=str(src), dst=f"irods:{coll}/big.bin")
    await w.submit(msg)
    async with asyncio.timeout(30):
        while not any(  # noqa: ASYNC110 - filled by the consumer
            e.task_id == msg.task_id and e.progress and e.progress.bytes_done > 0
            for e in w.events.events
        ):
            await asyncio.sleep(0.05)
    t0 = asyncio.get_running_loop().time()
    await w.cancel(msg.task_id)
    final = await w.events.until(msg.task_id, {"cancelled", "completed", "archived", "retry"})
    elapsed = asyncio.get_running_loop().time() - t0
    print(f"real transfer: cancel → cancelled in {elapsed * 1000:.0f} ms")
    assert final.state == "cancelled" and elapsed < 2.0
    assert await _no_user_processes(user.pw_uid)


async def test_a_transfer_child_imports_nothing(
    forkserver: ForkServer, unix_user, open_dir, irods_server, unique_name
) -> None:
    """The user may be unable to read the interpreter's files: the preload covers isync."""
    user = unix_user()
    src = open_dir / "small.txt"
    src.write_bytes(b"preloaded\n")
    os.chown(src, user.pw_uid, user.pw_gid)
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    account = {"host": irods_server.host, "port": irods_server.port, "zone": irods_server.zone}
    params = {
        "job": "transfer",
        "params": {
            "src": str(src),
            "dst": f"irods:{coll}/small.txt",
            "account": {**account, "user": irods_server.admin_user},
            "options": TransferDefaults().model_dump(mode="json"),
        },
    }
    child = await forkserver.spawn(
        "new_imports", user.pw_name, params, secret=irods_server.admin_password
    )
    lines = [line async for line in child.lines()]
    assert await child.wait() == 0, lines
    assert lines[-1]["imported"] == []


async def test_a_download_is_written_with_the_users_umask_not_roots(
    start_worker, unix_user, open_dir, irods_server, irods_session, unique_name
) -> None:
    user = unix_user()
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    irods_session.collections.create(coll)
    with irods_session.data_objects.open(f"{coll}/report.txt", "w") as fh:
        fh.write(b"for the user's eyes\n")
    down = open_dir / "down"
    down.mkdir()
    os.chown(down, user.pw_uid, user.pw_gid)
    previous = os.umask(0o022)  # the worker (root) runs with 022: world-readable files
    try:
        w = await start_worker(**irods_worker(irods_server), children={"umask": "077"})
        msg = task_message(user.pw_name, src=f"irods:{coll}/", dst=str(down))
        await w.submit(msg)
        done = await w.events.until(msg.task_id, {"completed", "retry", "archived"}, limit=60)
    finally:
        os.umask(previous)
    assert done.state == "completed", done.error
    st = (down / "report.txt").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (user.pw_uid, 0o600)  # not 0644
