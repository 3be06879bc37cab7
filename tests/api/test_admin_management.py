"""The admin queues view with RabbitMQ's management API (the test broker's, on 15672, which
scripts/ensure-services.sh enables): exact unacknowledged counts when it answers, the
estimates when it does not, its password never in a log line."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.error
import urllib.request
from typing import Any

import aio_pika
import pytest
from pydantic import SecretStr

from services.api.admin.queues import management_from
from services.api.admin.settings import AdminSettings
from shared.messaging import broker
from shared.messaging.topology import TYPE_TASK
from tests.api.test_admin import ADMIN_SETTINGS, _queues

MANAGEMENT = "http://127.0.0.1:15672"
_ESTIMATE = "not known without the RabbitMQ management API"


def _management_up() -> None:
    """Skip when the management plugin does not answer, fail under CI."""
    try:
        with urllib.request.urlopen(f"{MANAGEMENT}/api/overview", timeout=5):  # noqa: S310
            pass
    except urllib.error.HTTPError:
        return  # 401: it answers
    except (urllib.error.URLError, OSError):
        why = f"RabbitMQ's management plugin does not answer on {MANAGEMENT}"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def _admin(**over: Any) -> AdminSettings:
    return AdminSettings.model_validate({**ADMIN_SETTINGS.model_dump(), **over})


async def test_unacked_comes_from_the_management_api_when_it_answers(make_api: Any) -> None:
    """Two deliveries a consumer holds on the directory-listing queue: the AMQP estimate
    cannot know them (a consumer is there), the management API counts both; with a wrong
    password or nothing listening the view falls back to the estimate, and the password
    is in no log line."""
    _management_up()
    api = await make_api(admin=_admin(management_url=MANAGEMENT), run_dispatcher=False)
    n = api.names
    consumer_ch = await api.amqp.channel()
    channel = await api.amqp.channel(publisher_confirms=True)
    try:
        held: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await consumer_ch.set_qos(prefetch_count=2)
        await (await consumer_ch.get_queue(n.dir_rpc_queue)).consume(held.put)
        for i in range(2):
            await channel.default_exchange.publish(
                broker.make_message(b"{}", message_id=f"m-{i}", type_=TYPE_TASK),
                routing_key=n.dir_rpc_queue,
            )
        for _ in range(2):
            await asyncio.wait_for(held.get(), 10)
        deadline = time.monotonic() + 20  # the broker's statistics round: 5 s by default
        while True:
            rpc = (await _queues(api))[n.dir_rpc_queue]
            if rpc["unacked"] == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert (rpc["ready"], rpc["unacked"], rpc["consumers"]) == (0, 2, 1)
        assert rpc["unackedSource"].startswith("RabbitMQ management API")

        wrong = "wrong-secret-" + os.urandom(4).hex()
        for admin in (
            _admin(management_url=MANAGEMENT, management_password=SecretStr(wrong)),
            _admin(management_url="http://127.0.0.1:9"),  # nothing listens (discard)
        ):
            other = await make_api(admin=admin, run_dispatcher=False)
            rpc = (await _queues(other))[n.dir_rpc_queue]
            assert (rpc["unacked"], rpc["unackedSource"]) == (None, _ESTIMATE)
            assert "management API" in other.logs.getvalue()
            assert wrong not in other.logs.getvalue()
    finally:
        await consumer_ch.close()
        await channel.close()


def test_the_management_vhost_and_credentials_default_to_the_broker_urls() -> None:
    m = management_from("http://h:15672/", "amqp://u%40x:p%2Fw@h:5672/stager", "", "", 2.0)
    assert m is not None
    assert (m.url, m.vhost, m.user, m.password) == ("http://h:15672", "stager", "u@x", "p/w")
    assert "p/w" not in repr(m)
    m = management_from("http://h:15672", "amqp://guest:guest@h:5672/", "mon", "s3", 2.0)
    assert m is not None and (m.vhost, m.user, m.password) == ("/", "mon", "s3")
    assert management_from("", "amqp://guest:guest@h:5672/", "", "", 2.0) is None
