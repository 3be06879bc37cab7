"""Base settings: pydantic-settings, ``STAGER_`` prefix, ``__`` nesting, secrets from files.

Any secret field (``FileSecret``) accepts either the value or ``file:/path/to/file``; the
file's content (trailing newline stripped) is used, so Kubernetes secrets mount as files.
Secrets are ``SecretStr``: ``repr`` and ``model_dump`` show ``**********``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigError
from shared.irods import IrodsAccount
from shared.messaging.signing import Role, Signer, Verifier, load_private, load_publics
from shared.messaging.topology import DEFAULT_PREFIX

FILE_PREFIX = "file:"


def read_secret(value: Any) -> Any:
    """Resolve ``file:/path`` to the file's content; other values pass through."""
    if isinstance(value, str) and value.startswith(FILE_PREFIX):
        path = Path(value[len(FILE_PREFIX) :])
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise ValueError(f"cannot read secret file {path}: {e.strerror}") from None
    return value


FileSecret = Annotated[SecretStr, BeforeValidator(read_secret)]


def read_text_setting(value: Any) -> Any:
    """Like ``read_secret`` for non-secret text (PEM public keys)."""
    return read_secret(value)


FileText = Annotated[str, BeforeValidator(read_text_setting)]


class BrokerSettings(BaseModel):
    """RabbitMQ connection and topology prefix."""

    url: FileSecret = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    prefix: str = Field(default=DEFAULT_PREFIX, pattern=r"^[A-Za-z0-9_.-]+$")
    confirm_timeout: float = Field(default=10.0, gt=0)


class IrodsSettings(IrodsAccount):
    """An iRODS account a service itself uses (DAC lookup, ingest): every
    :class:`~shared.irods.IrodsAccount` field (TLS included), local defaults, the password
    as a ``file:`` secret, and how long to wait for the server."""

    model_config = ConfigDict(frozen=False)

    host: str = "127.0.0.1"
    zone: str = "tempZone"
    user: str = "rods"
    password: FileSecret = SecretStr("")
    timeout: float = Field(default=10.0, gt=0)
    enabled: bool = True

    def account(self) -> IrodsAccount:
        """The account these settings describe (what :func:`shared.irods.connect` takes)."""
        return IrodsAccount(**self.model_dump(include=set(IrodsAccount.model_fields)))


class SigningSettings(BaseModel):
    """Message signing (:mod:`shared.messaging.signing`): this process's private key and
    the public keys it trusts per producer role (``STAGER_SIGNING__…``, PEM or ``file:``).

    Each ``*_keys`` field may hold several concatenated PEM public keys (rotation).
    """

    key: FileSecret | None = Field(
        default=None, description="this process's Ed25519 private key (PEM or file:/path)"
    )
    api_keys: FileText = Field(default="", description="trusted public keys of the API")
    worker_keys: FileText = Field(default="", description="trusted public keys of workers")
    ingest_keys: FileText = Field(default="", description="trusted public keys of ingest workers")
    control_max_age: float = Field(
        default=300.0, gt=0, description="seconds a cancel stays valid after the API signed it"
    )
    dirlist_max_age: float = Field(
        default=60.0, gt=0, description="seconds a directory-listing request stays valid"
    )
    task_max_age: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="seconds a task (retries included) stays valid after the API released it",
    )

    def signer(self, role: Role) -> Signer:
        """This process's signer; a clear :class:`ConfigError` when the key is missing."""
        if self.key is None or not self.key.get_secret_value():
            raise ConfigError(
                "STAGER_SIGNING__KEY is not set: give this service's message signing key "
                f"(make one with: stager genkey --signing {role.value} DIR)"
            )
        try:
            return Signer(role, load_private(self.key.get_secret_value()))
        except ValueError as e:
            raise ConfigError(f"STAGER_SIGNING__KEY: {e}") from None

    def verifier(self, *needed: Role) -> Verifier:
        """A verifier trusting the configured keys; every role in ``needed`` must have one."""
        texts = {
            Role.API: self.api_keys,
            Role.WORKER: self.worker_keys,
            Role.INGEST: self.ingest_keys,
        }
        trusted = {}
        for role, text in texts.items():
            if not text.strip():
                if role in needed:
                    raise ConfigError(
                        f"STAGER_SIGNING__{role.value.upper()}_KEYS is not set: give the "
                        f"{role.value} role's public signing key(s) (PEM or file:/path)"
                    )
                continue
            try:
                trusted[role] = load_publics(text)
            except ValueError as e:
                raise ConfigError(f"STAGER_SIGNING__{role.value.upper()}_KEYS: {e}") from None
        return Verifier(trusted)


#: Where the ingest job store lives unless ``STAGER_INGEST__DB_URL`` says otherwise: the
#: repository's ``.local/`` (as ``make up`` keeps it), not the current directory.
DEFAULT_INGEST_STORE = Path(__file__).resolve().parents[1] / ".local" / "ingest.sqlite"


#: The S3 endpoints ingest jobs may read from unless ``STAGER_INGEST__S3_ENDPOINTS`` says
#: otherwise: AWS S3 (the anchor's default endpoint and its regional forms), nothing else.
DEFAULT_S3_ENDPOINTS = ("s3.amazonaws.com", "s3.*.amazonaws.com", "s3-*.amazonaws.com")


class IngestStoreSettings(BaseModel):
    """The ingest job store and job policy: read by the API (REST), the ingest workers and
    the CLI alike (``STAGER_INGEST__…``); services nest it (or a subclass of it) as ``ingest``.
    """

    db_url: str = Field(
        default=f"sqlite+aiosqlite:///{DEFAULT_INGEST_STORE}",
        description="SQLAlchemy async URL of the ingest job store (default: the "
        "repository's .local/ingest.sqlite, wherever the process runs from)",
    )
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="directories an ingest root must lie under (symlinks resolved); empty: none",
    )
    handler_dir: str | None = Field(
        default=None, description="directory of the event handler files a REST job may name"
    )
    rest_handler_code: bool = Field(
        default=False, description="accept handler source (event_handler_data) over REST"
    )
    workers: bool = Field(
        default=True,
        description="an ingest worker serves this store; false: the API refuses ingest jobs (503)",
    )
    retention: float = Field(
        default=86400.0,
        ge=0,
        description="seconds a finished (completed, failed, stopped) ingest job is kept; 0: ever",
    )
    s3_endpoints: list[str] = Field(
        default=list(DEFAULT_S3_ENDPOINTS),
        description="the S3 endpoints (and proxies) ingest jobs may read from: host or "
        "host:port patterns, wildcards allowed ('*.example.org', '127.0.0.1:*'); a pattern "
        "without a port allows the standard one. Default: AWS S3 only. The API and the CLI "
        "refuse other jobs at submission, the ingest workers before they connect",
    )


class StagerSettings(BaseSettings):
    """Root of every service's settings; services subclass it."""

    model_config = SettingsConfigDict(
        env_prefix="STAGER_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    log_level: str = "info"
    log_json: bool = True
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    irods: IrodsSettings = Field(default_factory=IrodsSettings)
    signing: SigningSettings = Field(default_factory=SigningSettings)
