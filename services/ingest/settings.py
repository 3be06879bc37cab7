"""Ingest settings (pydantic-settings, ``STAGER_INGEST__`` prefix, ``__`` nesting)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.ingest.constants import DEFAULT_CONCURRENCY
from shared.irods import IrodsAccount
from shared.messaging.topology import DEFAULT_PREFIX


class IngestSettings(BaseSettings):
    """Where the job store, the broker and iRODS are; secrets never in ``repr``."""

    model_config = SettingsConfigDict(
        env_prefix="STAGER_INGEST__", env_nested_delimiter="__", secrets_dir=None
    )

    #: SQLAlchemy async URL of the job store, shared by the API, the CLI and workers.
    db_url: str = "sqlite+aiosqlite:///.local/ingest.sqlite"
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    queue_prefix: str = DEFAULT_PREFIX
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=256)
    #: The account workers use to reach iRODS (a rodsadmin for ``as_user``).
    irods: IrodsAccount | None = None
