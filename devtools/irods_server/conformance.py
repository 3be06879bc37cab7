"""Run python-irodsclient's own test modules against a fresh test server.

    python -m devtools.irods_server.conformance [-v] [--modules file_test ...]
        [--timeout SECONDS] [--module-timeout SECONDS]

Starts a server on a free port in a temp dir, writes ``irods_environment.json`` and an
obfuscated ``.irodsA`` into a temp ``HOME/.irods``, then runs each module from the
installed package (``irods.test.<module>``) in its own ``python`` subprocess with a
per-test time limit. Tests listed in ``prc_skips.toml`` are skipped with their reason.
Prints per module ``passed / failed / skipped`` and ends with the line
``N passed, N failed, N skipped``; exits 1 if any test that was not skipped failed.
"""

from __future__ import annotations

import argparse
import contextlib
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

MODULES = (
    "file_test",
    "unicode_test",
    "query_test",
    "data_obj_test",
    "collection_test",
    "meta_test",
)
SKIPS_FILE = Path(__file__).with_name("prc_skips.toml")
TEST_TIMEOUT = 60.0
MODULE_TIMEOUT = 240.0


def load_skips(path: Path = SKIPS_FILE) -> dict[str, str]:
    """``{"module.Class.test": reason}`` (a ``module.Class`` entry skips the whole class)."""
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


def short_id(test: unittest.TestCase) -> str:
    return test.id().removeprefix("irods.test.")


def apply_skips(suite: unittest.TestSuite, skips: dict[str, str]) -> unittest.TestSuite:
    """Mark listed tests (or whole classes) as skipped, with their reason."""
    for test in _iter_tests(suite):
        tid = short_id(test)
        reason = skips.get(tid) or skips.get(tid.rsplit(".", 1)[0])
        if reason:
            cls = type(test)
            if tid not in skips:  # whole class: skip setUpClass too
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


def run_child(module: str, out_path: Path, timeout: float) -> int:
    """Run ``irods.test.<module>`` in this process, writing JSON lines to ``out_path``."""
    signal.signal(signal.SIGALRM, _on_alarm)
    with open(out_path, "a") as out:
        try:
            suite = unittest.defaultTestLoader.loadTestsFromName(f"irods.test.{module}")
        except Exception:
            detail = traceback.format_exc()[-3000:]
            out.write(json.dumps({"id": module, "outcome": "failed", "detail": detail}) + "\n")
            return 1
        apply_skips(suite, load_skips())
        suite.run(JsonResult(out, timeout))
    return 0


# -- parent: server, environment, one subprocess per module ----------------------------------


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
    row: dict[str, str], workdir: Path, env: dict[str, str], args: argparse.Namespace
) -> None:
    """Run one failed test again, alone; a pass is counted but reported as flaky."""
    tid = row["id"]
    for attempt in range(1, args.retries + 1):
        out = workdir / f"retry-{tid}-{attempt}.jsonl"
        cmd = [sys.executable, "-m", "devtools.irods_server.conformance", "--child", tid]
        cmd += ["--out", str(out), "--timeout", str(args.timeout)]
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                cmd,
                cwd=workdir,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=args.timeout * 2,
                check=False,
            )
        again = read_results(out)
        if again and all(r["outcome"] == "passed" for r in again):
            first = [ln for ln in row["detail"].strip().splitlines() if ln.strip()][-1:] or [""]
            print(f"    FLAKY {tid}: passed on retry {attempt}; first failure: {first[0][:200]}")
            row["outcome"] = "passed"
            return


def run_module(
    module: str, workdir: Path, env: dict[str, str], args: argparse.Namespace
) -> Counter[str]:
    out = workdir / f"{module}.jsonl"
    cmd = [sys.executable, "-m", "devtools.irods_server.conformance", "--child", module]
    cmd += ["--out", str(out), "--timeout", str(args.timeout)]
    log = open(workdir / f"{module}.log", "w")  # noqa: SIM115 - closed below
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=args.module_timeout,
            check=False,
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
            retry_failed(row, workdir, env, args)
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
    return counts


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


def run(args: argparse.Namespace) -> int:
    from .launcher import REPO_ROOT, ServerProcess

    with tempfile.TemporaryDirectory(prefix="irods-conformance-") as tmp:
        base = Path(tmp)
        home = base / "home"
        with ServerProcess(base / "data") as srv:
            env_file = srv.write_env(home, host=local_host_name())
            env = dict(os.environ)
            env.update(
                HOME=str(home),
                IRODS_ENVIRONMENT_FILE=str(env_file),
                PYTHONPATH=os.pathsep.join(
                    p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
                ),
            )
            workdir = base / "work"
            workdir.mkdir()
            total: Counter[str] = Counter()
            for module in args.modules:
                total += run_module(module, workdir, env, args)
            if args.keep:
                keep = Path(tempfile.mkdtemp(prefix="irods-conformance-logs-"))
                for f in workdir.iterdir():
                    (keep / f.name).write_bytes(f.read_bytes())
                print(f"logs kept in {keep}")
    print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 1 if total["failed"] else 0


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
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args.child, args.out, args.timeout)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
