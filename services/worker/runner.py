"""One task attempt, end to end: credential, child as the user, limits, outcome.

Per message: decode → (dropped if cancelled) → ``active`` event → run the
``transfer`` job in a fork-server child as ``stagerUser`` (a warm child of the same user
and credential when one is idle: ``services.worker.forkserver.pool``) → stream its progress to the
API while the watchdog and the cancel registry watch → then ``completed`` (mail),
``cancelled``, ``retry`` (re-published to the delay queue for this attempt's
backoff) or ``archived`` (final failure mail). The message is acked only after all
of that, so a worker that dies mid-task loses nothing: the broker redelivers the
message and the transfer resumes (isync skips finished files and resumes partial
ones from the per-user state directory).

Authenticity (:mod:`shared.messaging.signing`): a task runs only when the API signed it,
within ``signing.task_max_age`` of its release. A retry carries the API's original body and
signature unchanged, with the attempt number in the ``x-stager-attempt`` header: no worker
can author a task, so a compromised worker host cannot make another host run anything the
API did not authorise. A delivery the broker does not mark as redelivered whose (task, run,
attempt) was taken before is a replay and is dropped; a real redelivery (a worker crash, a
reconnect) resumes as before; any delivery of a run that was settled (completed, cancelled,
archived) is dropped. Both marks are kept in files under ``state_dir`` that every worker
sharing it reads (:mod:`services.worker.seen`), so a restart or another worker does not
forget them. What fails is acked without acting and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from aio_pika.abc import AbstractExchange, AbstractIncomingMessage
from pydantic import ValidationError

from services.worker.cancel import CancelRegistry
from services.worker.credentials import resolve
from services.worker.events import EventPublisher, progress_from_line
from services.worker.forkserver.client import Child, ForkServer, ForkServerError
from services.worker.forkserver.pool import ChildPool
from services.worker.forkserver.protocol import ERROR, FINAL_TYPES, RESULT, ErrorLine
from services.worker.leftovers import clean_up, ledger_path
from services.worker.mailer import Mailer, completion_mail, failure_mail
from services.worker.seen import SeenTasks
from services.worker.settings import WorkerSettings
from services.worker.state_dir import user_state_dir
from services.worker.time_limit import Expired, Watchdog
from shared.crypto import Opener
from shared.errors import ErrorKind, StagerError
from shared.logging import get_logger
from shared.messaging import broker
from shared.messaging.messages import Progress, TaskMessage, TaskReport, TaskState, utcnow
from shared.messaging.signing import (
    HDR_SIG,
    HDR_SIGNER,
    HDR_TS,
    Gate,
    MessageRejected,
    Role,
)
from shared.messaging.topology import (
    ROUTE_NORMAL,
    ROUTE_PRIORITY,
    TYPE_TASK,
    Names,
    delay_ms,
    route_for,
)
from shared.unix_users import UnknownUser, UserRefused, vet

log = get_logger(__name__)

#: The attempt number of a retry (the signed body keeps the API's attempt 1).
HDR_ATTEMPT = "x-stager-attempt"
#: The highest attempt number a retry header may name (the bound of ``retry.max_attempts``).
MAX_ATTEMPT = 50


@dataclass(frozen=True)
class SignedTask:
    """The API-signed original of a task message: a retry re-publishes it unchanged."""

    body: bytes
    headers: dict[str, Any]


@dataclass
class Outcome:
    """How an attempt ended."""

    state: TaskState  # COMPLETED, CANCELLED, or RETRY meaning "failed"
    error: str | None = None
    permanent: bool = False
    kind: str | None = None  # the ErrorKind of a failure (the admin view's attempt list)
    summary: dict[str, Any] = field(default_factory=dict)
    progress: Progress | None = None
    report: TaskReport | None = None  # the child's report line: failed files, checksums, plan


class WorkerStopping(StagerError):
    """The worker shuts down: the message is requeued (the next worker resumes it)."""


class _Attempt:
    """Mutable state of one running attempt."""

    def __init__(self, child: Child, watchdog: Watchdog, grace: float) -> None:
        self.child = child
        self.watchdog = watchdog
        self.grace = grace
        self.stopped: str | Expired | None = None
        self.final: dict[str, Any] | None = None
        self.progress: Progress | None = None
        self.report: TaskReport | None = None

    def stop(self, reason: str | Expired) -> None:
        """SIGTERM the process group now (the core stops cleanly), SIGKILL after grace."""
        if self.stopped is not None:
            return
        self.stopped = reason
        self.child.kill(signal.SIGTERM)
        asyncio.get_running_loop().call_later(self.grace, self.child.kill, signal.SIGKILL)


class TaskRunner:
    """Consumer callback for the task queues and the dead-letter queue."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        names: Names,
        forkserver: Callable[[], Awaitable[ForkServer]],
        events: EventPublisher,
        exchange: AbstractExchange,
        cancels: CancelRegistry,
        mailer: Mailer,
        opener: Opener | None,
        gate: Gate,
        on_transfer: Callable[[TaskMessage, Outcome, float], None] | None = None,
        on_mail_failure: Callable[[str], None] | None = None,
        on_start: Callable[[TaskMessage, bool], None] | None = None,
    ) -> None:
        self.settings = settings
        self.names = names
        self.events = events
        self.exchange = exchange  # the default exchange: retries go straight to a delay queue
        self.cancels = cancels
        self.mailer = mailer
        self.opener = opener
        self.on_transfer = on_transfer
        self.on_mail_failure = on_mail_failure
        self.on_start = on_start  # (message, redelivered) when an attempt starts
        self.gate = gate
        # attempts taken and runs settled, by this worker or any sharing state_dir
        self.seen = SeenTasks(settings.state_dir, settings.signing.task_max_age)
        self.pool = ChildPool(forkserver, settings.children)
        self.running: dict[str, _Attempt] = {}
        self.inflight = 0
        self.stopping = False

    # --- consuming -------------------------------------------------------------------

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Handle one task delivery; acked when handled, requeued on an unexpected error."""
        self.inflight += 1
        try:
            await self._on_message(message)
        except WorkerStopping:
            pass  # process() has requeued it: an orderly shutdown, not a consumer failure
        finally:
            self.inflight -= 1

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=True, ignore_processed=True):
            if self.stopping:
                raise WorkerStopping("the worker is stopping; the task goes back to the queue")
            if not self._admit(message):
                return  # not authorised by the API: acked, nothing runs (counted)
            try:
                msg = _with_attempt(TaskMessage.model_validate_json(message.body), message)
            except ValidationError as e:
                log.error("task.undecodable", message_id=message.message_id, errors=e.error_count())
                await message.reject(requeue=False)  # → dead-letter queue
                return
            if _done(msg) in self.seen:  # this run was settled (here or by a peer)
                why = MessageRejected("replay", "this task's run was settled before")
                self.gate.reject(message, TYPE_TASK, why)
                return
            if not message.redelivered and not self.seen.check_and_add(_taken(msg)):
                why = MessageRejected("replay", "this attempt was taken before")
                self.gate.reject(message, TYPE_TASK, why)
                return
            route = (
                message.routing_key if message.routing_key in _ROUTES else route_for(msg.priority)
            )
            signed = SignedTask(bytes(message.body), _signature(message))
            await self.handle(
                msg, route=route, redelivered=bool(message.redelivered), signed=signed
            )

    def _admit(self, message: AbstractIncomingMessage) -> bool:
        """Signed by the API, recently enough (a retry carries the API's signature)."""
        verified = self.gate.admit(
            message,
            type_=TYPE_TASK,
            accept=[Role.API],
            max_age=self.settings.signing.task_max_age,
        )
        return verified is not None

    async def on_dead_message(self, message: AbstractIncomingMessage) -> None:
        """A task the broker gave up on (delivery limit: it crashed workers): archive it."""
        async with message.process(requeue=False):
            if not self._admit(message):
                return
            try:
                msg = _with_attempt(TaskMessage.model_validate_json(message.body), message)
            except ValidationError:
                log.error("task.dead_undecodable", message_id=message.message_id)
                return
            if _done(msg) in self.seen or not self.seen.check_and_add("dead:" + _taken(msg)):
                why = MessageRejected("replay", "this task was settled or archived before")
                self.gate.reject(message, TYPE_TASK, why)
                return
            error = (
                "the task was abandoned after its worker stopped too many times: submit it"
                " again; if that happens again, tell the operators"
            )
            log.error("task.dead", task_id=msg.task_id, attempt=msg.attempt)
            await self._clean_up(msg)
            await self.events.emit(
                msg, TaskState.ARCHIVED, error=error, error_kind=ErrorKind.INTERRUPTED
            )
            self.seen.add(_done(msg))
            await self._mail_failure(msg, error)

    async def handle(
        self,
        msg: TaskMessage,
        *,
        route: str,
        redelivered: bool = False,
        signed: SignedTask | None = None,
    ) -> None:
        """Run one attempt of ``msg`` and settle its outcome."""
        tlog = log.bind(task_id=msg.task_id, run=msg.run, attempt=msg.attempt)
        if self.cancels.is_cancelled(msg.task_id, msg.created_at.timestamp()):
            tlog.info("task.dropped_cancelled")
            await self._clean_up(msg)  # an earlier attempt may have left parts
            await self.events.emit(msg, TaskState.CANCELLED, error="cancelled")
            self.seen.add(_done(msg))
            return
        tlog.info("task.start", redelivered=redelivered)
        if self.on_start is not None:
            self.on_start(msg, redelivered)
        started = time.monotonic()
        await self.events.emit(msg, TaskState.ACTIVE)
        outcome = await self.run_attempt(msg)
        if self.stopping:  # killed by our own shutdown: not a failed attempt, redeliver
            tlog.info("task.requeued_on_shutdown")
            raise WorkerStopping("the worker stopped during the task; it goes back to the queue")
        if self.on_transfer is not None:
            self.on_transfer(msg, outcome, time.monotonic() - started)
        state = await self.settle(msg, outcome, route=route, signed=signed)
        tlog.info("task.end", state=state.value, error=outcome.error)

    async def stop(self, drain: float = 5.0) -> None:
        """Shutdown: kill running children; their messages are requeued, not failed."""
        self.stopping = True
        for att in list(self.running.values()):
            att.child.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain):
                while self.inflight:  # noqa: ASYNC110 - handlers finish by themselves
                    await asyncio.sleep(0.02)
        await self.pool.close()
        self.seen.close()

    # --- one attempt -----------------------------------------------------------------

    async def run_attempt(self, msg: TaskMessage) -> Outcome:
        """Run the transfer in a child as the user and watch it until it ends."""
        spec = msg.task
        try:
            ident = vet(spec.stagerUser, self.settings.min_uid, max_uid=self.settings.max_uid)
            repo_user, password = resolve(msg, self.opener, self.settings.service_credentials)
            state_dir = user_state_dir(self.settings.state_dir, ident)
        except StagerError as e:
            return Outcome(TaskState.RETRY, error=e.message, permanent=True, kind=e.kind)
        irods = self.settings.irods
        account = {"host": irods.host, "port": irods.port, "zone": irods.zone}
        account |= {**self.settings.irods_options, "user": repo_user}
        options = self.settings.transfer.model_copy(
            update={
                "resume_dir": state_dir,
                "dry_run": spec.dryRun,
                "leftovers": ledger_path(state_dir, msg),
            }
        )
        params = {
            "src": spec.srcURL,
            "dst": spec.dstURL,
            "account": account,
            "options": options.model_dump(mode="json"),
        }
        kind = self.settings.transfer_kind
        key = self.pool.key(kind, ident.name, account, password, ident.uid)
        try:
            child = await self.pool.start(key, params, secret=password)
        except (UserRefused, UnknownUser) as e:
            return Outcome(TaskState.RETRY, error=e.message, permanent=True, kind=e.kind)
        except ForkServerError as e:  # the fork server died: worth another try
            return Outcome(TaskState.RETRY, error=e.message, kind=e.kind)
        finally:
            del password
        att = _Attempt(
            child, Watchdog(spec.timeout, spec.timeout_noprogress), self.settings.cancel_grace
        )
        self.running[msg.task_id] = att
        self.cancels.register(
            msg.task_id, lambda: att.stop("cancelled"), msg.created_at.timestamp()
        )
        clean = False
        try:
            await self._watch(msg, att)
            final_type = (att.final or {}).get("type")
            clean = att.stopped is None and final_type == RESULT and not self.stopping
        finally:
            self.cancels.unregister(msg.task_id)
            self.running.pop(msg.task_id, None)
            # only a child that ended its task cleanly runs another; any other is killed
            # with its whole process group (leftovers never outlive the attempt)
            self.pool.release(key, child, reuse=clean)
        code = 0 if clean else await child.wait()
        return _outcome(att, code)

    async def _watch(self, msg: TaskMessage, att: _Attempt) -> None:
        """Read the child's lines until its pipe closes, enforcing the limits meanwhile."""
        reader = asyncio.create_task(self._read(msg, att))
        exited = asyncio.ensure_future(att.child.wait())
        try:
            while not reader.done():
                wait = att.watchdog.next_deadline()
                await asyncio.wait(
                    {reader, exited},
                    timeout=None if wait is None else max(wait, 0.05),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if exited.done():
                    # the child is gone; anything it left behind may hold the pipe open
                    att.child.kill_group()
                    await asyncio.wait({reader}, timeout=5.0)
                    break
                expired = att.watchdog.check()
                if expired is not None:
                    att.stop(expired)
            if reader.done():
                await reader
        finally:
            exited.cancel()
            if not reader.done():
                reader.cancel()
                att.child.kill()

    async def _read(self, msg: TaskMessage, att: _Attempt) -> None:
        last_emit = time.monotonic()  # a task shorter than the interval sends no progress event
        async for line in att.child.lines():
            kind = line.get("type")
            if kind == "progress":
                att.watchdog.observe(line)
                att.progress = progress_from_line(line)
                now = time.monotonic()
                if now - last_emit >= self.settings.progress_interval:
                    last_emit = now
                    await self.events.emit(msg, TaskState.ACTIVE, progress=att.progress)
            elif kind == "report":
                with contextlib.suppress(ValidationError):  # a report is extra: never fatal
                    att.report = TaskReport.model_validate(
                        {k: v for k, v in line.items() if k != "type"}
                    )
            elif kind in FINAL_TYPES:
                att.final = line

    # --- settling --------------------------------------------------------------------

    async def settle(
        self, msg: TaskMessage, outcome: Outcome, *, route: str, signed: SignedTask | None = None
    ) -> TaskState:
        """Publish the outcome: event, retry message, mail; returns the state published.

        A retry re-publishes ``signed`` (the API's original); without it there is nothing
        authorised to re-publish and a failure is final. A cancel or a final failure first
        removes what the task's runs left behind (:mod:`services.worker.leftovers`)."""
        if outcome.state is TaskState.COMPLETED:
            await self.events.emit(
                msg, TaskState.COMPLETED, progress=outcome.progress, report=outcome.report
            )
            self.seen.add(_done(msg))
            if msg.task.dryRun:  # a preview the user is looking at: no mail
                return TaskState.COMPLETED
            settings = self.mailer.settings
            await self._mail(
                msg, lambda: completion_mail(settings, msg.task_id, msg.task, outcome.summary)
            )
            return TaskState.COMPLETED
        if outcome.state is TaskState.CANCELLED:
            await self._clean_up(msg)
            await self.events.emit(
                msg, TaskState.CANCELLED, error=outcome.error, report=outcome.report
            )
            self.seen.add(_done(msg))
            return TaskState.CANCELLED
        policy = self.settings.retry
        error = outcome.error or "failed"
        if signed is not None and policy.should_retry(msg.attempt, permanent=outcome.permanent):
            delay = policy.delay(msg.attempt)
            queue = self.names.retry_queue(route, delay_ms(delay))
            # the API's body and signature, unchanged: only the attempt header is ours
            headers = {**signed.headers, HDR_ATTEMPT: msg.attempt + 1}
            message = broker.make_message(
                signed.body, message_id=msg.task_id, type_=TYPE_TASK, headers=headers
            )
            timeout = self.settings.broker.confirm_timeout
            await broker.publish(self.exchange, message, queue, timeout=timeout)
            next_at = utcnow() + timedelta(seconds=delay)
            await self.events.emit(
                msg,
                TaskState.RETRY,
                error=error,
                progress=outcome.progress,
                next_at=next_at,
                report=outcome.report,
                error_kind=outcome.kind,
            )
            return TaskState.RETRY
        await self._clean_up(msg)
        await self.events.emit(
            msg,
            TaskState.ARCHIVED,
            error=error,
            progress=outcome.progress,
            report=outcome.report,
            error_kind=outcome.kind,
        )
        self.seen.add(_done(msg))
        await self._mail_failure(msg, error)
        return TaskState.ARCHIVED

    async def _clean_up(self, msg: TaskMessage) -> None:
        """Remove the run's part objects, part files, journals and empty collections it
        made, as the user; never raises (the outcome stands either way)."""
        try:
            await clean_up(msg, self.settings, self.opener, self.pool)
        except Exception as e:  # best effort: the ledger stays for a later look
            log.warning("task.cleanup_failed", task_id=msg.task_id, error=type(e).__name__)

    async def _mail_failure(self, msg: TaskMessage, error: str) -> None:
        settings = self.mailer.settings
        await self._mail(
            msg, lambda: failure_mail(settings, msg.task_id, msg.task, error, msg.attempt)
        )

    async def _mail(self, msg: TaskMessage, build: Callable[[], EmailMessage | None]) -> None:
        """Build and send a mail; any failure of either is logged and counted, never raised:
        the transfer has settled, and raising would requeue (re-run) it."""
        stage = "build"
        try:
            mail = build()
            stage = "send"
            await self.mailer.send(mail)
        except Exception as e:  # mail is best effort: never fail the task over it
            log.warning("mail.failed", task_id=msg.task_id, stage=stage, error=type(e).__name__)
            if self.on_mail_failure is not None:
                self.on_mail_failure(stage)


_ROUTES = (ROUTE_NORMAL, ROUTE_PRIORITY)


def _taken(msg: TaskMessage) -> str:
    """The mark of an attempt taken (see :mod:`services.worker.seen`)."""
    return f"task:{msg.task_id}:{msg.run}:{msg.attempt}"


def _done(msg: TaskMessage) -> str:
    """The mark of a run settled: completed, cancelled or archived."""
    return f"done:{msg.task_id}:{msg.run}"


def _signature(message: AbstractIncomingMessage) -> dict[str, Any]:
    """The API's signature headers of a verified task message."""
    hdrs = message.headers or {}
    return {k: hdrs[k] for k in (HDR_SIGNER, HDR_TS, HDR_SIG)}


def _with_attempt(msg: TaskMessage, message: AbstractIncomingMessage) -> TaskMessage:
    """``msg`` with the attempt its retry header names (unsigned: it only counts attempts,
    so it is bounded to what a real retry could say; a bad value counts as the body's)."""
    raw = (message.headers or {}).get(HDR_ATTEMPT)
    if not isinstance(raw, int) or isinstance(raw, bool) or raw <= msg.attempt:
        return msg
    return msg.model_copy(update={"attempt": min(raw, MAX_ATTEMPT)})


def _outcome(att: _Attempt, code: int) -> Outcome:
    outcome = _ended(att, code)
    outcome.report = att.report
    return outcome


def _ended(att: _Attempt, code: int) -> Outcome:
    final = att.final or {}
    if att.stopped == "cancelled":
        return Outcome(TaskState.CANCELLED, error="cancelled", progress=att.progress)
    if isinstance(att.stopped, Expired):
        return Outcome(
            TaskState.RETRY, error=str(att.stopped), progress=att.progress, kind=ErrorKind.TIMEOUT
        )
    if final.get("type") == RESULT and code == 0:
        summary = dict(final.get("summary") or {})
        return Outcome(TaskState.COMPLETED, summary=summary, progress=att.progress)
    if final.get("type") == ERROR:
        error = ErrorLine.parse(final)
        return Outcome(
            TaskState.RETRY,
            error=error.message,
            permanent=error.permanent,
            progress=att.progress,
            kind=error.kind,
        )
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    return Outcome(
        TaskState.RETRY,
        error=f"the transfer process died ({how}): if it keeps dying, tell the operators",
        progress=att.progress,
        kind=ErrorKind.INTERNAL,
    )
