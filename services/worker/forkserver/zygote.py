"""A pre-imported fork server: children that run as a user, started in milliseconds.

The worker (root) starts one zygote (``python -m services.worker.forkserver.zygote``, root)
imports python-irodsclient, the isync core and the job functions once. On request
it forks a child that

1. starts its own session (process group = its pid, so ``killpg`` stops all of it),
2. closes every inherited descriptor but its output pipe (never the zygote's socket),
3. does setgid, initgroups, setuid to the user (root and system uids refused),
   becomes non-dumpable and dies with the zygote,
4. runs the job function and writes JSON lines to the pipe: ``progress``/``file``/…
   lines while it works, then one ``result`` or ``error`` line.

A *reusable* child (``spawn(..., reusable=True)``) also gets a task pipe as its stdin:
it runs one task per JSON line it reads there (``{"params": …}``), one at a time, with
the secret it was spawned with, and exits at end of file or after a failed task. The
worker keeps such a child only for tasks of the same user and credential
(``services.worker.forkserver.pool``).

Wire between worker and zygote: a ``SOCK_SEQPACKET`` socketpair, one JSON object per
packet. A spawn request carries the job parameters and the secret (the decrypted
repository password travels only here and in the child's memory: never argv,
environment or logs) and, as ``SCM_RIGHTS``, the write end of the child's pipe.
The zygote answers ``spawned``/``refused`` and later ``exit`` with the exit code.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import fcntl
import gc
import importlib
import json
import os
import pkgutil
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from services.worker.forkserver.runas import become_subreaper, die_with_parent, drop_privileges
from shared.errors import ErrorKind, StagerError, kind_of
from shared.unix_users import DEFAULT_MIN_UID, Identity, UnknownUser, UserRefused
from shared.unix_users import vet as _resolve_user

_MAX_PACKET = 1 << 20
_FD_SLOT = 3  # the child's output pipe is moved to this descriptor
_ROOT = str(Path(__file__).resolve().parents[3])
#: Packages imported whole before any fork: a child runs as a user who may not be able
#: to read the interpreter's files (e.g. a venv under /root), so nothing may load lazily.
_PRELOAD_PACKAGES = ("irods", "services.isync")
#: Modules the standard library loads lazily (codecs, executors) that children use.
_PRELOAD = (
    "encodings.idna",
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.utf_8",
    "concurrent.futures.thread",
    "ssl",
    "hmac",
    "xml.etree.ElementTree",
    "xml.etree.cElementTree",
)

#: Job kinds every zygote knows: name → "module:function".
DEFAULT_KINDS: dict[str, str] = {
    "dirlist": "services.worker.dirlist:run_child",
    "transfer": "services.worker.jobs.transfer:run_child",
    "whoami": "services.worker.forkserver.zygote:whoami",
}


#: The final line of a task (the child writes exactly one per task).
FINAL_TYPES = ("result", "error")

#: Called before a child exits normally (e.g. to log out of iRODS).
_at_child_exit: list[Callable[[], None]] = []


def at_child_exit(fn: Callable[[], None]) -> None:
    """Run ``fn`` (in a child) when it has run its last task (best effort)."""
    _at_child_exit.append(fn)


class ZygoteError(StagerError):
    """The fork server is not running or refused a request."""


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


def whoami(
    params: Mapping[str, Any], secret: str | None, out: ChildOutput, cancel: threading.Event
) -> Mapping[str, Any]:
    """The child's credentials (a health probe and a privilege-drop check)."""
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "pgid": os.getpgrp(),
        "sid": os.getsid(0),
    }


def classify(exc: BaseException) -> tuple[ErrorKind, bool]:
    """An exception → (error kind, permanent?). Permanent errors are not retried."""
    kind = kind_of(exc)
    return kind, exc.permanent if isinstance(exc, StagerError) else kind.permanent


def _load(spec: str) -> JobFunction:
    module, _, name = spec.partition(":")
    fn: JobFunction = getattr(importlib.import_module(module), name)
    return fn


# --- zygote (server) side -------------------------------------------------------------


class _Server:
    def __init__(self, sock: socket.socket, min_uid: int, kinds: Mapping[str, JobFunction]):
        self.sock = sock
        self.min_uid = min_uid
        self.kinds = kinds
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)

    def reply(self, obj: Mapping[str, Any]) -> None:
        self.sock.send(json.dumps(obj).encode())

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        sel.register(self.wake_r, selectors.EVENT_READ)
        self.reply({"op": "ready", "pid": os.getpid()})
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
        fds = array.array("i")
        try:
            data, ancdata, _, _ = self.sock.recvmsg(
                _MAX_PACKET, socket.CMSG_SPACE(4 * fds.itemsize)
            )
        except OSError:  # the worker went away
            return False
        if not data:
            return False
        for level, type_, cdata in ancdata:
            if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
                fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
        try:
            req = json.loads(data)
            rid = req.get("id")
            if req.get("op") == "ping":
                self.reply({"op": "pong", "id": rid})
            elif req.get("op") == "spawn" and len(fds) in (1, 2):
                self.spawn(req, fds[0], fds[1] if len(fds) == 2 else None)
            else:
                self.reply({"op": "refused", "id": rid, "error": "bad request"})
        except Exception as e:  # a bad request must not kill the zygote
            self.reply({"op": "refused", "id": None, "error": f"bad request: {e}"})
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return True

    def spawn(self, req: Mapping[str, Any], out_fd: int, in_fd: int | None) -> None:
        rid = req.get("id")
        fn = self.kinds.get(str(req.get("kind")))
        if fn is None:
            self.reply(
                {"op": "refused", "id": rid, "error": f"unknown job kind {req.get('kind')!r}"}
            )
            return
        try:
            ident = _resolve_user(str(req.get("user")), self.min_uid)
        except (UserRefused, UnknownUser) as e:
            self.reply({"op": "refused", "id": rid, "error": e.message, "kind": "refused"})
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            self.run_child(ident, fn, req.get("params") or {}, req.get("secret"), out_fd, in_fd)
        self.children.add(pid)
        self.reply({"op": "spawned", "id": rid, "pid": pid})

    def run_child(
        self,
        ident: Identity,
        fn: JobFunction,
        params: Mapping[str, Any],
        secret: str | None,
        out_fd: int,
        in_fd: int | None = None,
    ) -> None:
        """Never returns: the forked child's whole life."""
        code = 1
        out = ChildOutput(_FD_SLOT)
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
            os.dup2(out_hi, _FD_SLOT)
            os.closerange(_FD_SLOT + 1, 65536)
            drop_privileges(ident)
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
                self.reply({"op": "exit", "pid": pid, "code": code})


def _report(exc: BaseException, out: ChildOutput) -> None:
    """Write the ``error`` line for ``exc`` (and a traceback for unexpected ones)."""
    kind, permanent = classify(exc)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    with contextlib.suppress(BaseException):
        out.send({"type": "error", "kind": kind, "permanent": permanent, "message": message})
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
        out.send({"type": "result", **result})
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


def preload() -> None:
    """Import everything a child may need (see ``_PRELOAD_PACKAGES``)."""
    for mod in _PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(mod)
    for name in _PRELOAD_PACKAGES:
        try:
            pkg = importlib.import_module(name)
        except ImportError as e:
            print(f"zygote: cannot preload {name}: {e}", file=sys.stderr)
            continue
        for info in pkgutil.walk_packages(pkg.__path__, name + "."):
            if ".test" in info.name or info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except Exception as e:  # optional extras (e.g. PAM, GSI plugins) may be absent
                print(f"zygote: skipped {info.name}: {type(e).__name__}", file=sys.stderr)
    socket.getaddrinfo("localhost", 0)  # loads the resolver's own lazy pieces


def main(argv: list[str] | None = None) -> int:
    """Entry point of the zygote process (started by :meth:`Zygote.start`)."""
    ap = argparse.ArgumentParser(prog="python -m services.worker.forkserver.zygote")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--min-uid", type=int, default=DEFAULT_MIN_UID)
    ap.add_argument("--kind", action="append", default=[], help="NAME=module:function")
    args = ap.parse_args(argv)
    die_with_parent(signal.SIGKILL)
    become_subreaper()
    kinds = dict(DEFAULT_KINDS)
    kinds.update(dict(k.split("=", 1) for k in args.kind))
    preload()
    loaded: dict[str, JobFunction] = {}
    for name, spec in kinds.items():
        try:
            loaded[name] = _load(spec)
        except (ImportError, AttributeError) as e:
            print(f"zygote: job kind {name!r} unavailable: {e}", file=sys.stderr)
    sock = socket.socket(fileno=args.fd)
    gc.freeze()  # children inherit these objects: the collector never touches their pages
    _Server(sock, args.min_uid, loaded).serve()
    return 0


# --- worker (client) side -------------------------------------------------------------


class Child:
    """A running child: its JSON lines, its exit code, and a way to stop it.

    A reusable child (``stdin`` given) takes further tasks with :meth:`submit` and
    exits when :meth:`retire` closes its task pipe.
    """

    def __init__(
        self,
        pid: int,
        reader: asyncio.StreamReader,
        exited: asyncio.Future[int],
        stdin: int | None = None,
    ):
        self.pid = pid
        self._reader = reader
        self._exited = exited
        self._stdin = stdin
        self.tasks = 0  # tasks submitted to a reusable child
        self.started = time.monotonic()
        exited.add_done_callback(lambda _: self._close_stdin())

    async def lines(self) -> AsyncIterator[dict[str, Any]]:
        """The child's JSON lines up to the task's final (``result``/``error``) line.

        Ends early when the child exits or closes the pipe.
        """
        while True:
            raw = await self._reader.readline()
            if not raw:
                return
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj
                if obj.get("type") in FINAL_TYPES:
                    return

    def submit(self, params: Mapping[str, Any]) -> None:
        """Hand a reusable child its next task (it must be idle)."""
        if self._stdin is None or self._exited.done():
            raise ZygoteError("the child takes no more tasks")
        data = (json.dumps({"params": dict(params)}, separators=(",", ":")) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._stdin, view) :]
        except OSError as e:  # the child died while idle
            self._close_stdin()
            raise ZygoteError("the child takes no more tasks") from e
        self.tasks += 1

    def retire(self, *, kill: bool = False) -> None:
        """No more tasks: the child exits at end of its task pipe (``kill``: SIGKILL now)."""
        if kill:
            self.kill()
        self._close_stdin()
        self._exited.add_done_callback(lambda _: self.kill_group())

    def _close_stdin(self) -> None:
        if self._stdin is not None:
            fd, self._stdin = self._stdin, None
            with contextlib.suppress(OSError):
                os.close(fd)

    async def wait(self) -> int:
        """The exit code (negative: killed by that signal)."""
        return await asyncio.shield(self._exited)

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the child's whole process group (while the child runs)."""
        if not self._exited.done():
            self.kill_group(sig)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal whatever is left of the process group (also after the child exited).

        A process group's id is not reused while any member lives, so this cannot
        hit an unrelated process.
        """
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class Zygote:
    """The worker's handle on its fork server."""

    def __init__(self, proc: asyncio.subprocess.Process, sock: socket.socket) -> None:
        self._proc = proc
        self._sock = sock
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._early_exits: dict[int, int] = {}
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._closed = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        """False once the zygote has stopped (the worker then starts a new one)."""
        return not self._closed and self._proc.returncode is None

    @classmethod
    async def start(
        cls,
        *,
        min_uid: int = DEFAULT_MIN_UID,
        kinds: Mapping[str, str] | None = None,
        python: str = sys.executable,
        ready_timeout: float = 60.0,
    ) -> Zygote:
        """Start the zygote process and wait until it has imported everything."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = _ROOT
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        cmd = [python, "-m", "services.worker.forkserver.zygote", "--fd", str(theirs.fileno())]
        cmd += ["--min-uid", str(min_uid)]
        for name, spec in (kinds or {}).items():
            cmd += ["--kind", f"{name}={spec}"]
        proc = await asyncio.create_subprocess_exec(
            *cmd, pass_fds=(theirs.fileno(),), env=env, cwd=root
        )
        theirs.close()
        ours.setblocking(False)
        self = cls(proc, ours)
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_readable)
        try:
            async with asyncio.timeout(ready_timeout):
                await self._ready
        except BaseException:
            await self.close()
            raise
        return self

    def _on_readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(_MAX_PACKET)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._dispatch(json.loads(data))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "ready":
            if not self._ready.done():
                self._ready.set_result(msg)
        elif op == "exit":
            pid, code = int(msg["pid"]), int(msg["code"])
            fut = self._exits.pop(pid, None)
            if fut is None:
                self._early_exits[pid] = code
            elif not fut.done():
                fut.set_result(code)
        else:
            fut2 = self._pending.pop(msg.get("id", -1), None)
            if fut2 is not None and not fut2.done():
                fut2.set_result(msg)

    def _lost(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
        err = ZygoteError("the fork server stopped")
        if not self._ready.done():
            self._ready.cancel()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        for efut in self._exits.values():
            if not efut.done():
                efut.set_result(-int(signal.SIGKILL))
        self._pending.clear()
        self._exits.clear()

    async def _request(self, req: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        if self._closed:
            raise ZygoteError("the fork server is not running")
        self._next_id += 1
        req["id"] = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = fut
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        data = json.dumps(req).encode()
        while True:
            try:
                self._sock.sendmsg([data], anc)
                break
            except BlockingIOError:
                await asyncio.sleep(0.001)
            except OSError as e:
                self._pending.pop(self._next_id, None)
                raise ZygoteError("the fork server is not running") from e
        return await fut

    async def ping(self) -> None:
        """Round trip to the zygote."""
        await self._request({"op": "ping"})

    async def spawn(
        self,
        kind: str,
        user: str,
        params: Mapping[str, Any] | None = None,
        *,
        secret: str | None = None,
        reusable: bool = False,
    ) -> Child:
        """Fork a child that runs job ``kind`` as ``user``; refusals raise UserRefused.

        ``reusable``: the child waits for its tasks (:meth:`Child.submit`) instead of
        running ``params`` once.
        """
        r, w = os.pipe()
        task_r, task_w = os.pipe() if reusable else (-1, -1)
        try:
            reply = await self._request(
                {
                    "op": "spawn",
                    "kind": kind,
                    "user": user,
                    "params": dict(params or {}),
                    "secret": secret,
                },
                [w, task_r] if reusable else [w],
            )
        except BaseException:
            os.close(r)
            if reusable:
                os.close(task_w)
            raise
        finally:
            os.close(w)
            if reusable:
                os.close(task_r)
        if reply.get("op") != "spawned":
            os.close(r)
            if reusable:
                os.close(task_w)
            if reply.get("kind") == "refused":
                raise UserRefused(str(reply.get("error")))
            raise ZygoteError(str(reply.get("error")))
        pid = int(reply["pid"])
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[int] = loop.create_future()
        if pid in self._early_exits:
            exited.set_result(self._early_exits.pop(pid))
        else:
            self._exits[pid] = exited
        reader = asyncio.StreamReader(limit=64 << 20)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(r, "rb", buffering=0)
        )
        return Child(pid, reader, exited, task_w if reusable else None)

    async def close(self) -> None:
        """Stop the zygote (its running children are killed with it)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 5)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        self._lost()


if __name__ == "__main__":
    sys.exit(main())
