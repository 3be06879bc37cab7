"""Handlers of ``/v1/admin/...``: every one checks the caller's admin role first."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ValidationError

from services.api.admin import queues as q
from services.api.admin.access import actor, audit, viewer, who
from services.api.admin.views import (
    ActionResult,
    AdminJobs,
    AdminMe,
    BulkIn,
    DeadLetter,
    DeadLetterActionIn,
    DeadLetters,
    IntakeIn,
    IntakeView,
    JobFilterIn,
    QueueInfo,
    QueuesView,
    WorkersView,
    WorkerView,
    admin_detail,
    admin_job,
)
from services.api.admin.workers import HeartbeatBoard
from services.api.auth import Principal
from services.api.keys import BUS, DISPATCHER, METRICS, SETTINGS, STORE
from services.api.middleware import HTTP_BY_KIND, problem
from services.api.store import FINAL_STATES, RESTARTABLE_STATES, Task, TaskFilter
from shared.errors import Conflict, ErrorKind, InvalidInput, NotFound
from shared.json_input import parse_json
from shared.logging import get_logger
from shared.messaging.messages import ControlMessage, TaskState, utcnow
from shared.messaging.signing import Verifier
from shared.messaging.topology import DEFAULT_MAX_ATTEMPTS, Topology
from shared.unix_users import USER_NAME_RE

log = get_logger("stager.api.admin")

BOARD = web.AppKey("admin_board", HeartbeatBoard)
#: Verifies dead letters as the API's own messages (its signing key and ``api_keys``).
DEAD_VERIFIER = web.AppKey("admin_dead_verifier", Verifier)
#: The flag naming whether intake is paused.
INTAKE = "intake"
#: An administrator may restart a job from any finished state (a user: completed or
#: archived only).
ADMIN_RESTARTABLE = RESTARTABLE_STATES | {TaskState.CANCELLED}
#: What a dead letter's task may be in to be requeued (a new run from the store).
DEAD_REQUEUEABLE = frozenset(TaskState) - {TaskState.COMPLETED, TaskState.CANCELLED}
MAX_PAGE = 500


def ok(model: BaseModel, status: int = 200) -> web.Response:
    """A JSON response from a model."""
    return web.Response(
        status=status, text=model.model_dump_json(), content_type="application/json"
    )


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(parse_json(await request.read()))
    except ValidationError as e:
        raise InvalidInput.from_validation(e) from None


# --- who ---------------------------------------------------------------------------------


async def get_me(request: web.Request) -> web.Response:
    """``GET /v1/admin/me``: the caller's admin role (403 when it has none)."""
    p, role = await viewer(request)
    return ok(AdminMe(name=p.name, kind=p.kind.value, role=role))


# --- intake ------------------------------------------------------------------------------


async def intake_view(app: web.Application) -> IntakeView:
    """Whether intake is paused, from the task store (every replica sees the same)."""
    flag = await app[STORE].get_flag(INTAKE)
    if flag is None or not isinstance(flag.value, dict):
        return IntakeView(paused=False)
    return IntakeView(
        paused=bool(flag.value.get("paused")),
        reason=str(flag.value.get("reason", "")),
        updatedBy=flag.updated_by,
        updatedAt=flag.updated_at,
    )


async def get_intake(request: web.Request) -> web.Response:
    """``GET /v1/admin/intake``."""
    await viewer(request)
    return ok(await intake_view(request.app))


async def put_intake(request: web.Request) -> web.Response:
    """``PUT /v1/admin/intake``: pause or resume accepting new jobs (running jobs go on)."""
    p = await actor(request)
    body: IntakeIn = await _body(request, IntakeIn)
    value = {"paused": body.paused, "reason": body.reason}
    await request.app[STORE].set_flag(INTAKE, value, who(p))
    audit(p, "intake.pause" if body.paused else "intake.resume", reason=body.reason)
    return ok(await intake_view(request.app))


def intake_gate(handler: Handler) -> Handler:
    """Wrap a job-submitting handler: while intake is paused it answers 503 (a problem
    body saying so, and Retry-After) before reading anything."""

    async def gated(request: web.Request) -> web.StreamResponse:
        view = await intake_view(request.app)
        if view.paused:
            status, exit_code = HTTP_BY_KIND[ErrorKind.UNAVAILABLE]
            reason = f" ({view.reason})" if view.reason else ""
            resp = problem(
                status,
                "intake paused",
                "intake is paused by an administrator: new jobs are not accepted now"
                f"{reason}; jobs already submitted continue; retry later",
                exit_code=exit_code,
            )
            resp.headers["Retry-After"] = str(request.app[SETTINGS].admin.paused_retry_after)
            return resp
        return await handler(request)

    gated.__doc__ = handler.__doc__
    return gated


# --- queues and workers ------------------------------------------------------------------


def _age(when: Any) -> float | None:
    return None if when is None else max(0.0, (utcnow() - when).total_seconds())


#: How long one peek at a queue's head may take (the queues view waits for each).
PEEK_TIMEOUT = 2.0

_FROM_STORE = "task store: the longest-waiting released job no worker has started yet"
_UNACKED_STORE = "task store: released unfinished jobs minus the ready ones"
_UNACKED_MGMT = "RabbitMQ management API (statistics up to a few seconds old)"


async def get_queues(request: web.Request) -> web.Response:
    """``GET /v1/admin/queues``: ready, unacked, consumers and oldest age of every queue."""
    await viewer(request)
    app = request.app
    bus, store = app[BUS], app[STORE]
    names = bus.names
    reported = [r for s, _ in app[BOARD].workers() for r in s.retry_queues]
    purposes = q.queue_purposes(names, reported)
    figures = await store.queue_figures()
    task_queues = {names.tasks_queue: False, names.priority_queue: True}
    limited = Topology(names=names).delivery_limited_queues()
    heads: dict[str, datetime] = {}
    if bus.connection is None or bus.connection.is_closed:
        found = [q.QueueDepth(n, None, None, "the broker connection is down") for n in purposes]
    else:
        found = await q.depths(bus.connection, purposes)
        peek = [d.name for d in found if d.ready and d.name not in limited]
        heads = await q.head_times(bus.connection, peek, names.dead_queue, PEEK_TIMEOUT)
    mgmt = await _management(app)
    infos = []
    for d in found:
        unacked, unacked_source = _unacked(d, task_queues, figures.released_unfinished)
        exact = mgmt.get(d.name) if d.ready is not None else None
        if exact is not None:
            unacked, unacked_source = exact.unacked, _UNACKED_MGMT
        if d.name in task_queues:
            at = figures.oldest_released.get(task_queues[d.name])
            age, source = (_age(at) if d.ready else None), _FROM_STORE
        elif d.name in limited:
            age, source = None, "not tracked (a peek would count against its delivery limit)"
        elif d.name == names.dead_queue:
            age, source = _age(heads.get(d.name)), "when the head letter died (peeked)"
        elif exact is not None and exact.head_at is not None:
            age, source = _age(exact.head_at), "RabbitMQ management API: head message timestamp"
        else:
            age, source = _age(heads.get(d.name)), "when the head message was published (peeked)"
        infos.append(
            QueueInfo(
                name=d.name,
                purpose=purposes[d.name],
                ready=d.ready,
                unacked=unacked,
                unackedSource=unacked_source,
                consumers=d.consumers,
                oldestAge=age,
                oldestSource=source,
                error=d.error,
            )
        )
    paused = (await intake_view(app)).paused
    view = QueuesView(
        queues=infos,
        held=figures.held,
        heldOldestAge=_age(figures.held_oldest),
        intakePaused=paused,
    )
    return ok(view)


async def _management(app: web.Application) -> dict[str, q.ManagementFigures]:
    """The management API's figures for this prefix's queues ({} when not configured or
    not answering: the view falls back to its estimates)."""
    settings = app[SETTINGS]
    a = settings.admin
    mgmt = q.management_from(
        a.management_url,
        settings.broker.url.get_secret_value(),
        a.management_user,
        a.management_password.get_secret_value(),
        a.management_timeout,
    )
    if mgmt is None:
        return {}
    return await q.management_figures(mgmt, app[BUS].names.prefix) or {}


def _unacked(
    d: q.QueueDepth, task_queues: dict[str, bool], unfinished: dict[bool, int]
) -> tuple[int | None, str]:
    """Unacknowledged deliveries of one queue, and how that is known."""
    if d.ready is None:
        return None, ""
    if d.name in task_queues:
        return max(0, unfinished.get(task_queues[d.name], 0) - d.ready), _UNACKED_STORE
    if d.consumers == 0:
        return 0, "no consumer: nothing is delivered"
    return None, "not known without the RabbitMQ management API"


async def get_workers(request: web.Request) -> web.Response:
    """``GET /v1/admin/workers``: workers heard within their heartbeat window."""
    await viewer(request)
    out = []
    for s, age in request.app[BOARD].workers():
        out.append(
            WorkerView(
                workerId=s.worker_id,
                hostname=s.hostname,
                pid=s.pid,
                slots=s.slots,
                running=s.running,
                startedAt=s.started_at,
                lastSeen=s.at,
                age=round(age, 1),
                stopping=s.stopping,
            )
        )
    return ok(WorkersView(workers=out))


# --- jobs --------------------------------------------------------------------------------


def _number(request: web.Request, name: str, default: float | None, hi: float) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {raw[:40]!r}") from None
    if not math.isfinite(value) or value < 0 or value > hi:
        raise InvalidInput(f"{name} must be between 0 and {hi:g}")
    return value


def _filter(request: web.Request) -> TaskFilter:
    """A job filter from query parameters (``user``, ``submitter``, ``state`` (repeatable,
    or ``deleted``), ``minAge``/``maxAge`` in seconds)."""
    raw_states = [s for v in request.query.getall("state", []) for s in v.split(",") if s]
    deleted: bool | None = False
    states: list[TaskState] = []
    for s in raw_states:
        if s == "deleted":
            deleted = True
            continue
        try:
            states.append(TaskState(s))
        except ValueError:
            allowed = ", ".join([st.value for st in TaskState] + ["deleted"])
            raise InvalidInput(f"unknown job state {s[:40]!r}: use one of {allowed}") from None
    try:
        f = JobFilterIn(
            user=request.query.get("user") or None,
            submitter=request.query.get("submitter") or None,
            state=states,
            minAge=_number(request, "minAge", None, 10 * 365 * 86400),
            maxAge=_number(request, "maxAge", None, 10 * 365 * 86400),
        )
    except ValidationError:
        raise InvalidInput(
            f"user must be a Unix user name ({USER_NAME_RE}); submitter at most 128 characters"
        ) from None
    return _to_filter(f, deleted)


def _to_filter(f: JobFilterIn, deleted: bool | None = False) -> TaskFilter:
    submitter = f.submitter.split(":", 1)[-1] if f.submitter else None
    return TaskFilter(
        stager_user=f.user,
        submitter=submitter,
        states=tuple(f.state),
        min_age=f.minAge,
        max_age=f.maxAge,
        deleted=deleted,
    )


async def get_jobs(request: web.Request) -> web.Response:
    """``GET /v1/admin/jobs``: every user's jobs, filtered and paged (newest first)."""
    await viewer(request)
    f = _filter(request)
    limit = int(_number(request, "limit", 50, MAX_PAGE) or 1) or 1
    offset = int(_number(request, "offset", 0, 10**9) or 0)
    tasks, total = await request.app[STORE].admin_find(f, limit=limit, offset=offset)
    return ok(
        AdminJobs(jobs=[admin_job(t) for t in tasks], total=total, offset=offset, limit=limit)
    )


async def _task(request: web.Request) -> Task:
    task_id = request.match_info["id"]
    task = await request.app[STORE].get(task_id) if len(task_id) <= 64 else None
    if task is None:
        raise NotFound(f"job {task_id[:64]} does not exist (or was purged by retention)")
    return task


async def get_job(request: web.Request) -> web.Response:
    """``GET /v1/admin/jobs/{id}``: one job of any user, with its attempts and error."""
    await viewer(request)
    task = await _task(request)
    attempts = await request.app[STORE].attempts(task.id)
    return ok(admin_detail(task, attempts, DEFAULT_MAX_ATTEMPTS))


Act = Callable[[web.Application, str], Awaitable[str | None]]


async def _restart(app: web.Application, task_id: str) -> str | None:
    """None when restarted, else why not."""
    task = await app[STORE].get(task_id)
    if task is None:
        return "not found"
    if task.deleted_at is not None:
        return "deleted by its owner"
    if task.state not in ADMIN_RESTARTABLE:
        return f"{task.state.value}: only finished jobs can be restarted"
    if await app[STORE].restart(task_id, ADMIN_RESTARTABLE) is None:
        return "changed state meanwhile"
    app[METRICS].jobs_total.labels(TaskState.PENDING.value).inc()
    return None


async def _cancel(app: web.Application, task_id: str) -> str | None:
    task = await app[STORE].get(task_id)
    if task is None:
        return "not found"
    if task.state in FINAL_STATES:
        return f"{task.state.value}: already finished"
    await app[BUS].publish_control(ControlMessage(task_id=task_id))
    if await app[STORE].set_cancelled(task_id) is None:
        return "finished meanwhile"
    app[METRICS].jobs_total.labels(TaskState.CANCELLED.value).inc()
    return None


async def _delete(app: web.Application, task_id: str) -> str | None:
    task = await app[STORE].get(task_id)
    if task is None:
        return "not found"
    if task.state not in FINAL_STATES:
        return f"{task.state.value}: cancel it first"
    if await app[STORE].mark_deleted(task_id) is None:
        return "changed state meanwhile"
    return None


ACTIONS: dict[str, Act] = {"restart": _restart, "cancel": _cancel, "delete": _delete}


async def _run(app: web.Application, p: Principal, action: str, ids: list[str]) -> ActionResult:
    result = ActionResult(action=action)
    for task_id in ids:
        why = await ACTIONS[action](app, task_id)
        if why is None:
            result.done.append(task_id)
        else:
            result.skipped[task_id] = why
    if result.done:
        app[DISPATCHER].wake()
    audit(
        p,
        f"jobs.{action}",
        ids,
        done=len(result.done),
        skipped=len(result.skipped),
    )
    return result


def _one(action: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        p = await actor(request)
        task = await _task(request)
        result = await _run(request.app, p, action, [task.id])
        if result.skipped:
            raise Conflict(f"job {task.id} not changed: {result.skipped[task.id]}")
        return ok(result)

    handle.__doc__ = f"{action} one job (any user's)"
    return handle


post_restart = _one("restart")
post_cancel = _one("cancel")
delete_job = _one("delete")


async def post_bulk(request: web.Request) -> web.Response:
    """``POST /v1/admin/jobs/bulk``: restart, cancel or delete many jobs; ``confirm`` must
    be the number it will touch, else 409 saying that number (nothing is changed)."""
    p = await actor(request)
    body: BulkIn = await _body(request, BulkIn)
    app = request.app
    cap = app[SETTINGS].admin.max_bulk
    if (body.ids is None) == (body.filter is None):
        raise InvalidInput("give either ids or filter (not both, not neither)")
    if body.ids is not None:
        ids = list(dict.fromkeys(body.ids))
        if len(ids) > cap:
            raise InvalidInput(f"too many ids ({len(ids)}): at most {cap} per action")
    else:
        assert body.filter is not None
        ids = await app[STORE].admin_ids(_to_filter(body.filter), cap + 1)
        if len(ids) > cap:
            raise InvalidInput(
                f"the filter matches more than {cap} jobs: narrow it (state, user, age)"
            )
    if body.confirm != len(ids):
        raise Conflict(
            f"this {body.action} would touch {len(ids)} job(s), not {body.confirm}: "
            f'check them and send "confirm": {len(ids)}'
        )
    return ok(await _run(app, p, body.action, ids))


# --- dead letters ------------------------------------------------------------------------


async def _letters_view(app: web.Application, depth: int, letters: list[q.Letter]) -> DeadLetters:
    out = []
    for letter in letters:
        task = await app[STORE].get(letter.message_id) if letter.message_id else None
        out.append(
            DeadLetter(
                messageId=letter.message_id,
                type=letter.type,
                signed=letter.signed,
                rejectReason=letter.reject_reason,
                deathReason=letter.death_reason,
                fromQueue=letter.from_queue,
                deaths=letter.deaths,
                deadAt=letter.dead_at,
                jobState=task.state if task else None,
                stagerUser=task.stager_user if task else None,
                requeueable=_requeue_refusal(letter, task) is None,
            )
        )
    return DeadLetters(depth=depth, letters=out, truncated=depth > len(letters))


def _requeue_refusal(letter: q.Letter, task: Task | None) -> str | None:
    if not letter.signed:
        return f"not signed by the API ({letter.reject_reason}): discard it"
    if task is None:
        return "its job is not in the task store: discard it"
    if task.deleted_at is not None or task.state not in DEAD_REQUEUEABLE:
        return f"its job is {task.state.value}: discard it"
    return None


async def get_dead_letters(request: web.Request) -> web.Response:
    """``GET /v1/admin/deadletters``: the head of the dead-letter queue (bodies never shown)."""
    await viewer(request)
    app = request.app
    limit = int(_number(request, "limit", 50, app[SETTINGS].admin.max_dead_letters) or 1) or 1
    bus = app[BUS]
    async with q.held_letters(bus.connection, bus.names.dead_queue, limit, app[DEAD_VERIFIER]) as (
        depth,
        letters,
    ):
        view = await _letters_view(app, depth, letters)
    return ok(view)


def _dead_action(action: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        p = await actor(request)
        body: DeadLetterActionIn = await _body(request, DeadLetterActionIn)
        if body.all == (body.ids is not None):
            raise InvalidInput('give either "ids" or "all": true')
        app = request.app
        bus = app[BUS]
        limit = app[SETTINGS].admin.max_dead_letters
        wanted = set(body.ids or ())
        result = ActionResult(action=f"deadletters.{action}")
        async with q.held_letters(
            bus.connection, bus.names.dead_queue, limit, app[DEAD_VERIFIER]
        ) as (
            _depth,
            letters,
        ):
            chosen = [lt for lt in letters if body.all or lt.message_id in wanted]
            if body.confirm != len(chosen):
                raise Conflict(
                    f"{len(chosen)} dead letter(s) match, not {body.confirm}: "
                    f'check them and send "confirm": {len(chosen)}'
                )
            for letter in chosen:
                why = await _settle_letter(app, action, letter)
                if why is None:
                    result.done.append(letter.message_id)
                else:
                    result.skipped[letter.message_id] = why
        for missing in sorted(wanted - {lt.message_id for lt in letters}):
            result.skipped[missing] = "not on the dead-letter queue (any more)"
        if result.done and action == "requeue":
            app[DISPATCHER].wake()
        audit(p, result.action, result.done, skipped=len(result.skipped))
        return ok(result)

    handle.__doc__ = f"{action} dead letters"
    return handle


async def _settle_letter(app: web.Application, action: str, letter: q.Letter) -> str | None:
    store = app[STORE]
    task = await store.get(letter.message_id) if letter.message_id else None
    if action == "requeue":
        why = _requeue_refusal(letter, task)
        if why is not None:
            return why
        # a new run of the stored task: the dispatcher signs and publishes it afresh
        if await store.restart(letter.message_id, DEAD_REQUEUEABLE) is None:
            return "its job changed state meanwhile"
        app[METRICS].jobs_total.labels(TaskState.PENDING.value).inc()
    elif task is not None and task.state not in FINAL_STATES:
        error = "discarded from the dead-letter queue by an administrator"
        if await store.archive(task.id, error) is not None:
            app[METRICS].jobs_total.labels(TaskState.ARCHIVED.value).inc()
    await letter.message.ack()
    return None


post_dead_requeue = _dead_action("requeue")
post_dead_discard = _dead_action("discard")
