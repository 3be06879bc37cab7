"""Settings of the worker (env ``STAGER_...``, nested with ``__``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from services.worker.credentials import RepoCredential
from services.worker.forkserver.pool import (
    DEFAULT_LINGER,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_IDLE,
    DEFAULT_MAX_TASKS,
)
from services.worker.mailer import SmtpSettings
from services.worker.retries import RetryPolicy
from shared.messaging.topology import DEFAULT_DELIVERY_LIMIT, DEFAULT_MAX_ATTEMPTS
from shared.settings import StagerSettings
from shared.unix_users import DEFAULT_MIN_UID


class RetrySettings(BaseModel):
    """Attempts and backoff: wait ``base_delay * factor**(n-1)`` after attempt n, capped."""

    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=50)
    base_delay: float = Field(default=10.0, gt=0)
    factor: float = Field(default=3.0, ge=1)
    max_delay: float = Field(default=900.0, gt=0)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.base_delay, self.factor, self.max_delay)


class TransferDefaults(BaseModel):
    """isync options every worker transfer uses (``TransferOptions`` fields)."""

    recursive: bool = True
    verify_checksum: bool = True
    streams: int = Field(default=4, ge=1, le=32)
    parallel_files: int = Field(default=8, ge=1, le=64)
    progress_interval: float = Field(default=0.5, gt=0)
    bwlimit: int | None = Field(default=None, gt=0, description="bytes/s per transfer")
    large_file_threshold: int = Field(
        default=32 * 1024 * 1024, ge=1, description="files this big go in parallel ranges"
    )


class WorkerSettings(StagerSettings):
    """Everything the worker reads; secrets are redacted in ``repr``."""

    concurrency: int = Field(default=4, ge=1, le=256, description="transfers at once = prefetch")
    min_uid: int = Field(default=DEFAULT_MIN_UID, ge=1, description="lowest uid a task may run as")
    delivery_limit: int = Field(default=DEFAULT_DELIVERY_LIMIT, ge=1)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    private_keys_dir: Path | None = Field(
        default=None, description="directory of PEM private keys that open drPass envelopes"
    )
    service_credentials: dict[str, RepoCredential] = Field(
        default_factory=dict,
        description="repository credential per service account (key: name or name/drUser)",
    )
    irods_options: dict[str, Any] = Field(
        default_factory=dict,
        description="extra IrodsAccount fields for transfers (TLS policy, ca_file, resource)",
    )
    transfer: TransferDefaults = Field(default_factory=TransferDefaults)
    state_dir: Path = Field(
        default=Path("/var/lib/stager/state"), description="per-user resume journals"
    )
    child_linger: float = Field(
        default=DEFAULT_LINGER,
        ge=0,
        le=300,
        description="seconds an idle transfer child waits for the same user's next task (0: off)",
    )
    child_max_idle: int = Field(default=DEFAULT_MAX_IDLE, ge=0, description="idle children kept")
    child_max_tasks: int = Field(
        default=DEFAULT_MAX_TASKS, ge=1, description="tasks one child runs before it retires"
    )
    child_max_age: float = Field(
        default=DEFAULT_MAX_AGE, gt=0, description="seconds after which a child takes no new task"
    )
    cancel_grace: float = Field(default=1.0, ge=0, le=30)
    progress_interval: float = Field(default=1.0, gt=0)
    dir_timeout: float = Field(default=30.0, gt=0)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=0, le=65535, description="/livez /readyz /metrics")
    job_kinds: dict[str, str] = Field(
        default_factory=dict, description="extra fork-server job kinds: name → module:function"
    )
    transfer_kind: str = Field(default="transfer", description="the job kind that runs a task")
