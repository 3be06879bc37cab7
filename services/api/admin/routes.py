"""The admin routes (documented like every other: ``services.api.openapi``) and the
cleanup context that consumes worker heartbeats."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from services.api.admin import handlers as a
from services.api.admin.views import (
    ActionResult,
    AdminJobDetail,
    AdminJobs,
    AdminMe,
    BulkIn,
    DeadLetterActionIn,
    DeadLetters,
    IntakeIn,
    IntakeView,
    QueuesView,
    WorkersView,
)
from services.api.admin.workers import HeartbeatBoard
from services.api.keys import BUS, GATE, SETTINGS
from services.api.openapi import Operation, Param
from services.api.views import Problem
from shared.logging import get_logger
from shared.messaging.signing import Role, Verifier, load_private, load_publics
from shared.messaging.topology import declare_heartbeat_queue

log = get_logger("stager.api.admin")

BAD = (400, ("invalid input: the message says what to fix", Problem))
AUTH = (401, ("missing or invalid credentials", Problem))
FORBID = (403, ("not an administrator (or read-only for an action)", Problem))
MISSING = (404, ("job not found", Problem))
CONFLICT = (409, ("not changed: the message says why (or what to confirm)", Problem))
DOWN = (503, ("the broker is unavailable", Problem))
VIEW = dict([AUTH, FORBID])
ACT = dict([BAD, AUTH, FORBID])
ID = Param("id", "path", "job id")
TAG = "admin"
_AGE = {"type": "number", "minimum": 0}


def _op(method: str, path: str, summary: str, responses: dict, **kw: object) -> Operation:
    return Operation(method, path, summary, responses, tag=TAG, **kw)  # type: ignore[arg-type]


JOB_QUERY = (
    Param("user", "query", "only jobs run as this Unix user", required=False),
    Param("submitter", "query", "only jobs submitted by this principal name", required=False),
    Param(
        "state",
        "query",
        "states, comma-separated or repeated (pending, active, retry, completed, archived, "
        "cancelled; deleted: only jobs their owner deleted)",
        required=False,
    ),
    Param("minAge", "query", "created at least this many seconds ago", False, _AGE),
    Param("maxAge", "query", "created at most this many seconds ago", False, _AGE),
    Param("limit", "query", "page size (at most 500, default 50)", False, _AGE),
    Param("offset", "query", "jobs to skip", False, _AGE),
)

ROUTES: list[tuple[Operation, Handler]] = [
    (
        _op("GET", "/v1/admin/me", "the caller's admin role", {200: ("role", AdminMe), **VIEW}),
        a.get_me,
    ),
    (
        _op(
            "GET",
            "/v1/admin/queues",
            "queues: depth, consumers, oldest age; jobs held for fair dispatch",
            {200: ("queues", QueuesView), **VIEW},
        ),
        a.get_queues,
    ),
    (
        _op(
            "GET",
            "/v1/admin/workers",
            "workers heard from recently, with their running children",
            {200: ("workers", WorkersView), **VIEW},
        ),
        a.get_workers,
    ),
    (
        _op(
            "GET",
            "/v1/admin/jobs",
            "every user's jobs, filtered by user, state and age, paged",
            {200: ("jobs", AdminJobs), **dict([BAD, AUTH, FORBID])},
            params=JOB_QUERY,
        ),
        a.get_jobs,
    ),
    (
        _op(
            "POST",
            "/v1/admin/jobs/bulk",
            "restart, cancel or delete many jobs (confirm = how many)",
            {200: ("what was done", ActionResult), **ACT, **dict([CONFLICT]), 503: DOWN[1]},
            request=BulkIn,
        ),
        a.post_bulk,
    ),
    (
        _op(
            "GET",
            "/v1/admin/jobs/{id}",
            "one job of any user, with its attempts and last error",
            {200: ("the job", AdminJobDetail), **VIEW, **dict([MISSING])},
            params=(ID,),
        ),
        a.get_job,
    ),
    (
        _op(
            "POST",
            "/v1/admin/jobs/{id}/restart",
            "restart a finished job (completed, archived or cancelled) as a new run",
            {200: ("restarted", ActionResult), **VIEW, **dict([MISSING, CONFLICT])},
            params=(ID,),
        ),
        a.post_restart,
    ),
    (
        _op(
            "POST",
            "/v1/admin/jobs/{id}/cancel",
            "cancel an unfinished job (its worker stops it)",
            {200: ("cancelled", ActionResult), **VIEW, **dict([MISSING, CONFLICT]), 503: DOWN[1]},
            params=(ID,),
        ),
        a.post_cancel,
    ),
    (
        _op(
            "DELETE",
            "/v1/admin/jobs/{id}",
            "delete a finished job (hidden, purged at retention)",
            {200: ("deleted", ActionResult), **VIEW, **dict([MISSING, CONFLICT])},
            params=(ID,),
        ),
        a.delete_job,
    ),
    (
        _op(
            "GET",
            "/v1/admin/deadletters",
            "the head of the dead-letter queue (bodies never shown)",
            {200: ("dead letters", DeadLetters), **ACT, 503: DOWN[1]},
            params=(Param("limit", "query", "how many to read from the head", False, _AGE),),
        ),
        a.get_dead_letters,
    ),
    (
        _op(
            "POST",
            "/v1/admin/deadletters/requeue",
            "requeue dead letters: a new run of each job from the task store, signed afresh",
            {200: ("what was done", ActionResult), **ACT, **dict([CONFLICT]), 503: DOWN[1]},
            request=DeadLetterActionIn,
        ),
        a.post_dead_requeue,
    ),
    (
        _op(
            "POST",
            "/v1/admin/deadletters/discard",
            "discard dead letters (their unfinished jobs are archived)",
            {200: ("what was done", ActionResult), **ACT, **dict([CONFLICT]), 503: DOWN[1]},
            request=DeadLetterActionIn,
        ),
        a.post_dead_discard,
    ),
    (
        _op(
            "GET",
            "/v1/admin/intake",
            "whether new jobs are accepted",
            {200: ("intake", IntakeView), **VIEW},
        ),
        a.get_intake,
    ),
    (
        _op(
            "PUT",
            "/v1/admin/intake",
            "pause (new jobs get 503) or resume intake; running jobs continue",
            {200: ("intake", IntakeView), **ACT},
            request=IntakeIn,
        ),
        a.put_intake,
    ),
]


def _dead_verifier(app: web.Application) -> Verifier:
    """Trusts the API's own signing key (and any ``signing.api_keys``: rotation)."""
    signing = app[SETTINGS].signing
    keys = []
    if signing.key is not None:
        keys.append(load_private(signing.key.get_secret_value()).public_key())
    if signing.api_keys:
        keys += load_publics(signing.api_keys)
    return Verifier({Role.API: keys})


async def admin_ctx(app: web.Application) -> AsyncIterator[None]:
    """The heartbeat board and its consumer (after the bus: ``services.api.app``)."""
    board = HeartbeatBoard(app[GATE])
    app[a.BOARD] = board
    app[a.DEAD_VERIFIER] = _dead_verifier(app)
    bus = app[BUS]
    channel = None
    if bus.connection is not None:
        channel = await bus.connection.channel()
        queue = await declare_heartbeat_queue(channel, bus.names)
        await queue.consume(board.on_message, no_ack=True)
    yield
    if channel is not None:
        with contextlib.suppress(Exception):
            await channel.close()
