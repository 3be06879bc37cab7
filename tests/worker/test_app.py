"""The worker's HTTP side: liveness, readiness and metrics, built through create_app."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from services.worker.app import WORKER_KEY, create_app
from tests.worker.conftest import worker_settings


async def test_health_and_metrics(amqp, open_dir) -> None:
    app = create_app(worker_settings(amqp.names, open_dir / "state"))
    amqp.topologies.append(app[WORKER_KEY].topology)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/livez")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 200 and (await ready.json())["status"] == "ok"
        metrics = await (await client.get("/metrics")).text()
        assert "stager_worker_running 0.0" in metrics
        assert "stager_worker_idle_children 0.0" in metrics
        assert 'stager_worker_child_tasks{child="reused"} 0.0' in metrics
        forkserver = await app[WORKER_KEY].forkserver()
        await forkserver.close()  # the fork server is gone → not ready
        assert (await client.get("/readyz")).status == 503
