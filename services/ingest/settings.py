"""Settings of the ingest workers (env ``STAGER_...``, nested with ``__``).

The shared root gives ``broker.*`` (URL and topology prefix) and ``irods.*`` (the account
the workers use: a rodsadmin if handlers use ``as_user``); ingest's own settings are under
``ingest.*``, whose ``db_url`` (and allowed roots) are the same settings the API reads.
"""

from __future__ import annotations

from pydantic import Field

from services.ingest.constants import DEFAULT_CONCURRENCY
from shared.settings import IngestStoreSettings, StagerSettings
from shared.unix_users import DEFAULT_MAX_UID, DEFAULT_MIN_UID


class IngestWorkerSettings(IngestStoreSettings):
    """``STAGER_INGEST__*``: the job store and how much one worker does at once."""

    concurrency: int = Field(
        default=DEFAULT_CONCURRENCY, ge=1, le=256, description="tasks at once = threads, prefetch"
    )
    min_uid: int = Field(
        default=DEFAULT_MIN_UID, ge=1, description="lowest uid a job owner may have (root worker)"
    )
    max_uid: int = Field(
        default=DEFAULT_MAX_UID, ge=1, description="highest uid a job owner may have (root worker)"
    )


class IngestSettings(StagerSettings):
    """Everything an ingest worker (and ``stager ingest``) reads; secrets redacted in ``repr``."""

    ingest: IngestWorkerSettings = Field(default_factory=IngestWorkerSettings)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8082, ge=0, le=65535, description="/livez /readyz")
