"""A validly API-signed task published again within its validity never runs again: not after
the worker restarts, not on another worker sharing ``state_dir``, not with a bumped
(unsigned) attempt header. The real retry path still runs every attempt.
"""

from __future__ import annotations

import asyncio
import pwd
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from services.worker.credentials import RepoCredential
from services.worker.runner import HDR_ATTEMPT
from shared.messaging import broker
from shared.messaging.messages import TaskMessage
from shared.messaging.topology import TYPE_TASK
from tests.worker.conftest import RunningWorker, signed_task, task_message

SERVICE = {"streamer": RepoCredential(user="svc", password=SecretStr("svc-pw"))}
KW: dict[str, Any] = {"transfer_kind": "succeed", "service_credentials": SERVICE}


def _rejected(w: RunningWorker) -> float:
    value = w.worker.metrics.registry.get_sample_value(
        "stager_messages_rejected_total", {"type": TYPE_TASK, "reason": "replay"}
    )
    return value or 0.0


async def _until_rejected(workers: list[RunningWorker], n: int) -> None:
    async with asyncio.timeout(20):
        while sum(_rejected(w) for w in workers) < n:  # noqa: ASYNC110 - counted by consumers
            await asyncio.sleep(0.02)


def _starts(workers: list[RunningWorker], task_id: str) -> int:
    return sum(
        1
        for w in workers
        for e in w.events.events
        if e.task_id == task_id and e.state == "active" and e.progress is None
    )


async def _completed(workers: list[RunningWorker], msg: TaskMessage) -> None:
    async with asyncio.timeout(30):
        while not any(  # noqa: ASYNC110 - filled by the consumers
            e.task_id == msg.task_id and e.state == "completed"
            for w in workers
            for e in w.events.events
        ):
            await asyncio.sleep(0.05)


async def test_a_replay_after_the_worker_restarted_is_dropped(
    start_worker, unix_user: Callable[..., pwd.struct_passwd]
) -> None:
    user = unix_user()
    first = await start_worker(**KW)
    msg = task_message(user.pw_name)
    await first.submit(msg)
    await _completed([first], msg)
    await first.worker.close()  # a restart: a new process, nothing in memory

    second = await start_worker(**KW)
    await second.submit(msg)  # the same API-signed task, published again
    await _until_rejected([second], 1)
    await asyncio.sleep(0.5)
    assert _starts([first, second], msg.task_id) == 1  # not run again
    # the legitimate path on the restarted worker
    fresh = task_message(user.pw_name)
    await second.submit(fresh)
    await _completed([first, second], fresh)


async def test_a_replay_on_another_worker_sharing_state_dir_is_dropped(
    start_worker, unix_user: Callable[..., pwd.struct_passwd]
) -> None:
    user = unix_user()
    workers = [await start_worker(**KW), await start_worker(**KW)]  # one prefix, one state_dir
    msg = task_message(user.pw_name)
    await workers[0].submit(msg)
    await _completed(workers, msg)
    for _ in range(4):  # the broker hands them out round robin: both workers get some
        await workers[0].submit(msg)
    await _until_rejected(workers, 4)
    await asyncio.sleep(0.5)
    assert _starts(workers, msg.task_id) == 1
    assert all(_rejected(w) >= 1 for w in workers), [_rejected(w) for w in workers]


async def test_a_replay_with_a_bumped_attempt_header_is_dropped_but_retries_run(
    start_worker, unix_user: Callable[..., pwd.struct_passwd]
) -> None:
    user = unix_user()
    w = await start_worker(**KW)
    msg = task_message(user.pw_name)
    await w.submit(msg)
    await _completed([w], msg)
    # the attempt header is not signed: a replayer can make the delivery look like a retry
    replay = signed_task(msg)
    bumped = broker.make_message(
        replay.body,
        message_id=msg.task_id,
        type_=TYPE_TASK,
        headers={**dict(replay.headers), HDR_ATTEMPT: 2},
    )
    exchange = await w.amqp.channel.get_exchange(w.amqp.names.tasks_exchange)
    await broker.publish(exchange, bumped, "normal")
    await _until_rejected([w], 1)
    await asyncio.sleep(0.5)
    assert w.events.states(msg.task_id) == [("active", 1), ("completed", 1)]

    # the real retry path (attempts 2 and 3 carried by the header) is not a replay
    await w.worker.close()
    failing = await start_worker(transfer_kind="fail", service_credentials=SERVICE)
    again = task_message(user.pw_name)
    await failing.submit(again)
    async with asyncio.timeout(30):  # both event logs consume the one events queue
        while ("archived", 3) not in (  # noqa: ASYNC110 - filled by the consumers
            union := w.events.states(again.task_id) + failing.events.states(again.task_id)
        ):
            await asyncio.sleep(0.05)
    assert sorted(a for s, a in union if s == "active") == [1, 2, 3]
