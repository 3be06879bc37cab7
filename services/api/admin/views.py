"""Pydantic bodies of the admin routes (requests validated, responses documented)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.admin.access import AdminRole
from services.api.store import Attempt, Task
from services.api.views import JobInfo, job_info
from shared.messaging.messages import RunningChild, TaskState, UnixUser


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdminMe(BaseModel):
    """Who the caller is to the admin view."""

    name: str
    kind: str
    role: AdminRole


class QueueInfo(BaseModel):
    """One queue: depth, consumers, unacknowledged deliveries and the oldest message's age
    (``unackedSource`` and ``oldestSource`` say how each is known)."""

    name: str
    purpose: str
    ready: int | None = Field(description="messages ready for delivery (null: unreadable)")
    unacked: int | None = Field(
        default=None, description="delivered to a consumer, not yet acknowledged (null: unknown)"
    )
    unackedSource: str = Field(default="", description="how unacked is obtained")
    consumers: int | None = None
    oldestAge: float | None = Field(default=None, description="seconds; null when unknown")
    oldestSource: str = Field(description="how oldestAge is obtained")
    error: str = ""


class QueuesView(BaseModel):
    """Every queue of the topology, plus the jobs held in the task store."""

    queues: list[QueueInfo]
    held: int = Field(description="jobs accepted, not yet released (fair dispatch)")
    heldOldestAge: float | None = None
    intakePaused: bool


class AdminJob(BaseModel):
    """A job as the admin view shows it: the v1 jobInfo plus owner and run."""

    job: JobInfo
    submitter: str
    run: int
    attempt: int
    dispatched: bool
    priority: int
    updatedAt: datetime


class AttemptView(BaseModel):
    """One attempt of one run, from its worker's events."""

    run: int
    attempt: int
    worker: str | None = Field(description="hostname:pid of the worker that ran it")
    startedAt: datetime | None = Field(description="its first active event (None: none seen)")
    endedAt: datetime | None = Field(description="None while it runs")
    outcome: str | None = Field(description="retry, archived, completed or cancelled")
    errorKind: str | None
    error: str | None


class AdminJobDetail(AdminJob):
    """One job with every attempt of every run the store recorded, and the latest error."""

    attempts: list[AttemptView]
    maxAttempts: int
    lastError: str
    lastFailedAt: datetime | None
    nextProcessAt: datetime | None
    completedAt: datetime | None
    deletedAt: datetime | None


class AdminJobs(BaseModel):
    """A page of jobs across users."""

    jobs: list[AdminJob]
    total: int
    offset: int
    limit: int


class JobFilterIn(_In):
    """Which jobs a bulk action applies to (all fields optional, combined with AND)."""

    user: UnixUser | None = None
    submitter: str | None = Field(default=None, max_length=128)
    state: list[TaskState] = Field(default_factory=list, max_length=6)
    minAge: float | None = Field(default=None, ge=0, description="created ≥ this many s ago")
    maxAge: float | None = Field(default=None, ge=0, description="created ≤ this many s ago")


BulkAction = Literal["restart", "cancel", "delete"]


class BulkIn(_In):
    """A bulk action over ``ids`` or over what ``filter`` matches (one of the two).

    ``confirm`` must equal the number of jobs the action will touch (a dry run answers 409
    with that number): a stale page or a mistyped filter cannot touch more than was seen."""

    action: BulkAction
    ids: list[str] | None = Field(default=None, max_length=100_000)
    filter: JobFilterIn | None = None
    confirm: int = Field(ge=0, description="how many jobs you expect to touch")


class ActionResult(BaseModel):
    """What one action did, per job."""

    action: str
    done: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(
        default_factory=dict, description="job id → why it was not changed"
    )


class IntakeIn(_In):
    """Pause (true) or resume (false) accepting new jobs."""

    paused: bool
    reason: str = Field(default="", max_length=300)


class IntakeView(BaseModel):
    """Whether new jobs are refused (503), since when and by whom."""

    paused: bool
    reason: str = ""
    updatedBy: str = ""
    updatedAt: datetime | None = None


class DeadLetter(BaseModel):
    """One message on the dead-letter queue (its body is never shown)."""

    messageId: str
    type: str
    signed: bool = Field(description="the API's signature verifies")
    rejectReason: str = Field(default="", description="why it does not verify")
    deathReason: str = ""
    fromQueue: str = ""
    deaths: int = 0
    deadAt: datetime | None = None
    jobState: TaskState | None = Field(default=None, description="null: not in the task store")
    stagerUser: str | None = None
    requeueable: bool


class DeadLetters(BaseModel):
    """The head of the dead-letter queue."""

    depth: int
    letters: list[DeadLetter]
    truncated: bool


class DeadLetterActionIn(_In):
    """Requeue or discard dead letters by message id (or all): ``confirm`` = how many."""

    ids: list[str] | None = Field(default=None, max_length=10_000)
    all: bool = False
    confirm: int = Field(ge=0)


class WorkerView(BaseModel):
    """A worker as its latest heartbeat describes it."""

    workerId: str
    hostname: str
    pid: int
    slots: int
    running: list[RunningChild]
    startedAt: datetime
    lastSeen: datetime
    age: float = Field(description="seconds since the last heartbeat")
    stopping: bool


class WorkersView(BaseModel):
    """Workers heard from within their heartbeat window."""

    workers: list[WorkerView]


def admin_job(t: Task) -> AdminJob:
    """The list view of a task."""
    return AdminJob(
        job=job_info(t),
        submitter=f"{t.submitter.kind.value}:{t.submitter.name}",
        run=t.run,
        attempt=t.attempt,
        dispatched=t.dispatched,
        priority=t.priority,
        updatedAt=t.updated_at,
    )


def admin_detail(t: Task, attempts: list[Attempt], max_attempts: int) -> AdminJobDetail:
    """The detail view of a task."""
    return AdminJobDetail(
        **admin_job(t).model_dump(),
        attempts=[
            AttemptView(
                run=a.run,
                attempt=a.attempt,
                worker=a.worker,
                startedAt=a.started_at,
                endedAt=a.ended_at,
                outcome=a.outcome,
                errorKind=a.error_kind,
                error=a.error,
            )
            for a in attempts
        ],
        maxAttempts=max_attempts,
        lastError=t.error,
        lastFailedAt=t.last_failed_at,
        nextProcessAt=t.next_process_at,
        completedAt=t.completed_at,
        deletedAt=t.deleted_at,
    )
