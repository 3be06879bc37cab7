"""Reusable children: same user and credential reuse a warm child, nothing else does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from services.worker.forkserver.client import Child, ForkServer
from services.worker.forkserver.pool import ChildPool, ChildPoolSettings
from tests.worker.conftest import task_message
from tests.worker.test_pipeline import SERVICE, _no_user_processes

ACCOUNT = {"host": "127.0.0.1", "port": 1247, "zone": "tempZone", "user": "svc"}


async def _result(child: Child) -> dict[str, Any]:
    lines = [line async for line in child.lines()]
    assert lines[-1]["type"] == "result", lines
    return lines[-1]


def _exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _server_of(z: ForkServer) -> ForkServer:
    return z


async def test_same_user_and_credential_reuse_the_child_others_do_not(
    forkserver: ForkServer, unix_user
) -> None:
    alice, bob = unix_user(), unix_user()
    pool = ChildPool(lambda: _server_of(forkserver), ChildPoolSettings(linger=30))
    try:
        key = pool.key("whoami", alice.pw_name, ACCOUNT, "pw-1")
        first = await pool.start(key, {}, secret="pw-1")
        r1 = await _result(first)
        pool.release(key, first, reuse=True)
        assert pool.idle_pids(key) == [first.pid]

        again = await pool.start(key, {}, secret="pw-1")
        r2 = await _result(again)
        assert again is first and r2["pgid"] == r1["pgid"] == first.pid  # the same process
        assert r2["uid"] == alice.pw_uid and pool.reused == 1
        pool.release(key, again, reuse=True)

        other_user = pool.key("whoami", bob.pw_name, ACCOUNT, "pw-1")
        other_secret = pool.key("whoami", alice.pw_name, ACCOUNT, "pw-2")
        other_account = pool.key("whoami", alice.pw_name, {**ACCOUNT, "user": "x"}, "pw-1")
        other_uid = pool.key("whoami", alice.pw_name, ACCOUNT, "pw-1", uid=alice.pw_uid)
        assert len({key, other_user, other_secret, other_account, other_uid}) == 5
        b = await pool.start(other_user, {}, secret="pw-1")
        rb = await _result(b)
        assert b.pid != first.pid and rb["uid"] == bob.pw_uid
        c = await pool.start(other_secret, {}, secret="pw-2")
        rc = await _result(c)
        assert c.pid not in (first.pid, b.pid) and rc["uid"] == alice.pw_uid
        assert pool.idle_pids() == [first.pid]  # b and c are busy until released
        for k, ch in ((other_user, b), (other_secret, c)):
            pool.release(k, ch, reuse=True)
        assert "pw-1" not in repr(key) and "pw-2" not in repr(other_secret)
    finally:
        await pool.close()


async def test_idle_child_exits_after_its_linger_time(forkserver: ForkServer, unix_user) -> None:
    user = unix_user()
    pool = ChildPool(lambda: _server_of(forkserver), ChildPoolSettings(linger=0.3))
    key = pool.key("whoami", user.pw_name, ACCOUNT, None)
    child = await pool.start(key, {}, secret=None)
    await _result(child)
    pool.release(key, child, reuse=True)
    t0 = time.monotonic()
    assert _alive(child.pid) and pool.idle_pids() == [child.pid]
    code = await asyncio.wait_for(child.wait(), 5)
    waited = time.monotonic() - t0
    assert code == 0 and 0.2 <= waited < 3  # it exited by itself: end of its task pipe
    assert pool.idle_pids() == [] and not _alive(child.pid)
    fresh = await pool.start(key, {}, secret=None)  # the next task gets a new child
    assert fresh.pid != child.pid and (await _result(fresh))["pgid"] == fresh.pid
    pool.release(key, fresh, reuse=False)
    assert await asyncio.wait_for(fresh.wait(), 5) == -9


async def test_child_retires_after_max_tasks(forkserver: ForkServer, unix_user) -> None:
    user = unix_user()
    pool = ChildPool(lambda: _server_of(forkserver), ChildPoolSettings(linger=30, max_tasks=2))
    key = pool.key("whoami", user.pw_name, ACCOUNT, None)
    pids = []
    for _ in range(3):
        child = await pool.start(key, {}, secret=None)
        pids.append((await _result(child))["pgid"])
        pool.release(key, child, reuse=True)
    assert pids[0] == pids[1] != pids[2]  # two tasks, then a fresh child
    await pool.close()
    assert not _exists(pids[2])  # close waited for the idle child's clean exit


async def test_failed_task_ends_its_child(forkserver: ForkServer, unix_user) -> None:
    user = unix_user()
    pool = ChildPool(lambda: _server_of(forkserver), ChildPoolSettings(linger=30))
    key = pool.key("fail", user.pw_name, ACCOUNT, None)
    child = await pool.start(key, {}, secret=None)
    lines = [line async for line in child.lines()]
    assert lines[-1]["type"] == "error" and "did not answer" in lines[-1]["message"]
    assert await asyncio.wait_for(child.wait(), 5) == 1  # the child stops after a failure
    pool.release(key, child, reuse=True)
    assert pool.idle_pids() == []


async def test_cancel_of_a_task_in_a_reused_child(start_worker, unix_user) -> None:
    user = unix_user()
    w = await start_worker(
        transfer_kind="by_src",
        service_credentials=SERVICE,
        cancel_grace=1.0,
        children={"linger": 30},
    )
    runner = w.worker.runner
    assert runner is not None
    quick = task_message(user.pw_name, src="/tmp/quick")
    await w.submit(quick)
    assert (await w.events.until(quick.task_id, {"completed", "archived"})).state == "completed"
    [warm] = runner.pool.idle_pids()
    assert w.events.states(quick.task_id) == [("active", 1), ("completed", 1)]
    # a task shorter than progress_interval sends no progress event
    assert all(e.progress is None for e in w.events.events if e.state == "active")

    slow = task_message(user.pw_name, src="/tmp/slow")
    await w.submit(slow)
    async with asyncio.timeout(10):
        while slow.task_id not in runner.running:  # noqa: ASYNC110 - set by the consumer
            await asyncio.sleep(0.02)
    assert runner.running[slow.task_id].child.pid == warm  # reused, not forked
    assert runner.pool.reused == 1
    await asyncio.sleep(0.3)  # it started its grandchild
    t0 = time.monotonic()
    await w.cancel(slow.task_id)
    final = await w.events.until(slow.task_id, {"cancelled", "completed", "archived", "retry"})
    elapsed = time.monotonic() - t0
    assert final.state == "cancelled" and elapsed < 2.0
    assert await _no_user_processes(user.pw_uid)  # the child and its grandchild are gone
    assert not _alive(warm) and runner.pool.idle_pids() == []

    after = task_message(user.pw_name, src="/tmp/quick")  # a stopped child is never reused
    await w.submit(after)
    assert (await w.events.until(after.task_id, {"completed", "archived"})).state == "completed"
    assert runner.pool.idle_pids() != [warm] and len(runner.pool.idle_pids()) == 1
    [idle] = runner.pool.idle_pids()
    assert _alive(idle)
    await w.worker.close()  # the idle child logs out, exits and is reaped: not even a zombie
    assert not _exists(idle)
