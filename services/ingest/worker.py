"""Ingest consumers: the directory and file queues, the scheduler, and the owners' children.

:class:`IngestWorker` consumes both ingest queues, keeps the job row's counters, and runs a
small scheduler that starts due passes (one-shot jobs, and periodic jobs at each tick unless
the previous pass still runs). The work itself (scans, handler hooks, file reads, iRODS
calls) runs in a child process of the job's owner (:mod:`services.ingest.owners`), never in
this process. Every task it publishes is signed as ``ingest``; a task that does not verify
is dropped and counted (:mod:`shared.messaging.signing`). ``python -m services.ingest``
(:mod:`services.ingest.app`) runs one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pydantic import ValidationError

from services.ingest.compat.kvstore import JobKV
from services.ingest.constants import SCHEDULER_POLL
from services.ingest.errors import (
    HandlerError,
    JobNotFound,
    OwnerRefused,
    TargetError,
    error_text,
)
from services.ingest.metrics import IngestMetrics
from services.ingest.owners import ChildPolicy, OwnerChildren, job_identity
from services.ingest.processing import JobFatal
from services.ingest.store import CLAIM_LEASE, EntryRow, Job, JobState, JobStore, TaskDone
from services.ingest.tasks import (
    DeleteTask,
    DirTask,
    EntryRecord,
    FileBatchTask,
    Known,
    decode_task,
    fill,
    to_wire,
)
from shared.irods import IrodsAccount
from shared.logging import get_logger
from shared.messaging import broker
from shared.messaging.signing import Gate, Role, Signer
from shared.messaging.topology import TYPE_INGEST, Names, Topology, declare_ingest_queues
from shared.unix_users import Identity

log = get_logger("stager.ingest.worker")
PUBLISH_TIMEOUT = 30.0
AnyTask = DirTask | FileBatchTask | DeleteTask
#: Test hook: ``KIND:N`` makes the process SIGKILL itself right after committing the
#: counters of its Nth task of that kind (``dir``, ``files``, ``delete`` or ``any``),
#: before it publishes the task's children, ends the pass or acks the task;
#: ``KIND:N:before``: once the task's work is done, before its counters are committed;
#: ``claim:N``: right after claiming its Nth pass, before ``start_pass``.
CRASH_ENV = "STAGER_INGEST_TEST_EXIT_AFTER_COMMIT"
#: How often the scheduler removes finished jobs older than the retention (seconds).
PURGE_EVERY = 60.0


def _crash_point() -> tuple[str, int, str] | None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    n, _, when = rest.partition(":")
    return kind, int(n or "1"), when or "after"


async def publish_tasks(
    channel: AbstractChannel, names: Names, tasks: Sequence[AnyTask], signer: Signer
) -> int:
    """Publish signed, with confirms; returns how many were confirmed (in order)."""
    done = 0
    for i in range(0, len(tasks), 200):
        chunk = tasks[i : i + 200]
        # one attempt: a re-published duplicate would be counted twice in ``pending``
        coros = [
            broker.publish(
                channel.default_exchange,
                broker.make_message(
                    t.model_dump_json().encode(),
                    message_id=t.task_id,
                    type_=TYPE_INGEST,
                    signer=signer,
                ),
                names.ingest_dirs_queue if isinstance(t, DirTask) else names.ingest_files_queue,
                timeout=PUBLISH_TIMEOUT,
                attempts=1,
            )
            for t in chunk
        ]
        results = await asyncio.gather(*coros, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                log.error("ingest publish failed", error=str(r))
                return done
            done += 1
    return done


class IngestWorker:
    """Consumers, scheduler and the owners' children of one worker process.

    Parameters:
        account: the iRODS account the children log in with.
        concurrency: AMQP prefetch, and threads per owner's child.
        signer: signs the tasks this worker publishes (role ``ingest``).
        gate: verifies the tasks it consumes (only ``ingest`` may send them).
        policy: allowed roots, personal uid range and logging of the children.
    """

    def __init__(
        self,
        store: JobStore,
        connection: AbstractConnection,
        account: IrodsAccount,
        concurrency: int,
        names: Names,
        *,
        signer: Signer,
        gate: Gate,
        policy: ChildPolicy,
        metrics: IngestMetrics | None = None,
        poll: float = SCHEDULER_POLL,
        retention: float = 0.0,
        claim_lease: float = CLAIM_LEASE,
    ) -> None:
        self.store = store
        self.connection = connection
        self.names = names
        self.concurrency = concurrency
        self.poll = poll
        self.retention = retention
        self.claim_lease = claim_lease
        self._purged = 0.0
        self.signer = signer
        self.gate = gate
        self.policy = policy
        self.metrics = metrics or IngestMetrics()
        self.children = OwnerChildren(account, policy, concurrency, JobKV(store).answer)
        self._owners: dict[tuple[str, int], Identity] = {}
        self._channel: AbstractChannel | None = None
        self._crash = _crash_point()
        self._committed: Counter[str] = Counter()

    def owner(self, job: Job) -> Identity:
        """Who ``job``'s work runs as (vetted once per pass); raises ``OwnerRefused``."""
        key = (job.name, job.generation)
        ident = self._owners.get(key)
        if ident is None:
            ident = job_identity(job, self.policy)
            for old in [k for k in self._owners if k[0] == job.name]:
                del self._owners[old]
            self._owners[key] = ident
        return ident

    async def start(self) -> None:
        """Open a channel, declare the ingest queues and consume both."""
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self._channel = channel
        await channel.set_qos(prefetch_count=self.concurrency)
        await declare_ingest_queues(channel, Topology(names=self.names))
        for name in (self.names.ingest_dirs_queue, self.names.ingest_files_queue):
            queue = await channel.get_queue(name)
            await queue.consume(self.on_message)

    async def schedule(self) -> None:
        """Start due passes every ``poll`` seconds, until cancelled."""
        while True:
            try:
                await self.tick()
                await self.children.reap()
                if self.retention and time.monotonic() - self._purged > PURGE_EVERY:
                    self._purged = time.monotonic()
                    for name in await self.store.purge(self.retention):
                        log.info("ingest job aged out", ingest_job=name)
            except Exception as e:  # the store may be briefly unavailable
                log.warning("ingest scheduler", error=str(e))
            await asyncio.sleep(self.poll)

    @property
    def ready(self) -> bool:
        """Consuming on an open channel."""
        return self._channel is not None and not self._channel.is_closed

    async def close(self) -> None:
        """Close the channel (unacked tasks go back), then stop the owners' children."""
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
        await self.children.close()

    # --- scheduler -------------------------------------------------------------------

    async def tick(self) -> None:
        """Start every due pass this worker manages to claim (pre_job fires here), and
        every stalled one it takes over (claimed by a worker that died before starting it)."""
        for name in await self.store.due():
            job = await self.store.claim(name, lease=self.claim_lease)
            if job is not None:
                self._maybe_crash(None, "after", kind="claim")
                await self.start_pass(job)
        for name in await self.store.stalled():
            job = await self.store.reclaim(name, lease=self.claim_lease)
            if job is not None:
                log.warning(
                    "ingest pass taken over: the worker that claimed it did not start it",
                    ingest_job=job.name,
                    generation=job.generation,
                )
                await self.start_pass(job)

    async def start_pass(self, job: Job) -> None:
        """pre_job (once per pass), then publish the root task; safe to run again for the
        same pass (a worker taking over a stalled claim): a pre_job already done is not
        repeated, and a root task published twice counts once (its task id)."""
        assert self._channel is not None
        logger = log.bind(ingest_job=job.name, generation=job.generation)
        try:
            owner = self.owner(job)
        except OwnerRefused as e:
            await self.fail(job, e.message)
            return
        if not await self.store.marked(job.name, job.generation, "pre_job"):
            renew = asyncio.create_task(self._hold_claim(job), name="ingest-claim-lease")
            try:
                await self.children.call(owner, "pre_job", job)
            except Exception as e:
                await self.fail(job, f"pre_job failed: {e}")
                return
            finally:
                renew.cancel()
            await self.store.mark(job.name, job.generation, "pre_job")
        root = DirTask(
            task_id=f"{job.name}.{job.generation}.root",
            job=job.name,
            generation=job.generation,
            path=job.root,
            collection=job.target,
            is_root=True,
        )
        if await publish_tasks(self._channel, self.names, [root], self.signer) != 1:
            await self.fail(job, "cannot publish the root task")
            return
        await self.store.started(job.name, job.generation)
        self.metrics.passes.labels("started").inc()
        logger.info("ingest pass started", passes=job.passes, owner=owner.name)

    async def _hold_claim(self, job: Job) -> None:
        """Renew the claim's lease while pre_job runs (a long pre_job is not taken over)."""
        while True:
            await asyncio.sleep(self.claim_lease / 3)
            with contextlib.suppress(Exception):  # the store may be briefly unavailable
                await self.store.renew_claim(job.name, job.generation, lease=self.claim_lease)

    async def fail(self, job: Job, error: str) -> None:
        """The job itself failed (this pass ends; its queued work is dropped)."""
        log.error("ingest job failed", ingest_job=job.name, error=error)
        self.metrics.passes.labels("failed").inc()
        await self.store.fail(job.name, job.generation, error)

    # --- consumers -------------------------------------------------------------------

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=True):
            if self.gate.admit(message, type_=TYPE_INGEST, accept=(Role.INGEST,)) is None:
                return  # not signed by an ingest worker: dropped (acked) and counted
            try:
                task = decode_task(message.body)
            except ValidationError as e:
                log.error("ingest: undecodable task dropped", error=str(e)[:500])
                return
            try:
                job = await self.store.get(task.job)
            except JobNotFound:
                return
            if job.generation != task.generation or job.state != JobState.RUNNING:
                return  # stopped or superseded: the job's queued work is dropped
            done = await self.store.task_done(job.name, job.generation, task.task_id)
            if done is not None:
                await self.replay(job, task, done, bool(message.redelivered))
                return
            if message.redelivered and isinstance(task, FileBatchTask):
                # its worker may have synced some files before it died: look again
                task = task.model_copy(update={"recheck": True})
            await self.handle(job, task)

    async def replay(self, job: Job, task: AnyTask, done: TaskDone, redelivered: bool) -> None:
        """A task whose counters were applied came again (its worker died before the ack).

        Nothing is counted again.  A directory task whose children were not all
        published lists the directory again and publishes them (same ids: the same
        children count once); a redelivered last task ends the pass its worker could not.
        """
        if not done.published and isinstance(task, DirTask):
            try:
                known = await self.with_known(job, task)
                reply = await self.children.call(self.owner(job), "dir", job, known)
                children = reply.children
            except Exception as e:
                log.error("ingest: cannot list again", ingest_job=job.name, error=str(e))
                children = []
            pending = await self.publish_children(job, task, fill(task, children, done.children))
            if pending == 0:  # every child could not be published
                await self.end_pass(job)
            return
        if redelivered and done.pending == 0:
            await self.end_pass(job)

    async def with_known(self, job: Job, task: DirTask) -> DirTask:
        """``task`` with what the job recorded of its directory (for the owner's child)."""
        known, itself = await self.store.entries(job.name, task.os_path)
        rows = []
        for name, stat in known.items():
            text, b64 = to_wire(name)
            rows.append(Known(name=text, name_b64=b64, stat=stat))
        return task.model_copy(update={"known": rows, "known_self": itself})

    async def handle(self, job: Job, task: AnyTask) -> None:
        counts: Counter[str] = Counter()
        children: list[AnyTask] = []
        entries: list[EntryRecord] = []
        try:
            sent = await self.with_known(job, task) if isinstance(task, DirTask) else task
            reply = await self.children.call(self.owner(job), task.kind, job, sent)
            children, counts = list(reply.children), Counter(reply.counts)
            entries = reply.entries
        except OwnerRefused as e:
            await self.fail(job, e.message)
            return
        except (JobFatal, TargetError, HandlerError) as e:
            if (isinstance(task, DirTask) and task.is_root) or isinstance(e, HandlerError):
                await self.fail(job, str(e))
                return
            counts["tasks_failed"] += 1
            log.error("ingest task failed", ingest_job=job.name, error=str(e))
        except Exception as e:
            counts["tasks_failed"] += 1
            if isinstance(task, FileBatchTask):
                counts["files_failed"] += len(task.items)
            log.error(
                "ingest task failed", ingest_job=job.name, kind=task.kind, error=error_text(e)
            )
        self.metrics.count_task(task.kind, counts)
        self._maybe_crash(task, "before")
        await self.account(job, task, children, counts, entries)

    async def account(
        self,
        job: Job,
        task: AnyTask,
        children: list[AnyTask],
        counts: Counter[str],
        entries: list[EntryRecord] | None = None,
    ) -> None:
        """Add children and counters (once per task id), publish, maybe end the pass.

        ``entries``: the states the task synced, recorded in the same transaction."""
        counts["tasks_done"] += 1
        counts["tasks_total"] += len(children)
        rows = [EntryRow(e.os_dir, e.os_name, e.stat) for e in entries or ()]
        done = await self.store.complete(
            job.name,
            job.generation,
            task.task_id,
            len(children),
            rows,
            **counts,
        )
        if done is None or not done.applied:
            return  # stopped meanwhile, or another delivery of this task counted it
        self._maybe_crash(task, "after")
        pending: int | None = done.pending
        if children:
            pending = await self.publish_children(job, task, children)
        if pending == 0:
            await self.end_pass(job)

    async def publish_children(
        self, job: Job, task: AnyTask, children: list[AnyTask]
    ) -> int | None:
        """Publish a task's counted children; unpublished ones are done (failed)."""
        assert self._channel is not None
        sent = await publish_tasks(self._channel, self.names, children, self.signer)
        pending: int | None
        if sent < len(children):
            pending = await self.store.lost(
                job.name, job.generation, [c.task_id for c in children[sent:]]
            )
        else:
            pending = None
        await self.store.published(job.name, job.generation, task.task_id)
        return pending

    def _maybe_crash(self, task: AnyTask | None, when: str, kind: str | None = None) -> None:
        """The test hook of :data:`CRASH_ENV` (``task``: None for ``claim``)."""
        if self._crash is None or self._crash[2] != when:
            return
        want, n = self._crash[0], self._crash[1]
        kinds = [task.kind, "any"] if task is not None else [kind or ""]
        for k in kinds:
            self._committed[f"{when}:{k}"] += 1
        if want in kinds and self._committed[f"{when}:{want}"] == n:
            log.warning("ingest test hook: killed", when=when, kind=want, n=n)
            os.kill(os.getpid(), signal.SIGKILL)

    async def end_pass(self, job: Job) -> None:
        """The last task of a pass: post_job (once), then the job waits or completes."""
        error = None
        try:
            fresh = await self.store.get(job.name)
            await self.children.call(self.owner(job), "post_job", job, counters=fresh.counters)
        except Exception as e:
            error = f"post_job failed: {e}"  # the pass ends; the job shows it as its error
            log.error("post_job failed", ingest_job=job.name, error=str(e))
        done = await self.store.finish_pass(job.name, job.generation, error=error)
        if done is not None:
            self.metrics.passes.labels("finished").inc()
            log.info("ingest pass finished", ingest_job=job.name, state=done.state, **done.counters)
