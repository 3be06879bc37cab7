"""Settings of the worker (env ``STAGER_...``, nested with ``__``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from services.isync import TransferOptions
from services.worker.credentials import RepoCredential
from services.worker.forkserver.login import LoginSettings
from services.worker.forkserver.pool import ChildPoolSettings
from services.worker.mailer import SmtpSettings
from services.worker.retries import RetryPolicy
from shared.messaging.topology import DEFAULT_DELIVERY_LIMIT
from shared.settings import StagerSettings
from shared.unix_users import DEFAULT_MAX_UID, DEFAULT_MIN_UID


class TransferDefaults(TransferOptions):
    """isync's ``TransferOptions`` for every worker transfer (``STAGER_TRANSFER__…``).

    Only the defaults differ from isync's CLI: recursive, with checksums verified.
    ``resume_dir`` is the user's directory under ``state_dir``, set per task.
    """

    recursive: bool = True
    verify_checksum: bool = True


class ChildSettings(ChildPoolSettings, LoginSettings):
    """The ``children`` group: reuse of a user's child (``linger`` …) and its login
    (``umask``, ``env``, ``login_defs``)."""


class WorkerSettings(StagerSettings):
    """Everything the worker reads; secrets are redacted in ``repr``."""

    concurrency: int = Field(default=4, ge=1, le=256, description="transfers at once = prefetch")
    min_uid: int = Field(default=DEFAULT_MIN_UID, ge=1, description="lowest uid a task may run as")
    max_uid: int = Field(
        default=DEFAULT_MAX_UID, ge=1, description="highest uid a task may run as (as the API's)"
    )
    delivery_limit: int = Field(default=DEFAULT_DELIVERY_LIMIT, ge=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
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
    children: ChildSettings = Field(
        default_factory=ChildSettings, description="a child's reuse, umask and environment"
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
