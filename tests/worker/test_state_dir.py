"""Root's ``mkdir`` + ``chown`` under ``state_dir`` never follows a link a user planted.

The attacker is a real ``useradd`` user who can write where the state directory lives (a
sticky, world-writable directory, as ``/tmp``); the worker is real and runs real tasks.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from services.worker.credentials import RepoCredential
from services.worker.state_dir import StateDirError, user_state_dir
from shared.messaging.messages import TaskEvent, TaskMessage
from shared.unix_users import vet
from tests.worker.conftest import RunningWorker, task_message

SERVICE = {"streamer": RepoCredential(user="svc", password=SecretStr("svc-pw"))}


def _as(user: pwd.struct_passwd, *argv: str) -> None:
    """Run ``argv`` as ``user`` (the attacker's own shell command)."""
    subprocess.run(argv, user=user.pw_uid, group=user.pw_gid, check=True, capture_output=True)


def _shared(open_dir: Path) -> Path:
    shared = open_dir / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # everyone may create entries, as in /tmp
    return shared


def _root_only(open_dir: Path) -> Path:
    target = open_dir / "root-only"
    target.mkdir(mode=0o700)
    (target / "secret").write_text("root's\n")
    return target


async def _final(w: RunningWorker, msg: TaskMessage) -> TaskEvent:
    await w.submit(msg)
    return await w.events.until(msg.task_id, {"completed", "archived", "retry"})


async def test_a_link_planted_as_the_users_state_dir_is_refused(
    start_worker, unix_user: Callable[..., pwd.struct_passwd], open_dir: Path
) -> None:
    user = unix_user()
    shared, target = _shared(open_dir), _root_only(open_dir)
    planted = shared / str(user.pw_uid)
    _as(user, "ln", "-s", str(target), str(planted))
    w = await start_worker(transfer_kind="succeed", service_credentials=SERVICE, state_dir=shared)

    final = await _final(w, task_message(user.pw_name))
    assert final.state == "archived" and final.attempt == 1  # refused, not retried
    assert "symbolic link" in (final.error or "") and str(planted) in (final.error or "")
    st = target.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o700)  # not handed over
    assert planted.is_symlink()

    # the legitimate path: once the link is gone the user's directory is made and given
    planted.unlink()
    final = await _final(w, task_message(user.pw_name))
    assert final.state == "completed", final.error
    st = planted.lstat()
    assert planted.is_dir() and not planted.is_symlink()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (user.pw_uid, user.pw_gid, 0o700)


async def test_a_link_or_foreign_directory_on_the_state_dir_path_is_refused(
    start_worker, unix_user: Callable[..., pwd.struct_passwd], open_dir: Path
) -> None:
    """The worker makes ``state_dir`` when it starts (its replay marks live there): a link
    or another user's directory on the way stops it with a readable error, changing
    nothing."""
    attacker, user = unix_user(), unix_user()
    shared, target = _shared(open_dir), _root_only(open_dir)
    state = shared / "stager" / "state"
    _as(attacker, "ln", "-s", str(target), str(shared / "stager"))
    kw: dict[str, Any] = {"transfer_kind": "succeed", "service_credentials": SERVICE}
    with pytest.raises(StateDirError, match="symbolic link") as refused:
        await start_worker(**kw, state_dir=state)
    assert f"{shared}/stager" in refused.value.message
    assert sorted(os.listdir(target)) == ["secret"]  # nothing made through the link
    assert target.stat().st_uid == 0

    # a real directory the attacker owns on the path is refused too: they could swap it
    (shared / "stager").unlink()
    _as(attacker, "mkdir", str(shared / "stager"))
    with pytest.raises(StateDirError, match=f"owned by uid {attacker.pw_uid}"):
        await start_worker(**kw, state_dir=state)
    assert not (shared / "stager" / "state").exists()

    # the legitimate path: root's own directories
    shutil.rmtree(shared / "stager")
    w = await start_worker(**kw, state_dir=state)
    final = await _final(w, task_message(user.pw_name))
    assert final.state == "completed", final.error
    assert (state / str(user.pw_uid)).stat().st_uid == user.pw_uid
    assert (shared / "stager").stat().st_uid == 0
    assert (state.stat().st_mode & 0o777) == 0o711


def test_a_directory_of_another_user_is_not_handed_over(
    unix_user: Callable[..., pwd.struct_passwd], open_dir: Path
) -> None:
    attacker, user = unix_user(), unix_user()
    shared = _shared(open_dir)
    squat = shared / str(user.pw_uid)
    _as(attacker, "mkdir", str(squat))  # prepared for the victim, with a link inside later
    try:
        user_state_dir(shared, vet(user.pw_name))
    except StateDirError as e:
        assert f"belongs to uid {attacker.pw_uid}" in e.message
    else:
        raise AssertionError("a directory of another user was handed over")
    assert squat.stat().st_uid == attacker.pw_uid
