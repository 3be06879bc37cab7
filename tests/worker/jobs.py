"""Stand-in job functions for the worker tests (run in a fork-server child as the user)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.worker.forkserver.child import ChildOutput
from services.worker.forkserver.server import JOBS


class Transient(Exception):
    """A failure worth retrying (kind ``failed``, which is not permanent)."""


def write_file(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Write ``params["path"]`` (as the user)."""
    Path(params["path"]).write_text(params.get("text", "hello\n"))
    return {"written": params["path"]}


def read_file(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Read ``params["path"]`` (as the user); PermissionError if they may not."""
    return {"size": len(Path(params["path"]).read_bytes())}


def slow(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Start a grandchild (its pid in the first line), then advance bytes every interval.

    With ``ignore_cancel`` the SIGTERM is ignored so only SIGKILL stops it.
    """
    grandchild = subprocess.Popen(["sleep", "300"])
    out.send({"type": "spawned", "grandchild": grandchild.pid})
    steps = int(params.get("steps", 1000))
    stall = bool(params.get("stall"))
    for i in range(steps):
        if cancel.is_set() and not params.get("ignore_cancel"):
            raise Transient("interrupted")
        n = 0 if stall else i
        out.send({"type": "progress", "bytes_done": n, "bytes_total": steps, "files_total": 1})
        time.sleep(float(params.get("interval", 0.05)))
    grandchild.kill()
    return {"summary": {"files_total": 1, "files_transferred": 1, "bytes_sent": steps}}


def stall(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Heartbeats only: progress lines whose counters never advance."""
    return slow({**params, "stall": True}, secret, out, cancel)


def stubborn(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Ignores SIGTERM: only the SIGKILL after the grace period stops it."""
    return slow({**params, "ignore_cancel": True}, secret, out, cancel)


def medium(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """About two seconds of advancing progress, then success."""
    return slow({**params, "steps": 40}, secret, out, cancel)


def echo_secret_len(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Proves the secret arrived, then waits so /proc can be inspected."""
    out.send({"type": "started", "pid": os.getpid()})
    deadline = time.monotonic() + float(params.get("wait", 0))
    while time.monotonic() < deadline and not cancel.is_set():
        time.sleep(0.02)
    fds = {}
    for f in os.listdir("/proc/self/fd"):
        try:
            fds[int(f)] = os.readlink(f"/proc/self/fd/{f}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
    return {"secret_len": len(secret or ""), "fds": fds}


def login_report(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Its pid first (so /proc can be read while it waits), then its environment and umask."""
    out.send({"type": "started", "pid": os.getpid()})
    deadline = time.monotonic() + float(params.get("wait", 0))
    while time.monotonic() < deadline and not cancel.is_set():
        time.sleep(0.02)
    mask = os.umask(0)
    os.umask(mask)
    return {"environ": dict(os.environ), "umask": mask}


def fail(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Always fails, in a way worth retrying."""
    raise Transient("the repository did not answer")


def flaky(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Times out on its first attempt (leaving a mark ``<src>.flaky`` beside ``src``, in a
    directory the user may write), then succeeds."""
    src = Path(params["src"])
    mark = src.with_name(src.name + ".flaky")
    if not mark.exists():
        mark.touch()
        raise TimeoutError("the repository did not answer in time")
    return succeed(params, secret, out, cancel)


def fail_permanent(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Fails the way a file the user may not read does."""
    raise PermissionError(13, "Permission denied", params["src"])


def brief(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Half a second of 'work', then success."""
    time.sleep(0.5)
    return {"summary": {"files_total": 1, "files_transferred": 1}}


def check_secret(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Succeeds only if the secret is the one the test expects (its sha256 in the child's
    environment, handed over as ``children.env``)."""
    want = os.environ.get("TEST_SECRET_SHA256", "")
    if hashlib.sha256((secret or "").encode()).hexdigest() != want:
        raise PermissionError(13, "the repository password is wrong", params["src"])
    return {"summary": {"files_total": 1, "files_transferred": 1}}


def succeed(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """A tiny successful 'transfer' that reports progress and the secret's length."""
    out.send(
        {"type": "progress", "files_total": 1, "files_done": 1, "bytes_done": 3, "bytes_total": 3}
    )
    return {
        "summary": {"files_total": 1, "files_transferred": 1, "bytes_sent": 3},
        "secret_len": len(secret or ""),
        "user": params["account"]["user"],
    }


def by_src(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """A task whose ``src`` ends in ``slow`` runs like ``slow``; any other succeeds at once."""
    if str(params.get("src", "")).endswith("slow"):
        return slow({**params, "steps": 10000}, secret, out, cancel)
    return succeed(params, secret, out, cancel)


def new_imports(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """Run the built-in job ``params["job"]``; report the modules it had to import."""
    before = set(sys.modules)
    try:
        JOBS[params["job"]](params["params"], secret, out, cancel)
    finally:
        loaded = sorted(set(sys.modules) - before)
    return {"imported": loaded}


KINDS = {
    name: f"tests.worker.jobs:{name}"
    for name in (
        "write_file",
        "read_file",
        "slow",
        "stall",
        "stubborn",
        "medium",
        "echo_secret_len",
        "login_report",
        "fail",
        "flaky",
        "fail_permanent",
        "succeed",
        "brief",
        "check_secret",
        "by_src",
        "new_imports",
    )
}
