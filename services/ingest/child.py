"""An ingest job owner's process: the scans, the handler code and the file reads of its jobs.

The ingest worker (:mod:`services.ingest.owners`) never touches an ingest tree and never
runs handler code itself. It starts one of these per job owner, with a clean environment
(no broker URL, job store or signing key), in isolated mode (``python -I``: no
``PYTHON*`` variables, no user site, not the current directory on ``sys.path``)::

    python -I -c BOOTSTRAP PROJECT_ROOT FD [USER MIN_UID MAX_UID]

Started by root, the process first vets ``USER`` again (:func:`shared.unix_users.vet`) and
becomes it for good (:func:`shared.runas.drop_privileges`: setgid, initgroups, setuid,
non-dumpable), asks to die with its parent, sets ``no_new_privs`` and umask 077, and only
then reads anything from the worker or imports the ingest processing code and the handler.
A worker that is not root starts it without ``USER``: it stays the worker's own user.

Wire (the socket ``FD``): frames of a 4-byte big-endian length and a JSON body. First the
worker sends :class:`Init` (the iRODS account, the allowed roots, concurrency, logging), then
:class:`Request` frames; the child answers each with a :class:`Reply` of the same ``id``,
in any order (``concurrency`` requests run at once in a thread pool), and sends an empty
reply with id 0 every ``heartbeat`` seconds. End of file on the socket ends the process.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.ingest.compat import transport
from services.ingest.compat.transport import Answer, Call
from services.ingest.store import COUNTERS, Job
from services.ingest.tasks import EntryRecord, IngestTask
from shared.irods import IrodsAccount

#: The frame header: the body's length.
HEADER = struct.Struct(">I")
#: The largest frame either side accepts (a reply for one very large directory).
MAX_FRAME = 512 * 1024 * 1024
#: How long a handler waits for the worker to answer a call on the job store.
CALL_TIMEOUT = 60.0
Op = Literal["pre_job", "post_job", "dir", "files", "delete"]
ErrorKind = Literal["fatal", "target", "handler", "other"]


class Init(BaseModel):
    """What the child needs besides its user: sent once, before any request."""

    model_config = ConfigDict(extra="forbid")

    account: IrodsAccount
    allowed_roots: list[str]
    #: the S3 endpoints and proxies a job may read from (empty: none)
    s3_endpoints: list[str] = Field(default_factory=list)
    concurrency: int = Field(ge=1, le=256)
    log_level: str = "info"
    log_json: bool = True
    #: seconds between the child's heartbeats (a reply with id 0)
    heartbeat: float = Field(default=5.0, gt=0)
    #: retries of a file whose iRODS connection was lost, and the first delay (doubling)
    reconnect_tries: int = Field(default=5, ge=0, le=50)
    reconnect_delay: float = Field(default=2.0, ge=0, le=600)


class Request(BaseModel):
    """One piece of a job's work."""

    model_config = ConfigDict(extra="forbid")

    id: int
    op: Op
    job: Job
    task: IngestTask | None = None
    counters: dict[str, int] | None = None


class Reply(BaseModel):
    """What one request did: child tasks and counter deltas, or why it failed.

    The worker trusts nothing in it beyond its shape: counters are known names and
    non-negative, and the worker checks the child tasks' ids and job itself.
    """

    model_config = ConfigDict(extra="forbid")

    id: int
    children: list[IngestTask] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    #: file and directory states the job store records once the task counts as done
    entries: list[EntryRecord] = Field(default_factory=list)
    error: str | None = Field(default=None, max_length=10_000)
    error_kind: ErrorKind | None = None
    #: a handler call of this child is stuck past its timeout: send it no more work, and
    #: end it once its requests are answered (that ends the stuck thread)
    retire: bool = False

    @field_validator("counts")
    @classmethod
    def _known_counters(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = set(v) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown counters {sorted(unknown)}")
        if any(n < 0 for n in v.values()):
            raise ValueError("negative counter")
        return v


def encode(model: BaseModel) -> bytes:
    """One frame.  :class:`Init` carries the iRODS password itself (the socket is the only
    place it travels: never argv, environment or logs)."""
    if isinstance(model, Init):
        data = model.model_dump(mode="json")
        data["account"]["password"] = model.account.password.get_secret_value()
        body = json.dumps(data).encode()
    else:
        body = model.model_dump_json().encode()
    return HEADER.pack(len(body)) + body


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> bytes | None:
    """The next frame's body, or ``None`` at end of file."""
    head = _recv_exactly(sock, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is too large")
    return _recv_exactly(sock, size)


#: Imported before root is dropped (the owner may not be able to read the interpreter's or
#: the project's files): the work (processing imports the rest of it), the iRODS client,
#: the handler-author API (``shared.ingest``), and standard modules handler files use.
PRELOAD_PACKAGES = ("irods", "shared.ingest")
PRELOAD_MODULES = (
    "services.ingest.processing",
    "services.ingest.examples.landing_zone",
    # the S3 source's client (services.ingest.s3 imports it when a job first needs it)
    "minio",
    "urllib3",
    "_strptime",  # datetime.strptime imports it on first use (minio parses LastModified)
    "xml.etree.ElementTree",
    "services.ingest.compat.core",
    "services.ingest.compat.utils",
    "services.ingest.compat.redis_utils",
    "services.ingest.compat.redis_key",
    "services.ingest.compat.sync_job",
    "services.ingest.compat.sync_logging",
    "irods.meta",
    "re",
    "shared.logging",
    "structlog",
    "structlog.contextvars",
    "base64",
    "datetime",
    "hashlib",
    "json",
    "logging",
    "logging.handlers",
    "pathlib",
    "shutil",
    "subprocess",
    "tempfile",
    "uuid",
    "zlib",
)


def become(user: str, min_uid: int, max_uid: int) -> None:
    """Vet ``user`` again and become it for good (before anything else happens)."""
    from shared.runas import die_with_parent, drop_privileges, preload
    from shared.unix_users import vet

    preload(PRELOAD_PACKAGES, "ingest child", PRELOAD_MODULES)
    parent = os.getppid()
    drop_privileges(vet(user, min_uid, max_uid=max_uid))
    die_with_parent(signal.SIGKILL)  # setuid cleared an earlier request
    if os.getppid() != parent:  # the worker died before that: nobody to work for
        os._exit(1)


def job_hook(ctx: Any, op: Op, request: Request) -> None:
    """``pre_job`` or ``post_job``, bounded as every other hook by the handler's timeout
    (or the job's ``timeout``): one stuck in Python retires this process, which ends it."""
    from services.ingest.processing import TimedOut

    meta = ctx.meta(path=request.job.root)
    if op == "post_job":
        meta["counters"] = request.counters or {}
    hook = ctx.handler.pre_job if op == "pre_job" else ctx.handler.post_job
    try:
        ctx.timed(meta, lambda: hook(ctx.logger, meta))
    except TimedOut as e:
        stopped = (
            "; the hook was still running: the owner's process is replaced and ended to stop it"
            if e.hung
            else ""
        )
        raise TimedOut(
            f"{e} (the handler's timeout(), else the job's timeout option, else 3600 s){stopped}",
            hung=e.hung,
        ) from e


class Server:
    """Runs requests in a thread pool; replies go back on the socket under a lock."""

    def __init__(self, sock: socket.socket, init: Init) -> None:
        from services.ingest.sessions import SessionPool

        self.sock = sock
        self.init = init
        self.sessions = SessionPool(init.account)
        self.pool = concurrent.futures.ThreadPoolExecutor(init.concurrency, "ingest")
        self.timeouts = concurrent.futures.ThreadPoolExecutor(init.concurrency, "ingest-timed")
        self._send = threading.Lock()
        self._ctx_lock = threading.Lock()
        self._contexts: dict[tuple[str, int], Any] = {}
        self._calls: dict[int, tuple[threading.Event, list[Answer]]] = {}
        #: a timed-out handler call is stuck in one of our threads (see ``hung``)
        self.retiring = False
        transport.install(self.call_worker)

    def hung(self) -> None:
        """A call outlived its timeout and its interrupted connections: the thread cannot
        be stopped from inside, so every reply from now on asks the worker to retire us."""
        self.retiring = True

    def call_worker(self, call: Call) -> Answer:
        """Send a handler's :class:`Call` to the worker and wait for its answer."""
        done: tuple[threading.Event, list[Answer]] = (threading.Event(), [])
        self._calls[call.call] = done
        try:
            with self._send:
                self.sock.sendall(encode(call))
            if not done[0].wait(CALL_TIMEOUT):
                return Answer(call=call.call, error="the ingest worker did not answer in time")
            return done[1][0]
        finally:
            self._calls.pop(call.call, None)

    def answered(self, answer: Answer) -> None:
        waiting = self._calls.get(answer.call)
        if waiting is not None:
            waiting[1].append(answer)
            waiting[0].set()

    def context(self, job: Job) -> Any:
        from services.ingest.processing import Context, Reconnect

        key = (job.name, job.generation)
        with self._ctx_lock:
            ctx = self._contexts.get(key)
            if ctx is None or ctx.job.handler != job.handler:
                for old in [k for k in self._contexts if k[0] == job.name]:
                    del self._contexts[old]
                ctx = Context.load(
                    job,
                    self.sessions,
                    self.timeouts,
                    self.init.allowed_roots,
                    s3_endpoints=self.init.s3_endpoints,
                    default_log_level=self.init.log_level,
                    on_hung=self.hung,
                    reconnect=Reconnect(self.init.reconnect_tries, self.init.reconnect_delay),
                )
                self._contexts[key] = ctx
            return ctx

    def beat(self) -> None:
        """A heartbeat every ``init.heartbeat`` seconds: the worker stops a silent child
        (one its owner stopped), so it cannot hold the worker's slots."""
        beat = encode(Reply(id=0))
        while True:
            with self._send:
                self.sock.sendall(beat)
            time.sleep(self.init.heartbeat)

    def serve(self) -> None:
        threading.Thread(target=self.beat, name="ingest-heartbeat", daemon=True).start()
        while (frame := recv_frame(self.sock)) is not None:
            data = json.loads(frame)
            if isinstance(data, dict) and "call" in data:
                self.answered(Answer.model_validate(data))
                continue
            request = Request.model_validate(data)
            self.pool.submit(self.run, request)

    def run(self, request: Request) -> None:
        import structlog

        with structlog.contextvars.bound_contextvars(ingest_job=request.job.name):
            reply = self.execute(request)
        try:
            data = encode(reply)
        except Exception as e:  # the worker waits for an answer to every request
            failed = Reply(id=request.id, error=f"cannot send the result: {e}", error_kind="other")
            data = encode(failed)
        with self._send:
            self.sock.sendall(data)

    def execute(self, request: Request) -> Reply:
        from services.ingest.errors import HandlerError, TargetError
        from services.ingest.processing import (
            JobFatal,
            process_delete,
            process_dir,
            process_files,
        )
        from services.ingest.tasks import DeleteTask, DirTask, FileBatchTask

        reply = Reply(id=request.id)
        try:
            ctx = self.context(request.job)
            task, op = request.task, request.op
            counts: Counter[str] = Counter()
            if op in ("pre_job", "post_job"):
                job_hook(ctx, op, request)
            elif op == "dir" and isinstance(task, DirTask):
                result = process_dir(ctx, task)
                reply.children, counts = result.children, result.counts
                reply.entries = result.entries
            elif op == "files" and isinstance(task, FileBatchTask):
                result = process_files(ctx, task)
                counts, reply.entries = result.counts, result.entries
            elif op == "delete" and isinstance(task, DeleteTask):
                counts = process_delete(ctx, task)
            else:
                raise ValueError(f"operation {op} does not fit its task")
            reply.counts = dict(counts)
        except (JobFatal, TargetError, HandlerError) as e:
            kind: ErrorKind = (
                "fatal"
                if isinstance(e, JobFatal)
                else "target"
                if isinstance(e, TargetError)
                else "handler"
            )
            reply.error, reply.error_kind = str(e)[:10_000], kind
        except Exception as e:
            reply.error, reply.error_kind = (str(e) or type(e).__name__)[:10_000], "other"
        reply.retire = self.retiring
        return reply

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.timeouts.shutdown(wait=False, cancel_futures=True)
        self.sessions.close()


def main(argv: list[str]) -> int:
    """``FD [USER MIN_UID MAX_UID]``: become the user, then serve the worker until EOF."""
    fd = int(argv[0])
    if len(argv) > 1:
        become(argv[1], int(argv[2]), int(argv[3]))
    elif os.geteuid() == 0:
        sys.stderr.write("ingest child: started as root without a user to become\n")
        return 2
    from shared.runas import forbid_new_privileges

    forbid_new_privileges()
    os.umask(0o077)
    os.chdir("/")
    sock = socket.socket(fileno=fd)
    frame = recv_frame(sock)
    if frame is None:
        return 0
    init = Init.model_validate_json(frame)
    from shared.logging import configure

    configure(init.log_level, json=init.log_json)
    server = Server(sock, init)
    try:
        server.serve()
    finally:
        with contextlib.suppress(Exception):
            server.close()
    # end of file: the worker closed us; threads still in handler code end with us
    os._exit(0)
