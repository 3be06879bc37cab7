"""Who a job's work runs as, and the worker's children that run it (one per owner).

An ingest job runs as its owner (``options.owner``, a Unix user): its scans, handler code
and file reads happen in a child process of that user (:mod:`services.ingest.child`),
never in the worker. A worker started as root vets the owner as every transfer's user is
vetted (:func:`shared.unix_users.vet`: no root, no system or no-login account, uid in
``[min_uid, max_uid]``) and the child becomes it; a job without an owner is refused. A
worker that is not root runs only jobs owned by its own user (or without an owner).

The child's replies are data, parsed with pydantic and checked here (their counters, their
tasks' job and ids): a child runs the owner's code and is trusted with nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import pwd
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.ingest.child import HEADER, MAX_FRAME, Init, Op, Reply, Request, encode
from services.ingest.compat.transport import Answer, Call
from services.ingest.errors import HandlerError, IngestError, OwnerRefused, TargetError
from services.ingest.processing import JobFatal
from services.ingest.store import Job
from services.ingest.tasks import DeleteTask, DirTask, FileBatchTask, child_id
from shared.errors import StagerError
from shared.irods import IrodsAccount
from shared.logging import get_logger
from shared.unix_users import DEFAULT_MAX_UID, DEFAULT_MIN_UID, Identity, vet

log = get_logger("stager.ingest.owners")
#: Runs the child: the project root goes first on ``sys.path`` (isolated mode has none).
BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from services.ingest.child import main; sys.exit(main(sys.argv[2:]))"
)
#: The directory holding ``services/`` (so the child imports the code this worker runs).
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
#: What a child inherits from the worker's environment (nothing secret).
KEPT_ENV = ("LANG", "LANGUAGE", "TZ")
#: A child idle this long is stopped (the next task of its owner starts another).
CHILD_IDLE = 120.0
STOP_GRACE = 5.0
#: How long a new child may take to say its first word (it imports its code first).
START_GRACE = 60.0
#: How long a retiring child (a handler call stuck past its timeout) may go on answering
#: the requests it already has before it is killed.
RETIRE_GRACE = 60.0
AnyTask = DirTask | FileBatchTask | DeleteTask
#: Answers a child's call on handler state (:class:`services.ingest.compat.kvstore.JobKV`).
KvBackend = Callable[[Call], Awaitable[Answer]]


class ChildFailed(IngestError):
    """The owner's child process died or answered something that is not a reply."""


@dataclass(frozen=True)
class ChildPolicy:
    """What the worker's children are started with (from the worker's settings)."""

    allowed_roots: tuple[str, ...] = ()
    #: the S3 endpoints and proxies jobs may read from (``STAGER_INGEST__S3_ENDPOINTS``)
    s3_endpoints: tuple[str, ...] = ()
    min_uid: int = DEFAULT_MIN_UID
    max_uid: int = DEFAULT_MAX_UID
    log_level: str = "info"
    log_json: bool = True
    #: the children's heartbeat, and how long a busy child may stay silent before it is
    #: killed (its owner may have stopped it: it must not hold the worker's slots)
    heartbeat: float = 5.0
    silence: float = 30.0
    #: retries of a file whose iRODS connection was lost, and the first delay (doubling)
    reconnect_tries: int = 5
    reconnect_delay: float = 2.0


def job_identity(job: Job, policy: ChildPolicy, euid: int | None = None) -> Identity:
    """The Unix account ``job``'s work runs as; raises :class:`OwnerRefused` saying why not."""
    euid = os.geteuid() if euid is None else euid
    owner = job.options.owner
    if euid == 0:
        if owner is None:
            raise OwnerRefused(
                f"ingest job {job.name} has no owner: an ingest job runs as the Unix user "
                "that owns it (REST: owner; stager ingest start: run it as that user, or "
                "--owner as root)"
            )
        try:
            return vet(owner, policy.min_uid, max_uid=policy.max_uid)
        except StagerError as e:  # unknown, root, system or no-login account
            raise OwnerRefused(f"ingest job {job.name}: owner refused: {e.message}") from None
    me = pwd.getpwuid(euid)
    if owner not in (None, me.pw_name):
        raise OwnerRefused(
            f"ingest job {job.name} is owned by {owner}, but this ingest worker runs as "
            f"{me.pw_name} (not root): it runs only its own user's jobs"
        )
    return Identity(name=me.pw_name, uid=me.pw_uid, gid=me.pw_gid, home=me.pw_dir)


def child_env() -> dict[str, str]:
    """A clean environment: no STAGER_* setting or secret of the worker reaches a child."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    for name, value in os.environ.items():
        if name in KEPT_ENV or name.startswith("LC_"):
            env[name] = value
    return env


def _error(reply: Reply) -> Exception:
    message = reply.error or "failed"
    if reply.error_kind == "fatal":
        return JobFatal(message)
    if reply.error_kind == "target":
        return TargetError(message)
    if reply.error_kind == "handler":
        return HandlerError(message)
    return IngestError(message)


def check_children(job: Job, task: AnyTask | None, children: list[AnyTask]) -> None:
    """A directory reply's tasks must be that task's children, of that job and pass."""
    if not children:
        return
    if not isinstance(task, DirTask):
        raise ChildFailed("the ingest child returned tasks for a task that has none")
    for i, c in enumerate(children):
        want = (job.name, job.generation, child_id(task.task_id, i))
        if (c.job, c.generation, c.task_id) != want:
            raise ChildFailed("the ingest child returned a task that is not this task's child")


class OwnerChild:
    """One owner's child process and the requests in flight to it."""

    def __init__(
        self,
        identity: Identity,
        account: IrodsAccount,
        policy: ChildPolicy,
        concurrency: int,
        kv: KvBackend | None = None,
    ) -> None:
        self.kv = kv
        #: request id -> the job it is for (a child's calls may touch only those jobs)
        self._jobs: dict[int, str] = {}
        self._answering: set[asyncio.Task[None]] = set()
        self.identity = identity
        self.account = account
        self.policy = policy
        self.concurrency = concurrency
        self.process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._stopping = False  # stop() ends it: the reader's end of file must not kill it
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self.last_used = self.last_heard = time.monotonic()
        self.heard = False  # nothing from the child yet (it is still starting)
        self.dead = False
        #: the child said a handler call is stuck in it: no new work; ended when idle
        self.retiring = False
        self.retired_at: float | None = None

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    async def start(self) -> None:
        parent, child = socket.socketpair()
        argv = [sys.executable, "-I", "-c", BOOTSTRAP, PROJECT_ROOT, str(child.fileno())]
        if os.geteuid() == 0:
            p = self.policy
            argv += [self.identity.name, str(p.min_uid), str(p.max_uid)]
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(child.fileno(),),
                env=child_env(),
                cwd="/",
            )
        finally:
            child.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=parent, limit=1 << 20)
        init = Init(
            account=self.account,
            allowed_roots=list(self.policy.allowed_roots),
            s3_endpoints=list(self.policy.s3_endpoints),
            concurrency=self.concurrency,
            log_level=self.policy.log_level,
            log_json=self.policy.log_json,
            heartbeat=self.policy.heartbeat,
            reconnect_tries=self.policy.reconnect_tries,
            reconnect_delay=self.policy.reconnect_delay,
        )
        self._writer.write(encode(init))
        await self._writer.drain()
        self._reader_task = asyncio.create_task(self._read(reader), name="ingest-child-reader")
        log.info("ingest.child_started", user=self.identity.name, pid=self.process.pid)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        why = "exited"
        try:
            while True:
                head = await reader.readexactly(HEADER.size)
                (size,) = HEADER.unpack(head)
                if size > MAX_FRAME:
                    why = "sent a frame that is too large"
                    break
                data = json.loads(await reader.readexactly(size))
                self.last_heard, self.heard = time.monotonic(), True
                if isinstance(data, dict) and "call" in data:
                    self._on_call(Call.model_validate(data))
                    continue
                reply = Reply.model_validate(data)
                if reply.retire and not self.retiring:
                    self.retiring = True
                    log.warning(
                        "ingest.child_retiring",
                        user=self.identity.name,
                        pid=self.process.pid if self.process else None,
                        reason="a handler call is stuck past its timeout",
                    )
                future = self._pending.pop(reply.id, None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except asyncio.IncompleteReadError:
            pass
        except (ValidationError, ValueError):
            why = "sent something that is not a reply"
        except (OSError, asyncio.CancelledError):
            pass
        self._fail_all(why)

    def _on_call(self, call: Call) -> None:
        task = asyncio.create_task(self._answer(call), name="ingest-child-call")
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, call: Call) -> None:
        if call.job not in self._jobs.values():
            answer = Answer(
                call=call.call, error=f"not running job {call.job}: its state is not yours"
            )
        elif self.kv is None:
            answer = Answer(call=call.call, error="handler state is not available on this worker")
        else:
            answer = await self.kv(call)
        if self._writer is None or self.dead:
            return
        with contextlib.suppress(OSError, ConnectionError):
            async with self._lock:
                self._writer.write(encode(answer))
                await self._writer.drain()

    def kill(self, why: str) -> None:
        """Kill the process now; what is in flight fails saying ``why``."""
        self._fail_all(why)

    def _fail_all(self, why: str) -> None:
        if not self.dead:
            self.dead = True
            with contextlib.suppress(ProcessLookupError, AttributeError):
                if (
                    self.process is not None
                    and self.process.returncode is None
                    and not self._stopping  # stop() gives it STOP_GRACE to log out first
                ):
                    self.process.kill()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    ChildFailed(f"the ingest child of user {self.identity.name} {why}")
                )

    async def call(
        self,
        op: Op,
        job: Job,
        task: AnyTask | None = None,
        counters: dict[str, int] | None = None,
    ) -> Reply:
        """Run one request in the child; raises the error the child reported."""
        if self.dead or self._writer is None:
            raise ChildFailed(f"the ingest child of user {self.identity.name} is not running")
        rid = next(self._ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._jobs[rid] = job.name
        self.last_used = time.monotonic()
        try:
            request = Request(id=rid, op=op, job=job, task=task, counters=counters)
            async with self._lock:
                self._writer.write(encode(request))
                await self._writer.drain()
            reply = await future
        except (OSError, ConnectionError) as e:
            self._pending.pop(rid, None)
            raise ChildFailed(
                f"the ingest child of user {self.identity.name} cannot be reached"
            ) from e
        finally:
            self._jobs.pop(rid, None)
            self.last_used = time.monotonic()
        if reply.error is not None:
            raise _error(reply)
        check_children(job, task, reply.children)
        return reply

    async def stop(self) -> None:
        """Close the socket (the child exits at end of file); kill it after a grace."""
        self._stopping = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if self.process is not None and self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
        self._fail_all("was stopped")


class OwnerChildren:
    """The worker's children by owner uid: started on demand, stopped when idle."""

    def __init__(
        self,
        account: IrodsAccount,
        policy: ChildPolicy,
        concurrency: int,
        kv: KvBackend | None = None,
    ) -> None:
        self.kv = kv
        self.account = account
        self.policy = policy
        self.concurrency = concurrency
        self._children: dict[int, OwnerChild] = {}
        self._starting: dict[int, asyncio.Lock] = {}
        #: retiring children still answering requests they had (see ``OwnerChild.retiring``)
        self._retired: list[OwnerChild] = []
        self._stopping: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._children)

    async def get(self, identity: Identity) -> OwnerChild:
        lock = self._starting.setdefault(identity.uid, asyncio.Lock())
        async with lock:
            child = self._children.get(identity.uid)
            if child is not None and child.retiring:
                self._retire(identity.uid, child)
                child = None
            if child is not None and not child.dead and child.identity == identity:
                return child
            if child is not None:
                await child.stop()
            child = OwnerChild(identity, self.account, self.policy, self.concurrency, self.kv)
            try:
                await child.start()
            except OSError as e:
                raise ChildFailed(f"cannot start an ingest child for {identity.name}: {e}") from e
            self._children[identity.uid] = child
            return child

    async def call(
        self,
        identity: Identity,
        op: Op,
        job: Job,
        task: AnyTask | None = None,
        counters: dict[str, int] | None = None,
    ) -> Reply:
        child = await self.get(identity)
        try:
            return await child.call(op, job, task, counters)
        finally:
            if child.retiring:
                self._retire(identity.uid, child)

    def _retire(self, uid: int, child: OwnerChild) -> None:
        """Take a retiring child out of service; end it now if it has nothing in flight
        (ending the process ends its stuck thread), else once it has (``reap``)."""
        if self._children.get(uid) is child:
            del self._children[uid]
        if child.retired_at is None:
            child.retired_at = time.monotonic()
            self._retired.append(child)
        if not child.busy:
            self._end_retired(child)

    def _end_retired(self, child: OwnerChild) -> None:
        if child in self._retired:
            self._retired.remove(child)
            task = asyncio.create_task(child.stop(), name="ingest-child-retire")
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
            log.info("ingest.child_retired", user=child.identity.name)

    async def reap(self, idle: float = CHILD_IDLE) -> None:
        """Stop children with nothing in flight for ``idle`` seconds, dead ones, and busy
        ones silent for longer than ``policy.silence`` (their tasks fail)."""
        now = time.monotonic()
        for uid, child in list(self._children.items()):
            limit = self.policy.silence if child.heard else max(self.policy.silence, START_GRACE)
            silent = child.busy and now - child.last_heard > limit
            if silent:
                log.warning(
                    "ingest.child_silent", user=child.identity.name, seconds=self.policy.silence
                )
                child.kill("stopped answering")
            if child.retiring:
                self._retire(uid, child)
            elif child.dead or (not child.busy and now - child.last_used > idle):
                del self._children[uid]
                await child.stop()
        for child in list(self._retired):
            overdue = child.retired_at is not None and now - child.retired_at > RETIRE_GRACE
            if overdue and child.busy:
                child.kill("was retired (a handler call stuck past its timeout)")
            if overdue or not child.busy:
                self._end_retired(child)

    async def close(self) -> None:
        children, self._children = list(self._children.values()), {}
        children += self._retired
        self._retired = []
        await asyncio.gather(*(c.stop() for c in children), return_exceptions=True)
        await asyncio.gather(*self._stopping, return_exceptions=True)

    def pids(self) -> dict[str, Any]:
        """Owner name → pid of each running child (tests, diagnostics)."""
        return {
            c.identity.name: c.process.pid
            for c in self._children.values()
            if c.process is not None and not c.dead
        }
