"""A sealed ``drPass`` opens only for the job it was sealed for, end to end.

Two real Unix users, the real API (OIDC tokens), a real worker (fork server, setuid, isync),
real RabbitMQ and the iRODS test server. Alice seals her repository password for her own
job. Bob copies that envelope into his job: the API refuses it (400); the same job
hand-signed as the API (as if it got past the API) is refused by the worker before it
opens the envelope; nothing of Alice's data reaches Bob. Alice's job with her envelope
downloads her data.
"""

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
from shared.crypto import Sealer
from shared.messaging import broker
from shared.messaging.messages import (
    PrincipalKind,
    Submitter,
    TaskMessage,
    TaskSpec,
    credential_binding,
)
from shared.messaging.signing import Role
from shared.messaging.topology import delete_topology
from shared.settings import IrodsSettings
from tests.api.conftest import (  # noqa: F401 - fixtures of the API tests, used here too
    ALICE,
    BOB,
    Api,
    job,
    keypair,
    make_api,
    oidc,
    oidc_key,
)
from tests.conftest import AMQP_URL, signing_key_set
from tests.worker.conftest import EventLog, signed_task

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the worker runs transfers as the user"),
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

ALICE_PW = "Alice-repo-Pa55-" + os.urandom(6).hex()


@pytest.fixture
def homes(unix_user: Callable[..., pwd.struct_passwd]) -> Iterator[dict[str, Path]]:
    """A private (0700) directory for each of alice and bob, under a traversable temp dir."""
    base = Path(tempfile.mkdtemp(prefix="stager-bound-"))
    base.chmod(0o711)
    out = {}
    for name in (ALICE, BOB):
        pw = unix_user(name)
        home = base / name
        home.mkdir(mode=0o700)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        out[name] = home
    yield out
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def stack(
    make_api: Any,  # noqa: F811 - the imported fixture
    keypair: tuple[bytes, bytes],  # noqa: F811 - the imported fixture
    irods_server: Any,
    tmp_path: Path,
) -> AsyncIterator[tuple[Api, Worker, EventLog]]:
    """The API and a worker on one prefix, and a log of every task event the worker sent."""
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
    api = await make_api(irods=irods)
    settings: dict[str, Any] = {
        "broker": {"url": AMQP_URL, "prefix": api.names.prefix},
        "irods": irods,
        "private_keys_dir": keys,
        "state_dir": tmp_path / "state",
        "http_port": 0,
        "concurrency": 2,
        "retry": {"max_attempts": 2, "base_delay": 0.3, "factor": 2, "max_delay": 1},
        "signing": signing_key_set().settings(Role.WORKER),
    }
    worker = Worker(WorkerSettings(**settings))
    await worker.start()
    channel = await api.amqp.channel()
    # a copy of every event (the API consumes the events queue itself)
    events = await channel.get_exchange(api.names.events_exchange)
    tap = await channel.declare_queue(exclusive=True)
    await tap.bind(events, routing_key=api.names.events_queue)
    log = EventLog()
    await tap.consume(log.on_message)
    try:
        yield api, worker, log
    finally:
        await worker.close()
        await delete_topology(channel, worker.topology)
        await channel.close()


async def _until(api: Api, task_id: str, user: str, limit: float = 60.0) -> dict[str, Any]:
    async with asyncio.timeout(limit):
        while True:
            r = await api.client.get(f"/v1/job/{task_id}", headers=api.bearer(user))
            body: dict[str, Any] = await r.json()
            if body["status"]["status"] in ("completed", "archived"):
                return body
            await asyncio.sleep(0.1)


async def test_a_copied_envelope_is_refused_by_api_and_worker_and_the_owners_job_works(
    stack: tuple[Api, Worker, EventLog],
    homes: dict[str, Path],
    irods_user: Any,
    irods_server: Any,
    keypair: tuple[bytes, bytes],  # noqa: F811 - the imported fixture
) -> None:
    api, _worker, events = stack
    repo_user, session = irods_user(password=ALICE_PW)
    coll = f"/{irods_server.zone}/home/{repo_user}/private"
    session.collections.create(coll)
    with session.data_objects.open(f"{coll}/results.csv", "w") as fh:
        fh.write(b"alice's unpublished results\n")
    # alice seals her password for her own job (as a client with the public key does)
    envelope = Sealer.from_pem([keypair[1]]).seal(
        ALICE_PW,
        credential_binding(ALICE, repo_user, Submitter(kind=PrincipalKind.USER, name=ALICE)),
    )
    loot = homes[BOB] / "loot"
    try:
        # bob copies it into his own job, under his own stagerUser: the API refuses it
        theft = job(
            stagerUser=BOB,
            drUser=repo_user,
            drPass=envelope,
            srcURL=f"irods:{coll}/",
            dstURL=str(loot),
        )
        r = await api.client.post("/v1/job", json=theft, headers=api.bearer(BOB))
        assert r.status == 400, await r.text()
        problem = await r.json()
        assert "sealed for another job" in str(problem), problem
        assert "stagerUser" in str(problem)

        # the same job as a task the API signed (as if it had got past the API): the worker
        # checks the binding against the signed task before any private-key operation
        spec = TaskSpec(
            title="not mine",
            stagerUser=BOB,
            drUser=repo_user,
            drPass=envelope,
            srcURL=f"irods:{coll}/",
            dstURL=str(loot),
        )
        forged = TaskMessage(
            task_id=os.urandom(16).hex(),
            submitter=Submitter(kind=PrincipalKind.USER, name=BOB),
            task=spec,
        )
        exchange = await (await api.amqp.channel()).get_exchange(api.names.tasks_exchange)
        await broker.publish(exchange, signed_task(forged), "normal")
        final = await events.until(forged.task_id, {"archived", "completed", "retry"})
        assert final.state == "archived" and final.attempt == 1, final
        assert "drPass cannot be opened" in (final.error or "")
        assert "sealed for another job" in (final.error or "")
        assert not loot.exists()

        # alice's own job with her envelope: downloads her data, as her
        down = homes[ALICE] / "down"
        mine = job(
            stagerUser=ALICE,
            drUser=repo_user,
            drPass=envelope,
            srcURL=f"irods:{coll}/",
            dstURL=str(down),
        )
        r = await api.client.post("/v1/job", json=mine, headers=api.bearer(ALICE))
        assert r.status == 200, await r.text()
        done = await _until(api, (await r.json())["id"], ALICE)
        assert done["status"]["status"] == "completed", done
        got = down / "results.csv"
        assert got.read_bytes() == b"alice's unpublished results\n"
        assert got.stat().st_uid == pwd.getpwnam(ALICE).pw_uid
        assert not loot.exists()
        assert ALICE_PW not in api.logs.getvalue()
    finally:  # the repository user is removed after the test: its home must be empty
        if session.collections.exists(coll):
            session.collections.remove(coll, recurse=True, force=True)
