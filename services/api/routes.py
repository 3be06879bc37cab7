"""The route table: one list drives both the router and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from services.api import handlers as h
from services.api.admin import routes as admin
from services.api.admin.handlers import intake_gate
from services.api.openapi import Operation, Param
from services.api.views import (
    Collection,
    JobInfo,
    JobInput,
    JobsInput,
    Problem,
    ResponseBodyJobs,
    ResponseDirEntries,
)
from shared.messaging.messages import TaskState

ID = Param("id", "path", "job id")
BAD = (400, ("invalid input: the message says what to fix", Problem))
AUTH = (401, ("missing or invalid credentials", Problem))
FORBID = (403, ("not allowed for this principal", Problem))
MISSING = (404, ("job not found or not yours", Problem))
PAGE = (
    Param(
        "offset",
        "query",
        "jobs to skip (newest first); default 0",
        required=False,
        schema={"type": "integer", "minimum": 0},
    ),
    Param(
        "limit",
        "query",
        "jobs in this page; default and most 1000 (the answer's total says how many match)",
        required=False,
        schema={"type": "integer", "minimum": 1, "maximum": 1000},
    ),
)
SLOW = (429, ("too many failed logins (or DAC lookups): wait Retry-After seconds", Problem))
PAUSED = (503, ("intake is paused by an administrator: retry later (Retry-After)", Problem))

ROUTES: list[tuple[Operation, Handler]] = [
    (
        Operation(
            "GET",
            "/v1/ping",
            "check API server health",
            {200: ("pong", {"type": "string", "enum": ["pong"]})},
            auth=False,
            tag="health",
        ),
        h.get_ping,
    ),
    (
        Operation(
            "POST",
            "/v1/job",
            "create a new stager job",
            {200: ("job accepted", JobInfo), **dict([BAD, AUTH, FORBID, SLOW, PAUSED])},
            request=JobInput,
        ),
        intake_gate(h.post_job),
    ),
    (
        Operation(
            "POST",
            "/v1/jobs",
            "create several jobs; 207 when some are rejected",
            {
                200: ("all jobs accepted", ResponseBodyJobs),
                207: ("some jobs rejected (see rejected)", ResponseBodyJobs),
                **dict([BAD, AUTH, FORBID, SLOW, PAUSED]),
            },
            request=JobsInput,
        ),
        intake_gate(h.post_jobs),
    ),
    (
        Operation(
            "GET",
            "/v1/jobs",
            "the caller's jobs, newest first, one page (offset, limit) of total",
            {200: ("jobs", ResponseBodyJobs), **dict([BAD, AUTH, SLOW])},
            params=PAGE,
        ),
        h.get_jobs,
    ),
    (
        Operation(
            "GET",
            "/v1/jobs/{status}",
            "the caller's jobs in one state, or those deleted (status deleted); paged as "
            "GET /v1/jobs",
            {200: ("jobs", ResponseBodyJobs), **dict([BAD, AUTH, SLOW])},
            params=(
                Param(
                    "status",
                    "path",
                    "job state",
                    schema={"type": "string", "enum": [s.value for s in TaskState] + [h.DELETED]},
                ),
                *PAGE,
            ),
        ),
        h.get_jobs,
    ),
    (
        Operation(
            "GET",
            "/v1/job/{id}",
            "one job",
            {200: ("the job", JobInfo), **dict([AUTH, MISSING, SLOW])},
            params=(ID,),
        ),
        h.get_job,
    ),
    (
        Operation(
            "DELETE",
            "/v1/job/{id}",
            "cancel an unfinished job (kept as cancelled); delete a finished one (kept, "
            "hidden from the lists, until retention)",
            {
                200: (
                    "the job as it is now: cancelled, or its final state with deletedAt",
                    JobInfo,
                ),
                409: ("the job was restarted meanwhile", Problem),
                **dict([AUTH, MISSING, SLOW]),
            },
            params=(ID,),
        ),
        h.delete_job,
    ),
    (
        Operation(
            "PUT",
            "/v1/job/scheduled/{id}",
            "restart a completed or archived job",
            {
                200: ("the restarted job", JobInfo),
                409: ("job not completed or archived", Problem),
                **dict([AUTH, MISSING, SLOW]),
            },
            params=(ID,),
        ),
        h.put_job_scheduled,
    ),
    (
        Operation(
            "GET",
            "/v1/dir",
            "list a local directory as the caller (answered by a worker)",
            {
                200: ("entries", ResponseDirEntries),
                **dict([BAD, AUTH, FORBID, SLOW]),
                404: ("no such directory", Problem),
                503: ("no worker answered", Problem),
            },
            params=(
                Param("path", "query", "absolute local directory path"),
                Param(
                    "user",
                    "query",
                    "service accounts: whose view (a user it may act for)",
                    required=False,
                ),
            ),
            tag="files",
        ),
        h.get_dir,
    ),
    (
        Operation(
            "GET",
            "/v1/dac/project/{number}",
            "the data-acquisition collection of a project",
            {
                200: ("collection", Collection),
                **dict([BAD, AUTH, SLOW]),
                404: ("collection not found", Problem),
                409: ("more than one collection", Problem),
                503: ("the repository did not answer", Problem),
            },
            params=(Param("number", "path", "project number, e.g. 3010000.01"),),
            tag="repository",
        ),
        h.get_dac,
    ),
    *admin.ROUTES,
]

EXTRA: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/openapi.json", h.get_openapi),
    ("GET", "/v1/docs", h.get_docs),
    ("GET", "/livez", h.livez),
    ("GET", "/readyz", h.readyz),
    ("GET", "/metrics", h.metrics),
]


def add_routes(app: web.Application) -> None:
    """Register every route."""
    for op, handler in ROUTES:
        app.router.add_route(op.method, op.path, handler)
    for method, path, handler in EXTRA:
        app.router.add_route(method, path, handler)
