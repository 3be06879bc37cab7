"""Pydantic models: the v1 task JSON (Go stager names), job views and every AMQP body.

Secrets: a plaintext ``drPass`` only ever lives in ``JobInput.drPass`` as a ``SecretStr``
(it dumps as ``**********``).  The API seals it at once (``shared.crypto``) and from then
on only ``TaskSpec`` travels: its ``drPass`` is an envelope string, never plaintext.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.irods import is_irods_path, strip_prefix
from shared.unix_users import USER_NAME_RE

# --- limits and formats ---------------------------------------------------------------

TITLE_MAX = 256
MAX_BATCH = 1000
PATH_MAX = 4096
#: ``stgenv1.<kid>.<wrapped key>.<nonce>.<ciphertext>``, base64url parts without padding.
ENVELOPE_RE = r"^stgenv1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22,}$"
#: Timestamp the Go stager used for "not applicable" (0001-01-01T00:00:00Z).
NO_TIME = -62135596800

Envelope = Annotated[str, StringConstraints(pattern=ENVELOPE_RE, max_length=8192)]
UnixUser = Annotated[str, StringConstraints(pattern=USER_NAME_RE)]


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


def check_abs_path(value: str, what: str) -> str:
    """Validate an absolute, normalised path; the message says what to fix."""
    path = strip_prefix(value)
    if not path:
        raise ValueError(f"{what} is empty: give an absolute path such as /project/...")
    if "\x00" in path:
        raise ValueError(f"{what} contains a NUL byte: remove it")
    if not path.startswith("/"):
        raise ValueError(f"{what} {value!r} is relative: give an absolute path starting with /")
    if ".." in path.split("/"):
        raise ValueError(f"{what} {value!r} contains '..': give the path without '..'")
    if len(path) > PATH_MAX:
        raise ValueError(f"{what} is longer than {PATH_MAX} characters: shorten it")
    return value


class TaskState(StrEnum):
    """Task life cycle: pending → active → completed | retry → pending | archived | cancelled."""

    PENDING = "pending"
    ACTIVE = "active"
    RETRY = "retry"
    COMPLETED = "completed"
    ARCHIVED = "archived"
    CANCELLED = "cancelled"


FINAL_STATES = frozenset({TaskState.COMPLETED, TaskState.ARCHIVED, TaskState.CANCELLED})
RESTARTABLE_STATES = frozenset({TaskState.COMPLETED, TaskState.ARCHIVED})


class PrincipalKind(StrEnum):
    """Who submitted: a service account (HTTP basic) or a user (OIDC token)."""

    SERVICE = "service"
    USER = "user"


# --- v1 REST input ----------------------------------------------------------------------


class _JobFields(BaseModel):
    """Fields shared by the submitted job and its sealed form (Go JSON names)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=False)

    title: str = Field(max_length=TITLE_MAX, description="short description of the job")
    stagerUser: UnixUser = Field(description="Unix user the transfer runs as")
    stagerUserEmail: str | None = Field(
        default=None,
        max_length=254,
        validation_alias=AliasChoices("stagerUserEmail", "stagerEmail"),
        description="email of the stager user (``stagerEmail`` accepted too)",
    )
    drUser: str = Field(
        min_length=1, max_length=256, description="repository (iRODS) data-access account"
    )
    srcURL: str = Field(description="local path, or iRODS path prefixed with irods: (or i:)")
    dstURL: str = Field(description="local path, or iRODS path prefixed with irods: (or i:)")
    timeout: int = Field(
        default=0, ge=0, le=30 * 86400, description="seconds per attempt, 0 = no limit"
    )
    timeout_noprogress: int = Field(
        default=0,
        ge=0,
        le=30 * 86400,
        description="seconds without bytes or files advancing, 0 = no limit",
    )

    @field_validator("stagerUserEmail")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError(f"{value!r} is not an email address: use name@example.org")
        return value

    @field_validator("srcURL")
    @classmethod
    def _src(cls, value: str) -> str:
        return check_abs_path(value, "srcURL")

    @field_validator("dstURL")
    @classmethod
    def _dst(cls, value: str) -> str:
        return check_abs_path(value, "dstURL")

    @model_validator(mode="after")
    def _one_side_irods(self) -> _JobFields:
        src, dst = is_irods_path(self.srcURL), is_irods_path(self.dstURL)
        if src == dst:
            side = "iRODS" if src else "local"
            raise ValueError(
                f"srcURL and dstURL are both {side}: one side must be an iRODS path "
                "(prefix irods:) and the other a local path"
            )
        return self

    @property
    def direction(self) -> Literal["upload", "download"]:
        """``upload`` (local → iRODS) or ``download`` (iRODS → local)."""
        return "upload" if is_irods_path(self.dstURL) else "download"


class JobInput(_JobFields):
    """A submitted job (``POST /v1/job``).  ``drPass`` is plaintext or an envelope."""

    drPass: SecretStr | None = Field(
        default=None,
        max_length=8192,
        description="repository password: plaintext (sealed at once) or a stgenv1 envelope",
    )


class JobsInput(BaseModel):
    """``POST /v1/jobs`` body (the API validates each job separately: 207 on partial
    rejection)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobInput] = Field(min_length=1, max_length=MAX_BATCH)


class TaskSpec(_JobFields):
    """The sealed task: what is stored and queued.  ``drPass`` is an envelope or absent."""

    drPass: Envelope | None = None


# --- v1 REST output ---------------------------------------------------------------------


class JobData(BaseModel):
    """Job data as shown to clients: never includes ``drPass``."""

    title: str
    stagerUser: str
    stagerUserEmail: str | None = None
    drUser: str
    srcURL: str
    dstURL: str
    timeout: int = 0
    timeout_noprogress: int = 0


class JobProgress(BaseModel):
    """Go's jobProgress (files) plus bytes, rate and ETA."""

    total: int = 0
    processed: int = 0
    failed: int = 0
    bytesTotal: int = 0
    bytesDone: int = 0
    rate: float = Field(default=0.0, description="bytes per second")
    eta: float | None = Field(default=None, description="seconds to completion, if known")


class JobStatus(BaseModel):
    """Go's jobStatus."""

    status: TaskState
    error: str = ""
    attempts: int = 0
    progress: JobProgress = Field(default_factory=JobProgress)


class JobTimestamps(BaseModel):
    """Unix seconds; ``-62135596800`` when not applicable (as in the Go stager)."""

    createdAt: int
    lastFailedAt: int = NO_TIME
    nextProcessAt: int = NO_TIME
    completedAt: int = NO_TIME


class JobInfo(BaseModel):
    """Go's jobInfo."""

    id: str
    timestamps: JobTimestamps
    data: JobData
    status: JobStatus


class JobRejection(BaseModel):
    """One rejected entry of a ``POST /v1/jobs`` batch."""

    index: int
    status: int
    errorMessage: str


class ResponseBodyJobs(BaseModel):
    """``{"jobs": [...]}``; ``rejected`` lists the entries refused (207)."""

    jobs: list[JobInfo]
    rejected: list[JobRejection] = Field(default_factory=list)


class Problem(BaseModel):
    """Error body: Go's responseBody500 names plus RFC 9457 fields."""

    title: str
    status: int
    detail: str
    errorMessage: str
    exitCode: int = 0
    errors: list[dict[str, object]] = Field(default_factory=list)


class Collection(BaseModel):
    """Go's collection."""

    collName: str


class DirEntry(BaseModel):
    """Go's dirEntry."""

    name: str
    type: Literal["regular", "dir", "symlink", "unknown"]
    size: int


class ResponseDirEntries(BaseModel):
    """Go's responseDirEntries."""

    entries: list[DirEntry]


# --- AMQP bodies (every one carries v: 1) -----------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1


class Submitter(BaseModel):
    """Who submitted a task: the worker uses a service account's own repository
    credential when ``drPass`` is absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PrincipalKind
    name: str


class TaskMessage(_Body):
    """api → worker: run one attempt of a task (queue ``stager.tasks`` or its priority twin).

    ``run`` counts restarts (``PUT /v1/job/scheduled/{id}``); ``attempt`` counts tries
    within a run (1-based).  Events echo both.
    """

    task_id: str
    run: int = Field(default=1, ge=1)
    attempt: int = Field(default=1, ge=1)
    priority: int = Field(default=0, ge=0, le=9)
    submitter: Submitter
    task: TaskSpec
    created_at: datetime = Field(default_factory=utcnow)


class Progress(BaseModel):
    """Transfer progress carried by a TaskEvent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files_total: int = Field(default=0, ge=0)
    files_processed: int = Field(default=0, ge=0)
    files_failed: int = Field(default=0, ge=0)
    bytes_total: int = Field(default=0, ge=0)
    bytes_done: int = Field(default=0, ge=0)
    rate: float = Field(default=0.0, ge=0, description="bytes per second")
    eta: float | None = Field(default=None, ge=0, description="seconds to completion")


class TaskEvent(_Body):
    """worker → api: a state change or progress of one attempt.

    Applied idempotently: the API keeps the highest ``(run, attempt, seq)`` seen and
    ignores anything not newer.  ``seq`` must grow within an attempt *also across a
    redelivery of the same attempt* (after a worker crash): use a clock-based counter,
    e.g. ``time.time_ns() // 1000``.  ``next_at`` is when a ``retry`` runs again.
    """

    task_id: str
    run: int = Field(default=1, ge=1)
    attempt: int = Field(ge=1)
    seq: int = Field(ge=0)
    state: TaskState
    progress: Progress | None = None
    error: str | None = Field(default=None, max_length=4000)
    next_at: datetime | None = None
    at: datetime = Field(default_factory=utcnow)


class ControlMessage(_Body):
    """api → every worker (fanout): stop a running task now."""

    action: Literal["cancel"] = "cancel"
    task_id: str


class DirListRequest(_Body):
    """api → worker (``stager.rpc.dir``, reply-to + correlation_id): list ``path`` as
    ``user``.  Local paths only; ``limit`` caps the number of entries returned."""

    user: UnixUser
    path: str
    limit: int = Field(default=10000, ge=1, le=100000)


DirListErrorKind = Literal[
    "not_found", "permission_denied", "not_a_directory", "invalid", "internal"
]


class DirListReply(_Body):
    """worker → api: the listing, or an error kind plus a human message."""

    ok: bool
    entries: list[DirEntry] = Field(default_factory=list)
    truncated: bool = False
    error_kind: DirListErrorKind | None = None
    error: str | None = None
