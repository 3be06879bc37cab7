"""The API's event consumer survives a lost broker connection (found by the fault
campaign: after a RabbitMQ restart the API applied no more task events, so its fair
release saw the user's slots taken for ever and every pending job stayed pending).

The API reaches the test broker through devtools/tcp_proxy, which cuts its connection
while a burst of events is being applied; events published after the reconnect must still
be applied."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from devtools.tcp_proxy import TcpProxy
from services.api.keys import STORE
from shared.messaging.messages import TaskState
from shared.settings import BrokerSettings
from tests.api.conftest import Api, job, worker_event
from tests.api.store.conftest import ev
from tests.conftest import AMQP_URL


async def _state(api: Api, task_id: str, want: TaskState, seconds: float) -> bool:
    store = api.app[STORE]
    for _ in range(int(seconds / 0.05)):
        t = await store.get(task_id)
        if t is not None and t.state == want:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_events_applied_after_the_broker_connection_is_cut(
    make_api: object, unique_prefix: str
) -> None:
    host_port = AMQP_URL.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    with TcpProxy(host, int(port)) as proxy:
        url = AMQP_URL.replace(host_port, f"{host}:{proxy.port}")
        api: Api = await make_api(  # type: ignore[operator]
            broker=BrokerSettings(url=SecretStr(url), prefix=unique_prefix)
        )
        r = await api.client.post("/v1/jobs", json={"jobs": [job(), job()]}, headers=api.basic())
        assert r.status == 200, await r.text()
        first, second = (j["id"] for j in (await r.json())["jobs"])
        channel = await api.amqp.channel(publisher_confirms=True)
        x = await channel.get_exchange(api.names.events_exchange)
        # a burst of progress events for the first job; the cut falls while it is applied
        for seq in range(1, 1500):
            body = ev(first, seq, TaskState.ACTIVE).model_dump_json().encode()
            await x.publish(worker_event(body), routing_key=api.names.events_queue)
        assert await _state(api, first, TaskState.ACTIVE, 10.0)
        assert proxy.cut() >= 1
        # after the reconnect (aio-pika retries every 5 s): new events are applied
        done = ev(second, 1, TaskState.COMPLETED).model_dump_json().encode()
        await x.publish(worker_event(done), routing_key=api.names.events_queue)
        assert await _state(api, second, TaskState.COMPLETED, 30.0), (
            "no event applied after the broker connection came back\n"
            + "\n".join(
                line[:300] for line in api.logs.getvalue().splitlines() if '"debug"' not in line
            )[-4000:]
        )
        await channel.close()
        # the API shuts down while the proxy still relays: once the proxy is gone its robust
        # connection would retry for ever and the fixture's teardown would hang
        await api.client.close()
