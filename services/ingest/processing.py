"""What a thread of the owner's child does with one ingest task (blocking; PRC).

It runs in :mod:`services.ingest.child`, as the job's owner, never in the worker.

``process_dir`` lists a directory, diffs it against its collection and returns the
child tasks; ``process_files`` syncs a batch of files; ``process_delete`` removes what
disappeared.  Each returns counter deltas for the job row.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.ingest import joblog, operations, policy
from services.ingest.diff import (
    Action,
    classify,
    compare,
    list_data_objects,
    list_subcollections,
)
from services.ingest.errors import HandlerError, IngestError, TargetError, error_text
from services.ingest.handlers import EventHandler
from services.ingest.s3 import S3Error, S3Reader, list_etags
from services.ingest.scanner import (
    UNICODE_ERROR_PREFIX,
    Excludes,
    b64_path,
    logical_name,
    scan_dir,
    stat_of,
)
from services.ingest.sessions import (
    SessionPool,
    interrupt,
    renew_connections,
    resource_list_stale,
)
from services.ingest.store import Job
from services.ingest.tasks import (
    DeleteTask,
    DirTask,
    EntryRecord,
    FileBatchTask,
    FileItem,
    ReplicaRow,
    child_id,
    to_wire,
)
from shared.ingest.utils import (
    PUT_OPERATIONS,
    DeleteMode,
    Operation,
    delete_mode_is_compatible_with_operation,
)
from shared.logging import get_logger

T = TypeVar("T")
log = get_logger("stager.ingest")
#: Seconds to wait for a timed-out call to return once its connections are shut down.
INTERRUPT_GRACE = 5.0


class JobFatal(IngestError):
    """The job itself cannot run (its root task failed in a way retries cannot fix)."""


class ConnectionLost(IngestError):
    """The iRODS connection was lost on every try (:class:`Reconnect`); ``str()`` says
    how often, for how long, and the last error."""


@dataclass(frozen=True)
class Reconnect:
    """How a file or delete that lost its iRODS connection is tried again: up to
    ``tries`` more times on new connections, ``delay`` seconds before the first retry,
    doubled each time up to ``max_delay`` (defaults: 2+4+8+16+30 s, about a minute)."""

    tries: int = 5
    delay: float = 2.0
    max_delay: float = 30.0

    def wait(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1-based)."""
        return min(self.max_delay, self.delay * 2 ** (attempt - 1))


#: python-irodsclient's exception classes (one per iRODS error code, its errno part
#: dropped) that mean a socket failed: SYS_SOCK_* and these
_SOCKET_ERRORS = frozenset({"SYS_HEADER_READ_LEN_ERR", "SYS_HEADER_WRITE_LEN_ERR"})


def connection_lost(e: BaseException) -> bool:
    """Whether ``e`` (or an error it was raised from) means the iRODS connection itself
    failed: python-irodsclient's ``NetworkException`` ("Could not connect to specified
    host and port", "Could not receive server response"), a refused, reset or broken
    socket, or a ``SYS_SOCK_*``/``SYS_HEADER_*`` error code.  Such an error is transient:
    the same call on a new connection may well succeed.  An S3 source's failure (a refused
    or unreachable endpoint included) is not: S3 requests retry on their own, and the
    error says what to fix."""
    from irods.exception import NetworkException

    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, S3Error):
            return False
        if isinstance(cur, NetworkException | ConnectionError):
            return True
        for cls in type(cur).__mro__:
            if cls.__name__.startswith("SYS_SOCK_") or cls.__name__ in _SOCKET_ERRORS:
                return True
        cur = cur.__cause__ or cur.__context__
    return False


class TimedOut(IngestError):
    """A task's call ran past the handler's ``timeout``.

    ``hung``: the call did not return even after its connections were shut down (handler
    code stuck in Python): its thread cannot be stopped, so the child retires (the worker
    replaces it and ends it, which ends the thread).  Such a call is not retried.
    """

    def __init__(self, message: str, hung: bool = False) -> None:
        super().__init__(message)
        self.hung = hung


@dataclass
class Context:
    """A job's loaded handler, excludes and the worker's sessions."""

    job: Job
    handler: EventHandler
    excludes: Excludes
    sessions: SessionPool
    timeouts: concurrent.futures.ThreadPoolExecutor | None = None
    #: the prefixes every scanned directory must resolve under (None: not checked)
    allowed_roots: Sequence[str] | None = None
    #: the job's bucket when its source is S3 (``--s3_keypair``)
    s3: S3Reader | None = None
    #: the job's logger (its --log_* options; :mod:`services.ingest.joblog`)
    job_log: Any = None
    #: called when a timed-out call stays stuck (the child must be replaced)
    on_hung: Callable[[], None] | None = None
    #: how a call that lost its iRODS connection is tried again
    reconnect: Reconnect = field(default_factory=Reconnect)

    @classmethod
    def load(
        cls,
        job: Job,
        sessions: SessionPool,
        timeouts: concurrent.futures.ThreadPoolExecutor | None = None,
        allowed_roots: Sequence[str] | None = None,
        default_log_level: str = "info",
        on_hung: Callable[[], None] | None = None,
        s3_endpoints: Sequence[str] | None = None,
        reconnect: Reconnect | None = None,
    ) -> Context:
        """``s3_endpoints``: the S3 endpoints the job may contact (None: not checked)."""
        o = job.options
        handler = EventHandler.from_source(job.handler, job.handler_label or "handler", o.timeout)
        excludes = Excludes.build(
            o.exclude_file_type, o.exclude_file_name, o.exclude_directory_name
        )
        s3 = S3Reader(o.s3, job.root, s3_endpoints) if o.s3 is not None else None
        job_log = joblog.job_logger(log_config_of(job), default_log_level)
        return cls(
            job,
            handler,
            excludes,
            sessions,
            timeouts,
            allowed_roots,
            s3,
            job_log,
            on_hung,
            reconnect or Reconnect(),
        )

    @functools.cached_property
    def logger(self) -> Any:
        """The job's logger, bound once (every file of every task asks for it)."""
        return (self.job_log or log).bind(ingest_job=self.job.name)

    @functools.cached_property
    def _meta_base(self) -> dict[str, Any]:
        """The keys of :meth:`meta` that are the same for every call (built once)."""
        j, o = self.job, self.job.options
        base: dict[str, Any] = {
            "job_name": j.name,
            "root": j.root,
            "src_path": j.root,
            "path": j.root,
            "target": j.target,
            "root_target_collection": j.target,
            "interval": j.interval,
            # the anchor's queue names: ours are the broker's ingest queues, shared by
            # every job (a job cannot choose its own; see docs/ingest.md)
            "restart_queue": "restart",
            "path_queue": "path",
            "file_queue": "file",
            "profile": False,
            "synchronous": False,
            "progress": False,
            "idle_disconnect_seconds": o.irods_idle_disconnect_seconds,
            "append_json": o.append_json,
            "initial_ingest": o.initial_ingest,
            "ignore_cache": o.ignore_cache,
            "files_per_task": o.files_per_task,
            "exclude_file_type": o.exclude_file_type,
            "exclude_file_name": o.exclude_file_name,
            "exclude_directory_name": o.exclude_directory_name,
            "event_handler": j.handler_label,
        }
        if self.s3 is not None:
            base.update(self.s3.meta())
        return base

    def meta(self, **extra: Any) -> dict[str, Any]:
        """The seed's ``meta`` dict handed to every hook (its keys and values): a new dict
        each call, its ``config`` too (a hook may change what it is handed)."""
        meta = dict(self._meta_base)
        meta["config"] = {
            "log": log_config_of(self.job),
            "profile": joblog.log_config(None, None, None, None),
            # get_redis(meta["config"]): the job's keys in the job store
            "store": {"job": self.job.name},
        }
        meta.update(extra)
        return meta

    def session(self, meta: dict[str, Any]) -> Any:
        return self.sessions.get(
            self.handler.as_user(meta),
            idle_seconds=self.job.options.irods_idle_disconnect_seconds,
        )

    def retrying(
        self,
        meta: dict[str, Any],
        func: Callable[[], T],
        counts: Counter[str],
        session: Any = None,
    ) -> T:
        """Run ``func`` with the handler's max_retries, delay and timeout.

        ``session``: the iRODS session ``func`` uses; on a timeout its connections in
        use are shut down, so a call stuck on the network returns and frees its thread.
        """
        logger = self.logger
        retries = self.handler.max_retries(logger, meta)
        attempt = 0
        renewed = False  # once per call: the session's connections renewed (resource list)
        while True:
            try:
                return self._timed(meta, func, session)
            except (HandlerError, JobFatal):
                raise
            except TimedOut as e:
                if e.hung or attempt >= retries:
                    raise
                attempt += 1
                self._wait_to_retry(meta, attempt, counts, e)
            except Exception as e:
                if session is not None and not renewed and resource_list_stale(e):
                    # the connections' agents predate the resource: once, on fresh ones
                    renewed = True
                    renew_connections(session)
                    logger.info(
                        "reconnecting: resource unknown to this connection's agent",
                        path=_printable(meta.get("path")),
                    )
                    continue
                if attempt >= retries or connection_lost(e):  # lost: a new session is due
                    raise
                attempt += 1
                self._wait_to_retry(meta, attempt, counts, e)

    def _wait_to_retry(
        self, meta: dict[str, Any], attempt: int, counts: Counter[str], error: Exception
    ) -> None:
        """Count and log retry ``attempt`` of :meth:`retrying` after ``error``, then wait
        the handler's delay for it."""
        logger = self.logger
        counts["retries"] += 1
        logger.warning(
            "retry", path=_printable(meta.get("path")), attempt=attempt, error=error_text(error)
        )
        time.sleep(self.handler.delay(logger, meta, attempt))

    def reconnecting(
        self, meta: dict[str, Any], call: Callable[[int], T], counts: Counter[str]
    ) -> T:
        """``call(attempt)`` until it returns; when it fails because the iRODS connection
        was lost, this thread's sessions are dropped and it runs again on new ones after a
        growing delay (:class:`Reconnect`), then fails with :class:`ConnectionLost`.

        ``attempt`` is 0 on the first run: a later run must first look at what the lost
        one may already have done (the call is not assumed idempotent)."""
        policy = self.reconnect
        attempt = 0
        waited = 0.0
        while True:
            try:
                return call(attempt)
            except Exception as e:
                if not connection_lost(e):
                    raise
                self.sessions.discard()
                if attempt >= policy.tries:
                    raise ConnectionLost(
                        f"iRODS connection lost on each of {attempt + 1} tries over "
                        f"{waited:.0f} s (last: {e}); check that the iRODS server is up and "
                        "reachable, then run the job again"
                    ) from e
                attempt += 1
                counts["retries"] += 1
                pause = policy.wait(attempt)
                self.logger.warning(
                    "iRODS connection lost; retrying on a new connection",
                    path=_printable(meta.get("path")),
                    target=meta.get("target"),
                    attempt=attempt,
                    delay=pause,
                    error=str(e),
                )
                time.sleep(pause)
                waited += pause

    def timed(self, meta: dict[str, Any], func: Callable[[], T]) -> T:
        """``func`` (no iRODS session of ours: e.g. ``pre_job``) bounded by the timeout."""
        return self._timed(meta, func)

    def _timed(self, meta: dict[str, Any], func: Callable[[], T], session: Any = None) -> T:
        if self.timeouts is None:
            return func()
        limit = self.handler.timeout(self.logger, meta)
        future = self.timeouts.submit(func)
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError as e:
            if future.cancel():  # never started (every thread of the pool is busy)
                raise TimedOut(f"timed out after {limit:g} s (waiting for a thread)") from e
            if session is not None and interrupt(session):
                # the blocked call returns with an error; wait for it so the session is
                # not used by two threads at once
                with contextlib.suppress(Exception):
                    future.result(timeout=INTERRUPT_GRACE)
            hung = not future.done()
            if hung:  # handler code stuck in Python: only ending the process stops it
                self.logger.error(
                    "ingest.handler_hung", path=_printable(meta.get("path")), timeout=limit
                )
                if self.on_hung is not None:
                    self.on_hung()
            raise TimedOut(f"timed out after {limit:g} s", hung=hung) from e


def log_config_of(job: Job) -> dict[str, Any]:
    """The anchor's ``config["log"]`` of ``job`` (its --log_* options)."""
    o = job.options
    return joblog.log_config(o.log_filename, o.log_when, o.log_interval, o.log_level)


def _printable(path: Any) -> str:
    return to_wire(path)[0] if isinstance(path, str) else str(path)


@dataclass
class DirResult:
    children: list[DirTask | FileBatchTask | DeleteTask] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    #: states for the job store to record (or forget) once the task counts as done
    entries: list[EntryRecord] = field(default_factory=list)


def zone_exists(session: Any, zone: str) -> bool:
    """Whether the catalog knows ``zone`` (a GenQuery any user may run)."""
    from irods.models import Zone

    try:
        return any(True for _ in session.query(Zone.name).filter(Zone.name == zone))
    except Exception:  # a server without the zone table: fall back to the collection
        return bool(session.collections.exists("/" + zone))


def check_root(ctx: Context, task: DirTask, session: Any, meta: dict[str, Any]) -> None:
    """Fail the job clearly for a bad root, zone or operation/delete-mode pair."""
    path = task.os_path
    if ctx.s3 is not None:
        try:
            ctx.s3.check_bucket()
        except IngestError as e:
            raise JobFatal(str(e)) from None
    elif not os.path.isdir(path):
        raise JobFatal(f"root {_printable(path)} is not a readable directory")
    else:
        try:  # listable by the owner? (checked before the target collection is made)
            with os.scandir(path):
                pass
        except OSError as e:
            raise root_unlisted(path, e) from None
    zone = task.collection.strip("/").split("/")[0]
    if not zone_exists(session, zone):
        raise TargetError(f"target {task.collection}: zone {zone!r} does not exist")
    op = ctx.handler.operation(session, meta)
    mode = ctx.handler.delete_mode(meta)
    if not delete_mode_is_compatible_with_operation(mode, op):
        raise HandlerError(f"operation [{op}] and delete_mode [{mode}] are incompatible")
    if ctx.s3 is not None and mode is not DeleteMode.DO_NOT_DELETE:
        raise HandlerError(
            f"S3 bucket syncs do not support DeleteMode [{mode}]. "
            "Only DeleteMode.DO_NOT_DELETE is supported."
        )


def root_unlisted(path: str, e: Exception) -> JobFatal:
    """The job's root cannot be listed: the job fails saying why and what to check."""
    if isinstance(e, OSError):
        why = e.strerror or type(e).__name__
        return JobFatal(
            f"root {_printable(path)} cannot be listed: {why}: the job's owner must be able "
            "to read and enter it"
        )
    return JobFatal(f"root {_printable(path)} cannot be listed: {e}")


def process_dir(ctx: Context, task: DirTask) -> DirResult:
    """List one directory, diff it against its collection, and fan out.

    A try that lost its iRODS connection is done again from the start on a new one
    (asking the catalog again whether the collection exists: the lost try may have made
    it); its children are only sent once the whole listing succeeded."""
    retries: Counter[str] = Counter()

    def attempt(n: int) -> DirResult:
        return _process_dir(ctx, task if n == 0 else task.model_copy(update={"exists": None}))

    meta = ctx.meta(path=task.os_path, target=task.collection, task="sync_dir")
    result = ctx.reconnecting(meta, attempt, retries)
    result.counts.update(retries)
    return result


def _process_dir(ctx: Context, task: DirTask) -> DirResult:
    result = DirResult()
    counts = result.counts
    path = task.os_path
    coll = task.collection
    meta = ctx.meta(path=path, target=coll, task="sync_dir")
    session = ctx.session(meta)
    logger = ctx.logger
    if ctx.s3 is None and ctx.allowed_roots is not None:
        try:
            policy.check_scan(path, ctx.job.root, ctx.allowed_roots)
        except policy.RootRefused as e:
            raise JobFatal(e.message) from None
    if task.is_root:
        check_root(ctx, task, session, meta)
    exists = task.exists
    if exists is None:
        exists = bool(session.collections.exists(coll))
    o = ctx.job.options
    # the directory itself: changed since the job last synced it (mtime or ctime, as the
    # anchor's sync time), or never recorded? Only then do the coll_modify hooks fire.
    # (an S3 prefix has no state: its hooks fire every pass, nothing is recorded)
    tracking = task.known is not None and ctx.s3 is None
    own = stat_of(os.lstat(path)) if ctx.s3 is None else None
    changed = o.ignore_cache or compare(own, task.known_self) in (None, Action.MODIFY, Action.META)
    ctx.retrying(
        meta,
        lambda: operations.ensure_collection(
            ctx.handler, logger, session, dict(meta), bool(exists), changed
        ),
        counts,
        session=session,
    )
    if not task.is_root and not exists:  # a renamed directory: its original path (AVU)
        _, reason = logical_name(path, os.path.basename(path), ctx.handler.character_map())
        if reason:
            operations.annotate_collection(session, coll, reason, b64_path(path))
    if tracking and own != task.known_self:
        parent, base = os.path.split(path.rstrip("/") or "/")
        result.entries.append(EntryRecord.of(parent, base, own))
    try:
        listing = ctx.s3.list_dir(path, ctx.excludes) if ctx.s3 else scan_dir(path, ctx.excludes)
    except (OSError, IngestError) as e:
        if task.is_root:  # nothing of the job can be synced: the job fails, not one task
            raise root_unlisted(path, e) from None
        raise
    counts["dirs"] += 1
    counts["files_excluded"] += listing.excluded
    for bad in listing.unreadable:
        logger.error("physical path is not readable; skipped", path=_printable(bad))
    counts["files_unreadable"] += len(listing.unreadable)

    catalog = {} if (not exists or o.initial_ingest) else list_data_objects(session, coll)
    known = {k.os_name: k.stat for k in task.known or ()} if tracking else {}
    etags = list_etags(session, coll) if ctx.s3 is not None and catalog else {}
    mode = ctx.handler.delete_mode(meta)
    deleting = mode is not DeleteMode.DO_NOT_DELETE and exists
    subcolls = set(list_subcollections(session, coll)) if deleting else set()
    cmap = ctx.handler.character_map()
    dir_text, dir_b64 = to_wire(path)

    batch: list[FileItem] = []
    ids = (child_id(task.task_id, i) for i in itertools.count())

    def flush() -> None:
        if batch:
            result.children.append(
                FileBatchTask(
                    task_id=next(ids),
                    job=task.job,
                    generation=task.generation,
                    dir_path=dir_text,
                    dir_path_b64=dir_b64,
                    collection=coll,
                    items=list(batch),
                )
            )
            batch.clear()

    # sorted, so that listing an unchanged directory again yields the same child ids
    for entry in sorted(listing.entries, key=lambda e: e.name):
        logical, reason = logical_name(entry.path, entry.name, cmap)
        target = f"{coll}/{logical}"
        if entry.is_dir:
            text, b64 = to_wire(entry.path)
            child_exists: bool | None = False if not exists else None
            if deleting:
                child_exists = target in subcolls
                subcolls.discard(target)
            result.children.append(
                DirTask(
                    task_id=next(ids),
                    job=task.job,
                    generation=task.generation,
                    path=text,
                    path_b64=b64,
                    collection=target,
                    exists=child_exists,
                )
            )
            continue
        counts["files_seen"] += 1
        replicas = catalog.pop(logical, [])
        fmeta = file_meta(ctx, entry.path, target, entry.size, entry.mtime, entry.ctime, entry.kind)
        fmeta["unicode_error_filename"] = logical if reason == "UnicodeEncodeError" else None
        op = ctx.handler.operation(session, fmeta)
        resource = ctx.handler.to_resource(session, fmeta)
        physical = ctx.handler.target_path(session, fmeta) or operations.register_path(fmeta)
        # a put of a symbolic link copies its target: compare the target's size
        size = entry.stat[0] if entry.kind == "link" and op in PUT_OPERATIONS else entry.size
        was = known.get(entry.name)
        action = classify(
            replicas,
            size,
            entry.mtime,
            op,
            physical,
            resource,
            force=o.ignore_cache,
            stat=entry.stat if tracking else None,
            known=was,
        )
        if (
            action is Action.SKIP
            and op is not Operation.PUT
            and entry.etag
            and etags.get(logical, entry.etag) != entry.etag
        ):
            action = Action.MODIFY  # same size and second, other content (S3 ETag)
        if action is Action.SKIP:
            counts["files_skipped"] += 1
            if tracking and was != entry.stat:
                result.entries.append(EntryRecord.of(path, entry.name, entry.stat))
            continue
        name_text, name_b64 = to_wire(entry.name)
        batch.append(
            FileItem(
                name=name_text,
                name_b64=name_b64,
                logical=logical,
                reason=reason,  # type: ignore[arg-type]
                kind=entry.kind,
                size=entry.size,
                mtime=entry.mtime,
                ctime=entry.ctime,
                action=action.value,
                replicas=[ReplicaRow(**dataclasses.asdict(r)) for r in replicas],
                stat=entry.stat if tracking else None,
                etag=entry.etag,
            )
        )
        if len(batch) >= o.files_per_task:
            flush()
    flush()
    if tracking:  # entries gone (or now excluded): forget what was recorded
        present = {e.name for e in listing.entries}
        result.entries.extend(
            EntryRecord.of(path, name, None) for name in sorted(set(known) - present)
        )
    if deleting:
        gone = [f"{coll}/{name}" for name in sorted(catalog)]
        for i in range(0, len(gone), o.files_per_task):
            result.children.append(
                DeleteTask(
                    task_id=next(ids),
                    job=task.job,
                    generation=task.generation,
                    collection=coll,
                    data_objects=gone[i : i + o.files_per_task],
                )
            )
        if subcolls:
            result.children.append(
                DeleteTask(
                    task_id=next(ids),
                    job=task.job,
                    generation=task.generation,
                    collection=coll,
                    collections=sorted(subcolls),
                )
            )
    return result


def file_meta(
    ctx: Context,
    path: str,
    target: str,
    size: int,
    mtime: float,
    ctime: float,
    kind: str,
) -> dict[str, Any]:
    meta = ctx.meta(
        path=path,
        target=target,
        size=size,
        mtime=mtime,
        ctime=ctime,
        is_link=kind == "link",
        is_socket=kind == "socket",
        file_type=kind,
        task="sync_file",
    )
    name = target.rsplit("/", 1)[-1]
    if name.startswith(UNICODE_ERROR_PREFIX) and name != os.path.basename(path):
        meta["unicode_error_filename"] = name
    return meta


def process_files(ctx: Context, task: FileBatchTask) -> DirResult:
    """Sync each file of the batch; a failing file is counted, the others go on.

    Each file synced is recorded (``entries``) with the state it had when listed."""
    result = DirResult()
    counts = result.counts
    logger = ctx.logger
    directory = task.os_dir
    catalog = _catalog_again(ctx, task) if task.recheck else None
    for item in task.items:
        path = os.path.join(directory, item.os_name)
        target = f"{task.collection}/{item.logical}"
        meta = file_meta(ctx, path, target, item.size, item.mtime, item.ctime, item.kind)
        if item.reason:
            meta["b64_reason"] = item.reason
            meta["b64_path_str"] = b64_path(path)
        if item.reason == "UnicodeEncodeError":
            meta["unicode_error_filename"] = item.logical
        if item.etag:
            meta["s3_etag"] = item.etag
        replicas = [r.replica() for r in item.replicas]
        action = Action(item.action)
        if catalog is not None and item.logical in catalog:
            replicas = catalog[item.logical]
            try:
                again = recheck(ctx, meta, item, replicas)
            except Exception as e:
                counts["files_failed"] += 1
                logger.error(
                    "file failed", path=_printable(path), target=target, error=error_text(e)
                )
                continue
            if again is None:  # the earlier delivery synced it: counted now, not redone
                counts[_COUNTER.get(item.action, "files_skipped")] += 1
                if item.stat is not None:
                    result.entries.append(EntryRecord.of(directory, item.os_name, item.stat))
                continue
            action = again
        try:
            outcome = ctx.reconnecting(
                meta,
                functools.partial(
                    _sync_file, ctx, meta, item, task.collection, action, replicas, counts
                ),
                counts,
            )
        except Exception as e:
            counts["files_failed"] += 1
            logger.error("file failed", path=_printable(path), target=target, error=error_text(e))
            continue
        counts[_OUTCOME.get(outcome.action, "files_skipped")] += 1
        counts["bytes"] += outcome.bytes
        if item.stat is not None:
            result.entries.append(EntryRecord.of(directory, item.os_name, item.stat))
    return result


#: the counter of a file by the outcome of its sync, and by the action the listing chose
_OUTCOME = {"created": "files_created", "modified": "files_modified"}
_COUNTER = {"create": "files_created", "modify": "files_modified"}


def _catalog_again(ctx: Context, task: FileBatchTask) -> dict[str, list[Any]] | None:
    """The batch's collection as the catalog has it now (None: it cannot be read, and
    the files go as listed)."""
    meta = ctx.meta(path=task.os_dir, target=task.collection, task="sync_file")
    try:
        return list_data_objects(ctx.session(meta), task.collection)
    except Exception as e:
        ctx.logger.warning("redelivered batch: catalog not read again", error=str(e))
        return None


def recheck(
    ctx: Context, meta: dict[str, Any], item: FileItem, replicas: list[Any]
) -> Action | None:
    """What a redelivered file still needs, given the data object found in the catalog:
    ``None`` when it already equals the file (an earlier delivery of the batch synced it
    before its worker died), else the action to take now (never a second create)."""
    session = ctx.session(meta)
    op = ctx.handler.operation(session, meta)
    if op is Operation.PUT:  # a put never sets the object's mtime: its size tells
        if replicas[0].size == item.size:
            return None
        raise IngestError(
            f"{meta['target']} exists with {replicas[0].size} bytes of {item.size}: an "
            "interrupted put left it; PUT does not overwrite (remove it, or use PUT_SYNC)"
        )
    resource = ctx.handler.to_resource(session, meta)
    physical = ctx.handler.target_path(session, meta) or operations.register_path(meta)
    action = classify(replicas, item.size, item.mtime, op, physical, resource)
    return None if action is Action.SKIP else action


def _sync_file(
    ctx: Context,
    meta: dict[str, Any],
    item: FileItem,
    collection: str,
    action: Action,
    replicas: list[Any],
    counts: Counter[str],
    attempt: int,
) -> operations.Outcome:
    """Try ``attempt`` (0: the first) to sync one file."""
    session = ctx.session(meta)
    if attempt:  # the lost try may have synced the file, or left part of it
        again = retake(ctx, session, meta, item, collection)
        if again is None:  # it had: counted once, as listed (its bytes did go)
            put = ctx.handler.operation(session, meta) in PUT_OPERATIONS
            done = {"create": "created", "modify": "modified"}.get(item.action, "skipped")
            return operations.Outcome(done, item.size if put else 0)
        action, replicas = again
    return ctx.retrying(
        meta,
        functools.partial(
            operations.sync_entry,
            ctx.handler,
            ctx.logger,
            session,
            dict(meta),
            action,
            replicas,
            checksum=ctx.job.options.checksum,
            source=ctx.s3,
        ),
        counts,
        session=session,
    )


def retake(
    ctx: Context, session: Any, meta: dict[str, Any], item: FileItem, collection: str
) -> tuple[Action, list[Any]] | None:
    """What a file still needs after a try that lost its connection: ``None`` when the
    catalog shows it synced (so it is neither put twice nor counted twice), else the
    action and replicas to go on with.  A put the lost try left partial (the object was
    not there when listed: the part is that try's) is removed and put again."""
    found = list_data_objects(session, collection, item.logical).get(item.logical)
    if not found:
        return Action(item.action), []
    try:
        again = recheck(ctx, meta, item, found)
    except IngestError:
        if item.action != Action.CREATE.value:
            raise
        session.data_objects.unlink(meta["target"], force=True)
        ctx.logger.warning(
            "removed the part a lost put left; putting it again", target=meta["target"]
        )
        return Action.CREATE, []
    return None if again is None else (again, found)


def process_delete(ctx: Context, task: DeleteTask) -> Counter[str]:
    """Remove data objects and collections whose source disappeared."""
    counts: Counter[str] = Counter()
    logger = ctx.logger
    meta = ctx.meta(path=None, target=task.collection, task="delete")
    mode = ctx.handler.delete_mode(meta)

    def delete_object(n: int, m: dict[str, Any]) -> None:
        session = ctx.session(m)
        if n and not session.data_objects.exists(m["target"]):
            return  # the lost try removed it
        ctx.retrying(
            m,
            functools.partial(operations.delete_data_object, ctx.handler, logger, session, m, mode),
            counts,
            session=session,
        )

    def delete_tree(n: int, m: dict[str, Any]) -> int:
        session = ctx.session(m)
        if n and not session.collections.exists(m["target"]):
            return 0  # the lost try removed it (its objects were counted by neither)
        return ctx.retrying(
            m,
            functools.partial(
                operations.delete_collection_tree, ctx.handler, logger, session, m, mode
            ),
            counts,
            session=session,
        )

    for logical in task.data_objects:
        m = {**meta, "target": logical}
        try:
            ctx.reconnecting(m, functools.partial(delete_object, m=m), counts)
            counts["files_deleted"] += 1
        except Exception as e:
            counts["files_failed"] += 1
            logger.error("delete failed", target=logical, error=str(e))
    for coll in task.collections:
        m = {**meta, "target": coll}
        try:
            counts["files_deleted"] += ctx.reconnecting(
                m, functools.partial(delete_tree, m=m), counts
            )
        except Exception as e:
            counts["files_failed"] += 1
            logger.error("collection delete failed", target=coll, error=str(e))
    return counts
