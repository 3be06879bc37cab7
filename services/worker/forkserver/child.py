"""What runs in a forked child: become the user, run the job, write JSON lines.

:func:`run` is the child's whole life: its own session, every inherited descriptor
closed but its pipes, root dropped for good, the user's environment and umask
(:class:`Login`), then one task (or, for a reusable child,
one task per line of its task pipe), each ending with a ``result`` or ``error`` line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from services.worker.forkserver.login import apply as apply_login
from services.worker.forkserver.protocol import RESULT, ErrorLine, wipe
from shared.errors import StagerError
from shared.runas import die_with_parent, drop_privileges
from shared.unix_users import Identity

#: The child's output pipe is moved to this descriptor (0: task pipe or /dev/null).
FD_SLOT = 3

#: Called before a child exits normally (e.g. to log out of iRODS).
_at_child_exit: list[Callable[[], None]] = []


def at_child_exit(fn: Callable[[], None]) -> None:
    """Run ``fn`` (in a child) when it has run its last task (best effort)."""
    _at_child_exit.append(fn)


class ChildOutput:
    """The child's side of the pipe: thread-safe JSON lines."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, obj: Mapping[str, Any]) -> None:
        data = (json.dumps(obj, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]


class JobFunction(Protocol):
    """What a child runs: returns the ``result`` line's fields."""

    def __call__(
        self,
        params: Mapping[str, Any],
        secret: str | None,
        out: ChildOutput,
        cancel: threading.Event,
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Login:
    """What the child sets once it is the user: its whole environment and its umask."""

    environ: Mapping[str, str]
    umask: int


def run(
    ident: Identity,
    fn: JobFunction,
    params: Mapping[str, Any],
    secret_bytes: bytearray | None,
    out_fd: int,
    in_fd: int | None = None,
    *,
    login: Login,
) -> NoReturn:
    """The forked child's whole life (``in_fd``: the task pipe of a reusable child).

    ``secret_bytes`` is this child's copy of the fork server's buffer: decoded, then wiped.
    """
    code = 1
    out = ChildOutput(FD_SLOT)
    secret = None if secret_bytes is None else secret_bytes.decode()
    wipe(secret_bytes)
    try:
        parent = os.getppid()
        os.setsid()
        signal.set_wakeup_fd(-1)
        cancel = threading.Event()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, lambda *_: cancel.set())
        # first out of the way (a received descriptor may be 0 or 3), then in place
        out_hi = fcntl.fcntl(out_fd, fcntl.F_DUPFD, 10)
        in_src = os.open(os.devnull, os.O_RDONLY) if in_fd is None else in_fd
        in_hi = fcntl.fcntl(in_src, fcntl.F_DUPFD, 10)
        os.dup2(in_hi, 0)
        os.dup2(out_hi, FD_SLOT)
        os.closerange(FD_SLOT + 1, 65536)
        drop_privileges(ident)
        apply_login(login.environ, login.umask)
        die_with_parent(signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)
        try:
            os.chdir(ident.home)
        except OSError:
            os.chdir("/")
        if in_fd is None:
            code = _run_task(fn, params, secret, out, cancel)
        else:
            code = _serve_tasks(fn, secret, out, cancel)
        for hook in _at_child_exit:
            with contextlib.suppress(BaseException):
                hook()
    except BaseException as e:
        _report(e, out)
    finally:
        os._exit(code)


def _report(exc: BaseException, out: ChildOutput) -> None:
    """Write the ``error`` line for ``exc`` (and a traceback for unexpected ones)."""
    with contextlib.suppress(BaseException):
        out.send(ErrorLine.of(exc).to_line())
    if not isinstance(exc, StagerError | OSError):
        with contextlib.suppress(BaseException):
            traceback.print_exc()


def _run_task(
    fn: JobFunction,
    params: Mapping[str, Any],
    secret: str | None,
    out: ChildOutput,
    cancel: threading.Event,
) -> int:
    """One task: its ``result`` line and 0, or its ``error`` line and 1."""
    try:
        result = fn(params, secret, out, cancel)
        out.send({"type": RESULT, **result})
    except BaseException as e:
        _report(e, out)
        return 1
    return 0


def _serve_tasks(
    fn: JobFunction, secret: str | None, out: ChildOutput, cancel: threading.Event
) -> int:
    """A reusable child: one task per stdin line until end of file or a failed task."""
    code = 0
    with open(0, "rb", closefd=False) as tasks:
        for raw in tasks:
            params = json.loads(raw)["params"]
            if _run_task(fn, params, secret, out, cancel) != 0:
                code = 1
                break
    return code
