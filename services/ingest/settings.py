"""Settings of the ingest workers (env ``STAGER_...``, nested with ``__``).

The shared root gives ``broker.*`` (URL and topology prefix) and ``irods.*`` (the account
the workers use: a rodsadmin if handlers use ``as_user``); ingest's own settings are under
``ingest.*``, whose ``db_url`` (and allowed roots) are the same settings the API reads.

The iRODS account also comes from the usual iRODS client environment, as automated
ingest's does: per field, ``STAGER_IRODS__<FIELD>`` (set explicitly) wins over
``IRODS_<KEY>``, which wins over ``irods_environment.json`` (``IRODS_ENVIRONMENT_FILE``,
else ``~/.irods/irods_environment.json``), which wins over the built-in default
(:func:`shared.irods.client_environment`). ``STAGER_INGEST__CLIENT_ENVIRONMENT=false``
turns the fallback off.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, ValidationError, model_validator

from services.ingest.constants import DEFAULT_CONCURRENCY
from shared.errors import ConfigError
from shared.irods import ClientEnvironmentError, client_environment
from shared.settings import IngestStoreSettings, IrodsSettings, StagerSettings
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
    claim_lease: float = Field(
        default=60.0,
        gt=0,
        description="seconds a worker that claimed a pass has to start it (renewed while "
        "pre_job runs) before another worker takes it over",
    )
    reconnect_tries: int = Field(
        default=5,
        ge=0,
        le=50,
        description="times a file (or delete) that lost its iRODS connection (server "
        "restarted or unreachable, connection refused or reset) is tried again on a new "
        "connection before it counts as failed",
    )
    reconnect_delay: float = Field(
        default=2.0,
        ge=0,
        le=600,
        description="seconds before the first such retry; doubled each time, at most 30 s "
        "each (the default tries for about 60 s)",
    )
    client_environment: bool = Field(
        default=True,
        description="fill iRODS settings not given as STAGER_IRODS__* from IRODS_* and "
        "irods_environment.json",
    )


class IngestSettings(StagerSettings):
    """Everything an ingest worker (and ``stager ingest``) reads; secrets redacted in ``repr``."""

    ingest: IngestWorkerSettings = Field(default_factory=IngestWorkerSettings)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8082, ge=0, le=65535, description="/livez /readyz")

    @model_validator(mode="after")
    def _with_client_environment(self) -> Self:
        """Fields of ``irods`` not set explicitly, from the iRODS client environment."""
        if not self.ingest.client_environment:
            return self
        try:
            found = client_environment()
        except ClientEnvironmentError as e:
            raise ConfigError(str(e)) from None
        explicit = self.irods.model_fields_set
        fill = {k: v for k, v in found.items() if k not in explicit}
        if "password" in fill:  # the value itself, never a file: reference
            fill["password"] = SecretStr(fill["password"])
        if not fill:
            return self
        given = self.irods.model_dump(include=explicit)
        if "password" in given:
            given["password"] = self.irods.password
        try:
            self.irods = IrodsSettings.model_validate({**fill, **given})
        except ValidationError as e:
            fields = ", ".join(sorted({str(err["loc"][0]) for err in e.errors() if err["loc"]}))
            raise ConfigError(
                f"invalid iRODS client environment value(s) for {fields} (from IRODS_* or "
                "irods_environment.json): fix them or set STAGER_IRODS__* instead"
            ) from None
        return self
