"""The fork server process: imports everything once, then forks children on request.

It runs as root (``python -m services.worker.forkserver``, started by
:meth:`~services.worker.forkserver.client.ForkServer.start`), answers the worker's
packets (:mod:`~services.worker.forkserver.protocol`), vets the user of every spawn
request, forks (:func:`~services.worker.forkserver.child.run`) with the user's login
environment and umask (:mod:`~services.worker.forkserver.login`), wipes the secret it
handed over, and reports each child's exit. It is a child subreaper, so orphaned
grandchildren are reaped here.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.worker.forkserver import child, protocol
from services.worker.forkserver.child import JobFunction
from services.worker.forkserver.login import login_umask, read_login_defs, user_environment
from services.worker.forkserver.protocol import REFUSED_USER, Op
from services.worker.jobs import cleanup, dirlist, transfer, whoami
from shared import runas
from shared.runas import become_subreaper, die_with_parent
from shared.unix_users import DEFAULT_MAX_UID, DEFAULT_MIN_UID, UnknownUser, UserRefused, vet

#: Job kinds every fork server knows.
JOBS: dict[str, JobFunction] = {
    "cleanup": cleanup.run_child,
    "dirlist": dirlist.run_child,
    "transfer": transfer.run_child,
    "whoami": whoami.run_child,
}

#: Packages imported whole before any fork: a child runs as a user who may not be able
#: to read the interpreter's files (e.g. a venv under /root), so nothing may load lazily.
#: The job modules (and the ``shared`` modules they use) are imported with ``JOBS``.
_PRELOAD_PACKAGES = ("irods", "services.isync", "services.worker.jobs")


class Server:
    """The fork server's loop over its socket to the worker."""

    def __init__(
        self,
        sock: socket.socket,
        min_uid: int,
        jobs: Mapping[str, JobFunction],
        *,
        max_uid: int = DEFAULT_MAX_UID,
        umask: int | None = None,
        login_defs: Mapping[str, str] | None = None,
    ):
        self.sock = sock
        self.min_uid = min_uid
        self.max_uid = max_uid
        self.jobs = jobs
        self.umask = umask  # None: each user's login default from ``login_defs``
        self.login_defs = dict(login_defs or {})
        # every packet lands here and is wiped at once: no secret outlives its spawn
        self.buf = bytearray(protocol.MAX_PACKET)
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def reply(self, obj: Mapping[str, Any]) -> None:
        self.sock.send(json.dumps(obj).encode())

    def serve(self) -> None:
        """Until the worker closes its end; then every remaining child is killed and reaped."""
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        sel.register(self.wake_r, selectors.EVENT_READ)
        self.reply({"op": Op.READY, "pid": os.getpid()})
        try:
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self.sock:
                        if not self.receive():
                            return
                    else:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self.wake_r, 4096)
                self.reap()
        finally:
            for pid in self.children:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            for pid in self.children:  # no zombies for an init that does not reap
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    def receive(self) -> bool:
        """Handle one packet; False when the worker went away."""
        try:
            n, fds = protocol.receive_into(self.sock, self.buf)
        except OSError:  # the worker went away
            return False
        if not n:
            return False
        data, secret = protocol.split_secret(self.buf, n)
        protocol.wipe(self.buf, n)
        try:
            req = json.loads(data)
            rid = req.get("id")
            if req.get("op") == Op.SPAWN and len(fds) in (1, 2):
                self.spawn(req, fds[0], fds[1] if len(fds) == 2 else None, secret)
            else:
                self.reply({"op": Op.REFUSED, "id": rid, "error": "bad request"})
        except Exception as e:  # a bad request must not kill the fork server
            self.reply({"op": Op.REFUSED, "id": None, "error": f"bad request: {e}"})
        finally:
            protocol.wipe(secret)  # handed over (or refused): later children never see it
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return True

    def spawn(
        self, req: Mapping[str, Any], out_fd: int, in_fd: int | None, secret: bytearray | None
    ) -> None:
        rid = req.get("id")
        fn = self.jobs.get(str(req.get("kind")))
        if fn is None:
            self.reply(
                {"op": Op.REFUSED, "id": rid, "error": f"unknown job kind {req.get('kind')!r}"}
            )
            return
        try:
            ident = vet(str(req.get("user")), self.min_uid, max_uid=self.max_uid)
        except (UserRefused, UnknownUser) as e:
            self.reply({"op": Op.REFUSED, "id": rid, "error": e.message, "kind": REFUSED_USER})
            return
        umask = self.umask if self.umask is not None else login_umask(ident, self.login_defs)
        login = child.Login(user_environment(os.environ, ident), umask)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            child.run(ident, fn, req.get("params") or {}, secret, out_fd, in_fd, login=login)
        self.children.add(pid)
        self.reply({"op": Op.SPAWNED, "id": rid, "pid": pid})

    def reap(self) -> None:
        """Collect exited children (and orphaned grandchildren: we are their subreaper)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children.discard(pid)
                code = os.waitstatus_to_exitcode(status)
                self.reply({"op": Op.EXIT, "pid": pid, "code": code})


def preload() -> None:
    """Import everything a child may need (see ``_PRELOAD_PACKAGES``)."""
    runas.preload(_PRELOAD_PACKAGES, "forkserver")


def _load(spec: str) -> JobFunction:
    """An extra job kind given as ``module:function`` (the tests' stand-in jobs)."""
    module, _, name = spec.partition(":")
    fn: JobFunction = getattr(importlib.import_module(module), name)
    return fn


def main(argv: list[str] | None = None) -> int:
    """Entry point of the fork server process (started by ``ForkServer.start``)."""
    ap = argparse.ArgumentParser(prog="python -m services.worker.forkserver")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--min-uid", type=int, default=DEFAULT_MIN_UID)
    ap.add_argument("--max-uid", type=int, default=DEFAULT_MAX_UID)
    ap.add_argument("--umask", type=lambda v: int(v, 8), default=None, help="octal")
    ap.add_argument("--login-defs", type=Path, default=Path("/etc/login.defs"))
    ap.add_argument("--kind", action="append", default=[], help="extra NAME=module:function")
    args = ap.parse_args(argv)
    die_with_parent(signal.SIGKILL)
    become_subreaper()
    preload()
    jobs = dict(JOBS)
    for name, spec in (k.split("=", 1) for k in args.kind):
        try:
            jobs[name] = _load(spec)
        except (ImportError, AttributeError) as e:
            print(f"forkserver: job kind {name!r} unavailable: {e}", file=sys.stderr)
    sock = socket.socket(fileno=args.fd)
    gc.freeze()  # children inherit these objects: the collector never touches their pages
    defs = read_login_defs(args.login_defs)
    Server(
        sock, args.min_uid, jobs, max_uid=args.max_uid, umask=args.umask, login_defs=defs
    ).serve()
    return 0
