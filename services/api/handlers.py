"""v1 handlers (the Go stager's paths and JSON names), health and metrics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ValidationError

from services.api.auth import Principal, authorize_stager_user
from services.api.keys import AUTH, BUS, DAC, DISPATCHER, METRICS, SEALER, SETTINGS, SPEC, STORE
from services.api.middleware import http_status
from services.api.openapi import render_html
from services.api.store import FINAL_STATES, RESTARTABLE_STATES, Task, new_task_id
from services.api.views import (
    MAX_BATCH,
    Collection,
    JobInput,
    JobRejection,
    ResponseBodyJobs,
    ResponseDirEntries,
    job_info,
)
from shared.crypto import is_envelope
from shared.errors import (
    Conflict,
    ErrorKind,
    Forbidden,
    InvalidInput,
    NotFound,
    StagerError,
    Unavailable,
)
from shared.irods import is_irods_path
from shared.json_input import parse_json
from shared.logging import get_logger
from shared.messaging.messages import (
    ControlMessage,
    DirListRequest,
    PrincipalKind,
    TaskSpec,
    TaskState,
    check_abs_path,
    credential_binding,
)

log = get_logger("stager.api")

_DIR_ERRORS: dict[str, type[StagerError]] = {
    "not_found": NotFound,
    "permission_denied": Forbidden,
    "not_a_directory": InvalidInput,
    "invalid": InvalidInput,
}


def ok(model: BaseModel | list[Any] | str, status: int = 200) -> web.Response:
    """A JSON response from a model."""
    text = model.model_dump_json() if isinstance(model, BaseModel) else json.dumps(model)
    return web.Response(status=status, text=text, content_type="application/json")


async def principal(request: web.Request) -> Principal:
    """The authenticated caller (raises Unauthenticated)."""
    return await request.app[AUTH].authenticate_request(request)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON within :data:`~shared.json_input.DEFAULT_LIMITS` (depth,
    entries, string length), or InvalidInput saying what is wrong."""
    return parse_json(await request.read())


def visible(task: Task, p: Principal) -> bool:
    """A service account sees what it submitted; a user sees jobs run as them."""
    if p.kind == PrincipalKind.SERVICE:
        return task.submitter == p.submitter
    return task.stager_user == p.name


async def own_task(request: web.Request, p: Principal) -> Task:
    """The task named in the path if the caller may see it, else NotFound."""
    task_id = request.match_info["id"]
    task = await request.app[STORE].get(task_id) if len(task_id) <= 64 else None
    if task is None or not visible(task, p):
        raise NotFound(f"job {task_id} does not exist or is not yours: check the id")
    return task


def seal_job(app: web.Application, p: Principal, raw: Any) -> TaskSpec:
    """Validate one submitted job, check who may run it, seal ``drPass``; every refusal
    is a StagerError (a validation error becomes InvalidInput with field details)."""
    try:
        return _seal_job(app, p, raw)
    except ValidationError as e:
        raise InvalidInput.from_validation(e) from None


def _seal_job(app: web.Application, p: Principal, raw: Any) -> TaskSpec:
    if not isinstance(raw, dict):
        raise InvalidInput("a job must be a JSON object with srcURL, dstURL, stagerUser, ...")
    settings = app[SETTINGS]
    job = JobInput.model_validate(raw)
    authorize_stager_user(p, job.stagerUser, settings.auth)
    envelope: str | None = None
    if job.drPass is not None:
        secret = job.drPass.get_secret_value()
        if not secret:
            raise InvalidInput("drPass is empty: give the repository password or leave it out")
        bound = credential_binding(job.stagerUser, job.drUser, p.submitter)
        sealer = app[SEALER]
        envelope = (
            sealer.check(secret, bound) if is_envelope(secret) else sealer.seal(secret, bound)
        )
    elif p.kind == PrincipalKind.USER and settings.require_drpass_for_users:
        raise InvalidInput("drPass is required: give your repository data-access password")
    fields = job.model_dump(exclude={"drPass"})
    fields["timeout"] = settings.jobs.timeout(job.timeout)
    fields["timeout_noprogress"] = settings.jobs.timeout_noprogress(job.timeout_noprogress)
    return TaskSpec.model_validate({**fields, "drPass": envelope})


def _priority(app: web.Application, p: Principal) -> int:
    return app[SETTINGS].service_priority if p.kind == PrincipalKind.SERVICE else 0


def _submitted(app: web.Application, tasks: list[Task]) -> None:
    app[METRICS].jobs_total.labels(TaskState.PENDING.value).inc(len(tasks))
    app[DISPATCHER].wake()


async def get_ping(request: web.Request) -> web.Response:
    """``GET /v1/ping``."""
    return ok("pong")


async def post_job(request: web.Request) -> web.Response:
    """``POST /v1/job``: validate, seal, store; the dispatcher releases it."""
    p = await principal(request)
    raw = await read_json(request)
    try:
        spec = seal_job(request.app, p, raw)
    except StagerError as e:
        request.app[METRICS].rejected_total.labels(str(http_status(e))).inc()
        raise
    tasks = await request.app[STORE].add(
        p.submitter, [(new_task_id(), spec)], priority=_priority(request.app, p)
    )
    _submitted(request.app, tasks)
    return ok(job_info(tasks[0]))


async def post_jobs(request: web.Request) -> web.Response:
    """``POST /v1/jobs``: 200 when all were accepted, 207 when some were rejected."""
    p = await principal(request)
    raw = await read_json(request)
    if not isinstance(raw, dict) or not isinstance(raw.get("jobs"), list):
        raise InvalidInput('body must be {"jobs": [job, ...]}')
    items: list[Any] = raw["jobs"]
    extra = set(raw) - {"jobs"}
    if extra:
        raise InvalidInput(f"unknown field(s) {sorted(extra)}: the body has only 'jobs'")
    if not items:
        raise InvalidInput("jobs is empty: give at least one job")
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"too many jobs ({len(items)}): send at most {MAX_BATCH} per request")
    accepted: list[tuple[str, TaskSpec]] = []
    rejected: list[JobRejection] = []
    kinds: set[ErrorKind] = set()
    for i, item in enumerate(items):
        try:
            accepted.append((new_task_id(), seal_job(request.app, p, item)))
        except StagerError as e:
            rejected.append(JobRejection(index=i, status=http_status(e), errorMessage=e.message))
            kinds.add(e.kind)
    metrics = request.app[METRICS]
    for r in rejected:
        metrics.rejected_total.labels(str(r.status)).inc()
    if not accepted:
        reasons = "; ".join(f"jobs[{r.index}]: {r.errorMessage}" for r in rejected[:5])
        err = InvalidInput(
            "every job was rejected: " + reasons,
            errors=[r.model_dump() for r in rejected],
        )
        if len(kinds) == 1:
            err.kind = kinds.pop()  # one reason for all: answer with its status
        raise err
    tasks = await request.app[STORE].add(p.submitter, accepted, priority=_priority(request.app, p))
    _submitted(request.app, tasks)
    body = ResponseBodyJobs(jobs=[job_info(t) for t in tasks], rejected=rejected)
    return ok(body, status=207 if rejected else 200)


#: ``GET /v1/jobs/deleted``: the finished jobs their owner deleted (kept until retention).
DELETED = "deleted"


async def get_jobs(request: web.Request) -> web.Response:
    """``GET /v1/jobs`` and ``GET /v1/jobs/{status}``: the caller's jobs (not deleted), in
    one state, or (``deleted``) those deleted."""
    p = await principal(request)
    state: TaskState | None = None
    status = request.match_info.get("status")
    deleted = status == DELETED
    if status is not None and not deleted:
        try:
            state = TaskState(status)
        except ValueError:
            allowed = ", ".join([s.value for s in TaskState] + [DELETED])
            raise InvalidInput(f"unknown job status: use one of {allowed}") from None
    offset = _int_query(request, "offset", 0, 0, 10**9)
    limit = _int_query(request, "limit", MAX_LIST, 1, MAX_LIST)
    store = request.app[STORE]
    if p.kind == PrincipalKind.SERVICE:
        who: dict[str, Any] = {"submitter": p.submitter}
    else:
        who = {"stager_user": p.name}
    tasks = await store.find(**who, state=state, deleted=deleted, offset=offset, limit=limit)
    if offset == 0 and len(tasks) < limit:
        total = len(tasks)  # the whole listing fits in this page: no count needed
    else:
        total = await store.count(**who, state=state, deleted=deleted)
    body = ResponseBodyJobs(
        jobs=[job_info(t) for t in tasks], total=total, offset=offset, limit=limit
    )
    return ok(body)


#: Most jobs one ``GET /v1/jobs`` answers with (and its default page size).
MAX_LIST = 1000


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, e.g. {name}={default}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}")
    return value


async def get_job(request: web.Request) -> web.Response:
    """``GET /v1/job/{id}``."""
    p = await principal(request)
    return ok(job_info(await own_task(request, p), detail=True))


async def delete_job(request: web.Request) -> web.Response:
    """``DELETE /v1/job/{id}``: an unfinished job is cancelled (a control message stops it
    on its worker) and kept as ``cancelled``; a finished one (completed, archived,
    cancelled) is marked deleted: hidden from the lists, kept until retention purges it.
    The reply is the job as it is now."""
    p = await principal(request)
    task = await own_task(request, p)
    app = request.app
    if task.state not in FINAL_STATES:
        await app[BUS].publish_control(ControlMessage(task_id=task.id))
        cancelled = await app[STORE].set_cancelled(task.id)
        if cancelled is not None:
            app[METRICS].jobs_total.labels(TaskState.CANCELLED.value).inc()
            app[DISPATCHER].wake()
            return ok(job_info(cancelled))
        # it finished meanwhile: delete it like any finished job
    deleted = await app[STORE].mark_deleted(task.id)
    if deleted is None:  # restarted meanwhile
        raise Conflict(f"job {task.id} changed state meanwhile; read it again and retry")
    return ok(job_info(deleted))


async def put_job_scheduled(request: web.Request) -> web.Response:
    """``PUT /v1/job/scheduled/{id}``: restart a completed or archived job."""
    p = await principal(request)
    task = await own_task(request, p)
    if task.deleted_at is not None:
        raise Conflict(f"job {task.id} was deleted: submit it again as a new job")
    if task.state not in RESTARTABLE_STATES:
        raise Conflict(
            f"job {task.id} is {task.state.value}: only completed or archived jobs can be "
            "restarted; wait until it finishes"
        )
    restarted = await request.app[STORE].restart(task.id)
    if restarted is None:
        raise Conflict(f"job {task.id} changed state meanwhile; read it again and retry")
    _submitted(request.app, [restarted])
    return ok(job_info(restarted))


async def get_dir(request: web.Request) -> web.Response:
    """``GET /v1/dir?path=/abs/dir[&user=name]``: listed by a worker as the user."""
    p = await principal(request)
    app = request.app
    path = request.query.get("path")
    if not path:
        raise InvalidInput("query parameter path is required: GET /v1/dir?path=/project/...")
    if is_irods_path(path):
        raise InvalidInput("only local directories can be listed: give a path without irods:")
    try:
        check_abs_path(path, "path")
    except ValueError as e:
        raise InvalidInput(str(e)) from None
    user = request.query.get("user") or (p.name if p.kind == PrincipalKind.USER else "")
    if not user:
        raise InvalidInput("a service account must say whose view to list: add &user=<name>")
    try:
        req = DirListRequest(user=user, path=path)
    except ValidationError:
        raise InvalidInput("user is not a valid Unix user name: use the login name") from None
    authorize_stager_user(p, user, app[SETTINGS].auth)
    reply = await app[BUS].list_dir(req, app[SETTINGS].dir_timeout)
    if reply.ok:
        return ok(ResponseDirEntries(entries=reply.entries))
    kind = _DIR_ERRORS.get(reply.error_kind or "")
    message = reply.error or "the directory cannot be listed"
    if kind is None:
        raise Unavailable(f"the worker could not list the directory: {message}")
    raise kind(message)


async def get_dac(request: web.Request) -> web.Response:
    """``GET /v1/dac/project/{number}``: any authenticated principal, throttled per
    principal (``services.api.dac``)."""
    p = await principal(request)
    number = request.match_info["number"]
    key = f"{p.kind.value}:{p.name}"
    return ok(Collection(collName=await request.app[DAC].resolve(number, key)))


async def get_openapi(request: web.Request) -> web.Response:
    """``GET /v1/openapi.json``."""
    return web.json_response(request.app[SPEC])


async def get_docs(request: web.Request) -> web.Response:
    """``GET /v1/docs``: self-contained HTML."""
    return web.Response(text=render_html(request.app[SPEC]), content_type="text/html")


async def livez(request: web.Request) -> web.Response:
    """Process alive; no dependencies checked."""
    return web.json_response({"status": "ok"})


async def _irods_reachable(host: str, port: int) -> None:
    _reader, writer = await asyncio.open_connection(host, port)
    writer.close()
    await writer.wait_closed()


async def readyz(request: web.Request) -> web.Response:
    """Broker, store and iRODS reachable."""
    app = request.app
    settings = app[SETTINGS]
    checks: dict[str, Any] = {"store": app[STORE].ping(), "broker": app[BUS].ping()}
    if settings.irods.enabled:
        checks["irods"] = _irods_reachable(settings.irods.host, settings.irods.port)
    names = list(checks)
    results = await asyncio.gather(
        *(asyncio.wait_for(c, settings.ready_timeout) for c in checks.values()),
        return_exceptions=True,
    )
    status = {
        n: "ok" if not isinstance(r, BaseException) else f"failing ({type(r).__name__})"
        for n, r in zip(names, results, strict=True)
    }
    ready = all(v == "ok" for v in status.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": status},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; store and queue gauges re-read at most once a second."""
    app = request.app
    m = app[METRICS]
    if m.gauges_due.due():
        await _refresh_gauges(app)
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _refresh_gauges(app: web.Application) -> None:
    m = app[METRICS]
    try:
        counts = await app[STORE].count_by_state()
        for state in TaskState:
            m.jobs_current.labels(state.value).set(counts.get(state.value, 0))
        m.dependency_up.labels("store").set(1)
    except Exception as e:  # metrics must render even when the store is down
        m.dependency_up.labels("store").set(0)
        log.warning("metrics: store unavailable", error=type(e).__name__)
    try:
        for queue, n in (await app[BUS].queue_depths()).items():
            m.queue_messages.labels(queue).set(n)
        m.dependency_up.labels("broker").set(1)
    except Exception as e:  # likewise for the broker
        m.dependency_up.labels("broker").set(0)
        log.warning("metrics: broker unavailable", error=type(e).__name__)
