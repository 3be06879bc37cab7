"""``stager ingest start|list|stop|watch``: the seed's CLI over our job store.

Every option of automated ingest 0.7.0's ``irods_sync start`` is accepted in both its
underscore spelling (``--job_name``) and the dashed one (``--job-name``).  Options that
only made sense for Celery/Redis (queues, Redis host, profiling) are accepted and
ignored with a note, so existing scripts keep working.

``start`` applies the workers' rules before it writes the job: the root must lie under
``STAGER_INGEST__ALLOWED_ROOTS`` (symlinks resolved), and the job runs as the user who
starts it; root names that user with ``--owner`` (a personal account, vetted as the
workers vet it).
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
from dataclasses import dataclass, field
from typing import Any, TextIO

from pydantic import ValidationError

from services.ingest import joblog, policy
from services.ingest.handlers import EventHandler
from services.ingest.scanner import Excludes
from services.ingest.settings import IngestSettings, IngestWorkerSettings
from services.ingest.store import ACTIVE, IngestOptions, Job, JobState, JobStore
from shared.errors import ExitStatus, Forbidden, InvalidInput, StagerError, exit_status_of
from shared.logging import configure
from shared.unix_users import vet

IGNORED = (
    "redis_host",
    "redis_port",
    "redis_db",
    "profile_filename",
    "profile_when",
    "profile_interval",
    "profile_level",
)
WAIT_HINT_AFTER = 15.0
#: The anchor's queue options and their defaults: only the defaults are taken (see
#: ``job_from_args``).
QUEUES = {"restart_queue": "restart", "path_queue": "path", "file_queue": "file"}


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
    for name in IGNORED:
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
    _opt(start, "exclude_file_name", nargs="+", action="extend", default=[], help="regexes")
    _opt(start, "exclude_directory_name", nargs="+", action="extend", default=[], help="regexes")
    for flag in ("profile", "list_dir", "scan_dir_list"):
        _opt(start, flag, action="store_true", help=argparse.SUPPRESS)
    _common(start)

    lst = sub.add_parser("list", help="list ingest jobs (JSON)")
    _common(lst)
    for name in ("stop", "watch"):
        p = sub.add_parser(name, help=f"{name} a job")
        p.add_argument("job_name", metavar="JOB")
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
    for name, default in QUEUES.items():
        if getattr(args, name, default) != default:
            raise InvalidInput(
                f"--{name} {getattr(args, name)}: ingest jobs share the workers' queues "
                f"(<prefix>.ingest.dirs/.files); a job cannot have its own (omit --{name})"
            )
    joblog.check_options(args.log_when, args.log_interval, args.log_level)
    owner = job_owner(args.owner, s, os.geteuid() if euid is None else euid)
    policy.check_allowed_prefixes(s.allowed_roots)
    root = policy.resolve_root(os.path.abspath(args.root), s.allowed_roots)
    if not os.path.isdir(root):
        raise ValueError(f"root {args.root} is not a directory")
    types = [t for arg in args.exclude_file_type for t in arg.split(",") if t.strip()]
    Excludes.build(types, args.exclude_file_name, args.exclude_directory_name)
    source = label = None
    if args.event_handler:
        _, source = EventHandler.from_file(args.event_handler)
        label = os.path.abspath(args.event_handler)
    append = None
    if args.append_json:
        try:
            append = json.loads(args.append_json)
        except json.JSONDecodeError as e:
            raise ValueError(f"--append_json is not JSON: {e.msg}") from e
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
        owner=owner,
    )
    return Job(
        name=args.job_name or str(uuid.uuid4()),
        root=root,
        target=args.target,
        interval=args.interval,
        options=options,
        handler=source,
        handler_label=label,
    )


def job_status(job: Job) -> ExitStatus:
    c = job.counters
    if job.state is JobState.FAILED or c.get("files_failed") or c.get("tasks_failed"):
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


async def watch(
    store: JobStore, name: str, env: Env, progress: bool, poll: float = 0.5
) -> ExitStatus:
    """Follow a job until its pass ends (a periodic job: until it stops or fails)."""
    started = time.monotonic()
    hinted = False
    last = ""
    while True:
        job = await store.get(name)
        if progress:
            line = _line(job)
            if line != last:
                env.stderr.write(("\r" if env.tty else "") + line + ("" if env.tty else "\n"))
                env.stderr.flush()
                last = line
        if job.state not in ACTIVE:
            break
        idle = job.state is JobState.WAITING and job.passes == 0
        if idle and not hinted and time.monotonic() - started > WAIT_HINT_AFTER:
            env.stderr.write(f"\njob {name} is waiting: are ingest workers running?\n")
            hinted = True
        await asyncio.sleep(poll)
    if progress and env.tty:
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
    """The seed's grouping: periodic, single-pass and stopped jobs."""
    out: dict[str, list[dict[str, Any]]] = {"periodic": [], "singlepass": [], "stopped": []}
    for job in jobs:
        key = (
            "stopped"
            if job.state is JobState.STOPPED
            else ("periodic" if job.periodic else "singlepass")
        )
        out[key].append(job.view())
    return out


async def run(args: argparse.Namespace, env: Env) -> ExitStatus:
    settings = IngestSettings().ingest
    url = args.db_url or settings.db_url
    ignored = [n for n in IGNORED if getattr(args, n, None) is not None]
    if ignored:
        env.stderr.write(f"note: ignored (not used by this ingest): {', '.join(ignored)}\n")
    job: Job | None = None
    if args.command == "start":
        job = job_from_args(args, settings)  # validate before touching the store
    store = await JobStore.open(url)
    try:
        if args.command == "start":
            assert job is not None
            created = await store.create(job)
            env.stdout.write(created.name + "\n")
            env.stdout.flush()
            if args.synchronous:
                return await watch(store, created.name, env, args.progress)
            return ExitStatus.SUCCESS
        if args.command == "list":
            env.stdout.write(json.dumps(list_view(await store.list_jobs()), indent=2) + "\n")
            return ExitStatus.SUCCESS
        if args.command == "stop":
            stopped = await store.stop(args.job_name)
            env.stdout.write(f"{stopped.name} {stopped.state}\n")
            return ExitStatus.SUCCESS
        return await watch(store, args.job_name, env, progress=True)
    finally:
        await store.close()


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
        env.stderr.write(f"stager ingest: {e.strerror or e}\n")
        return int(ExitStatus.FAILED)
