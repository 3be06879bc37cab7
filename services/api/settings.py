"""Settings of the API service (env ``STAGER_...``, nested with ``__``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from services.api.admin.settings import AdminSettings
from services.api.auth import AuthSettings
from services.api.dac import DacSettings
from services.api.dispatcher import DispatchSettings
from services.api.limits import JobLimits
from services.api.retention import RetentionSettings
from shared.settings import FileText, IngestStoreSettings, StagerSettings


class ApiSettings(StagerSettings):
    """Everything the API reads; secrets are redacted in ``repr``."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    database_url: str = "sqlite+aiosqlite:///./stager.db"
    public_keys: list[FileText] = Field(
        default_factory=list,
        description="PEM public keys (or file:/path); the first seals new secrets",
    )
    service_priority: int = Field(default=5, ge=1, le=9)
    require_drpass_for_users: bool = True
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    dir_timeout: float = Field(default=15.0, gt=0)
    ready_timeout: float = Field(default=3.0, gt=0)
    run_dispatcher: bool = True
    run_event_consumer: bool = True
    run_retention: bool = True
    ingest: IngestStoreSettings = Field(default_factory=IngestStoreSettings)
    ingest_managers: list[str] = Field(
        default_factory=list, description="principals allowed to start and stop ingest jobs"
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    dac: DacSettings = Field(default_factory=DacSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    jobs: JobLimits = Field(default_factory=JobLimits)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @field_validator("public_keys")
    @classmethod
    def _pem(cls, keys: list[str]) -> list[str]:
        for k in keys:
            if "-----BEGIN" not in k:
                raise ValueError("public_keys entries must be PEM text or file:/path/to/key.pem")
        return keys
