"""Forged, altered, stale and replayed messages, published with a connection that CAN
publish anything (the test-admin user, standing in for a leaked broker password), make a
real worker (on its own least-privilege broker user) run, cancel and list nothing; each is
counted in ``stager_messages_rejected_total``. The legitimate message right after works.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pydantic import SecretStr

from services.worker.app import Worker
from services.worker.credentials import RepoCredential
from shared.messaging import broker
from shared.messaging.messages import ControlMessage, DirListReply, DirListRequest, TaskMessage
from shared.messaging.signing import Role, Signer, generate, load_private
from shared.messaging.topology import (
    TYPE_CONTROL,
    TYPE_DIRLIST,
    TYPE_TASK,
    Names,
    Topology,
    delete_topology,
)
from tests.conftest import BrokerVhost, signing_key_set
from tests.worker.conftest import API_SIGNER, EventLog, task_message, worker_settings

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: setuid, rabbitmqctl")

SERVICE = {"streamer": RepoCredential(user="svc", password=SecretStr("svc-pw"))}
STRANGER = Signer(Role.API, load_private(generate()[0]))  # a key nobody trusts


@dataclass
class Rig:
    """A worker on its role's broker user, and the attacker's (admin) channel."""

    worker: Worker
    channel: aio_pika.abc.AbstractChannel
    names: Names
    events: EventLog

    def rejected(self, type_: str, reason: str) -> float:
        value = self.worker.metrics.registry.get_sample_value(
            "stager_messages_rejected_total", {"type": type_, "reason": reason}
        )
        return value or 0.0

    async def until_rejected(self, type_: str, counts: dict[str, int]) -> None:
        """Until each reason has been counted that often (bounded: a failure, not a pass)."""
        async with asyncio.timeout(20):
            while any(self.rejected(type_, r) < n for r, n in counts.items()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert {r: self.rejected(type_, r) for r in counts} == counts

    async def publish_task(self, message: aio_pika.Message) -> None:
        exchange = await self.channel.get_exchange(self.names.tasks_exchange)
        await broker.publish(exchange, message, "normal")

    async def publish_control(self, message: aio_pika.Message) -> None:
        exchange = await self.channel.get_exchange(self.names.control_exchange)
        await broker.publish(exchange, message, "")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="stager-forged-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def start_rig(broker_vhost: BrokerVhost, open_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[Worker, Any, Names]] = []

    async def start(**overrides: Any) -> Rig:
        names = Names(broker_vhost.prefix())
        settings = worker_settings(
            names,
            open_dir / "state",
            amqp_url=broker_vhost.url("worker"),
            service_credentials=SERVICE,
            **overrides,
        )
        worker = Worker(settings)
        admin = await broker.connect(broker_vhost.url("admin"), name="test-attacker")
        made.append((worker, admin, names))
        await worker.start()
        channel = await broker.open_channel(admin)
        events = EventLog()
        await (await channel.get_queue(names.events_queue)).consume(events.on_message)
        return Rig(worker, channel, names, events)

    yield start
    for worker, admin, names in made:
        await worker.close()
        topo = Topology(names=names, retry_delays_ms=worker.topology.retry_delays_ms)
        await delete_topology(await admin.channel(), topo)
        await admin.close()


def task(msg: TaskMessage, signer: Signer | None) -> aio_pika.Message:
    body = msg.model_dump_json().encode()
    return broker.make_message(body, message_id=msg.task_id, type_=TYPE_TASK, signer=signer)


async def test_forged_tasks_run_nothing(
    start_rig: Any, unix_user: Callable[..., pwd.struct_passwd]
) -> None:
    rig: Rig = await start_rig(transfer_kind="succeed")
    victim = unix_user()
    forged = [task_message(victim.pw_name) for _ in range(5)]
    keys = signing_key_set()
    await rig.publish_task(task(forged[0], None))  # unsigned
    await rig.publish_task(task(forged[1], STRANGER))  # signed by an untrusted key
    await rig.publish_task(task(forged[2], keys.signer(Role.WORKER)))  # a worker may not
    await rig.publish_task(task(forged[3], keys.signer(Role.INGEST)))  # nor may ingest
    # a real API-signed task, its target changed after signing
    genuine = task(forged[4], API_SIGNER)
    altered = forged[4].model_copy(
        update={"task": forged[4].task.model_copy(update={"srcURL": "/root"})}
    )
    await rig.publish_task(
        broker.make_message(
            altered.model_dump_json().encode(),
            message_id=altered.task_id,
            type_=TYPE_TASK,
            headers=dict(genuine.headers),
        )
    )
    counts = {"unsigned": 1, "unknown_key": 1, "role": 2, "bad_signature": 1}
    await rig.until_rejected(TYPE_TASK, counts)

    real = task_message(victim.pw_name)
    await rig.publish_task(task(real, API_SIGNER))
    final = await rig.events.until(real.task_id, {"completed", "retry", "archived"})
    assert final.state == "completed", final
    assert rig.events.events and all(e.task_id == real.task_id for e in rig.events.events)
    metrics = rig.worker.metrics.render().decode()
    assert 'stager_messages_rejected_total{reason="role",type="stager.task"} 2.0' in metrics


async def test_a_replayed_task_is_not_run_again_but_a_retry_is(
    start_rig: Any, unix_user: Callable[..., pwd.struct_passwd]
) -> None:
    rig: Rig = await start_rig(transfer_kind="succeed", concurrency=1)
    user = unix_user()
    msg = task_message(user.pw_name)
    signed = task(msg, API_SIGNER)
    await rig.publish_task(signed)
    await rig.events.until(msg.task_id, {"completed"})
    await rig.publish_task(task(msg, API_SIGNER))  # the same attempt, re-signed or tapped
    await rig.until_rejected(TYPE_TASK, {"replay": 1})
    assert rig.events.states(msg.task_id) == [("active", 1), ("completed", 1)]

    # the legitimate retry path: the API's signature carried to attempt 2 and 3
    failing: Rig = await start_rig(transfer_kind="fail")
    again = task_message(user.pw_name)
    await failing.publish_task(task(again, API_SIGNER))
    await failing.events.until(again.task_id, {"archived"})
    attempts = [a for state, a in failing.events.states(again.task_id) if state == "active"]
    assert attempts == [1, 2, 3]


def control(task_id: str, signer: Signer | None, *, age: float = 0.0) -> aio_pika.Message:
    body = ControlMessage(task_id=task_id).model_dump_json().encode()
    mid = uuid.uuid4().hex
    headers = (
        signer.headers(body, type_=TYPE_CONTROL, message_id=mid, now=time.time() - age)
        if signer
        else {}
    )
    return broker.make_message(body, message_id=mid, type_=TYPE_CONTROL, headers=headers)


async def test_forged_stale_and_replayed_cancels_cancel_nothing(
    start_rig: Any, unix_user: Callable[..., pwd.struct_passwd]
) -> None:
    rig: Rig = await start_rig(transfer_kind="slow")
    user = unix_user()
    msg = task_message(user.pw_name)
    await rig.publish_task(task(msg, API_SIGNER))
    await rig.events.until(msg.task_id, {"active"})
    await rig.publish_control(control(msg.task_id, None))
    await rig.publish_control(control(msg.task_id, signing_key_set().signer(Role.WORKER)))
    await rig.publish_control(control(msg.task_id, STRANGER))
    await rig.publish_control(control(msg.task_id, API_SIGNER, age=3600))  # stale
    counts = {"unsigned": 1, "role": 1, "unknown_key": 1, "stale": 1}
    await rig.until_rejected(TYPE_CONTROL, counts)
    assert msg.task_id in rig.worker.runner.running  # type: ignore[union-attr]
    assert all(e.state == "active" for e in rig.events.events)

    real = control(msg.task_id, API_SIGNER)
    await rig.publish_control(real)
    final = await rig.events.until(msg.task_id, {"cancelled", "completed", "archived"})
    assert final.state == "cancelled"
    await rig.publish_control(real)  # replayed as it was tapped
    await rig.until_rejected(TYPE_CONTROL, {"replay": 1})


async def test_forged_stale_and_replayed_listings_list_nothing(
    start_rig: Any, unix_user: Callable[..., pwd.struct_passwd], open_dir: Path
) -> None:
    rig: Rig = await start_rig()
    user = unix_user()
    secret = open_dir / "secret"
    secret.mkdir()
    (secret / "diary.txt").write_text("mine\n")
    os.chown(secret, user.pw_uid, user.pw_gid)
    secret.chmod(0o700)
    replies: list[DirListReply] = []
    got_one = asyncio.Event()
    reply_q = await rig.channel.declare_queue(exclusive=True, auto_delete=True)

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        replies.append(DirListReply.model_validate_json(message.body))
        got_one.set()

    await reply_q.consume(on_reply, no_ack=True)
    body = DirListRequest(user=user.pw_name, path=str(secret)).model_dump_json().encode()

    def request(signer: Signer | None, *, age: float = 0.0) -> aio_pika.Message:
        corr = uuid.uuid4().hex
        headers = {}
        if signer is not None:
            headers = signer.headers(
                body,
                type_=TYPE_DIRLIST,
                message_id=corr,
                correlation_id=corr,
                reply_to=reply_q.name,
                now=time.time() - age,
            )
        return broker.make_message(
            body,
            message_id=corr,
            type_=TYPE_DIRLIST,
            correlation_id=corr,
            reply_to=reply_q.name,
            headers=headers,
        )

    async def send(message: aio_pika.Message) -> None:
        await broker.publish(rig.channel.default_exchange, message, rig.names.dir_rpc_queue)

    await send(request(None))
    await send(request(signing_key_set().signer(Role.WORKER)))
    await send(request(API_SIGNER, age=3600))
    await rig.until_rejected(TYPE_DIRLIST, {"unsigned": 1, "role": 1, "stale": 1})
    assert replies == []

    real = request(API_SIGNER)
    await send(real)
    await asyncio.wait_for(got_one.wait(), 20)
    assert replies[0].ok and [e.name for e in replies[0].entries] == ["diary.txt"]
    await send(real)  # replayed: the listing is not done (nor sent) again
    await rig.until_rejected(TYPE_DIRLIST, {"replay": 1})
    assert len(replies) == 1
