"""Run python-irodsclient's own test modules against a fresh test server.

    python -m devtools.irods_server.conformance [-v] [--modules file_test ...]
        [--timeout SECONDS] [--module-timeout SECONDS] [--presents 4.3.4 5.0.2 ...]
        [--hash-scheme SHA256|MD5] [--run-as ACCOUNT]

Starts a server on a free port in a temp dir, writes ``irods_environment.json`` and an
obfuscated ``.irodsA`` into a temp ``HOME/.irods``, then runs each module from the
installed package (``irods.test.<module>``) in its own ``python`` subprocess with a
per-test time limit. Run as root, it runs each server and each module as the unprivileged
account ``--run-as`` (default ``irods-test``, created with ``useradd --system`` when
absent), as a real server runs as the ``irods`` account and never as root, and gives each
module a /tmp of its own (a private mount namespace; else its own ``TMPDIR``);
``--run-as ''`` keeps root (the server with ``--allow-root``). Tests listed in
``prc_skips.toml`` are skipped with their reason. ``--presents`` names one or more
releases the server presents as; the whole suite runs once per release.
Prints per module ``passed / failed / skipped`` and ends with the line
``N passed, N failed, N skipped`` (per release, then ``total: ...`` over several);
exits 1 if any test that was not skipped failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import unittest
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from .conformance_sandbox import (
    PRIVATE_TMP_BASE,
    RUN_AS,
    SHARED_TMP,
    AccountError,
    Runner,
    own_test_data,
    own_tmp,
    private_mount_namespace,
    remove_leftovers,
    runner_for,
)

# The 22 modules of python-irodsclient 3.3.0's suite that the real-zone list
# (/work/shared/PRC_PASSING_ON_REAL_IRODS.txt in the steering notes) covers.
MODULES = (
    "file_test",
    "unicode_test",
    "query_test",
    "data_obj_test",
    "collection_test",
    "meta_test",
    "access_test",
    "admin_test",
    "user_group_test",
    "resource_test",
    "connection_test",
    "pool_test",
    "ticket_test",
    "temp_password_test",
    "cleanup_functions_test",
    "client_configuration_test",
    "extended_test",
    "message_test",
    "zone_test",
    "genquery2_test",
    "library_features_test",
    "exception_test",
)
SKIPS_FILE = Path(__file__).with_name("prc_skips.toml")
# the tests that pass against a real iRODS 5.0.2 zone (python-irodsclient 3.3.0, unmodified)
REAL_ZONE_FILE = Path(__file__).with_name("prc_real_zone_passes.txt")
# what a root server cannot show: it may write any vault (set in the child's environment)
ROOT_SERVER_ENV = "CONFORMANCE_SERVER_IS_ROOT"
ROOT_SERVER_SKIPS = {
    "exception_test.TestException.test_400": "the server runs as root here, so a vault under"
    " /home is writable; run as root without --run-as '' (or unprivileged) to run this test",
}
TEST_TIMEOUT = 60.0
MODULE_TIMEOUT = 240.0


def load_real_zone_passes(path: Path = REAL_ZONE_FILE) -> list[str]:
    """The ``module.Class.test`` ids of the tests that pass against a real zone."""
    lines = (ln.strip() for ln in path.read_text().splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


def compare_with_real_zone(
    outcomes: dict[str, str], modules: list[str], real: list[str]
) -> tuple[Counter[str], list[str]]:
    """How the real zone's passes (of the modules run) fared here, and the ids of those
    that did not pass and were not skipped with a reason."""
    listed = [t for t in real if t.split(".")[0] in modules]
    fared: Counter[str] = Counter(outcomes.get(t, "not run") for t in listed)
    missing = [t for t in listed if outcomes.get(t, "not run") not in ("passed", "skipped")]
    return fared, missing


def load_skips(path: Path = SKIPS_FILE) -> dict[str, str]:
    """``{"module.Class.test": reason}`` (``module.Class`` or ``module`` skips them all)."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    skips = data.get("skip", {})
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in skips.items()):
        raise ValueError(f"{path}: every [skip] entry needs a non-empty reason")
    return dict(skips)


# -- child: run one module, write one JSON line per test ------------------------------------------


class TestTimeout(Exception):
    """A test ran longer than the per-test limit."""


def _iter_tests(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _iter_tests(item)
        else:
            yield item


PACKAGE = "irods.test"
RUNNER_MODULE = "devtools.irods_server.conformance"  # this module (its children run it)


def short_id(test: unittest.TestCase) -> str:
    return test.id().removeprefix(f"{PACKAGE}.")


def apply_skips(suite: unittest.TestSuite, skips: dict[str, str]) -> unittest.TestSuite:
    """Mark listed tests (or whole classes) as skipped, with their reason."""
    for test in _iter_tests(suite):
        tid = short_id(test)
        reason = skips.get(tid) or skips.get(tid.rsplit(".", 1)[0]) or skips.get(tid.split(".")[0])
        if reason:
            cls = type(test)
            if tid not in skips:  # whole class or module: skip setUpClass too
                cls.__unittest_skip__ = True  # type: ignore[attr-defined]
                cls.__unittest_skip_why__ = reason  # type: ignore[attr-defined]
            method = getattr(test, test._testMethodName)
            setattr(test, test._testMethodName, unittest.skip(reason)(method))
    return suite


class JsonResult(unittest.TestResult):
    """Records each outcome as a JSON line and arms a per-test alarm."""

    def __init__(self, out: Any, timeout: float) -> None:
        super().__init__()
        self.out = out
        self.timeout = timeout
        self.started = time.monotonic()

    def _emit(self, test: Any, outcome: str, detail: str = "") -> None:
        tid = short_id(test) if isinstance(test, unittest.TestCase) else str(test)
        took = round(time.monotonic() - self.started, 2)
        row = {"id": tid, "outcome": outcome, "detail": detail, "took": took}
        self.out.write(json.dumps(row) + "\n")
        self.out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self.started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, self.timeout)

    def stopTest(self, test: unittest.TestCase) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._emit(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._emit(test, "failed", "".join(traceback.format_exception(*err))[-3000:])

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._emit(test, "failed", "".join(traceback.format_exception(*err))[-3000:])

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        self._emit(test, "skipped", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._emit(test, "passed", "expected failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._emit(test, "failed", "unexpected success")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._emit(subtest, "failed", "".join(traceback.format_exception(*err))[-3000:])


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise TestTimeout("test exceeded the per-test time limit")


def run_child(module: str, out_path: Path, timeout: float, use_skips: bool = True) -> int:
    """Run ``irods.test.<module>`` in this process, writing JSON lines to ``out_path``."""
    signal.signal(signal.SIGALRM, _on_alarm)
    with open(out_path, "a") as out:
        try:
            suite = unittest.defaultTestLoader.loadTestsFromName(f"{PACKAGE}.{module}")
        except Exception:
            detail = traceback.format_exc()[-3000:]
            out.write(json.dumps({"id": module, "outcome": "failed", "detail": detail}) + "\n")
            return 1
        if use_skips:
            skips = load_skips()
            if os.environ.get(ROOT_SERVER_ENV):
                skips.update(ROOT_SERVER_SKIPS)
            apply_skips(suite, skips)
        suite.run(JsonResult(out, timeout))
    return 0


# -- parent: server, environment, one subprocess per module ----------------------------------


def check_runner(runner: Runner) -> None:
    """AccountError unless the account can import this runner and python-irodsclient's
    tests (the repository and the packages must be readable by other accounts)."""
    if runner.uid is None:
        return
    from .launcher import REPO_ROOT

    code = f"import {RUNNER_MODULE}, irods.test.helpers, {PACKAGE}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *runner.pythonpath])
    proc = subprocess.run(
        [*runner.python, "-c", code],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **runner.popen_kwargs(),
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        raise AccountError(
            f"the account {runner.account} cannot run the modules ({last}): the repository"
            f" ({REPO_ROOT}) and the Python packages must be readable by other accounts;"
            " or pass --run-as '' to run the modules as root"
        )


def child_command(runner: Runner, target: str, out: Path, args: argparse.Namespace) -> list[str]:
    cmd = [*runner.python, "-m", RUNNER_MODULE, "--child", target]
    cmd += ["--package", args.package, "--out", str(out), "--timeout", str(args.timeout)]
    return cmd + ([] if args.use_skips else ["--no-skips"])


def read_results(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def retry_failed(
    row: dict[str, str],
    workdir: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    runner: Runner,
) -> None:
    """Run one failed test again, alone; a pass is counted but reported as flaky."""
    tid = row["id"]
    for attempt in range(1, args.retries + 1):
        out = workdir / f"retry-{tid}-{attempt}.jsonl"
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                child_command(runner, tid, out, args),
                cwd=workdir,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=args.timeout * 2,
                check=False,
                **runner.popen_kwargs(),
            )
        again = read_results(out)
        if again and all(r["outcome"] == "passed" for r in again):
            first = [ln for ln in row["detail"].strip().splitlines() if ln.strip()][-1:] or [""]
            print(f"    FLAKY {tid}: passed on retry {attempt}; first failure: {first[0][:200]}")
            row["outcome"] = "passed"
            return


def run_module(
    module: str, workdir: Path, env: dict[str, str], args: argparse.Namespace, runner: Runner
) -> list[dict[str, str]]:
    out = workdir / f"{module}.jsonl"
    log = open(workdir.parent / f"{module}.log", "w")  # noqa: SIM115 - closed below
    started = time.monotonic()
    try:
        proc = subprocess.run(
            child_command(runner, module, out, args),
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=args.module_timeout,
            check=False,
            **runner.popen_kwargs(),
        )
        crashed = proc.returncode not in (0, 1)
    except subprocess.TimeoutExpired:
        crashed = True
    finally:
        log.close()
    rows = read_results(out)
    if crashed:
        rows.append(
            {"id": module, "outcome": "failed", "detail": "module run crashed or timed out"}
        )
    for row in rows:
        if row["outcome"] == "failed" and row["id"].count(".") >= 2 and args.retries:
            retry_failed(row, workdir, env, args, runner)
    counts = Counter(r["outcome"] for r in rows)
    took = time.monotonic() - started
    print(
        f"{module}: {counts['passed']} passed, {counts['failed']} failed,"
        f" {counts['skipped']} skipped ({took:.0f}s)",
        flush=True,
    )
    if args.verbose or counts["failed"]:
        for r in rows:
            if r["outcome"] == "failed":
                last = [ln for ln in r["detail"].strip().splitlines() if ln.strip()][-1:] or [""]
                print(f"    FAIL {r['id']}: {last[0][:200]}")
    return rows


def local_host_name() -> str:
    """The name PRC's tests should use for this (loopback) server.

    PRC runs its register and redirect tests only against a server it sees as local,
    and its redirect tests only when that name is not ``localhost``: use the machine's
    own host name when it resolves to a loopback address, else ``localhost``.
    """
    name = socket.gethostname()
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        return "localhost"
    loopback = addresses and all(a.startswith("127.") or a == "::1" for a in addresses)
    return name if loopback and name != "localhost" else "localhost"


def module_env(srv: Any, home: Path, tmp: Path | None, runner: Runner) -> dict[str, str]:
    """The environment of one module's child: its own HOME with its own ``~/.irods``, and
    its own TMPDIR (PRC puts register vaults and temporary files there) unless ``tmp`` is
    None (the module has a /tmp of its own)."""
    from .launcher import REPO_ROOT

    env_file = srv.write_env(home, host=local_host_name(), client_uid=runner.uid)
    env = dict(os.environ)
    path = [str(REPO_ROOT), *runner.pythonpath, env.get("PYTHONPATH", "")]
    env.update(
        HOME=str(home),
        IRODS_ENVIRONMENT_FILE=str(env_file),
        PYTHONPATH=os.pathsep.join(p for p in dict.fromkeys(path) if p),
    )
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    else:
        env.pop("TMPDIR", None)
    return env


def run_suite(args: argparse.Namespace, release: str | None, runner: Runner) -> dict[str, str]:
    """Each module against its own fresh server (new catalog, new vault) and its own HOME
    and TMPDIR; returns ``{test id: outcome}``.

    A module may delete ``~/.irods/.irodsA``, change passwords, leave users, groups,
    resources, tickets or AVUs behind, or fill the vault: none of it reaches the next.
    """
    from .launcher import ServerProcess

    scheme = f", hash scheme {args.hash_scheme}" if args.hash_scheme else ""
    print(
        f"conformance against the test server presenting as iRODS {presents_label(release)}{scheme}"
    )
    parent = PRIVATE_TMP_BASE if runner.private_tmp else None
    with tempfile.TemporaryDirectory(prefix="irods-conformance-", dir=parent) as tmp:
        base = Path(tmp)
        base.chmod(0o711)  # the account must reach its data directory, HOME and TMPDIR
        outcomes: dict[str, str] = {}
        started = time.monotonic()
        for module in args.modules:
            mod_dir = base / module
            workdir, home, mod_tmp = mod_dir / "work", mod_dir / "home", mod_dir / "tmp"
            for d in (workdir, home, mod_tmp):
                d.mkdir(parents=True)
            server_args: dict[str, Any] = {"run_as": runner.account or None}
            if release:
                server_args["presents"] = release
            if args.hash_scheme:
                server_args["hash_scheme"] = args.hash_scheme
            with contextlib.ExitStack() as stack:
                if runner.private_tmp:  # /tmp is mod_tmp for the server and the module
                    stack.enter_context(own_tmp(mod_tmp))
                    stack.enter_context(own_test_data(mod_dir / "test-data", runner))
                in_tmp = set(os.listdir(SHARED_TMP))
                srv = stack.enter_context(ServerProcess(mod_dir / "data", **server_args))
                env = module_env(srv, home, None if runner.private_tmp else mod_tmp, runner)
                runner.give(workdir, home, *([] if runner.private_tmp else [mod_tmp]))
                if os.geteuid() == 0 and runner.uid is None:
                    env[ROOT_SERVER_ENV] = "1"
                for row in run_module(module, workdir, env, args, runner):
                    outcomes[row["id"]] = row["outcome"]
            if not runner.private_tmp:
                remove_leftovers(runner.uid, in_tmp)
            if args.keep:
                keep = Path(tempfile.mkdtemp(prefix=f"irods-conformance-{module}-"))
                for f in [*workdir.iterdir(), mod_dir / f"{module}.log"]:
                    if f.is_file():
                        (keep / f.name).write_bytes(f.read_bytes())
                print(f"    logs kept in {keep}")
        took = time.monotonic() - started
    fared, missing = compare_with_real_zone(outcomes, args.modules, load_real_zone_passes())
    print(
        f"real-zone passes of these modules: {sum(fared.values())}; here {fared['passed']}"
        f" passed, {fared['skipped']} skipped with a reason, {len(missing)} neither"
    )
    for tid in missing:
        print(f"    NOT PASSING {tid}: {outcomes.get(tid, 'not run')}")
    total = Counter(outcomes.values())
    print(
        f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped"
        f" ({len(args.modules)} modules, {took:.0f}s)",
        flush=True,
    )
    return outcomes


class Terminated(Exception):
    """The runner got SIGTERM: unwinds like an error, so that the module's child and server
    are stopped, its mounts undone and its directories removed."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"terminated by signal {signum}")


def run(args: argparse.Namespace) -> int:
    """The suite once per presented release (``--presents``; the server's default if none)."""
    signal.signal(signal.SIGTERM, _on_term)
    try:
        runner = runner_for(args.run_as)
        check_runner(runner)
        if os.geteuid() == 0:
            if private_mount_namespace():
                runner = dataclasses.replace(runner, private_tmp=True)
            else:
                print("    (no private mount namespace here: the modules share /tmp)")
        releases: list[str | None] = list(dict.fromkeys(args.presents)) if args.presents else [None]
        started = time.monotonic()
        totals: Counter[str] = Counter()
        for release in releases:
            totals.update(run_suite(args, release, runner).values())
    except AccountError as e:
        print(f"conformance: {e}", file=sys.stderr)
        return 2
    except Terminated as e:
        print(f"conformance: {e}; stopped", file=sys.stderr)
        return 143
    if len(releases) > 1:
        took = time.monotonic() - started
        print(f"{len(releases)} presentations, {len(args.modules)} modules each, {took:.0f}s")
        passed, failed, skipped = totals["passed"], totals["failed"], totals["skipped"]
        print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if totals["failed"] else 0


def presents_label(release: str | None) -> str:
    from .state import SERVER_VERSION

    return release or SERVER_VERSION.removeprefix("rods") + " (the default)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m devtools.irods_server.conformance")
    p.add_argument("--modules", nargs="+", default=list(MODULES), metavar="MODULE")
    p.add_argument("--timeout", type=float, default=TEST_TIMEOUT, help="seconds per test")
    p.add_argument("--module-timeout", type=float, default=MODULE_TIMEOUT)
    p.add_argument("-v", "--verbose", action="store_true", help="list failing tests")
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="run a failed test again alone up to N times; a pass is reported as FLAKY",
    )
    p.add_argument("--keep", action="store_true", help="keep per-module logs")
    p.add_argument(
        "--no-skips",
        dest="use_skips",
        action="store_false",
        help="ignore prc_skips.toml (for a baseline count)",
    )
    p.add_argument(
        "--presents",
        nargs="+",
        metavar="RELEASE",
        help="iRODS releases the server presents as (4.3.4, 5.0.2): the suite runs once each",
    )
    p.add_argument(
        "--hash-scheme",
        choices=("SHA256", "MD5"),
        help="the zone's default_hash_scheme (the server's default: SHA256)",
    )
    p.add_argument(
        "--run-as",
        default=RUN_AS,
        metavar="ACCOUNT",
        help="when run as root, run each server and module as this unprivileged account"
        f" (created with useradd if absent), as a real server runs as irods (default:"
        f" {RUN_AS}; '' runs them as root, the server with --allow-root)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    # where the modules come from (tests of the runner itself use their own package)
    p.add_argument("--package", default=PACKAGE, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.presents and not args.child:
        from .presentation import PRESENTATIONS

        unknown = [r for r in args.presents if r not in PRESENTATIONS]
        if unknown:
            p.error(f"--presents {unknown[0]}: choose from {', '.join(PRESENTATIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    global PACKAGE
    args = parse_args(argv)
    PACKAGE = args.package
    if args.child:
        return run_child(args.child, args.out, args.timeout, args.use_skips)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
