"""REST bodies of the v1 API (the Go stager's JSON names) and the REST view of a task.

Requests are validated by these models and the OpenAPI document is built from them
(``services.api.routes``).  What crosses AMQP (``TaskSpec``, ``DirEntry``, ...) is in
``shared.messaging.messages``; :func:`job_info` turns a stored task into the ``jobInfo``
clients see, which never includes ``drPass``.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from services.api.limits import TIMEOUT_MAX
from services.api.store import Task
from shared.messaging.messages import (
    ChecksumResult,
    DirEntry,
    FileError,
    JobFields,
    PlanSummary,
    Progress,
    TaskState,
)

#: Most jobs in one ``POST /v1/jobs``.
MAX_BATCH = 1000
#: C0 and C1 control characters and DEL: refused in free text that reaches mail headers
#: or logs (CR/LF would forge a header or a log line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Timestamp the Go stager used for "not applicable" (0001-01-01T00:00:00Z).
NO_TIME = -62135596800

# --- input ------------------------------------------------------------------------------


class JobInput(JobFields):
    """A submitted job (``POST /v1/job``).  ``drPass`` is plaintext or an envelope.

    ``timeout`` and ``timeout_noprogress`` may be left out, ``null`` or ``0``: the API
    then stores the operator's default (:class:`~services.api.limits.JobLimits`), so
    every task has finite limits unless the operator allows unlimited ones."""

    timeout: int | None = Field(  # type: ignore[assignment]
        default=None,
        ge=0,
        le=TIMEOUT_MAX,
        description="seconds per attempt; absent, null or 0: the default (24 h)",
    )
    timeout_noprogress: int | None = Field(  # type: ignore[assignment]
        default=None,
        ge=0,
        le=TIMEOUT_MAX,
        description="seconds without bytes or files advancing; absent, null or 0: the default",
    )

    drPass: SecretStr | None = Field(
        default=None,
        max_length=8192,
        description="repository password: plaintext (sealed at once) or a stgenv2 envelope "
        "bound to this job",
    )

    @field_validator("title", "drUser", "stagerUserEmail", mode="before")
    @classmethod
    def _no_control(cls, value: object) -> object:
        if isinstance(value, str) and _CONTROL.search(value):
            raise ValueError(
                "contains control characters (such as a line break or tab): remove them"
            )
        return value


class JobsInput(BaseModel):
    """``POST /v1/jobs`` body (the API validates each job separately: 207 on partial
    rejection)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[JobInput] = Field(min_length=1, max_length=MAX_BATCH)


# --- output -----------------------------------------------------------------------------


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
    dryRun: bool = False


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
    checksum: ChecksumResult | None = Field(
        default=None,
        description="verified: every file copied or found unchanged has a checksum both "
        "sides agree on; mismatch: some file's differed; not_verified: otherwise; null: "
        "no attempt has reported yet (or a dry run)",
    )
    checksumFiles: int = Field(default=0, description="files whose checksum agreed")
    fileErrorsTotal: int = Field(default=0, description="files that failed in the last attempt")
    fileErrors: list[FileError] | None = Field(
        default=None,
        description="the first 50 failed files with the reason for each (GET /v1/job/{id} only)",
    )
    dryRun: PlanSummary | None = Field(
        default=None,
        description="a dry run's plan: files and bytes to transfer, to skip, refused "
        "(conflict: exists and differs, or the name is taken), failing; the first 100 "
        "entries (GET /v1/job/{id} only)",
    )


class JobTimestamps(BaseModel):
    """Unix seconds; ``-62135596800`` when not applicable (as in the Go stager)."""

    createdAt: int
    lastFailedAt: int = NO_TIME
    nextProcessAt: int = NO_TIME
    completedAt: int = NO_TIME
    deletedAt: int = Field(
        default=NO_TIME,
        description="when its owner deleted the finished job (kept until retention)",
    )


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
    """``{"jobs": [...]}``; ``rejected`` lists the entries refused (207); a listing also
    says how many jobs match (``total``) and which page this is (``offset``, ``limit``)."""

    jobs: list[JobInfo]
    rejected: list[JobRejection] = Field(default_factory=list)
    total: int | None = Field(default=None, description="jobs matching (listings only)")
    offset: int | None = Field(default=None, description="jobs skipped (listings only)")
    limit: int | None = Field(default=None, description="page size (listings only)")


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


class ResponseDirEntries(BaseModel):
    """Go's responseDirEntries."""

    entries: list[DirEntry]


# --- the REST view of a task ------------------------------------------------------------


def job_info(task: Task, *, detail: bool = False) -> JobInfo:
    """The v1 ``jobInfo`` view of a stored task (never includes ``drPass``); ``detail``
    adds the failed files and a dry run's plan."""
    p = task.progress or Progress()
    r = task.report
    return JobInfo(
        id=task.id,
        timestamps=JobTimestamps(
            createdAt=_ts(task.created_at),
            lastFailedAt=_ts(task.last_failed_at),
            nextProcessAt=_ts(task.next_process_at),
            completedAt=_ts(task.completed_at),
            deletedAt=_ts(task.deleted_at),
        ),
        data=JobData.model_validate(task.spec.model_dump(exclude={"drPass"})),
        status=JobStatus(
            status=task.state,
            error=task.error,
            attempts=task.attempt,
            progress=JobProgress(
                total=p.files_total,
                processed=p.files_processed,
                failed=p.files_failed,
                bytesTotal=p.bytes_total,
                bytesDone=p.bytes_done,
                rate=p.rate,
                eta=p.eta,
            ),
            checksum=r.checksum if r else None,
            checksumFiles=r.checksum_files if r else 0,
            fileErrorsTotal=r.file_errors_total if r else 0,
            fileErrors=list(r.file_errors) if r and detail else None,
            dryRun=r.plan if r and detail else None,
        ),
    )


def _ts(value: datetime | None) -> int:
    """Unix seconds, or :data:`NO_TIME` (a task's timestamps are aware, or None)."""
    return NO_TIME if value is None else int(value.timestamp())
