"""SIGTERM of ``python -m services.worker`` while a transfer runs, as Kubernetes sends it
(to the container's first process only): the running task is handed back to its queue,
the process exits 0 well within the pod's ``terminationGracePeriodSeconds``, and nothing
on stderr is a traceback. Real RabbitMQ, a real Unix user, the worker as a process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import yaml

from services.worker.app import Worker
from shared.messaging import broker
from shared.messaging.signing import Role
from tests.conftest import AMQP_URL, Amqp, SigningKeys
from tests.worker.conftest import signed_task, task_message, worker_settings
from tests.worker.jobs import KINDS

ROOT = Path(__file__).resolve().parents[2]
WORKER_YAML = ROOT / "deploy" / "k8s" / "base" / "worker.yaml"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: useradd and setuid")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def grace_period() -> int:
    """``terminationGracePeriodSeconds`` of the worker Deployment in the kustomize base."""
    for doc in yaml.safe_load_all(WORKER_YAML.read_text()):
        if doc and doc["kind"] == "Deployment":
            return int(doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
    raise AssertionError(f"no Deployment in {WORKER_YAML}")


async def _metric(http: aiohttp.ClientSession, url: str, name: str) -> float | None:
    try:
        async with http.get(url + "/metrics") as r:
            text = await r.text()
    except aiohttp.ClientError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@needs_root
async def test_sigterm_hands_the_running_task_back_without_a_traceback(
    amqp: Amqp,
    signing_keys: SigningKeys,
    unix_user: Callable[..., object],
    tmp_path: Path,
) -> None:
    user = unix_user()
    state = tmp_path / "state"
    port = _free_port()
    settings = worker_settings(amqp.names, state, transfer_kind="slow")
    amqp.topologies.append(Worker(settings).topology)  # its retry queues are deleted too
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
        "STAGER_TRANSFER_KIND": "slow",
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
    err = asyncio.create_task(proc.stderr.read())
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            for _ in range(300):
                assert proc.returncode is None, (await err).decode()[-3000:]
                if await _metric(http, url, "stager_worker_running") is not None:
                    break
                await asyncio.sleep(0.1)
            msg = task_message(user.pw_name)  # type: ignore[attr-defined]
            exchange = await amqp.channel.get_exchange(amqp.names.tasks_exchange)
            await broker.publish(exchange, signed_task(msg), "normal")
            for _ in range(300):
                if await _metric(http, url, "stager_worker_running") == 1.0:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the task never started")
            # its wait (submit to first start) was observed once, for the backlog alert
            assert await _metric(http, url, "stager_worker_wait_seconds_count") == 1.0
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # what the kubelet does: the first process only
        await asyncio.wait_for(proc.wait(), grace_period())
        took = time.monotonic() - started
        stderr = (await err).decode()
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-5000:]
    assert "task.requeued_on_shutdown" in stderr, stderr[-3000:]
    assert took < grace_period() / 2, f"shutdown took {took:.1f} s"
    queue = await amqp.channel.declare_queue(amqp.names.tasks_queue, passive=True)
    assert queue.declaration_result.message_count == 1  # handed back for the next worker
