"""The fork server: latency, privilege drop, refusals, isolation of the child."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import pytest

from services.worker.forkserver.client import Child, ForkServer
from shared.unix_users import UserRefused


async def _run(child: Child) -> tuple[list[dict], int]:
    lines = [line async for line in child.lines()]
    return lines, await child.wait()


async def test_fork_latency_is_milliseconds(forkserver: ForkServer, unix_user) -> None:
    user = unix_user()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        lines, code = await _run(await forkserver.spawn("whoami", user.pw_name, {}))
        times.append(time.perf_counter() - t0)
        assert code == 0 and lines[-1]["type"] == "result"
    median, worst = statistics.median(times), max(times)
    print(
        f"fork server spawn→result→exit: median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms"
    )
    assert median < 0.2


async def test_child_runs_as_the_user_in_its_own_process_group(
    forkserver: ForkServer, unix_user
) -> None:
    user = unix_user()
    child = await forkserver.spawn("whoami", user.pw_name, {})
    lines, code = await _run(child)
    result = lines[-1]
    assert code == 0
    assert (result["uid"], result["euid"], result["gid"]) == (user.pw_uid,) * 2 + (user.pw_gid,)
    assert result["groups"] == [user.pw_gid]  # initgroups: root's groups are gone
    assert result["pgid"] == child.pid == result["sid"]


async def test_files_written_belong_to_the_user(
    forkserver: ForkServer, unix_user, open_dir
) -> None:
    user = unix_user()
    out = open_dir / "out"
    out.mkdir()
    os.chown(out, user.pw_uid, user.pw_gid)
    lines, code = await _run(
        await forkserver.spawn("write_file", user.pw_name, {"path": str(out / "f.txt")})
    )
    assert code == 0, lines
    st = (out / "f.txt").stat()
    assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)


async def test_user_cannot_write_where_root_owns(
    forkserver: ForkServer, unix_user, open_dir
) -> None:
    user = unix_user()
    lines, code = await _run(
        await forkserver.spawn("write_file", user.pw_name, {"path": str(open_dir / "x")})
    )
    assert code == 1
    assert lines[-1]["type"] == "error"
    assert lines[-1]["kind"] == "permission_denied" and lines[-1]["permanent"] is True
    assert not (open_dir / "x").exists()


async def test_user_cannot_read_a_file_they_have_no_permission_for(
    forkserver: ForkServer, unix_user, open_dir
) -> None:
    user = unix_user()
    secret = open_dir / "secret.dat"
    secret.write_bytes(b"root only")
    secret.chmod(0o600)
    lines, code = await _run(
        await forkserver.spawn("read_file", user.pw_name, {"path": str(secret)})
    )
    assert code == 1 and lines[-1]["kind"] == "permission_denied"
    # and root can, so it really was the user's permission that failed
    assert secret.read_bytes() == b"root only"


@pytest.mark.parametrize("name", ["root", "daemon", "nobody-such-user-x"])
async def test_root_system_and_unknown_users_are_refused(forkserver: ForkServer, name: str) -> None:
    with pytest.raises(UserRefused) as e:
        await forkserver.spawn("whoami", name, {})
    assert name in str(e.value)


async def test_min_uid_is_enforced_by_the_fork_server(unix_user) -> None:
    user = unix_user()
    z = await ForkServer.start(min_uid=user.pw_uid + 1)
    try:
        with pytest.raises(UserRefused, match="system account"):
            await z.spawn("whoami", user.pw_name, {})
    finally:
        await z.close()


async def test_secret_reaches_child_but_not_its_argv_or_environment(
    forkserver: ForkServer, unix_user
) -> None:
    user = unix_user()
    secret = "s3cr3t-" + os.urandom(8).hex()
    child = await forkserver.spawn("echo_secret_len", user.pw_name, {"wait": 5}, secret=secret)
    lines = child.lines()
    first = await anext(lines)
    pid = first["pid"]
    for what in ("cmdline", "environ"):
        assert secret.encode() not in Path(f"/proc/{pid}/{what}").read_bytes()  # noqa: ASYNC240
    # non-dumpable: its /proc files stay root's, so the user cannot ptrace or read memory
    assert os.stat(f"/proc/{pid}/mem").st_uid == 0
    child.kill(15)
    rest = [line async for line in lines]
    assert rest[-1]["secret_len"] == len(secret)
    # only stdin/stdout/stderr and the output pipe: never the fork server's control socket
    fds = rest[-1]["fds"]
    assert sorted(fds) == ["0", "1", "2", "3"], fds
    assert not any(target.startswith("socket:") for target in fds.values())


async def test_kill_stops_the_whole_process_group(forkserver: ForkServer, unix_user) -> None:
    user = unix_user()
    child = await forkserver.spawn("slow", user.pw_name, {"steps": 10000, "ignore_cancel": True})
    lines = child.lines()
    grandchild = (await anext(lines))["grandchild"]
    child.kill()
    assert await child.wait() == -9
    for _ in range(100):
        if not _alive(grandchild):
            break
        await asyncio.sleep(0.01)
    assert not _alive(grandchild)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_reusable_child_runs_tasks_with_its_secret_and_no_extra_descriptors(
    forkserver: ForkServer, unix_user
) -> None:
    user = unix_user()
    secret = "s3cr3t-" + os.urandom(8).hex()
    child = await forkserver.spawn("echo_secret_len", user.pw_name, secret=secret, reusable=True)
    results = []
    for _ in range(2):
        child.submit({"wait": 0})
        lines = [line async for line in child.lines()]
        results.append(lines[-1])
        assert lines[0]["pid"] == child.pid and lines[-1]["type"] == "result"
    assert [r["secret_len"] for r in results] == [len(secret)] * 2
    fds = results[-1]["fds"]
    assert sorted(fds) == ["0", "1", "2", "3"], fds  # stdin is its task pipe
    assert fds["0"].startswith("pipe:") and fds["3"].startswith("pipe:")
    assert not any(target.startswith("socket:") for target in fds.values())
    child.retire()
    assert await asyncio.wait_for(child.wait(), 5) == 0  # end of its task pipe: a clean exit


async def test_a_listing_child_imports_nothing(forkserver: ForkServer, unix_user) -> None:
    """The user may be unable to read the interpreter's files: the preload covers the job."""
    user = unix_user()
    params = {"job": "dirlist", "params": {"path": "/", "limit": 5}}
    lines, code = await _run(await forkserver.spawn("new_imports", user.pw_name, params))
    assert code == 0, lines
    assert lines[-1]["imported"] == []
