"""`isync [options] SRC DST`: argument parsing, output choice, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from services.isync.environment import Environment

if TYPE_CHECKING:
    from services.isync.models import TransferOptions, TransferReport
    from services.isync.progress import ProgressSink

# The transfer engine (and python-irodsclient under it) loads only once the arguments are
# known to be good: `isync --help` and usage errors answer without paying for it. `--help`
# does not import pydantic either (shared.errors and services.isync.errors bring it in):
# its import is most of what `isync --help` would cost (84 -> 56 ms median,
# /work/notes/bench5.md), so the error modules are imported where they are used.

#: ExitStatus.SUCCESS and ExitStatus.INTERRUPTED, for the paths that must not import
#: shared.errors (tests/isync/test_startup.py checks the values agree).
_SUCCESS = 0
_INTERRUPTED = 130

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """`100`, `64k`, `8M`, `1.5G` (binary units) → bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500k, 8M, 1G)")
    value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def parse_size_or_zero(text: str) -> int:
    """As `parse_size`, also accepting 0 (off)."""
    return 0 if text.strip() == "0" else parse_size(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        from services.isync.errors import UsageError

        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="isync",
        description="Copy files and trees between local storage and iRODS "
        "(irods:/zone/path or i:path is iRODS; anything else is local).",
        epilog="Exit codes: 0 done, 1 some files failed, 2 usage, 3 authentication, "
        "4 source not found, 5 permission denied, 130 interrupted.",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("-r", "--recursive", action="store_true", help="copy directories")
    p.add_argument("-f", "--force", action="store_true", help="overwrite changed destinations")
    p.add_argument(
        "-K",
        "--verify-checksum",
        dest="verify",
        action="store_true",
        help="compute sha256 while copying and compare it with the iRODS checksum",
    )
    p.add_argument(
        "-N",
        "--streams",
        type=int,
        default=None,
        help="streams per large file (default: one per 32 MiB, at most one per core, 2 to 4)",
    )
    p.add_argument("-p", "--parallel", type=int, default=8, help="files in parallel (8)")
    p.add_argument("-P", "--progress", action="store_true", help="progress bar on a terminal")
    p.add_argument("--json", action="store_true", help="JSON-lines progress on stdout")
    p.add_argument("--dry-run", action="store_true", help="show what would be copied")
    p.add_argument("--include", action="append", default=[], metavar="GLOB")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    policy = p.add_mutually_exclusive_group()
    policy.add_argument(
        "--checksum",
        dest="skip_policy",
        action="store_const",
        const="checksum",
        default="checksum",
        help="skip files whose size and sha256 match (default)",
    )
    policy.add_argument(
        "--size-only",
        dest="skip_policy",
        action="store_const",
        const="size-only",
        help="skip files whose size matches",
    )
    p.add_argument("--bwlimit", type=parse_size, metavar="BYTES/S", help="e.g. 50M")
    p.add_argument("--follow-symlinks", action="store_true", help="follow symlinks")
    p.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report")
    p.add_argument(
        "--delete-password-file",
        action="store_true",
        help="delete IRODS_PASSWORD_FILE after reading it",
    )
    p.add_argument("--large-threshold", type=parse_size, default=32 * 1024**2, metavar="SIZE")
    p.add_argument("--buffer-size", type=parse_size, default=8 * 1024**2, metavar="SIZE")
    p.add_argument(
        "--single-buffer-max",
        type=parse_size_or_zero,
        default=4 * 1024**2,
        metavar="SIZE",
        help="files up to SIZE move in one request (4M; 0 = open/write/close)",
    )
    p.add_argument(
        "--no-bulk",
        dest="bulk",
        action="store_false",
        help="never put new small files in bundles (BULK_DATA_OBJ_PUT)",
    )
    p.add_argument("--resume-dir", type=Path, metavar="DIR", help="where put journals live")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def options_from(args: argparse.Namespace) -> TransferOptions:
    from pydantic import ValidationError

    from services.isync.errors import UsageError
    from services.isync.models import TransferOptions
    from shared.errors import validation_errors

    try:
        return TransferOptions(
            recursive=args.recursive,
            force=args.force,
            verify_checksum=args.verify,
            streams=args.streams,
            parallel_files=args.parallel,
            dry_run=args.dry_run,
            include=tuple(args.include),
            exclude=tuple(args.exclude),
            skip_policy=args.skip_policy,
            bwlimit=args.bwlimit,
            follow_symlinks=args.follow_symlinks,
            resume_dir=args.resume_dir,
            large_file_threshold=args.large_threshold,
            buffer_size=args.buffer_size,
            single_buffer_max=args.single_buffer_max,
            bulk=args.bulk,
        )
    except ValidationError as e:
        err = validation_errors(e)[0]
        field = str(err["field"])
        flag = _FLAG_OF.get(field, "--" + field.replace("_", "-"))
        raise UsageError(f"invalid {flag}: {err['message']}") from e


#: The flag of each option whose flag is not its field name with dashes.
_FLAG_OF = {
    "parallel_files": "--parallel",
    "verify_checksum": "--verify-checksum",
    "large_file_threshold": "--large-threshold",
}


def _sink(args: argparse.Namespace, env: Environment) -> ProgressSink:
    from services.isync.progress import JsonLinesSink, LineSink, RichSink

    if args.json:
        return JsonLinesSink(env.stdout)
    if args.progress and env.stderr_isatty:
        return RichSink(env.stderr, verbose=args.verbose)
    return LineSink(env.stderr, verbose=args.verbose)


def _summary(report: TransferReport) -> dict[str, Any]:
    return report.model_dump(exclude={"outcomes"})


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextlib.contextmanager
def _no_gc_while_importing() -> Iterator[None]:
    """The transfer engine's imports (python-irodsclient, pydantic and the models it builds:
    ~300 modules) without the cyclic garbage collector, which would otherwise run dozens
    of collections over objects that all live as long as the process; then those objects
    are frozen (`gc.freeze`: never scanned again) and collection resumes as it was. Cuts
    ~30-50 ms of CPU (12-17 %) from a put's start-up (/work/notes/isyncperf.md). Only the
    first time in a process (a library user or a test calling `main` again pays nothing
    and freezes nothing more)."""
    if "services.isync.engine" in sys.modules:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def run(argv: Sequence[str], env: Environment, cancel: threading.Event) -> int:
    """Parse, transfer, report; raises IsyncError for whole-run failures.

    Returns the exit status (an ExitStatus, or 0 for `--help`)."""
    parser = build_parser()
    if any(a in ("-h", "--help") for a in argv):
        env.stdout.write(parser.format_help())
        return _SUCCESS
    args = parser.parse_args(list(argv))
    with _no_gc_while_importing():
        from services.isync.account import load_account
        from services.isync.engine import transfer
        from services.isync.journal import default_state_dir
        from services.isync.progress import RichSink
        from shared.errors import ExitStatus

    if args.resume_dir is None:
        args.resume_dir = default_state_dir(env.environ)
    options = options_from(args)
    account = load_account(env.environ, delete_password_file=args.delete_password_file)
    sink = _sink(args, env)
    try:
        # every file's record only where it is written out (--report, a dry run's plan);
        # otherwise failed ones, so a large tree does not cost ~1.5 KB of memory per file
        keep: Literal["all", "failed"] = "all" if args.report or options.dry_run else "failed"
        report = transfer(args.src, args.dst, account, options, sink, cancel, keep_outcomes=keep)
    finally:
        if isinstance(sink, RichSink):
            sink.close()
    if args.report:
        try:
            args.report.write_text(report.model_dump_json(indent=2))
        except OSError as e:
            env.error(
                f"cannot write report {args.report}: {e.strerror}: choose a writable path"
                " for --report"
            )
    if args.json:
        env.stdout.write(json.dumps({"type": "summary", **_summary(report)}) + "\n")
        env.stdout.flush()
    elif args.verbose or (report.files_failed and report.files_total > 1):
        rate = report.bytes_sent / report.elapsed if report.elapsed else 0.0
        env.stderr.write(
            f"isync: {report.files_transferred} transferred, {report.files_skipped} skipped, "
            f"{report.files_failed} failed; {_human(report.bytes_sent)} sent in "
            f"{report.elapsed:.1f} s ({_human(rate)}/s)\n"
        )
    if report.exit_status == ExitStatus.INTERRUPTED:
        env.error(
            f"interrupted after {_human(report.bytes_sent)} sent; "
            "run the same command again to resume"
        )
    return ExitStatus(report.exit_status)


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Console entry point; returns the exit status, never raises a traceback at the user.

    Called as the command (no arguments: `isync`, `python -m services.isync`) it ends the
    process itself once its output is flushed (see `_exit`)."""
    code = _main(argv, env)
    if argv is None and env is None:
        _exit(code)
    return code


def _exit(code: int) -> NoReturn:
    """Flush stdout and stderr, then end the process without the interpreter's teardown.

    By now the transfer has closed every file, journal and connection; what is left is
    freeing ~350 modules and their objects one by one, which cost 70-80 ms of CPU per run
    (measured with strace: no system call between the last disconnect and exit_group) —
    a sixth of a whole 256 MiB put on the test server.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _main(argv: Sequence[str] | None, env: Environment | None) -> int:
    env = env or Environment()
    cancel = threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: Any) -> None:
            if cancel.is_set():
                raise KeyboardInterrupt
            cancel.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        return int(run(sys.argv[1:] if argv is None else argv, env, cancel))
    except KeyboardInterrupt:
        env.error("interrupted: run the same command again to resume")
        return _INTERRUPTED
    except Exception as e:
        return _failed(e, env)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _failed(e: Exception, env: Environment) -> int:
    """Report a whole-run failure in one line (no traceback); its exit status."""
    from services.isync.errors import IsyncError, UsageError, exit_status_for, translate

    if isinstance(e, IsyncError):
        env.error(str(e))
        if isinstance(e, UsageError):
            env.stderr.write("usage: isync [options] SRC DST  (isync --help for details)\n")
        return int(exit_status_for(e))
    err = translate(e)  # the last resort: one line, no traceback
    env.error(str(err))
    return int(exit_status_for(err))
