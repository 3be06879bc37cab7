"""Pydantic models of every AMQP body, and the task JSON (Go stager names) they carry.

Secrets: a plaintext ``drPass`` only ever lives in the API's REST input model, as a
``SecretStr`` (it dumps as ``**********``).  The API seals it at once (``shared.crypto``)
and from then on only ``TaskSpec`` travels: its ``drPass`` is an envelope string, never
plaintext.  The REST bodies (job input, job views, problems) are the API's own.
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
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.crypto import Binding
from shared.errors import FileErrorKind
from shared.irods import is_irods_path, strip_prefix
from shared.unix_users import USER_NAME_RE

# --- limits and formats ---------------------------------------------------------------

TITLE_MAX = 256
PATH_MAX = 4096
#: ``stgenv2.<kid>.<binding>.<wrapped key>.<nonce>.<ciphertext>`` (``shared.crypto``),
#: base64url parts without padding. The retired unbound ``stgenv1`` still parses, so a
#: stored or queued task carrying one loads and fails with ``shared.crypto``'s message.
ENVELOPE_RE = (
    r"^(stgenv2\.[0-9a-f]{16}\.[A-Za-z0-9_-]+|stgenv1\.[0-9a-f]{16})"
    r"\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22,}$"
)

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
    if any("\ud800" <= c <= "\udfff" for c in path):
        raise ValueError(f"{what} is not valid Unicode (a lone surrogate): send it as UTF-8")
    if not path.startswith("/"):
        raise ValueError(f"{what} is relative: give an absolute path starting with /")
    if ".." in path.split("/"):
        raise ValueError(f"{what} contains '..': give the path without '..'")
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


class PrincipalKind(StrEnum):
    """Who submitted: a service account (HTTP basic) or a user (OIDC token)."""

    SERVICE = "service"
    USER = "user"


# --- the task (v1 job JSON) -------------------------------------------------------------


class JobFields(BaseModel):
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
    dryRun: bool = Field(
        default=False,
        description="only plan: report what would be transferred, skipped or refused "
        "(isync --dry-run, run as the user) and move nothing",
    )

    @field_validator("stagerUserEmail")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("not an email address: use the form name@example.org")
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
    def _one_side_irods(self) -> JobFields:
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


class TaskSpec(JobFields):
    """The sealed task: what is stored and queued.  ``drPass`` is an envelope or absent."""

    drPass: Envelope | None = None


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


def credential_binding(stager_user: str, dr_user: str, submitter: Submitter) -> Binding:
    """What a job's ``drPass`` envelope must be bound to (``shared.crypto.Binding``): its
    Unix user, its repository account and, when a service account submits it, that
    account's name (``None`` for a user's own job). The API seals and checks with it; the
    worker checks it again against the signed task before it opens the envelope."""
    service = submitter.name if submitter.kind is PrincipalKind.SERVICE else None
    return Binding(stager_user=stager_user, dr_user=dr_user, submitter=service)


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


#: Most failed files a report names (the rest are counted).
MAX_FILE_ERRORS = 50
#: Most dry-run entries a report lists (the rest are counted).
MAX_PLAN_ENTRIES = 100
#: Longest path or error text in a report (longer ones are cut, marked with "…").
REPORT_TEXT_MAX = 1024


def clip(text: str, limit: int = REPORT_TEXT_MAX) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with "…"."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FileError(BaseModel):
    """One file that failed: its path, the readable reason, and why in one word
    (``shared.errors.FileErrorKind``; ``other`` in reports made before it existed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(max_length=REPORT_TEXT_MAX)
    error: str = Field(max_length=REPORT_TEXT_MAX)
    kind: FileErrorKind = "other"


PlanAction = Literal["transfer", "skip", "conflict", "fail"]


class PlanEntry(BaseModel):
    """One file of a dry run: what would happen to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    src: str = Field(max_length=REPORT_TEXT_MAX)
    dst: str = Field(max_length=REPORT_TEXT_MAX)
    action: PlanAction
    size: int = Field(default=0, ge=0)
    reason: str | None = Field(default=None, max_length=REPORT_TEXT_MAX)


class PlanSummary(BaseModel):
    """What a dry run found: counts and bytes per action, and the first entries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transfer_files: int = Field(default=0, ge=0)
    transfer_bytes: int = Field(default=0, ge=0)
    skip_files: int = Field(default=0, ge=0)
    skip_bytes: int = Field(default=0, ge=0)
    #: exists at the destination and differs, or the name is taken by the other kind
    #: (a folder where a file goes): refused, nothing is overwritten
    conflict_files: int = Field(default=0, ge=0)
    fail_files: int = Field(default=0, ge=0)
    entries: list[PlanEntry] = Field(default_factory=list, max_length=MAX_PLAN_ENTRIES)
    entries_total: int = Field(default=0, ge=0)


ChecksumResult = Literal["verified", "not_verified", "mismatch"]


class TaskReport(BaseModel):
    """What an attempt's files came to, beyond the counts: the failed files (the first
    :data:`MAX_FILE_ERRORS`, and how many in all), the checksum verification result and,
    for a dry run, the plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file_errors: list[FileError] = Field(default_factory=list, max_length=MAX_FILE_ERRORS)
    file_errors_total: int = Field(default=0, ge=0)
    #: ``verified``: every file copied or found unchanged has a checksum both sides agree
    #: on; ``mismatch``: some file's checksum differed; ``not_verified``: otherwise.
    checksum: ChecksumResult | None = None
    checksum_files: int = Field(default=0, ge=0, description="files whose checksum agreed")
    plan: PlanSummary | None = None


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
    report: TaskReport | None = None
    worker: str | None = Field(
        default=None, max_length=128, description="hostname:pid of the worker (as its heartbeat)"
    )
    error_kind: str | None = Field(
        default=None, max_length=32, description="the ErrorKind of a failed attempt"
    )


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


class DirEntry(BaseModel):
    """Go's dirEntry, plus the modification time when the lister knows it."""

    name: str
    type: Literal["regular", "dir", "symlink", "unknown"]
    size: int
    mtime: int | None = Field(
        default=None, exclude_if=lambda v: v is None, description="modified, Unix seconds"
    )


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


class RunningChild(BaseModel):
    """One task a worker is running, and the child process running it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(max_length=64)
    pid: int = Field(ge=1)
    running_s: float = Field(ge=0, description="seconds since the child started")


class WorkerStatus(_Body):
    """worker → every API replica (``<p>.workers`` fanout), every
    ``HEARTBEAT_INTERVAL`` seconds and once when it stops (``stopping``): who it is, how
    many transfers it runs at once and what it runs now. Signed as role worker."""

    worker_id: str = Field(max_length=128, description="hostname:pid of the worker process")
    hostname: str = Field(max_length=255)
    pid: int = Field(ge=1)
    slots: int = Field(ge=0, description="transfers at once (concurrency)")
    running: list[RunningChild] = Field(default_factory=list, max_length=1024)
    interval: float = Field(gt=0, description="seconds until the next heartbeat")
    stopping: bool = False
    started_at: datetime
    at: datetime = Field(default_factory=utcnow)
