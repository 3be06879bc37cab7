"""SIGTERM of ``python -m services.worker`` while a transfer runs, as Kubernetes sends it
(to the container's first process only): the running task is handed back to its queue,
the process exits 0 well within the pod's ``terminationGracePeriodSeconds``, and nothing
on stderr is a traceback. Real RabbitMQ, a real Unix user, the worker as a process."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from shared.messaging import broker
from tests.conftest import Amqp, SigningKeys
from tests.deploy.k8s import build, find
from tests.deploy.processes import worker_process
from tests.worker.conftest import signed_task, task_message

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: useradd and setuid")


def grace_period() -> int:
    """``terminationGracePeriodSeconds`` of the worker Deployment the prod overlay builds."""
    worker = find(build("prod"), "Deployment", "stager-worker")
    return int(worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


@needs_root
async def test_sigterm_hands_the_running_task_back_without_a_traceback(
    amqp: Amqp,
    signing_keys: SigningKeys,
    unix_user: Callable[..., pwd.struct_passwd],
    tmp_path: Path,
) -> None:
    user = unix_user()
    async with (
        worker_process(amqp, signing_keys, tmp_path / "state") as w,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
    ):
        await w.until_serving(http)
        msg = task_message(user.pw_name)
        exchange = await amqp.channel.get_exchange(amqp.names.tasks_exchange)
        await broker.publish(exchange, signed_task(msg), "normal")
        await w.until(http, "stager_worker_running", 1.0)
        # its wait (submission to first start) was observed once, for the backlog alert
        assert await w.metric(http, "stager_worker_wait_seconds_count") == 1.0
        started = time.monotonic()
        w.proc.send_signal(signal.SIGTERM)  # what the kubelet does: the first process only
        await asyncio.wait_for(w.proc.wait(), grace_period())
        took = time.monotonic() - started
        stderr = await w.stderr()
    assert w.proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-5000:]
    assert "task.requeued_on_shutdown" in stderr, stderr[-3000:]
    assert took < grace_period() / 2, f"shutdown took {took:.1f} s"
    queue = await amqp.channel.declare_queue(amqp.names.tasks_queue, passive=True)
    assert queue.declaration_result.message_count == 1  # handed back for the next worker
