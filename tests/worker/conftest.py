"""Worker test fixtures: real Unix users, a private AMQP topology, a fork server, SMTP."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from services.worker.app import Worker
from services.worker.credentials import RepoCredential
from services.worker.forkserver.client import ForkServer
from services.worker.settings import WorkerSettings
from shared.messaging import broker
from shared.messaging.messages import (
    ControlMessage,
    PrincipalKind,
    Submitter,
    TaskEvent,
    TaskMessage,
    TaskSpec,
)
from shared.messaging.signing import Role
from shared.messaging.topology import TYPE_CONTROL, TYPE_TASK, Names
from tests.conftest import AMQP_URL, Amqp, signing_key_set
from tests.worker.jobs import KINDS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="worker tests run as root")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A temp dir other users can traverse (0711, under /tmp), removed after."""
    path = Path(tempfile.mkdtemp(prefix="stager-worker-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def forkserver() -> AsyncIterator[ForkServer]:
    """A fork server that also knows the stand-in jobs of ``tests/worker/jobs.py``."""
    server = await ForkServer.start(extra_kinds=KINDS)
    yield server
    await server.close()


@dataclass
class SmtpSink:
    """Mails received by the test SMTP server."""

    host: str
    port: int
    messages: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    async def wait(self, n: int, limit: float = 10.0) -> None:
        """Until ``n`` mails arrived (they arrive on the server's own thread)."""
        async with asyncio.timeout(limit):
            while len(self.messages) < n:  # noqa: ASYNC110 - filled from another thread
                await asyncio.sleep(0.05)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = SmtpSink("127.0.0.1", port)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink
    controller.stop()


class EventLog:
    """TaskEvents the worker published, in arrival order."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []
        self._changed = asyncio.Event()

    async def on_message(self, message: Any) -> None:
        async with message.process():
            self.events.append(TaskEvent.model_validate_json(message.body))
            self._changed.set()

    def states(self, task_id: str) -> list[tuple[str, int]]:
        """(state, attempt) of every non-progress event of a task."""
        out = []
        for e in self.events:
            if e.task_id == task_id and not (e.state == "active" and e.progress is not None):
                out.append((e.state.value, e.attempt))
        return out

    async def until(self, task_id: str, states: set[str], limit: float = 30.0) -> TaskEvent:
        """The first event of ``task_id`` in one of ``states``."""
        async with asyncio.timeout(limit):
            while True:
                for e in self.events:
                    if e.task_id == task_id and e.state.value in states:
                        return e
                self._changed.clear()
                await self._changed.wait()


@dataclass
class RunningWorker:
    worker: Worker
    events: EventLog
    amqp: Amqp

    async def submit(self, msg: TaskMessage, route: str = "normal") -> None:
        exchange = await self.amqp.channel.get_exchange(self.amqp.names.tasks_exchange)
        await broker.publish(exchange, signed_task(msg), route)

    async def cancel(self, task_id: str) -> None:
        exchange = await self.amqp.channel.get_exchange(self.amqp.names.control_exchange)
        body = ControlMessage(task_id=task_id).model_dump_json().encode()
        message = broker.make_message(
            body, message_id=uuid.uuid4().hex, type_=TYPE_CONTROL, signer=API_SIGNER
        )
        await broker.publish(exchange, message, "")


#: What the API signs with in these tests (workers trust it through ``worker_settings``).
API_SIGNER = signing_key_set().signer(Role.API)


def signed_task(msg: TaskMessage) -> Any:
    """``msg`` as the API publishes it: signed as role api."""
    body = msg.model_dump_json().encode()
    return broker.make_message(body, message_id=msg.task_id, type_=TYPE_TASK, signer=API_SIGNER)


def irods_worker(srv: Any, **more: Any) -> dict[str, Any]:
    """Worker settings for transfers against the iRODS test server ``srv``: its address and
    the ``streamer`` service account's repository credential (its rodsadmin), plus ``more``
    (e.g. ``transfer=``, ``retry=``)."""
    return {
        "irods": {"host": srv.host, "port": srv.port, "zone": srv.zone},
        "service_credentials": {
            "streamer": RepoCredential(user=srv.admin_user, password=SecretStr(srv.admin_password))
        },
        **more,
    }


def worker_settings(
    names: Names, state_dir: Path, *, amqp_url: str = AMQP_URL, **overrides: Any
) -> WorkerSettings:
    base: dict[str, Any] = {
        "broker": {"url": amqp_url, "prefix": names.prefix, "confirm_timeout": 10},
        "state_dir": state_dir,
        "job_kinds": KINDS,
        "concurrency": 2,
        "cancel_grace": 0.5,
        "progress_interval": 0.2,
        "retry": {"max_attempts": 3, "base_delay": 0.3, "factor": 2, "max_delay": 5},
        "http_port": 0,
        "signing": signing_key_set().settings(Role.WORKER),
    }
    base.update(overrides)
    return WorkerSettings(**base)


@pytest.fixture
async def start_worker(
    amqp: Amqp, open_dir: Path
) -> AsyncIterator[Callable[..., Awaitable[RunningWorker]]]:
    """Factory: a started Worker on the test's private topology, plus its event log."""
    started: list[Worker] = []

    async def start(**overrides: Any) -> RunningWorker:
        state_dir = overrides.pop("state_dir", open_dir / "state")
        settings = worker_settings(amqp.names, state_dir, **overrides)
        w = Worker(settings)
        amqp.topologies.append(w.topology)
        started.append(w)
        await w.start()
        log = EventLog()
        queue = await amqp.channel.get_queue(amqp.names.events_queue)
        await queue.consume(log.on_message)
        return RunningWorker(w, log, amqp)

    yield start
    for w in started:
        await w.close()


def task_message(
    user: str,
    *,
    task_id: str | None = None,
    service: str | None = "streamer",
    email: str | None = "user@example.org",
    timeout: int = 0,
    timeout_noprogress: int = 0,
    drPass: str | None = None,
    src: str = "/tmp/src",
    dst: str = "irods:/tempZone/home/svc/dst",
) -> TaskMessage:
    spec = TaskSpec(
        title="test job",
        stagerUser=user,
        stagerUserEmail=email,
        drUser="svc",
        srcURL=src,
        dstURL=dst,
        timeout=timeout,
        timeout_noprogress=timeout_noprogress,
        drPass=drPass,
    )
    who = (
        Submitter(kind=PrincipalKind.SERVICE, name=service)
        if service
        else Submitter(kind=PrincipalKind.USER, name=user)
    )
    return TaskMessage(task_id=task_id or uuid.uuid4().hex, submitter=who, task=spec)
