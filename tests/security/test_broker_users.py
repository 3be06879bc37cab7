"""Broker identity, attacked: guest and other roles' users get nothing on our vhost, and a
local user can read neither the broker passwords nor the signing keys.

Real RabbitMQ (users made by ``scripts.broker_users`` through the ``broker_vhost``
fixture), real Unix users; the attacking code runs as that user in a subprocess.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pwd
import re
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq
import pytest

from scripts import broker_users
from shared.logging import configure
from shared.messaging import broker
from shared.messaging.topology import (
    Names,
    Topology,
    declare_ingest_queues,
    declare_topology,
    delete_topology,
)
from tests.conftest import AMQP_URL, BrokerVhost

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: useradd, rabbitmqctl")

REPO = Path(__file__).resolve().parents[2]


def as_user(user: pwd.struct_passwd, fn: Callable[[], str]) -> str:
    """``fn()`` in a forked child that became ``user`` (no supplementary groups) first.

    A fork, not an exec: the user cannot read root's interpreter, and needs not."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            out = fn()
        except BaseException as e:
            out = f"error {type(e).__name__}: {e}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read().decode()
    os.waitpid(pid, 0)
    return data


def connect_as_user(user: pwd.struct_passwd, url: str) -> str:
    """``connected`` or ``refused <error>``: an AMQP login from a process of ``user``."""

    async def attempt() -> str:
        try:
            conn = await aio_pika.connect(url, timeout=10)
        except Exception as e:
            return f"refused {type(e).__name__}"
        await conn.close()
        return "connected"

    return as_user(user, lambda: asyncio.run(attempt()))


def run_as(user: pwd.struct_passwd, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` as ``user`` (no supplementary groups), from the repository."""
    return subprocess.run(
        argv,
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_guest_is_refused_on_our_vhost_as_a_local_user(
    broker_vhost: BrokerVhost, unix_user: Callable[..., pwd.struct_passwd]
) -> None:
    attacker = unix_user()
    guest = connect_as_user(attacker, broker_vhost.users.guest_url())
    assert guest.startswith("refused"), guest
    # the legitimate path, same kind of process: a role's own URL logs in
    assert connect_as_user(attacker, broker_vhost.url("worker")) == "connected"


def test_secret_files_are_private(
    broker_vhost: BrokerVhost, unix_user: Callable[..., pwd.struct_passwd]
) -> None:
    attacker = unix_user()
    users = broker_vhost.users
    files = [users.password_file(r) for r in (*broker_users.ROLES, broker_users.ADMIN)]
    files += [users.url_file(r) for r in broker_users.ROLES]
    users.secrets_dir.chmod(0o711)  # even when the directory can be traversed
    try:
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            got = run_as(attacker, ["/bin/cat", str(path)])
            assert got.returncode != 0 and "Permission denied" in got.stderr, path
            assert path.read_text().strip()  # root (the service) still reads it
    finally:
        users.secrets_dir.chmod(0o700)


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    await message.ack()


async def _refused(url: str, action: Callable[[aio_pika.abc.AbstractChannel], Any]) -> bool:
    """True when the broker answers ``action`` with ACCESS_REFUSED."""
    conn = await broker.connect(url, name="test-least-privilege")
    try:
        channel = await conn.channel()
        try:
            await action(channel)
        except aiormq.exceptions.ChannelAccessRefused:
            return True
        return False
    finally:
        await conn.close()


async def test_each_role_gets_only_its_own_part_of_the_topology(
    broker_vhost: BrokerVhost,
) -> None:
    prefix = broker_vhost.prefix()
    names = Names(prefix)
    topology = Topology(names=names, retry_delays_ms=frozenset({300}))
    api, worker, ingest = (broker_vhost.url(r) for r in broker_users.ROLES)
    try:
        # the legitimate paths: each role declares what it declares at start
        conn = await broker.connect(worker, name="test-worker-role")
        await declare_topology(await conn.channel(), topology)
        await conn.close()
        conn = await broker.connect(api, name="test-api-role")
        await declare_topology(await conn.channel(), Topology(names=names))
        await conn.close()
        conn = await broker.connect(ingest, name="test-ingest-role")
        await declare_ingest_queues(await conn.channel(), topology)
        await conn.close()

        def consume(queue: str) -> Callable[[aio_pika.abc.AbstractChannel], Any]:
            async def take(channel: aio_pika.abc.AbstractChannel) -> None:
                q = await channel.get_queue(queue, ensure=False)
                await q.consume(_ignore)

            return take

        def declare(queue: str) -> Callable[[aio_pika.abc.AbstractChannel], Any]:
            async def make(channel: aio_pika.abc.AbstractChannel) -> None:
                await channel.declare_queue(queue, durable=True)

            return make

        def publish_to(exchange: str) -> Callable[[aio_pika.abc.AbstractChannel], Any]:
            async def send(channel: aio_pika.abc.AbstractChannel) -> None:
                x = await channel.get_exchange(exchange, ensure=False)
                await x.publish(aio_pika.Message(b"{}"), routing_key="")
                await channel.close()  # the refusal arrives as a channel close

            return send

        # ingest may not read task messages (credential envelopes) nor touch the transfer side
        assert await _refused(ingest, consume(names.tasks_queue))
        assert await _refused(ingest, declare(names.tasks_queue))
        # the API may not declare an ingest queue nor listen on the dir-list queue
        assert await _refused(api, consume(names.dir_rpc_queue))
        assert await _refused(api, declare(names.ingest_dirs_queue))
        # a worker may not send cancels, nor read ingest work
        assert await _refused(worker, publish_to(names.control_exchange))
        assert await _refused(worker, consume(names.ingest_files_queue))
        # nobody's topology outside its prefix
        assert await _refused(worker, declare("stager.tasks"))
    finally:
        conn = await broker.connect(broker_vhost.url("admin"), name="test-cleanup")
        channel = await conn.channel()
        await delete_topology(channel, topology)
        await conn.close()


def test_the_regexes_cover_exactly_each_roles_names() -> None:
    """Pure: every name the topology declares is matched for the roles that need it."""
    names = Names("stager")
    topo = Topology(names=names, retry_delays_ms=frozenset({10_000, 30_000}))
    p = {r: broker_users.permissions(r, re.escape("stager")) for r in broker_users.ROLES}
    own_queue = "amq_" + "0" * 32

    def ok(regex: str, *resources: str) -> bool:
        return all(re.match(regex, r) for r in resources)

    transfer = [q for q in topo.queue_names() if q not in topo.ingest_queue_names()]
    assert ok(p["worker"].configure, *transfer, *topo.exchange_names(), own_queue)
    assert ok(p["worker"].write, names.events_exchange, "amq.default", own_queue)
    assert ok(p["api"].write, names.tasks_exchange, names.control_exchange, "amq.default")
    assert ok(p["ingest"].configure, *topo.ingest_queue_names())
    assert not any(re.match(p["ingest"].read, q) for q in (names.tasks_queue, names.priority_queue))
    assert not re.match(p["worker"].write, names.control_exchange)
    assert not re.match(p["api"].configure, names.retry_queue("normal", 10_000))
    for perms in p.values():  # another prefix, or one that only starts like ours
        for regex in (perms.configure, perms.write, perms.read):
            assert not re.match(regex, "other.tasks") and not re.match(regex, "stagerx.tasks")


async def test_a_guest_login_is_logged_as_a_warning(broker_vhost: BrokerVhost) -> None:
    if urlsplit(AMQP_URL).username not in (None, "guest"):
        pytest.skip("STAGER_TEST_AMQP_URL is not a guest login")
    logs = io.StringIO()
    configure("info", json=True, stream=logs)
    try:
        conn = await broker.connect(broker_vhost.url("api"), name="test-role-login")
        await conn.close()
        assert "broker.guest_login" not in logs.getvalue()
        conn = await broker.connect(AMQP_URL, name="test-guest-login")  # the test broker's
        await conn.close()
    finally:
        configure("info", json=True)
    line = next(json.loads(x) for x in logs.getvalue().splitlines() if "guest_login" in x)
    assert line["connection"] == "test-guest-login" and "guest:" not in logs.getvalue()
