# ruff: noqa: F401, F811
"""Ingest without root: a job's work runs as its owner, a real unprivileged Unix user.

Attacks that worked while the ingest worker ran everything as root (issue 9): a root-only
0600 file in the job's tree was registered (and then readable through iRODS), and a handler
file read ``/etc/shadow``. Each fails now, on the real worker code (a root worker, its
owner's child process), the real RabbitMQ and the iRODS test server; the owner's own files
and a handler reading what the owner may read still work. A job row naming a root outside
the allowed prefixes (the job store is not a trust boundary) is refused by the worker.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from services.ingest.errors import OwnerRefused
from services.ingest.owners import ChildPolicy, child_env, job_identity
from services.ingest.policy import RootRefused, check_scan
from services.ingest.store import IngestOptions, Job, JobState

# the ingest fixtures, used here as arguments (hence F401/F811 off for this file)
from tests.ingest.conftest import (
    ingest,
    make_tree,
    owner,
    tmp_path,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: useradd, setuid")

READS_SHADOW = """
from shared.ingest.core import Core


class event_handler(Core):
    @staticmethod
    def pre_job(hdlr_mod, logger, meta):
        with open(meta["append_json"]["read"], "rb") as f:
            f.read(1)
"""


def _proc(pid: int) -> tuple[dict[str, str], list[bytes], int]:
    """A process's status fields, its environment, and the owner of its environ file."""
    proc = Path(f"/proc/{pid}")
    lines = (proc / "status").read_text().splitlines()
    status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    environ = proc / "environ"
    return status, environ.read_bytes().split(b"\0"), environ.stat().st_uid


async def test_root_only_file_in_the_tree_is_not_registered(
    ingest: Any,
    irods_session: Any,
    tmp_path: Path,
) -> None:
    src = make_tree(tmp_path / "src", 2)
    secret = src / "root-only"
    secret.write_text("root's secret")
    secret.chmod(0o600)  # root's file, 0600: its owner may not read it
    (src / "shadow").symlink_to("/etc/shadow")  # for the iRODS server's account to read
    (src / "mine").symlink_to(src / "1")
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "register"))
    assert job.state is JobState.COMPLETED, job.error
    assert job.counters["files_unreadable"] == 2
    assert job.counters["files_created"] == 3  # the owner's readable files: registered
    assert irods_session.data_objects.exists(f"{ingest.collection}/1")
    assert irods_session.data_objects.exists(f"{ingest.collection}/mine")
    for name in ("root-only", "shadow"):
        assert not irods_session.data_objects.exists(f"{ingest.collection}/{name}")


async def test_handler_reading_etc_shadow_gets_eacces(
    ingest: Any,
    tmp_path: Path,
    owner: pwd.struct_passwd,
) -> None:
    src = make_tree(tmp_path / "src", 1)
    await ingest.start(1)
    job = ingest.job(src, append_json={"read": "/etc/shadow"})
    job.handler, job.handler_label = READS_SHADOW, "reads_shadow.py"
    failed = await ingest.run(job)
    assert failed.state is JobState.FAILED
    assert "pre_job failed: [Errno 13] Permission denied: '/etc/shadow'" in (failed.error or "")

    # the child that ran it: the owner's uid and groups, no way back, no worker secrets
    (pid,) = ingest.workers[0].children.pids().values()
    status, environ, environ_owner = _proc(pid)
    assert status["Uid"].split() == [str(owner.pw_uid)] * 4
    assert status["Gid"].split() == [str(owner.pw_gid)] * 4
    assert status["Groups"].split() == [str(owner.pw_gid)]
    assert status["NoNewPrivs"] == "1"
    assert not [e for e in environ if e.startswith((b"STAGER_", b"PYTHON"))]
    # non-dumpable: its memory, environment and descriptors are not the owner's to read
    assert environ_owner == 0

    # the same handler reading what the owner may read works
    mine = tmp_path / "mine.txt"
    mine.write_text("the owner's")
    ingest.give(mine)
    mine.chmod(0o600)
    ok = ingest.job(src, append_json={"read": str(mine)})
    ok.handler, ok.handler_label = READS_SHADOW, "reads_shadow.py"
    done = await ingest.run(ok)
    assert done.state is JobState.COMPLETED, done.error
    assert done.counters["files_created"] == 1


async def test_an_owner_stopping_its_child_does_not_hold_the_worker(
    ingest: Any, tmp_path: Path
) -> None:
    """The owner may signal its own child (same uid): SIGSTOP must not keep the worker's
    slots forever. The silent child is killed, its tasks fail, the next job gets a new one."""
    ingest.policy = {"heartbeat": 0.2, "silence": 2.0}
    src = make_tree(tmp_path / "src", 3)
    await ingest.start(1)
    job = ingest.configured(src, op="NO_OP", sleep=30.0, files_per_task=3)  # one batch
    await ingest.store.create(job)
    children = ingest.workers[0].children
    async with asyncio.timeout(30):  # the directory is listed: the batch is in the child
        while (await ingest.store.get(job.name)).counters.get("dirs", 0) < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    (stopped,) = children.pids().values()
    os.kill(stopped, signal.SIGSTOP)  # what its owner can do
    t0 = time.monotonic()
    done = await ingest.wait(job.name, limit=30)
    assert time.monotonic() - t0 < 15  # not the handler's 30 s sleeps
    assert (done.counters["tasks_failed"], done.counters["files_failed"]) == (1, 3)
    assert stopped not in children.pids().values()
    again = await ingest.run(ingest.configured(src, op="NO_OP"))
    assert again.state is JobState.COMPLETED and again.counters["tasks_failed"] == 0


async def test_job_rows_the_worker_refuses(
    ingest: Any,
    tmp_path: Path,
    unix_user: Any,
) -> None:
    """Rows written straight into the job store (no API, no CLI): the worker re-checks."""
    src = make_tree(tmp_path / "src", 1)
    await ingest.start(1)
    outside = await ingest.run(ingest.job(Path("/root")))
    assert outside.state is JobState.FAILED
    assert "root /root is not under an allowed ingest root" in (outside.error or "")
    (tmp_path / "escape").symlink_to("/root")
    escaped = await ingest.run(ingest.job(tmp_path / "escape"))
    assert escaped.state is JobState.FAILED and "(resolved: /root)" in (escaped.error or "")

    no_owner = ingest.job(src)
    no_owner.options.owner = None
    failed = await ingest.run(no_owner)
    assert failed.state is JobState.FAILED and "has no owner" in (failed.error or "")
    for name in ("root", "nobody", unix_user(login_shell="/usr/sbin/nologin").pw_name):
        refused = await ingest.run(ingest.job(src, owner=name))
        assert refused.state is JobState.FAILED, name
        assert "owner refused" in (refused.error or ""), refused.error

    fine = await ingest.run(ingest.job(src))
    assert fine.state is JobState.COMPLETED and fine.counters["files_created"] == 1


def test_a_directory_resolving_out_of_the_root_is_not_scanned(
    tmp_path: Path,
) -> None:
    """What a worker checks before it lists any directory of a job (the owner may swap a
    sub-directory for a link after its parent was listed)."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "link").symlink_to(tmp_path)
    allowed = [str(tmp_path)]
    check_scan(str(root / "sub"), str(root), allowed)
    with pytest.raises(RootRefused, match="is outside the job's root"):
        check_scan(str(root / "link"), str(root), allowed)
    with pytest.raises(RootRefused, match="not under an allowed ingest root"):
        check_scan(str(root / "sub"), str(root), [str(root / "sub")])


def test_a_non_root_worker_runs_only_its_own_users_jobs(
    owner: pwd.struct_passwd,
    unix_user: Any,
) -> None:
    """The rule a worker that is not root applies (its uid is its only identity)."""
    other = unix_user()
    policy = ChildPolicy()
    mine = Job(name="a", root="/x", target="/z/c", options=IngestOptions(owner=owner.pw_name))
    assert job_identity(mine, policy, euid=owner.pw_uid).uid == owner.pw_uid
    unowned = Job(name="b", root="/x", target="/z/c")
    assert job_identity(unowned, policy, euid=owner.pw_uid).name == owner.pw_name
    theirs = Job(name="c", root="/x", target="/z/c", options=IngestOptions(owner=other.pw_name))
    with pytest.raises(OwnerRefused, match="it runs only its own user's jobs"):
        job_identity(theirs, policy, euid=owner.pw_uid)
    with pytest.raises(OwnerRefused, match="has no owner"):
        job_identity(unowned, policy, euid=0)
    assert job_identity(theirs, policy, euid=0).uid == other.pw_uid


def test_child_environment_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGER_IRODS__PASSWORD", "p-secret")
    monkeypatch.setenv("STAGER_SIGNING__KEY", "k-secret")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    env = child_env()
    assert env["LC_ALL"] == "C.UTF-8"
    assert not [k for k in env if k.startswith("STAGER_")]
