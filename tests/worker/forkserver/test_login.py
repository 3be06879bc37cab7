"""A child runs as the user with nothing of the root worker: not its secret environment,
not root's umask, and not the repository password an earlier child was handed.

Each test runs a real fork server and real ``useradd`` users, reads what the child (or the
fork server) really has from ``/proc``, and shows the legitimate path still works.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from services.worker.forkserver.client import Child, ForkServer
from services.worker.forkserver.login import LoginSettings
from tests.worker.jobs import KINDS

#: What a worker holds in its environment (as ``scripts.up`` and the docs set it).
WORKER_SECRETS = {
    "STAGER_SERVICE_CREDENTIALS": '{"streamer": {"user": "svc", "password": "svc-Pa55-env"}}',
    "STAGER_IRODS__PASSWORD": "rods-Pa55-env",
    "STAGER_BROKER__URL": "amqp://worker:broker-Pa55-env@127.0.0.1/stager",
    "AWS_SECRET_ACCESS_KEY": "aws-Pa55-env",
}
#: What a child may have: locale, time zone, PATH, the user's names, explicit settings.
ALLOWED = re.compile(r"^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|TZ|LC_[A-Z_]+|REQUESTS_CA_BUNDLE)$")

Users = Callable[..., pwd.struct_passwd]


async def _start(**kw: Any) -> ForkServer:
    return await ForkServer.start(extra_kinds=KINDS, **kw)


@pytest.fixture
async def servers() -> AsyncIterator[list[ForkServer]]:
    """Fork servers a test starts itself (its environment set first); closed after."""
    made: list[ForkServer] = []
    yield made
    for server in made:
        await server.close()


async def _lines(child: Child) -> list[dict[str, Any]]:
    lines = [line async for line in child.lines()]
    assert await child.wait() == 0, lines
    return lines


def _environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if item)


async def test_a_child_gets_a_clean_environment_not_the_workers(
    servers: list[ForkServer], unix_user: Users, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("PATH", "/root/bin:/usr/sbin:/usr/bin")
    defs = tmp_path / "login.defs"
    defs.write_text("ENV_PATH\tPATH=/usr/local/bin:/usr/bin:/bin:/opt/site/bin\nUMASK 022\n")
    login = LoginSettings(env={"REQUESTS_CA_BUNDLE": "/etc/ssl/site.pem"}, login_defs=defs)
    servers.append(server := await _start(login=login))
    user = unix_user()

    child = await server.spawn("login_report", user.pw_name, {"wait": 5}, secret="drpass-x")
    lines = child.lines()
    pid = (await anext(lines))["pid"]
    inherited = _environ_of(pid)  # what the kernel shows: the environment it was started with
    child.kill(15)
    rest = [line async for line in lines]
    environ = rest[-1]["environ"]  # what it runs with: os.environ
    assert await child.wait() == 0

    for env in (inherited, environ):
        assert all(ALLOWED.match(k) for k in env), sorted(env)
        joined = "\n".join(f"{k}={v}" for k, v in env.items())
        assert "STAGER" not in joined and "Pa55" not in joined, joined
    assert environ == {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/site/bin",  # login.defs, not root's
        "LANG": "C.UTF-8",
        "LC_TIME": "C",
        "REQUESTS_CA_BUNDLE": "/etc/ssl/site.pem",
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
    }
    # nor does the fork server itself hold the worker's environment
    fork_env = _environ_of(server._proc.pid)
    assert not set(fork_env) & set(WORKER_SECRETS), sorted(fork_env)


def test_the_environment_setting_cannot_set_the_users_names() -> None:
    with pytest.raises(ValueError, match="set per user"):
        LoginSettings(env={"HOME": "/root"})
    with pytest.raises(ValueError, match="octal"):
        LoginSettings(umask="0x1ff")


async def _mode_written(server: ForkServer, user: pwd.struct_passwd, where: Path) -> int:
    out = where / user.pw_name
    out.mkdir(parents=True)
    os.chown(out, user.pw_uid, user.pw_gid)
    await _lines(await server.spawn("write_file", user.pw_name, {"path": str(out / "f")}))
    return (out / "f").stat().st_mode & 0o777


async def test_a_child_has_the_users_login_umask_not_roots(
    servers: list[ForkServer], unix_user: Users, open_dir: Path, tmp_path: Path
) -> None:
    assert os.umask(0o022) == 0o022  # the worker (root) runs with 022 here
    os.umask(0o022)
    user = unix_user()
    # a configured umask wins
    servers.append(configured := await _start(login=LoginSettings(umask="077")))
    assert await _mode_written(configured, user, open_dir / "a") == 0o600
    # else the login default of login.defs
    strict = tmp_path / "strict.defs"
    strict.write_text("UMASK\t\t027\nUSERGROUPS_ENAB no\n")
    servers.append(site := await _start(login=LoginSettings(login_defs=strict)))
    assert await _mode_written(site, user, open_dir / "b") == 0o640
    # USERGROUPS_ENAB: a user in a private group (uid = gid, same name) gets 002 from 022
    private = tmp_path / "usergroups.defs"
    private.write_text("UMASK 022\nUSERGROUPS_ENAB yes\n")
    servers.append(groups := await _start(login=LoginSettings(login_defs=private)))
    uid = 47000 + os.getpid() % 1000
    own = unix_user(uid=uid)
    assert own.pw_gid == own.pw_uid  # useradd -U gave it its own group with the same id
    assert await _mode_written(groups, own, open_dir / "c") == 0o664


def _memory_holds(pid: int, needle: bytes) -> bool:
    """Whether ``needle`` is anywhere in the writable memory of ``pid`` (read as root)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            addresses, perms = line.split()[:2]
            if "w" not in perms:
                continue
            start, end = (int(a, 16) for a in addresses.split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):  # e.g. [vsyscall]
                continue
    return False


async def test_the_fork_server_wipes_a_password_once_it_is_handed_over(
    forkserver: ForkServer, unix_user: Users
) -> None:
    first, second = unix_user(), unix_user()
    password = "handed-over-" + os.urandom(16).hex()
    # its tail: a freed block's first bytes are overwritten by the allocator's free list,
    # the rest of a password left behind stays readable
    needle = password[-20:].encode()
    holder = await forkserver.spawn("echo_secret_len", first.pw_name, {"wait": 30}, secret=password)
    holder_lines = holder.lines()
    holder_pid = (await anext(holder_lines))["pid"]
    assert _memory_holds(holder_pid, needle)  # the scan finds it where it is
    assert not _memory_holds(forkserver._proc.pid, needle)  # the server forgot it at once

    later = await forkserver.spawn("echo_secret_len", second.pw_name, {"wait": 30})
    later_lines = later.lines()
    later_pid = (await anext(later_lines))["pid"]
    assert not _memory_holds(later_pid, needle)  # a later child: not inherited
    assert not _memory_holds(forkserver._proc.pid, needle)

    results = []
    for child, lines in ((holder, holder_lines), (later, later_lines)):
        child.kill(15)
        results.append([line async for line in lines][-1])
        assert await asyncio.wait_for(child.wait(), 5) == 0
    assert [r["secret_len"] for r in results] == [len(password), 0]  # it did arrive
