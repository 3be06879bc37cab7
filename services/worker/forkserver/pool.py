"""Reusable children: one user's tasks run one after another in a warm child.

A fresh child per task costs a fork, the copy-on-write of the interpreter's pages,
and an iRODS connect + login. A child that finished a task cleanly is kept idle for
``linger`` seconds; the next task with the same *key* runs in it. The key is the job
kind, the Unix user (name and uid) and the repository credential (account fields and a keyed
digest of the password, never the password itself), so a child never runs a task of
another user or another credential. A child runs one task at a time (stopping a
task kills only its own child), and one that was stopped, failed or died is never
reused.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from services.worker.forkserver.client import Child, ForkServer, ForkServerError


class ChildPoolSettings(BaseModel):
    """How long and how many reusable children are kept (``STAGER_CHILDREN__…``).

    Parameters:
        linger: seconds an idle child waits for the same user's next task (0: no reuse).
        max_idle: most idle children kept at once (the oldest goes first).
        max_tasks: a child retires after this many tasks …
        max_age: … or this many seconds, so a busy user's child does not live for ever
            (memory, and group memberships read once at its start).
    """

    linger: float = Field(default=5.0, ge=0, le=300)
    max_idle: int = Field(default=16, ge=0)
    max_tasks: int = Field(default=100, ge=1)
    max_age: float = Field(default=60.0, gt=0)


PoolKey = tuple[str, str, int, str, str]


@dataclass
class _Idle:
    key: PoolKey
    child: Child
    timer: asyncio.TimerHandle


class ChildPool:
    """Idle reusable children by (job kind, Unix user, repository credential)."""

    def __init__(
        self,
        forkserver: Callable[[], Awaitable[ForkServer]],
        settings: ChildPoolSettings | None = None,
    ) -> None:
        self.forkserver = forkserver
        self.settings = settings or ChildPoolSettings()
        self._digest_key = os.urandom(32)
        self._idle: OrderedDict[int, _Idle] = OrderedDict()  # pid → idle child, oldest first
        self.spawned = 0
        self.reused = 0

    def key(
        self,
        kind: str,
        user: str,
        account: Mapping[str, Any],
        secret: str | None,
        uid: int = -1,
    ) -> PoolKey:
        """What two tasks must share to run in the same child (``uid``: the user's, if known)."""
        digest = hmac.new(self._digest_key, (secret or "").encode(), hashlib.sha256).hexdigest()
        return kind, user, uid, json.dumps(account, sort_keys=True, default=str), digest

    async def start(
        self,
        key: PoolKey,
        params: Mapping[str, Any],
        *,
        secret: str | None,
    ) -> Child:
        """Run ``params`` in an idle child of ``key``, or in a new one.

        Raises what :meth:`ForkServer.spawn` raises (UserRefused, ForkServerError).
        """
        while (child := self._take(key)) is not None:
            try:
                child.submit(params)
            except ForkServerError:  # it died while idle: try the next one
                child.retire(kill=True)
                continue
            self.reused += 1
            return child
        kind, user = key[0], key[1]
        child = await (await self.forkserver()).spawn(kind, user, secret=secret, reusable=True)
        self.spawned += 1
        try:
            child.submit(params)
        except BaseException:
            child.retire(kill=True)
            raise
        return child

    def release(self, key: PoolKey, child: Child, *, reuse: bool) -> None:
        """A task ended: keep ``child`` for the next task of ``key`` if ``reuse``, else stop it."""
        if not reuse or self.settings.linger <= 0 or child.returncode is not None:
            child.retire(kill=True)
            return
        if (
            child.tasks >= self.settings.max_tasks
            or time.monotonic() - child.started >= self.settings.max_age
        ):
            child.retire()  # it exits cleanly (logs out) at the end of its task pipe
            return
        timer = asyncio.get_running_loop().call_later(self.settings.linger, self._expire, child.pid)
        self._idle[child.pid] = _Idle(key, child, timer)
        while len(self._idle) > self.settings.max_idle:
            self._expire(next(iter(self._idle)))

    def idle_pids(self, key: PoolKey | None = None) -> list[int]:
        """Pids of the idle children (of ``key``), oldest first."""
        return [pid for pid, i in self._idle.items() if key is None or i.key == key]

    async def close(self, wait: float = 2.0) -> None:
        """Retire every idle child and give them ``wait`` seconds to log out and exit."""
        children = [idle.child for idle in self._idle.values()]
        for pid in list(self._idle):
            self._expire(pid)
        if children:
            await asyncio.wait([asyncio.ensure_future(c.wait()) for c in children], timeout=wait)

    def _take(self, key: PoolKey) -> Child | None:
        """The most recently idle live child of ``key`` (the others can expire)."""
        for pid in reversed(list(self._idle)):
            idle = self._idle[pid]
            if idle.key == key:
                del self._idle[pid]
                idle.timer.cancel()
                if idle.child.returncode is None:
                    return idle.child
                idle.child.retire(kill=True)
        return None

    def _expire(self, pid: int) -> None:
        idle = self._idle.pop(pid, None)
        if idle is not None:
            idle.timer.cancel()
            idle.child.retire()
