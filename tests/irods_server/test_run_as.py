"""The server refuses to run as root, as a real iRODS server does, and runs as an account.

A real server refuses root (``irodsctl should not be run by the root user``,
``scripts/irods_control.py`` in irods/irods 4.3.4) and runs as the unprivileged ``irods``
account, so a vault it may not write gives ``UNIX_FILE_MKDIR_ERR``/``UNIX_FILE_CREATE_ERR``
with the errno (the unixfilesystem plugin, ``plugins/resources/unixfilesystem``), and the
failed create leaves no catalog row (``rsDataObjCreate.cpp``).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import irods.exception
import pytest

from devtools.irods_server.launcher import REPO_ROOT, ServerProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to test the refusal)")

ACCOUNT = "nobody"  # present on every Debian system; never created or removed here


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # the effective uid
    raise AssertionError("no Uid line")


def test_refuses_to_run_as_root_without_the_switch(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "devtools.irods_server", "--data", str(tmp_path / "d")]
    proc = subprocess.run(
        [*cmd, "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""  # no ready line
    assert proc.stderr.strip().splitlines() == [
        "irods-test-server: refusing to run as root (a real iRODS server runs as an"
        " unprivileged account); run it as another user, or pass --allow-root"
    ]
    assert not (tmp_path / "d" / "catalog.sqlite").exists()


def test_the_launcher_passes_the_switch_as_root(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as srv:
        assert srv.proc is not None
        argv = Path(f"/proc/{srv.proc.pid}/cmdline").read_text().split("\0")
        assert "--allow-root" in argv
        assert _uid_of(srv.proc.pid) == 0
        with srv.session() as s:
            assert s.collections.get("/tempZone/home/rods").name == "rods"


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory the unprivileged account can pass through (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="irods-run-as-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_as_an_account_its_vault_permissions_apply(reachable_dir: Path) -> None:
    locked = reachable_dir / "locked"  # root's, 0755: the account may not write in it
    locked.mkdir(mode=0o755)
    resc = f"r{uuid.uuid4().hex[:10]}"
    with ServerProcess(reachable_dir / "data", run_as=ACCOUNT) as srv, srv.session() as s:
        assert srv.proc is not None
        assert _uid_of(srv.proc.pid) != 0
        argv = Path(f"/proc/{srv.proc.pid}/cmdline").read_text().split("\0")
        assert "--allow-root" not in argv
        home = "/tempZone/home/rods"
        s.data_objects.create(f"{home}/fine")  # its own vault in its data dir works
        assert s.data_objects.exists(f"{home}/fine")
        s.resources.create(resc, "unixfilesystem", host="localhost", path=str(locked / "v"))
        try:
            with pytest.raises(irods.exception.UNIX_FILE_MKDIR_ERR) as caught:
                s.data_objects.create(f"{home}/refused", resource=resc)
            assert repr(irods.exception.Errno(errno.EACCES)) in repr(caught.value)
            assert not s.data_objects.exists(f"{home}/refused")  # unregistered
        finally:
            s.resources.remove(resc)  # not CAT_RESOURCE_NOT_EMPTY: nothing was left
        assert not (locked / "v").exists()


def test_run_as_root_is_refused_by_the_launcher(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="is root; name an unprivileged account"):
        ServerProcess(tmp_path / "data", run_as="root").start()
