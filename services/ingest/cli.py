"""``stager ingest start|list|stop|watch``: the seed's CLI over our job store.

Every option of automated ingest 0.7.0's ``irods_sync start`` is parsed in both its
underscore spelling (``--job_name``) and the dashed one (``--job-name``).  Options this
ingest does not implement (Redis, profiling, ``--list_dir``/``--scan_dir_list``, a
job's own queues) are refused with a usage error that names the option and says what
to use instead (:data:`REFUSED`): none is silently ignored.

``start`` applies the workers' rules before it writes the job: the root must lie under
``STAGER_INGEST__ALLOWED_ROOTS`` (symlinks resolved), and the job runs as the user who
starts it; root names that user with ``--owner`` (a personal account, vetted as the
workers vet it).

Output a script written for the seed parses: ``list`` prints the seed's JSON (``periodic``,
``singlepass``, ``stopped``; each job with ``job_name``, ``total_tasks``,
``remaining_tasks``, ``failed_tasks``, ``retried_tasks``, ``elapsed_time``, ``start_time``)
plus ``state``; ``stop`` prints the stopped job's entry as one JSON line; ``--json`` gives
our full records instead (``list``: as ``GET /v1/ingest``; ``watch``: JSON lines).
The job store is ``STAGER_INGEST__DB_URL`` (or ``--db_url``), by default the repository's
``.local/ingest.sqlite`` wherever the command runs from; only ``start`` creates a store
(0600, in a 0700 directory) and says where.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.handlers
import os
import pwd
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from pydantic import ValidationError

from services.ingest import joblog, policy, s3
from services.ingest.errors import JobNotFound
from services.ingest.handlers import EventHandler
from services.ingest.scanner import Excludes
from services.ingest.settings import IngestSettings, IngestWorkerSettings
from services.ingest.store import ACTIVE, IngestOptions, Job, JobState, JobStore
from shared.errors import ExitStatus, Forbidden, InvalidInput, StagerError, exit_status_of
from shared.logging import configure
from shared.unix_users import vet

_STORE = "the job store replaces Redis: give --db_url or STAGER_INGEST__DB_URL"
_PROFILE = (
    "profiling is not implemented: task counts and durations are the ingest worker's "
    "Prometheus metrics (/metrics), per-file events its log (--log_filename)"
)
#: Anchor options parsed only to be refused: option -> what to use instead.
REFUSED = {
    "redis_host": _STORE,
    "redis_port": _STORE,
    "redis_db": _STORE,
    "profile": _PROFILE,
    "profile_filename": _PROFILE,
    "profile_when": _PROFILE,
    "profile_interval": _PROFILE,
    "profile_level": _PROFILE,
    "list_dir": "not needed: directories are always listed with os.scandir (omit it)",
    "scan_dir_list": "not needed: directories are always listed with os.scandir (omit it)",
}
#: ``REFUSED`` options that are flags (the rest take a value).
_FLAGS = ("profile", "list_dir", "scan_dir_list")
WAIT_HINT_AFTER = 15.0
#: The anchor's queue options and their defaults: only the defaults are taken
#: (:func:`policy.check_queues`).
QUEUES = policy.QUEUES


@dataclass
class Env:
    """Where the CLI writes (tests inject their own)."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def tty(self) -> bool:
        return self.stdout.isatty()


def _opt(parser: argparse.ArgumentParser, name: str, *extra: str, **kwargs: Any) -> None:
    """Add ``--name_with_underscores`` and ``--name-with-dashes`` as one option."""
    flags = [*extra, f"--{name}"]
    if "_" in name:
        flags.append("--" + name.replace("_", "-"))
    parser.add_argument(*flags, dest=name, **kwargs)


def _common(parser: argparse.ArgumentParser) -> None:
    _opt(parser, "db_url", help="job store URL (default: $STAGER_INGEST__DB_URL)")
    _opt(parser, "log_filename", help="log file (default: stderr)")
    _opt(parser, "log_when", help="rotation unit (TimedRotatingFileHandler)")
    _opt(parser, "log_interval", type=int, help="rotation interval")
    _opt(parser, "log_level", help="DEBUG, INFO, WARNING or ERROR")
    for name, default in QUEUES.items():
        _opt(parser, name, default=default, help=argparse.SUPPRESS)
    for name in REFUSED:
        if name not in _FLAGS:
            _opt(parser, name, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stager ingest", description="automated ingest jobs")
    sub = parser.add_subparsers(dest="command", required=True)

    start = sub.add_parser("start", help="start an ingest job")
    start.add_argument("root", metavar="ROOT", help="source directory")
    start.add_argument("target", metavar="TARGET", help="target collection (created if missing)")
    _opt(start, "interval", "-i", type=float, help="restart interval in seconds (periodic job)")
    _opt(start, "job_name", help="job name (default: a generated uuid)")
    _opt(start, "owner", help="the Unix user the job runs as (root only; default: you)")
    _opt(start, "event_handler", help="event handler file (Python)")
    _opt(start, "initial_ingest", action="store_true", help="skip existence checks")
    _opt(start, "synchronous", action="store_true", help="wait; exit 1 if any file failed")
    _opt(start, "progress", action="store_true", help="show progress (with --synchronous)")
    _opt(start, "files_per_task", type=int, default=50, help="files per task (default 50)")
    _opt(start, "ignore_cache", action="store_true", help="re-sync files that look unchanged")
    _opt(start, "checksum", action="store_true", help="register checksums of ingested files")
    _opt(start, "append_json", help="JSON handed to handlers as meta['append_json']")
    _opt(
        start,
        "exclude_file_type",
        action="append",
        default=[],
        help="regular, directory, character, block, socket, pipe, link (comma-separated)",
    )
    _opt(
        start,
        "irods_idle_disconnect_seconds",
        type=int,
        default=60,
        help="close iRODS connections idle this long (default 60)",
    )
    _opt(
        start,
        "timeout",
        type=float,
        help="seconds each task's work and pre_job/post_job may take when the handler has no "
        "timeout() hook (default 3600)",
    )
    _opt(start, "exclude_file_name", nargs="+", action="extend", default=[], help="regexes")
    _opt(start, "exclude_directory_name", nargs="+", action="extend", default=[], help="regexes")
    # S3 sources (automated ingest's --s3_* options; a job is an S3 job with --s3_keypair)
    _opt(start, "s3_keypair", help="key-pair file: access key line, secret key line (S3 source)")
    _opt(start, "s3_endpoint_domain", help=f"S3 host[:port] (default {s3.DEFAULT_ENDPOINT})")
    _opt(start, "s3_region_name", help=f"S3 region (default {s3.DEFAULT_REGION})")
    _opt(start, "s3_proxy_url", help="URL of a proxy for S3 access")
    _opt(start, "s3_insecure_connection", action="store_true", help="plain HTTP to the endpoint")
    _opt(
        start,
        "s3_multipart_chunksize_in_mib",
        type=int,
        choices=range(5, 5001),
        metavar="[5-5000]",
        help=f"part size of the objects' multipart uploads, to verify their ETags"
        f" (default {s3.DEFAULT_CHUNK_MIB})",
    )
    for flag in _FLAGS:
        _opt(start, flag, action="store_true", default=None, help=argparse.SUPPRESS)
    _common(start)

    lst = sub.add_parser("list", help="list ingest jobs (the seed's JSON)")
    _opt(lst, "json", action="store_true", help="our full records ({'jobs': [...]})")
    _common(lst)
    for name in ("stop", "watch"):
        p = sub.add_parser(name, help=f"{name} a job")
        p.add_argument("job_name", metavar="JOB")
        _opt(p, "json", action="store_true", help="JSON output (watch: one line per change)")
        _common(p)
    return parser


def setup_logging(args: argparse.Namespace, env: Env) -> None:
    """JSON lines, as every service logs (:func:`shared.logging.configure`), to stderr or
    ``--log_filename`` (rotated only with ``--log_when``, as the anchor's default)."""
    handler: logging.Handler | None = None
    if args.log_filename:
        if args.log_when:
            handler = logging.handlers.TimedRotatingFileHandler(
                args.log_filename, when=args.log_when, interval=args.log_interval or 1
            )
        else:
            handler = logging.FileHandler(args.log_filename)
    configure(args.log_level or "warning", json=True, stream=env.stderr, handler=handler)


def job_owner(requested: str | None, settings: IngestWorkerSettings, euid: int) -> str:
    """Who a job started here runs as: the caller; root must name a personal account."""
    if euid == 0:
        if not requested:
            raise InvalidInput(
                "as root, name the Unix user the job runs as with --owner USER "
                "(ingest never runs as root)"
            )
        return vet(requested, settings.min_uid, max_uid=settings.max_uid).name
    me = pwd.getpwuid(euid).pw_name
    if requested not in (None, me):
        raise Forbidden(f"a job you start runs as you ({me}): only root may give --owner")
    return me


def job_from_args(
    args: argparse.Namespace, settings: IngestWorkerSettings | None = None, euid: int | None = None
) -> Job:
    """Validate the start options into a job (raises ``StagerError``/``ValueError``)."""
    s = settings or IngestWorkerSettings()
    policy.check_queues({name: getattr(args, name, None) for name in QUEUES})
    joblog.check_options(args.log_when, args.log_interval, args.log_level)
    owner = job_owner(args.owner, s, os.geteuid() if euid is None else euid)
    source = s3_source(args, s.s3_endpoints)
    if source is not None:
        root = s3.normal_root(args.root)
    else:
        policy.check_allowed_prefixes(s.allowed_roots)
        root = policy.resolve_root(os.path.abspath(args.root), s.allowed_roots)
        if not os.path.isdir(root):
            raise ValueError(
                f"root {args.root} is not a directory: give the path of an existing directory"
            )
    types = [t for arg in args.exclude_file_type for t in arg.split(",") if t.strip()]
    Excludes.build(types, args.exclude_file_name, args.exclude_directory_name)
    handler = label = None
    if args.event_handler:
        _, handler = EventHandler.from_file(args.event_handler)
        label = os.path.abspath(args.event_handler)
    append = None
    if args.append_json:
        try:
            append = json.loads(args.append_json)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"--append_json is not JSON: {e.msg}: give a JSON object, e.g. '{{\"k\": 1}}'"
            ) from e
    options = IngestOptions(
        exclude_file_type=types,
        exclude_file_name=args.exclude_file_name,
        exclude_directory_name=args.exclude_directory_name,
        files_per_task=args.files_per_task,
        initial_ingest=args.initial_ingest,
        ignore_cache=args.ignore_cache,
        checksum=args.checksum,
        append_json=append,
        log_level=args.log_level,
        log_filename=os.path.abspath(args.log_filename) if args.log_filename else None,
        log_when=args.log_when,
        log_interval=args.log_interval,
        irods_idle_disconnect_seconds=args.irods_idle_disconnect_seconds,
        timeout=args.timeout,
        owner=owner,
        s3=source,
    )
    return Job(
        name=args.job_name or str(uuid.uuid4()),
        root=root,
        target=args.target,
        interval=args.interval,
        options=options,
        handler=handler,
        handler_label=label,
    )


S3_OPTIONS = (
    "s3_endpoint_domain",
    "s3_region_name",
    "s3_proxy_url",
    "s3_multipart_chunksize_in_mib",
)


def s3_source(
    args: argparse.Namespace, allowed_endpoints: Sequence[str] = s3.DEFAULT_ALLOWED_ENDPOINTS
) -> s3.S3Source | None:
    """The job's S3 source (``--s3_keypair`` given), else ``None``.

    The key-pair file is checked here (it exists, is not readable by everyone, has both
    lines) so a bad one is a usage error now; the owner's child reads it again when it
    needs the bucket. Its contents are never stored: the job keeps the path.
    """
    given = [n for n in S3_OPTIONS if getattr(args, n, None) is not None]
    if getattr(args, "s3_insecure_connection", False):
        given.append("s3_insecure_connection")
    if not getattr(args, "s3_keypair", None):
        if given:
            raise InvalidInput(
                f"--{given[0]} needs --s3_keypair (an S3 source is given by its key-pair file)"
            )
        return None
    keypair = os.path.abspath(args.s3_keypair)
    try:
        s3.read_keypair(keypair)
    except s3.S3Error as e:
        raise InvalidInput(str(e)) from None
    fields: dict[str, Any] = {n[3:]: getattr(args, n) for n in S3_OPTIONS if n in given}
    source = s3.S3Source(keypair=keypair, secure=not args.s3_insecure_connection, **fields)
    try:
        s3.check_endpoints(source, allowed_endpoints)
    except s3.EndpointRefused as e:
        raise InvalidInput(str(e)) from None
    return source


def check_refused(args: argparse.Namespace) -> None:
    """Refuse the first anchor option given that this ingest does not implement."""
    for name, instead in REFUSED.items():
        if getattr(args, name, None) is not None:
            raise InvalidInput(f"--{name} is not supported: {instead}")


def job_status(job: Job) -> ExitStatus:
    c = job.counters
    if job.state is JobState.FAILED or c.get("files_failed") or c.get("tasks_failed") or job.error:
        return ExitStatus.FAILED
    return ExitStatus.SUCCESS


def _line(job: Job) -> str:
    c = job.counters
    done = c.get("files_created", 0) + c.get("files_modified", 0) + c.get("files_skipped", 0)
    return (
        f"[{job.name}] {job.state} pass {job.passes}: {done}/{c.get('files_seen', 0)} files "
        f"({c.get('files_created', 0)} new, {c.get('files_modified', 0)} updated, "
        f"{c.get('files_skipped', 0)} unchanged), {c.get('files_failed', 0)} failed, "
        f"{c.get('retries', 0)} retries, {job.pending} tasks left"
    )


def _json_line(job: Job) -> str:
    return json.dumps({**job.anchor_view(), "passes": job.passes, "counters": job.counters})


async def watch(
    store: JobStore,
    name: str,
    env: Env,
    progress: bool,
    poll: float = 0.5,
    as_json: bool = False,
) -> ExitStatus:
    """Follow a job until its pass ends.

    A periodic job: the pass running now, or (between passes) the next one; the seed's
    ``watch`` of a periodic job returned only once the job was stopped.
    """
    started = time.monotonic()
    hinted = False
    last = ""
    first = await store.get(name)
    # the pass to follow: the running one, else the next one to start
    target = first.passes if first.state is JobState.RUNNING else first.passes + 1
    while True:
        job = await store.get(name)
        if as_json or progress:
            line = _json_line(job) if as_json else _line(job)
            if line != last:
                if as_json:
                    env.stdout.write(line + "\n")
                    env.stdout.flush()
                else:
                    tty = env.tty
                    env.stderr.write(("\r" if tty else "") + line + ("" if tty else "\n"))
                    env.stderr.flush()
                last = line
        if job.state not in ACTIVE:
            break
        if job.passes > target or (job.passes == target and job.state is not JobState.RUNNING):
            break  # a periodic job's pass ended (it waits for its next tick)
        warning = job.warning()
        if warning and not hinted and time.monotonic() - started > WAIT_HINT_AFTER:
            env.stderr.write(f"\njob {name}: {warning}\n")
            hinted = True
        await asyncio.sleep(poll)
    if progress and env.tty and not as_json:
        env.stderr.write("\n")
    if job.state is JobState.FAILED:
        env.stderr.write(f"job {name} failed: {job.error}\n")
    elif job.state is JobState.STOPPED:
        env.stderr.write(f"job {name} was stopped and may not have finished\n")
    status = job_status(job)
    if status is ExitStatus.FAILED and job.state is not JobState.FAILED:
        c = job.counters
        env.stderr.write(
            f"job {name}: {c.get('files_failed', 0)} file(s) and "
            f"{c.get('tasks_failed', 0)} task(s) failed\n"
        )
    return status


def list_view(jobs: list[Job]) -> dict[str, list[dict[str, Any]]]:
    """The seed's ``list``: periodic, single-pass and stopped jobs, each as the seed showed
    one (:meth:`Job.anchor_view`). Unlike the seed, finished single-pass jobs stay listed
    (``state`` says how they ended) until ``STAGER_INGEST__RETENTION`` ages them out."""
    out: dict[str, list[dict[str, Any]]] = {"periodic": [], "singlepass": [], "stopped": []}
    now = time.time()
    for job in jobs:
        key = (
            "stopped"
            if job.state is JobState.STOPPED
            else ("periodic" if job.periodic else "singlepass")
        )
        out[key].append(job.anchor_view(now))
    return out


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL (absolute), else None."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return os.path.abspath(path)


async def run(args: argparse.Namespace, env: Env) -> ExitStatus:
    settings = IngestSettings().ingest
    url = args.db_url or settings.db_url
    check_refused(args)
    job: Job | None = None
    if args.command == "start":
        job = job_from_args(args, settings)  # validate before touching the store
    path = sqlite_file(url)
    existed = path is None or _exists(path)
    if not existed:
        if args.command == "list":  # nothing to list: say where we looked, create nothing
            env.stderr.write(f"note: no ingest job store at {path} yet: {_where()}\n")
            empty: Any = {"jobs": []} if args.json else list_view([])
            env.stdout.write(json.dumps(empty) + "\n")
            return ExitStatus.SUCCESS
        if args.command != "start":
            raise JobNotFound(
                f"no ingest job named {args.job_name!r}: there is no job store at {path} "
                f"({_where()})"
            )
    store = await JobStore.open(url)
    if not existed:  # only start gets here without a store
        env.stderr.write(
            f"note: created a new ingest job store at {path} (mode 0600); the ingest "
            f"workers must use the same one ({_where()})\n"
        )
    try:
        if args.command == "start":
            assert job is not None
            created = await store.create(job)
            env.stdout.write(created.name + "\n")
            env.stdout.flush()
            if args.synchronous and created.periodic:
                env.stderr.write(
                    "note: --synchronous does not wait for a periodic job (as automated "
                    f"ingest); follow a pass with: stager ingest watch {created.name}\n"
                )
            elif args.synchronous:
                return await watch(store, created.name, env, args.progress)
            return ExitStatus.SUCCESS
        if args.command == "list":
            await store.purge(settings.retention)
            jobs = await store.list_jobs()
            if args.json:
                env.stdout.write(json.dumps({"jobs": [j.view() for j in jobs]}, indent=2) + "\n")
            else:
                env.stdout.write(json.dumps(list_view(jobs)) + "\n")
            return ExitStatus.SUCCESS
        if args.command == "stop":
            stopped = await store.stop(args.job_name)
            record = stopped.view() if args.json else stopped.anchor_view()
            env.stdout.write(json.dumps(record) + "\n")
            return ExitStatus.SUCCESS
        return await watch(store, args.job_name, env, progress=True, as_json=args.json)
    finally:
        await store.close()


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _where() -> str:
    return (
        "the store is STAGER_INGEST__DB_URL or --db_url, by default the repository's "
        ".local/ingest.sqlite"
    )


def main(argv: list[str] | None = None, env: Env | None = None) -> int:
    env = env or Env()
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args, env)
    try:
        return int(asyncio.run(run(args, env)))
    except KeyboardInterrupt:
        return int(ExitStatus.SUCCESS)
    except (StagerError, ValueError, ValidationError) as e:
        if isinstance(e, ValidationError):
            e = InvalidInput.from_validation(e)
        message = e.message if isinstance(e, StagerError) else str(e)
        env.stderr.write(f"stager ingest: {message}\n")
        return int(exit_status_of(e) if isinstance(e, StagerError) else ExitStatus.USAGE)
    except OSError as e:  # the job store cannot be reached
        env.stderr.write(
            f"stager ingest: the job store cannot be used: {e.strerror or e}: {_where()}\n"
        )
        return int(ExitStatus.FAILED)
