"""Ingest consumers: the directory and file queues, the scheduler and the thread pool.

:class:`IngestWorker` consumes both ingest queues, runs each task's blocking work in a
bounded thread pool, keeps the job row's counters, and runs a small scheduler that starts
due passes (one-shot jobs, and periodic jobs at each tick unless the previous pass still
runs). ``python -m services.ingest`` (:mod:`services.ingest.app`) runs one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pydantic import ValidationError

from services.ingest.constants import SCHEDULER_POLL
from services.ingest.errors import HandlerError, JobNotFound, TargetError
from services.ingest.processing import (
    Context,
    DirResult,
    JobFatal,
    process_delete,
    process_dir,
    process_files,
)
from services.ingest.sessions import SessionPool
from services.ingest.store import Job, JobState, JobStore, TaskDone
from services.ingest.tasks import DeleteTask, DirTask, FileBatchTask, decode_task, fill
from shared.irods import IrodsAccount
from shared.logging import get_logger
from shared.messaging import broker
from shared.messaging.topology import TYPE_INGEST, Names, Topology, declare_ingest_queues

log = get_logger("stager.ingest.worker")
PUBLISH_TIMEOUT = 30.0
AnyTask = DirTask | FileBatchTask | DeleteTask
#: Test hook: ``KIND:N`` makes the process SIGKILL itself right after committing the
#: counters of its Nth task of that kind (``dir``, ``files``, ``delete`` or ``any``),
#: before it publishes the task's children, ends the pass or acks the task.
CRASH_ENV = "STAGER_INGEST_TEST_EXIT_AFTER_COMMIT"


def _crash_point() -> tuple[str, int] | None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return None
    kind, _, n = spec.partition(":")
    return kind, int(n or "1")


async def publish_tasks(channel: AbstractChannel, names: Names, tasks: Sequence[AnyTask]) -> int:
    """Publish with confirms; returns how many were confirmed (in order)."""
    done = 0
    for i in range(0, len(tasks), 200):
        chunk = tasks[i : i + 200]
        # one attempt: a re-published duplicate would be counted twice in ``pending``
        coros = [
            broker.publish(
                channel.default_exchange,
                broker.make_message(
                    t.model_dump_json().encode(), message_id=t.task_id, type_=TYPE_INGEST
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
    """Consumers, scheduler and thread pool of one worker process."""

    def __init__(
        self,
        store: JobStore,
        connection: AbstractConnection,
        account: IrodsAccount,
        concurrency: int,
        names: Names,
        poll: float = SCHEDULER_POLL,
    ) -> None:
        self.store = store
        self.connection = connection
        self.names = names
        self.concurrency = concurrency
        self.poll = poll
        self.sessions = SessionPool(account)
        self.pool = concurrent.futures.ThreadPoolExecutor(concurrency, "ingest")
        self.timeouts = concurrent.futures.ThreadPoolExecutor(concurrency, "ingest-timed")
        self._contexts: dict[tuple[str, int], Context] = {}
        self._channel: AbstractChannel | None = None
        self._crash = _crash_point()
        self._committed: Counter[str] = Counter()

    async def _blocking(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    def context(self, job: Job) -> Context:
        key = (job.name, job.generation)
        ctx = self._contexts.get(key)
        if ctx is None:
            for old in [k for k in self._contexts if k[0] == job.name]:
                del self._contexts[old]
            ctx = Context.load(job, self.sessions, self.timeouts)
            self._contexts[key] = ctx
        return ctx

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
            except Exception as e:  # the store may be briefly unavailable
                log.warning("ingest scheduler", error=str(e))
            await asyncio.sleep(self.poll)

    @property
    def ready(self) -> bool:
        """Consuming on an open channel."""
        return self._channel is not None and not self._channel.is_closed

    async def close(self) -> None:
        """Close the channel (unacked tasks go back), the thread pools and the sessions."""
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.timeouts.shutdown(wait=False, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, self.sessions.close)

    # --- scheduler -------------------------------------------------------------------

    async def tick(self) -> None:
        """Start every due pass this worker manages to claim (pre_job fires here)."""
        for name in await self.store.due():
            job = await self.store.claim(name)
            if job is not None:
                await self.start_pass(job)

    async def start_pass(self, job: Job) -> None:
        assert self._channel is not None
        logger = log.bind(job=job.name, generation=job.generation)
        try:
            ctx = self.context(job)
            await self._blocking(ctx.handler.pre_job, ctx.logger, ctx.meta())
        except Exception as e:
            await self.store.fail(job.name, job.generation, f"pre_job failed: {e}")
            logger.error("ingest pass not started", error=str(e))
            return
        root = DirTask(
            task_id=f"{job.name}.{job.generation}.root",
            job=job.name,
            generation=job.generation,
            path=job.root,
            collection=job.target,
            is_root=True,
        )
        if await publish_tasks(self._channel, self.names, [root]) != 1:
            await self.store.fail(job.name, job.generation, "cannot publish the root task")
            return
        logger.info("ingest pass started", passes=job.passes)

    # --- consumers -------------------------------------------------------------------

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=True):
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
            await self.handle(job, task)

    async def replay(self, job: Job, task: AnyTask, done: TaskDone, redelivered: bool) -> None:
        """A task whose counters were applied came again (its worker died before the ack).

        Nothing is counted again.  A directory task whose children were not all
        published lists the directory again and publishes them (same ids: the same
        children count once); a redelivered last task ends the pass its worker could not.
        """
        if not done.published and isinstance(task, DirTask):
            try:
                result: DirResult = await self._blocking(process_dir, self.context(job), task)
                children = result.children
            except Exception as e:
                log.error("ingest: cannot list a directory again", job=job.name, error=str(e))
                children = []
            pending = await self.publish_children(job, task, fill(task, children, done.children))
            if pending == 0:  # every child could not be published
                await self.end_pass(job)
            return
        if redelivered and done.pending == 0:
            await self.end_pass(job)

    async def handle(self, job: Job, task: AnyTask) -> None:
        counts: Counter[str] = Counter()
        children: list[AnyTask] = []
        try:
            ctx = self.context(job)
            if isinstance(task, DirTask):
                result: DirResult = await self._blocking(process_dir, ctx, task)
                children, counts = result.children, result.counts
            elif isinstance(task, FileBatchTask):
                counts = await self._blocking(process_files, ctx, task)
            else:
                counts = await self._blocking(process_delete, ctx, task)
        except (JobFatal, TargetError, HandlerError) as e:
            if (isinstance(task, DirTask) and task.is_root) or isinstance(e, HandlerError):
                log.error("ingest job failed", job=job.name, error=str(e))
                await self.store.fail(job.name, job.generation, str(e))
                return
            counts["tasks_failed"] += 1
            log.error("ingest task failed", job=job.name, error=str(e))
        except Exception as e:
            counts["tasks_failed"] += 1
            if isinstance(task, FileBatchTask):
                counts["files_failed"] += len(task.items)
            log.error("ingest task failed", job=job.name, kind=task.kind, error=str(e))
        await self.account(job, task, children, counts)

    async def account(
        self, job: Job, task: AnyTask, children: list[AnyTask], counts: Counter[str]
    ) -> None:
        """Add children and counters (once per task id), publish, maybe end the pass."""
        counts["tasks_done"] += 1
        counts["tasks_total"] += len(children)
        done = await self.store.complete(
            job.name, job.generation, task.task_id, children=len(children), **counts
        )
        if done is None or not done.applied:
            return  # stopped meanwhile, or another delivery of this task counted it
        self._maybe_crash(task)
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
        sent = await publish_tasks(self._channel, self.names, children)
        pending: int | None
        if sent < len(children):
            pending = await self.store.lost(
                job.name, job.generation, [c.task_id for c in children[sent:]]
            )
        else:
            pending = None
        await self.store.published(job.name, job.generation, task.task_id)
        return pending

    def _maybe_crash(self, task: AnyTask) -> None:
        if self._crash is None:
            return
        kind, n = self._crash
        self._committed[task.kind] += 1
        self._committed["any"] += 1
        if self._committed[kind] == n:
            log.warning("ingest test hook: killed after a commit", task=task.task_id)
            os.kill(os.getpid(), signal.SIGKILL)

    async def end_pass(self, job: Job) -> None:
        """The last task of a pass: post_job (once), then the job waits or completes."""
        ctx = self.context(job)
        try:
            fresh = await self.store.get(job.name)
            meta = ctx.meta(counters=fresh.counters)
            await self._blocking(ctx.handler.post_job, ctx.logger, meta)
        except Exception as e:
            log.error("post_job failed", job=job.name, error=str(e))
        done = await self.store.finish_pass(job.name, job.generation)
        if done is not None:
            log.info("ingest pass finished", job=job.name, state=done.state, **done.counters)
