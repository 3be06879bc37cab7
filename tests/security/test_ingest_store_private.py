"""The ingest job store holds job roots and handler source: a local user reads none of it.

A store left world-readable (0644, as ``make up`` made it before issue 9) is made 0600 when
a service opens it; a new one is created 0600 in a 0700 directory; SQLite's ``-wal`` and
``-shm`` files take that mode. A real ``useradd`` user tries to read each file (in a
process of its own) and is refused; root, the services' user, still reads its jobs."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.ingest.store import Job, JobStore
from tests.security.test_broker_users import run_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: useradd")

HANDLER = "# a data manager's handler: not for other users' eyes\nSECRET = 'h-7f3a'\n"


async def _write_and_read(url: str) -> Job:
    store = await JobStore.open(url)
    try:
        await store.create(Job(name="private", root="/data/x", target="/z/c", handler=HANDLER))
        return await store.get("private")
    finally:
        await store.close()


def _readable_by(user: pwd.struct_passwd, path: Path) -> bool:
    got = run_as(user, ["/bin/cat", str(path)])
    if got.returncode == 0:
        return True
    assert "Permission denied" in got.stderr, got.stderr  # refused, not some other failure
    return False


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory under /tmp the attacker may enter (pytest's tmp_path is root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="stager-store-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("existing", [True, False], ids=["old-0644-store", "new-store"])
def test_a_local_user_cannot_read_the_ingest_store(
    open_dir: Path, unix_user: Callable[..., pwd.struct_passwd], existing: bool
) -> None:
    attacker = unix_user()
    where = open_dir / "local" / "ingest.sqlite"
    if existing:
        where.parent.mkdir(mode=0o755)
        where.parent.chmod(0o755)
        where.touch()
        where.chmod(0o644)
        assert _readable_by(attacker, where)  # the attack works on such a file
    job = asyncio.run(_write_and_read(f"sqlite+aiosqlite:///{where}"))
    assert job.handler == HANDLER  # the legitimate path: the services read their jobs

    files = [p for p in (where, Path(f"{where}-wal"), Path(f"{where}-shm")) if p.exists()]
    assert where in files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert not _readable_by(attacker, path), path
    if not existing:
        assert stat.S_IMODE(where.parent.stat().st_mode) == 0o700
