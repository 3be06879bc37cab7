"""``python -m services.ingest``'s wiring: its settings root and its health endpoint."""

from __future__ import annotations

import uuid
from pathlib import Path

import aio_pika
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from services.api.settings import ApiSettings
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings, IngestWorkerSettings
from shared.errors import ConfigError
from shared.messaging.topology import Names
from shared.settings import BrokerSettings, IrodsSettings
from tests.ingest.conftest import AMQP_URL


def test_one_store_url_shared_root_and_file_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "irods.password"
    secret.write_text("s3cret\n")
    url = f"sqlite+aiosqlite:///{tmp_path}/ingest.sqlite"
    monkeypatch.setenv("STAGER_INGEST__DB_URL", url)
    monkeypatch.setenv("STAGER_INGEST__CONCURRENCY", "3")
    monkeypatch.setenv("STAGER_BROKER__PREFIX", "lz")
    monkeypatch.setenv("STAGER_IRODS__PASSWORD", f"file:{secret}")
    settings = IngestSettings()
    assert settings.ingest.db_url == ApiSettings().ingest.db_url == url
    assert settings.ingest.concurrency == 3 and settings.broker.prefix == "lz"
    assert settings.irods.account().password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_refuses_to_start_without_irods() -> None:
    with pytest.raises(ConfigError, match="iRODS account"):
        create_app(IngestSettings(irods=IrodsSettings(enabled=False)))


async def test_serves_health_while_consuming(tmp_path: Path) -> None:
    names = Names("t" + uuid.uuid4().hex[:10])
    settings = IngestSettings(
        ingest=IngestWorkerSettings(db_url=f"sqlite+aiosqlite:///{tmp_path}/ingest.sqlite"),
        broker=BrokerSettings(url=SecretStr(AMQP_URL), prefix=names.prefix),
    )
    conn = await aio_pika.connect(AMQP_URL)
    try:
        async with TestClient(TestServer(create_app(settings))) as client:
            assert (await client.get("/livez")).status == 200
            r = await client.get("/readyz")
            assert r.status == 200 and (await r.json()) == {"status": "ok"}
            channel = await conn.channel()
            for name in (names.ingest_dirs_queue, names.ingest_files_queue):
                queue = await channel.declare_queue(name, passive=True)
                assert queue.declaration_result.consumer_count == 1
    finally:
        channel = await conn.channel()
        for name in (names.ingest_dirs_queue, names.ingest_files_queue):
            await channel.queue_delete(name)
        await conn.close()
