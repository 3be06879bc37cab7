"""``python -m services.ingest``'s wiring: its settings root, health and metrics endpoints."""

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
from shared.messaging.signing import Role
from shared.messaging.topology import Names
from shared.settings import BrokerSettings, IrodsSettings, SigningSettings
from tests.conftest import signing_key_set
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


def test_refuses_to_start_without_signing_keys_or_with_root_allowed() -> None:
    """Tasks it publishes are signed and tasks it consumes verified: no key, no worker."""
    with pytest.raises(ConfigError, match="STAGER_SIGNING__KEY is not set"):
        create_app(IngestSettings(signing=SigningSettings()))
    only_key = SigningSettings(key=signing_key_set().settings(Role.INGEST).key)
    with pytest.raises(ConfigError, match="STAGER_SIGNING__INGEST_KEYS is not set"):
        create_app(IngestSettings(signing=only_key))
    with pytest.raises(ConfigError, match="'/' would allow every directory"):
        create_app(
            IngestSettings(
                signing=signing_key_set().settings(Role.INGEST),
                ingest=IngestWorkerSettings(allowed_roots=["/"]),
            )
        )


async def test_serves_health_while_consuming(tmp_path: Path) -> None:
    names = Names("t" + uuid.uuid4().hex[:10])
    settings = IngestSettings(
        ingest=IngestWorkerSettings(db_url=f"sqlite+aiosqlite:///{tmp_path}/ingest.sqlite"),
        broker=BrokerSettings(url=SecretStr(AMQP_URL), prefix=names.prefix),
        signing=signing_key_set().settings(Role.INGEST),
    )
    conn = await aio_pika.connect(AMQP_URL)
    try:
        async with TestClient(TestServer(create_app(settings))) as client:
            assert (await client.get("/livez")).status == 200
            r = await client.get("/readyz")
            assert r.status == 200 and (await r.json()) == {"status": "ok"}
            metrics = await (await client.get("/metrics")).text()
            for name in (
                "stager_ingest_passes_total",
                "stager_ingest_tasks_total",
                "stager_ingest_files_total",
                "stager_ingest_bytes_total",
                "stager_ingest_children",
                "stager_messages_rejected_total",
            ):
                assert f"# TYPE {name.removesuffix('_total')}" in metrics, name
            channel = await conn.channel()
            for name in (names.ingest_dirs_queue, names.ingest_files_queue):
                queue = await channel.declare_queue(name, passive=True)
                assert queue.declaration_result.consumer_count == 1
    finally:
        channel = await conn.channel()
        for name in (names.ingest_dirs_queue, names.ingest_files_queue):
            await channel.queue_delete(name)
        await conn.close()
