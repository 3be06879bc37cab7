"""The fork server process: imports everything once, then forks children on request.

It runs as root (``python -m services.worker.forkserver``, started by
:meth:`~services.worker.forkserver.client.ForkServer.start`), answers the worker's
packets (:mod:`~services.worker.forkserver.protocol`), vets the user of every spawn
request, forks (:func:`~services.worker.forkserver.child.run`), and reports each
child's exit. It is a child subreaper, so orphaned grandchildren are reaped here.
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
from typing import Any

from services.worker.forkserver import child, protocol
from services.worker.forkserver.child import JobFunction
from services.worker.forkserver.protocol import REFUSED_USER, Op
from services.worker.jobs import dirlist, transfer, whoami
from shared import runas
from shared.runas import become_subreaper, die_with_parent
from shared.unix_users import DEFAULT_MIN_UID, UnknownUser, UserRefused, vet

#: Job kinds every fork server knows.
JOBS: dict[str, JobFunction] = {
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

    def __init__(self, sock: socket.socket, min_uid: int, jobs: Mapping[str, JobFunction]):
        self.sock = sock
        self.min_uid = min_uid
        self.jobs = jobs
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
            data, fds = protocol.receive(self.sock)
        except OSError:  # the worker went away
            return False
        if not data:
            return False
        try:
            req = json.loads(data)
            rid = req.get("id")
            if req.get("op") == Op.SPAWN and len(fds) in (1, 2):
                self.spawn(req, fds[0], fds[1] if len(fds) == 2 else None)
            else:
                self.reply({"op": Op.REFUSED, "id": rid, "error": "bad request"})
        except Exception as e:  # a bad request must not kill the fork server
            self.reply({"op": Op.REFUSED, "id": None, "error": f"bad request: {e}"})
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return True

    def spawn(self, req: Mapping[str, Any], out_fd: int, in_fd: int | None) -> None:
        rid = req.get("id")
        fn = self.jobs.get(str(req.get("kind")))
        if fn is None:
            self.reply(
                {"op": Op.REFUSED, "id": rid, "error": f"unknown job kind {req.get('kind')!r}"}
            )
            return
        try:
            ident = vet(str(req.get("user")), self.min_uid)
        except (UserRefused, UnknownUser) as e:
            self.reply({"op": Op.REFUSED, "id": rid, "error": e.message, "kind": REFUSED_USER})
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            child.run(ident, fn, req.get("params") or {}, req.get("secret"), out_fd, in_fd)
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
    Server(sock, args.min_uid, jobs).serve()
    return 0
