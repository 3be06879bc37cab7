"""Nothing left behind: a cancel, a final timeout or a final failure removes the task's part
objects, part files, resume journals and the empty collections its runs made; a retry
keeps them (the next attempt resumes), and a completed run leaves no ledger.

Real worker, real isync core in a child as a ``useradd`` user, the iRODS test server,
real RabbitMQ.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from services.isync.journal import SIDECAR_SUFFIX
from services.isync.paths import part_name
from services.worker.credentials import RepoCredential
from tests.worker.conftest import RunningWorker, irods_worker, task_message

MiB = 1024 * 1024
FINAL = {"cancelled", "completed", "archived"}


def _irods_kw(srv: Any, **transfer: Any) -> dict[str, Any]:
    return irods_worker(
        srv,
        transfer={
            "large_file_threshold": MiB,
            "streams": 2,
            "buffer_size": 256 * 1024,  # small steps: progress comes often under bwlimit
            **transfer,
        },
    )


def _own(path: Path, user: pwd.struct_passwd) -> None:
    os.chown(path, user.pw_uid, user.pw_gid)


async def _until_bytes(w: RunningWorker, task_id: str, at_least: int) -> None:
    async with asyncio.timeout(60):
        while not any(  # noqa: ASYNC110 - filled by the consumer
            e.task_id == task_id and e.progress and e.progress.bytes_done >= at_least
            for e in w.events.events
        ):
            await asyncio.sleep(0.05)


def _sent(w: RunningWorker, task_id: str, *, attempt: int) -> list[int]:
    """bytes_done of every progress event of one attempt."""
    return [
        e.progress.bytes_done
        for e in w.events.events
        if e.task_id == task_id and e.attempt == attempt and e.progress is not None
    ] or [0]


def _state_files(state: Path, uid: int) -> list[str]:
    """What the user's state directory holds (journals, ledgers), relative names."""
    base = state / str(uid)
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


async def test_cancelled_upload_removes_its_part_object_and_journal(
    start_worker,
    unix_user: Callable[..., pwd.struct_passwd],
    open_dir: Path,
    irods_server: Any,
    irods_session: Any,
    unique_name: str,
) -> None:
    user = unix_user()
    src = open_dir / "big.bin"
    src.write_bytes(os.urandom(8 * MiB))
    _own(src, user)
    state = open_dir / "state"
    w = await start_worker(**_irods_kw(irods_server, bwlimit=MiB), state_dir=state)
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    target = f"{coll}/big.bin"
    msg = task_message(user.pw_name, src=str(src), dst=f"irods:{target}")
    await w.submit(msg)
    await _until_bytes(w, msg.task_id, MiB)
    part = part_name(target, "irods")
    assert irods_session.data_objects.exists(part)  # the hidden part object is there
    assert any(n.startswith("put-") for n in _state_files(state, user.pw_uid))  # its journal
    await w.cancel(msg.task_id)
    final = await w.events.until(msg.task_id, FINAL)
    assert final.state == "cancelled"
    assert not irods_session.data_objects.exists(part)
    assert not irods_session.data_objects.exists(target)
    assert _state_files(state, user.pw_uid) == []  # no journal, no ledger


async def test_cancelled_download_removes_its_preallocated_part_file_and_sidecar(
    start_worker,
    unix_user: Callable[..., pwd.struct_passwd],
    open_dir: Path,
    irods_server: Any,
    irods_session: Any,
    unique_name: str,
) -> None:
    user = unix_user()
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    irods_session.collections.create(coll)
    with irods_session.data_objects.open(f"{coll}/big.bin", "w") as fh:
        fh.write(os.urandom(8 * MiB))
    down = open_dir / "down"
    down.mkdir()
    _own(down, user)
    keep = down / "unrelated.txt"  # the user's own file beside it stays
    keep.write_text("mine\n")
    _own(keep, user)
    w = await start_worker(**_irods_kw(irods_server, bwlimit=MiB))
    msg = task_message(user.pw_name, src=f"irods:{coll}/big.bin", dst=str(down / "big.bin"))
    await w.submit(msg)
    await _until_bytes(w, msg.task_id, MiB)
    part = Path(part_name(str(down / "big.bin"), "local"))
    assert os.stat(part).st_size == 8 * MiB  # preallocated to the object's size
    assert (down / ("big.bin" + SIDECAR_SUFFIX)).exists()
    await w.cancel(msg.task_id)
    final = await w.events.until(msg.task_id, FINAL)
    assert final.state == "cancelled"
    assert sorted(p.name for p in down.iterdir()) == ["unrelated.txt"]


def _seed_tree(session: Any, coll: str, big: int, *, small: bool) -> None:
    """``coll`` with an empty ``empty/``, ``big/big.bin`` and (``small``) ``done/a.txt``."""
    for sub in ("empty", "big", *(["done"] if small else [])):
        session.collections.create(f"{coll}/{sub}")
    if small:
        with session.data_objects.open(f"{coll}/done/a.txt", "w") as fh:
            fh.write(b"alpha\n")
    with session.data_objects.open(f"{coll}/big/big.bin", "w") as fh:
        fh.write(os.urandom(big))


def _tree(top: Path) -> list[str]:
    return sorted(str(p.relative_to(top)) for p in top.rglob("*"))


@pytest.mark.parametrize("end", ["cancel", "final timeout"])
async def test_a_download_that_ends_unfinished_removes_the_directories_it_made(
    end: str,
    start_worker,
    unix_user: Callable[..., pwd.struct_passwd],
    open_dir: Path,
    irods_server: Any,
    irods_session: Any,
    unique_name: str,
) -> None:
    """A collection downloaded into ``down/new/deeper/`` (``new`` and ``deeper`` do not
    exist): a cancel, or a final timeout, removes the part file and its sidecar, then
    every directory the job made that is left empty (``big/``, ``empty/``, and with
    nothing arrived, the tree's top and the new parents too); what arrived (the cancel
    case: ``done/a.txt``) and the directories holding it stay, and so does ``down/`` (it
    was there) with the user's own file."""
    user = unix_user()
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    small = end == "cancel"
    _seed_tree(irods_session, coll, 16 * MiB, small=small)
    down = open_dir / "down"
    down.mkdir()
    _own(down, user)
    (down / "unrelated.txt").write_text("mine\n")
    _own(down / "unrelated.txt", user)
    state = open_dir / "state"
    w = await start_worker(
        **_irods_kw(irods_server, bwlimit=MiB), state_dir=state, retry={"max_attempts": 1}
    )
    dst = down / "new" / "deeper"
    timeout = 4 if end == "final timeout" else 0
    msg = task_message(user.pw_name, src=f"irods:{coll}", dst=f"{dst}/", timeout=timeout)
    await w.submit(msg)
    await _until_bytes(w, msg.task_id, MiB)
    top = dst / unique_name
    made = _tree(down)
    assert f"new/deeper/{unique_name}/empty" in made  # the job made these
    assert f"new/deeper/{unique_name}/big/big.bin.isync-part" in made
    if end == "cancel":
        await w.cancel(msg.task_id)
    final = await w.events.until(msg.task_id, FINAL, limit=60)
    assert final.state == ("cancelled" if end == "cancel" else "archived"), final
    if small:
        assert (top / "done" / "a.txt").read_bytes() == b"alpha\n"  # what arrived stays
        assert _tree(down) == [
            "new",
            "new/deeper",
            f"new/deeper/{unique_name}",
            f"new/deeper/{unique_name}/done",
            f"new/deeper/{unique_name}/done/a.txt",
            "unrelated.txt",
        ]
    else:
        assert _tree(down) == ["unrelated.txt"]
    assert _state_files(state, user.pw_uid) == []  # no ledger left


async def test_a_retry_keeps_the_parts_and_a_final_timeout_removes_them(
    start_worker,
    unix_user: Callable[..., pwd.struct_passwd],
    open_dir: Path,
    irods_server: Any,
    irods_session: Any,
    unique_name: str,
) -> None:
    """timeout 4 s at 1 MiB/s for 32 MiB: attempt 1 times out (retry: the part object and
    journal stay, and attempt 2 resumes from them), attempt 2 times out for good."""
    user = unix_user()
    src = open_dir / "big.bin"
    src.write_bytes(os.urandom(32 * MiB))
    _own(src, user)
    state = open_dir / "state"
    w = await start_worker(
        **_irods_kw(irods_server, bwlimit=MiB),
        state_dir=state,
        retry={"max_attempts": 2, "base_delay": 0.3, "factor": 1, "max_delay": 1},
    )
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    target = f"{coll}/big.bin"
    part = part_name(target, "irods")
    msg = task_message(user.pw_name, src=str(src), dst=f"irods:{target}", timeout=4)
    await w.submit(msg)
    retry = await w.events.until(msg.task_id, {"retry", *FINAL})
    assert retry.state == "retry" and "timed out" in (retry.error or "")
    assert irods_session.data_objects.exists(part)  # kept for the next attempt
    names = _state_files(state, user.pw_uid)
    assert any(n.startswith("put-") for n in names)
    assert any(n.startswith("leftovers/") for n in names)
    sent_first = max(_sent(w, msg.task_id, attempt=1))
    assert sent_first > 0
    final = await w.events.until(msg.task_id, FINAL, limit=60)
    assert final.state == "archived" and final.attempt == 2
    # attempt 2 resumed: it started from what attempt 1 sent
    second = _sent(w, msg.task_id, attempt=2)
    assert second and min(second) >= sent_first
    assert not irods_session.data_objects.exists(part)
    assert _state_files(state, user.pw_uid) == []


async def test_a_failed_upload_removes_the_empty_collections_it_made_and_nothing_else(
    start_worker,
    unix_user: Callable[..., pwd.struct_passwd],
    open_dir: Path,
    irods_server: Any,
    irods_session: Any,
    unique_name: str,
) -> None:
    """A tree whose ``closed/`` is unreadable: ``closed`` goes, the collection holding the
    files that arrived stays. A single unreadable file into a new collection: that
    collection goes; into a collection that was there before: it stays."""
    user = unix_user()
    tree = open_dir / "tree"
    (tree / "closed").mkdir(parents=True)
    (tree / "open").mkdir()
    (tree / "open" / "a.txt").write_text("alpha\n")
    (tree / "closed" / "secret.txt").write_text("x\n")
    for p in [tree, *tree.rglob("*")]:
        _own(p, user)
    (tree / "closed").chmod(0)
    lone = open_dir / "lone.txt"
    lone.write_text("nobody reads me\n")
    _own(lone, user)
    lone.chmod(0)
    home = f"/{irods_server.zone}/home/{irods_server.admin_user}"
    existing = f"{home}/{unique_name}-there"
    irods_session.collections.create(existing)
    w = await start_worker(**_irods_kw(irods_server), retry={"max_attempts": 1})

    up = task_message(user.pw_name, src=f"{tree}/", dst=f"irods:{home}/{unique_name}-tree/")
    await w.submit(up)
    final = await w.events.until(up.task_id, FINAL)
    assert final.state == "archived", final
    assert irods_session.data_objects.exists(f"{home}/{unique_name}-tree/open/a.txt")
    assert not irods_session.collections.exists(f"{home}/{unique_name}-tree/closed")

    for dst in (f"{home}/{unique_name}-new/", f"{existing}/"):
        one = task_message(user.pw_name, src=str(lone), dst=f"irods:{dst}")
        await w.submit(one)
        final = await w.events.until(one.task_id, FINAL)
        assert final.state == "archived", final
    assert not irods_session.collections.exists(f"{home}/{unique_name}-new")
    assert irods_session.collections.exists(existing)  # not made by the job: kept


async def test_a_completed_run_leaves_no_ledger_and_keeps_its_empty_collections(
    start_worker,
    unix_user: Callable[..., pwd.struct_passwd],
    open_dir: Path,
    irods_server: Any,
    irods_session: Any,
    unique_name: str,
) -> None:
    user = unix_user()
    tree = open_dir / "tree"
    (tree / "empty").mkdir(parents=True)
    (tree / "big.bin").write_bytes(os.urandom(2 * MiB))
    for p in [tree, *tree.rglob("*")]:
        _own(p, user)
    state = open_dir / "state"
    w = await start_worker(**_irods_kw(irods_server), state_dir=state)
    dst = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    msg = task_message(user.pw_name, src=f"{tree}/", dst=f"irods:{dst}/")
    await w.submit(msg)
    final = await w.events.until(msg.task_id, FINAL)
    assert final.state == "completed", final.error
    assert irods_session.collections.exists(f"{dst}/empty")  # an empty source dir is mirrored
    assert irods_session.data_objects.exists(f"{dst}/big.bin")
    assert _state_files(state, user.pw_uid) == []


@pytest.mark.parametrize(
    ("kind", "states", "error"),
    [
        ("fail_permanent", ["archived"], "Permission denied"),
        ("fail", ["retry", "retry", "archived"], "did not answer"),
    ],
)
async def test_the_worker_logs_the_state_it_published(
    start_worker,
    unix_user: Callable[..., pwd.struct_passwd],
    capfd: Any,
    caplog: Any,
    kind: str,
    states: list[str],
    error: str,
) -> None:
    """A final failure was logged as ``task.end state=retry``; it is ``archived``. A
    permanent error ends at once; a transient one is retried (3 attempts here) and only
    the attempts that are retried log ``retry``."""
    user = unix_user()
    creds = {"streamer": RepoCredential(user="svc", password=SecretStr("svc-pw"))}
    w = await start_worker(transfer_kind=kind, service_credentials=creds)
    msg = task_message(user.pw_name)
    await w.submit(msg)
    final = await w.events.until(msg.task_id, FINAL)
    assert final.state == "archived" and error in (final.error or ""), final.error
    # the worker writes its task.end line just after publishing the final event
    out = ""

    def ends() -> list[str]:
        found = [line for line in out.splitlines() if "task.end" in line and msg.task_id in line]
        return list(dict.fromkeys(found))

    for _ in range(250):
        # stdout, or the logging records when an earlier test routed structlog through them
        out += capfd.readouterr().out + "\n" + caplog.text
        if len(ends()) >= len(states):
            break
        await asyncio.sleep(0.02)
    logged = []
    for line in ends():
        for state in ("retry", "archived", "completed", "cancelled"):
            forms = (f"state={state}", f"'state': '{state}'", f'"state": "{state}"')
            if any(f in line for f in forms):
                logged.append(state)
    assert logged == states, ends()
