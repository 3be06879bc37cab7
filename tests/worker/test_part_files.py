"""What another user (or the user) plants at a download's part or journal path is neither
followed nor waited on: that file fails at once with a message naming it, the others
arrive, and nothing outside the destination is written.

Real worker, real isync core as a ``useradd`` user, the iRODS test server.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.worker.conftest import irods_worker, task_message

KiB = 1024
FILES = {"a.txt": b"alpha\n" * 50, "b.txt": b"bravo\n" * 50, "c.txt": b"charlie\n" * 50}
BIG = "big.bin"


def _as(user: pwd.struct_passwd, *argv: str) -> None:
    subprocess.run(argv, user=user.pw_uid, group=user.pw_gid, check=True, capture_output=True)


def _irods_kw(srv: Any) -> dict[str, Any]:
    return irods_worker(
        srv,
        transfer={"large_file_threshold": 64 * KiB, "streams": 2},
        retry={"max_attempts": 1},
    )


def _seed(session: Any, coll: str) -> dict[str, bytes]:
    session.collections.create(coll)
    data = {**FILES, BIG: os.urandom(300 * KiB)}
    for name, content in data.items():
        with session.data_objects.open(f"{coll}/{name}", "w") as fh:
            fh.write(content)
    return data


async def test_planted_fifo_link_and_journal_fail_their_file_fast_and_follow_nothing(
    start_worker,
    unix_user: Callable[..., pwd.struct_passwd],
    open_dir: Path,
    irods_server: Any,
    irods_session: Any,
    unique_name: str,
) -> None:
    victim, attacker = unix_user(), unix_user()
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    data = _seed(irods_session, coll)
    drop = open_dir / "drop"  # a shared drop directory, as /tmp: anyone may add entries
    drop.mkdir()
    drop.chmod(0o1777)
    home = open_dir / "victim-home"
    home.mkdir()
    precious = home / "thesis.tex"
    precious.write_text("years of work\n")
    os.chown(home, victim.pw_uid, victim.pw_gid)
    os.chown(precious, victim.pw_uid, victim.pw_gid)

    # another user: a link to the victim's file where a.txt's part file will be made,
    # and a FIFO where b.txt's will be (opening it for writing would wait for ever)
    _as(attacker, "ln", "-s", str(precious), str(drop / "a.txt.isync-part"))
    _as(attacker, "mkfifo", str(drop / "b.txt.isync-part"))
    # the user's own leftovers: a part file, and a FIFO as its resume journal
    _as(victim, "touch", str(drop / f"{BIG}.isync-part"))
    _as(victim, "mkfifo", str(drop / f"{BIG}.isync-partial"))

    w = await start_worker(**_irods_kw(irods_server))
    msg = task_message(victim.pw_name, src=f"irods:{coll}/", dst=str(drop))
    t0 = time.monotonic()
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"completed", "archived", "retry"}, limit=30)
    elapsed = time.monotonic() - t0
    print(f"download with planted part files settled in {elapsed:.1f} s")
    assert final.state == "archived" and elapsed < 15
    error = final.error or ""
    assert "3 of 4 files failed" in error, error
    assert f"{drop}/a.txt.isync-part is a symbolic link" in error
    assert f"{drop}/b.txt.isync-part is a FIFO" in error
    assert f"{drop}/{BIG}.isync-partial is a FIFO" in error
    assert precious.read_text() == "years of work\n"  # not overwritten through the link
    assert (drop / "c.txt").read_bytes() == FILES["c.txt"]  # the others arrived
    assert (drop / "a.txt.isync-part").is_symlink()

    # the legitimate path: with the planted entries gone the same job completes
    for name in ("a.txt.isync-part", "b.txt.isync-part", f"{BIG}.isync-part"):
        (drop / name).unlink()
    (drop / f"{BIG}.isync-partial").unlink()
    again = task_message(victim.pw_name, src=f"irods:{coll}/", dst=str(drop))
    await w.submit(again)
    done = await w.events.until(again.task_id, {"completed", "archived", "retry"}, limit=60)
    assert done.state == "completed", done.error
    for name, content in data.items():
        path = drop / name
        assert path.read_bytes() == content
        assert path.stat().st_uid == victim.pw_uid
    assert precious.read_text() == "years of work\n"
    assert sorted(p.name for p in drop.iterdir()) == sorted(data)


async def test_a_fifo_at_the_final_name_is_not_read(
    start_worker,
    unix_user: Callable[..., pwd.struct_passwd],
    open_dir: Path,
    irods_server: Any,
    irods_session: Any,
    unique_name: str,
) -> None:
    """An empty object is 'unchanged' when a local file of size 0 has its checksum: reading
    a FIFO of size 0 to find out would wait for ever."""
    user = unix_user()
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    irods_session.collections.create(coll)
    with irods_session.data_objects.open(f"{coll}/empty.txt", "w") as fh:
        fh.write(b"")
    down = open_dir / "down"
    down.mkdir()
    os.chown(down, user.pw_uid, user.pw_gid)
    _as(user, "mkfifo", str(down / "empty.txt"))
    w = await start_worker(**_irods_kw(irods_server))
    msg = task_message(user.pw_name, src=f"irods:{coll}/", dst=str(down))
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"completed", "archived", "retry"}, limit=20)
    assert final.state == "archived"
    assert f"{down}/empty.txt is not a regular file" in (final.error or "")
    (down / "empty.txt").unlink()
    again = task_message(user.pw_name, src=f"irods:{coll}/", dst=str(down))
    await w.submit(again)
    done = await w.events.until(again.task_id, {"completed", "archived", "retry"}, limit=20)
    assert done.state == "completed", done.error
    assert (down / "empty.txt").read_bytes() == b""
