# ruff: noqa: F401, F811
"""Forged ingest tasks: a local unprivileged user with a broker login that may publish
anything (the test-admin user, standing in for a leaked broker password) publishes ingest
directory tasks for a running job, asking the worker to crawl ``/root`` into iRODS (issue 9).
The ingest worker, on its own least-privilege broker user, drops and counts each one; the
job's own, signed, tasks go on and the pass ends with exactly its own counters.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from services.ingest.store import JobState
from services.ingest.tasks import DirTask
from shared.messaging import broker
from shared.messaging.signing import Role, Signer, generate, load_private
from shared.messaging.topology import TYPE_INGEST, Names
from tests.conftest import BrokerVhost, signing_key_set

# the ingest fixtures, used here as arguments (hence F401/F811 off for this file)
from tests.ingest.conftest import (
    ingest,
    make_tree,
    owner,
    tmp_path,
)
from tests.security.test_broker_users import as_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: setuid, rabbitmqctl")

STRANGER = Signer(Role.INGEST, load_private(generate()[0]))  # an ingest key nobody trusts


def publish_as(user: pwd.struct_passwd, url: str, queue: str, messages: list[Any]) -> str:
    """Publish ``messages`` to ``queue`` from a process of ``user``; ``published N``."""

    async def attempt() -> str:
        conn = await aio_pika.connect(url, timeout=10)
        async with conn:
            channel = await conn.channel(publisher_confirms=True)
            for m in messages:
                await broker.publish(channel.default_exchange, m, queue)
        return f"published {len(messages)}"

    return as_user(user, lambda: asyncio.run(attempt()))


def forged(task: DirTask, signer: Signer | None) -> aio_pika.Message:
    body = task.model_dump_json().encode()
    return broker.make_message(body, message_id=task.task_id, type_=TYPE_INGEST, signer=signer)


def rejected(harness: Any, reason: str) -> float:
    registry = harness.workers[0].metrics.registry
    value = registry.get_sample_value(
        "stager_messages_rejected_total", {"type": TYPE_INGEST, "reason": reason}
    )
    return value or 0.0


async def test_forged_ingest_directory_tasks_are_dropped_and_counted(
    ingest: Any,
    irods_session: Any,
    tmp_path: Path,
    broker_vhost: BrokerVhost,
    unix_user: Any,
) -> None:
    attacker = unix_user()
    ingest.names = Names(broker_vhost.prefix())
    ingest.amqp_url = broker_vhost.url("ingest")
    ingest.admin_url = broker_vhost.url("admin")
    src = make_tree(tmp_path / "src", 3)
    await ingest.start(1)
    # a running pass (its files are slow), so a task of this job and generation is acted on
    job = ingest.configured(src, op="REGISTER_SYNC", sleep=1.0, files_per_task=1)
    await ingest.store.create(job)
    async with asyncio.timeout(30):
        while (running := await ingest.store.get(job.name)).state is not JobState.RUNNING:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    def crawl(n: int) -> DirTask:
        return DirTask(
            task_id=f"forged-{n}",
            job=job.name,
            generation=running.generation,
            path="/root",
            collection=f"{job.target}/stolen{n}",
        )

    keys = signing_key_set()
    messages = [
        forged(crawl(0), None),  # unsigned
        forged(crawl(1), STRANGER),  # signed by an untrusted key
        forged(crawl(2), keys.signer(Role.API)),  # the API never sends ingest tasks
        forged(crawl(3), keys.signer(Role.WORKER)),  # nor does a transfer worker
    ]
    genuine = forged(crawl(4), keys.signer(Role.INGEST))
    altered = crawl(4).model_copy(update={"collection": f"{job.target}/altered"})
    messages.append(  # an ingest-signed task, changed after signing
        broker.make_message(
            altered.model_dump_json().encode(),
            message_id=altered.task_id,
            type_=TYPE_INGEST,
            headers=dict(genuine.headers),
        )
    )
    url = broker_vhost.url("admin")
    sent = await asyncio.to_thread(
        publish_as, attacker, url, ingest.names.ingest_dirs_queue, messages
    )
    assert sent == "published 5", sent

    counts = {"unsigned": 1, "unknown_key": 1, "role": 2, "bad_signature": 1}
    async with asyncio.timeout(30):
        while any(rejected(ingest, r) < n for r, n in counts.items()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert {r: rejected(ingest, r) for r in counts} == counts

    done = await ingest.wait(job.name)
    assert done.state is JobState.COMPLETED, done.error
    c = done.counters
    assert (c["dirs"], c["files_created"], c["tasks_failed"]) == (1, 3, 0)
    for n in range(5):
        assert not irods_session.collections.exists(f"{job.target}/stolen{n}")
    assert not irods_session.collections.exists(f"{job.target}/altered")
