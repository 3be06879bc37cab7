"""Directory listing over AMQP request/reply, health, metrics, OpenAPI and docs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from shared.messaging.messages import DirEntry, DirListReply, DirListRequest
from shared.settings import IrodsSettings
from tests.api.conftest import ALICE, Api, worker_reply

# The store does not matter here; the store tests run on both SQLite and PostgreSQL.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@contextlib.asynccontextmanager
async def responder(api: Api, answer: Any) -> AsyncIterator[list[DirListRequest]]:
    """A worker stand-in on the real RPC queue: records requests, replies ``answer(req)``."""
    seen: list[DirListRequest] = []
    channel = await api.amqp.channel()
    queue = await channel.get_queue(api.names.dir_rpc_queue)

    async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with msg.process():
            req = DirListRequest.model_validate_json(msg.body)
            seen.append(req)
            reply: DirListReply = answer(req)
            await channel.default_exchange.publish(
                worker_reply(
                    reply.model_dump_json().encode(), msg.message_id or "", msg.correlation_id
                ),
                routing_key=msg.reply_to or "",
            )

    tag = await queue.consume(on_message)
    try:
        yield seen
    finally:
        await queue.cancel(tag)
        await channel.close()


def listing(req: DirListRequest) -> DirListReply:
    if req.path == "/project/secret":
        return DirListReply(ok=False, error_kind="permission_denied", error="permission denied")
    if req.path == "/project/none":
        return DirListReply(ok=False, error_kind="not_found", error="no such directory")
    return DirListReply(
        ok=True,
        entries=[
            DirEntry(name="a.txt", type="regular", size=3),
            DirEntry(name="d", type="dir", size=0),
        ],
    )


async def test_dir_listing_as_the_caller(api: Api) -> None:
    async with responder(api, listing) as seen:
        r = await api.client.get("/v1/dir", params={"path": "/project/x"}, headers=api.bearer())
        assert r.status == 200, await r.text()
        assert (await r.json())["entries"][0] == {"name": "a.txt", "type": "regular", "size": 3}
        r = await api.client.get("/v1/dir?path=/project/secret", headers=api.bearer())
        assert r.status == 403 and "permission denied" in (await r.json())["errorMessage"]
        r = await api.client.get("/v1/dir?path=/project/none", headers=api.bearer())
        assert r.status == 404
        r = await api.client.get(f"/v1/dir?path=/project/x&user={ALICE}", headers=api.basic())
        assert r.status == 200
    assert [(s.user, s.path) for s in seen][:1] == [(ALICE, "/project/x")]
    assert {s.user for s in seen} == {ALICE}


async def test_dir_listing_without_worker_is_503(make_api: Any) -> None:
    api = await make_api(dir_timeout=0.3)
    r = await api.client.get("/v1/dir?path=/project/x", headers=api.bearer())
    assert r.status == 503 and "no worker answered" in (await r.json())["errorMessage"]


async def test_health_metrics_openapi_docs(api: Api) -> None:
    assert (await api.client.get("/livez")).status == 200
    r = await api.client.get("/readyz")
    assert r.status == 200, await r.text()
    assert (await r.json())["checks"] == {"store": "ok", "broker": "ok"}
    assert await (await api.client.get("/v1/ping")).json() == "pong"
    metrics = await (await api.client.get("/metrics")).text()
    assert f'stager_queue_messages{{queue="{api.names.tasks_queue}"}} 0.0' in metrics
    assert "stager_http_request_duration_seconds_bucket" in metrics
    assert 'stager_jobs_current{state="pending"} 0.0' in metrics
    spec = await (await api.client.get("/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    expected = {
        "/v1/ping",
        "/v1/job",
        "/v1/jobs",
        "/v1/job/{id}",
        "/v1/job/scheduled/{id}",
        "/v1/dir",
        "/v1/dac/project/{number}",
    }
    assert expected <= set(spec["paths"])
    job_schema = spec["components"]["schemas"]["JobInput"]
    assert {"srcURL", "dstURL", "stagerUser", "drPass", "timeout_noprogress"} <= set(
        job_schema["properties"]
    )
    assert "207" in spec["paths"]["/v1/jobs"]["post"]["responses"]
    docs = await api.client.get("/v1/docs")
    html = await docs.text()
    assert docs.content_type == "text/html" and "/v1/job/scheduled/{id}" in html
    assert (
        "<script src" not in html and "http" not in html.split("<body>")[1].split("openapi.json")[0]
    )


async def test_readyz_reports_unreachable_irods(make_api: Any) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = await make_api(irods=IrodsSettings(port=port), ready_timeout=1.0)
    r = await api.client.get("/readyz")
    body = await r.json()
    assert r.status == 503 and body["checks"]["irods"].startswith("failing")
    assert body["checks"]["store"] == "ok"
    await asyncio.sleep(0)
