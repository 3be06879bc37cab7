"""The worker's side of the fork server: start it, spawn children, read their lines.

:class:`ForkServer` is the worker's (asyncio) handle on the fork server process;
:class:`Child` is one forked child: its JSON lines, its exit code, and a way to stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from services.worker.forkserver.login import LoginSettings, base_environment, read_login_defs
from services.worker.forkserver.protocol import (
    FINAL_TYPES,
    MAX_PACKET,
    REFUSED_USER,
    Op,
    rights,
    spawn_packet,
)
from shared.errors import StagerError
from shared.unix_users import DEFAULT_MAX_UID, DEFAULT_MIN_UID, UserRefused

#: Where ``python -m services.worker.forkserver`` is found (the repository root).
_ROOT = str(Path(__file__).resolve().parents[3])


class ForkServerError(StagerError):
    """The fork server is not running or refused a request."""


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
            raise ForkServerError("the child takes no more tasks")
        data = (json.dumps({"params": dict(params)}, separators=(",", ":")) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._stdin, view) :]
        except OSError as e:  # the child died while idle
            self._close_stdin()
            raise ForkServerError("the child takes no more tasks") from e
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


class ForkServer:
    """The worker's handle on its fork server process."""

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
    def alive(self) -> bool:
        """False once the fork server has stopped (the worker then starts a new one)."""
        return not self._closed and self._proc.returncode is None

    @classmethod
    async def start(
        cls,
        *,
        min_uid: int = DEFAULT_MIN_UID,
        max_uid: int = DEFAULT_MAX_UID,
        extra_kinds: Mapping[str, str] | None = None,
        login: LoginSettings | None = None,
        python: str = sys.executable,
        ready_timeout: float = 60.0,
    ) -> ForkServer:
        """Start the fork server process and wait until it has imported everything.

        ``extra_kinds``: job kinds beyond the built-in ones, name → ``module:function``.
        ``login``: the children's umask and extra variables. The fork server gets none of
        this process's environment (its secrets): only :func:`base_environment`, which is
        what its children inherit; it finds the code through its working directory.
        """
        login = login or LoginSettings()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = _ROOT
        env = base_environment(os.environ, login.env, read_login_defs(login.login_defs))
        cmd = [python, "-m", "services.worker.forkserver", "--fd", str(theirs.fileno())]
        cmd += ["--min-uid", str(min_uid), "--max-uid", str(max_uid)]
        cmd += ["--login-defs", str(login.login_defs)]
        if login.umask is not None:
            cmd += ["--umask", login.umask]
        for name, spec in (extra_kinds or {}).items():
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
                data = self._sock.recv(MAX_PACKET)
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
        if op == Op.READY:
            if not self._ready.done():
                self._ready.set_result(msg)
        elif op == Op.EXIT:
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
        err = ForkServerError("the fork server stopped")
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

    async def _request(
        self, req: dict[str, Any], fds: list[int] | None = None, secret: str | None = None
    ) -> dict[str, Any]:
        if self._closed:
            raise ForkServerError("the fork server is not running")
        self._next_id += 1
        req["id"] = self._next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = fut
        data = spawn_packet(req, secret)
        while True:
            try:
                self._sock.sendmsg([data], rights(fds or []))
                break
            except BlockingIOError:
                await asyncio.sleep(0.001)
            except OSError as e:
                self._pending.pop(self._next_id, None)
                raise ForkServerError("the fork server is not running") from e
        return await fut

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
                    "op": Op.SPAWN,
                    "kind": kind,
                    "user": user,
                    "params": dict(params or {}),
                },
                [w, task_r] if reusable else [w],
                secret,
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
        if reply.get("op") != Op.SPAWNED:
            os.close(r)
            if reusable:
                os.close(task_w)
            if reply.get("kind") == REFUSED_USER:
                raise UserRefused(str(reply.get("error")))
            raise ForkServerError(str(reply.get("error")))
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
        """Stop the fork server (its running children are killed with it)."""
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
