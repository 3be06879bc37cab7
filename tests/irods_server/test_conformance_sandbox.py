"""Who runs the conformance modules and what they see: the account, the leftovers."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devtools.irods_server import conformance_sandbox

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to run as an account)")


@pytest.mark.parametrize(
    ("name", "message"),
    [("root", "is root; name an unprivileged account"), ("-o", "not an account name")],
)
def test_an_unusable_account_is_refused(name: str, message: str) -> None:
    with pytest.raises(conformance_sandbox.AccountError, match=message):
        conformance_sandbox.ensure_account(name)


@needs_root
def test_a_missing_account_is_created_as_a_system_account() -> None:
    name = f"irods-probe-{uuid.uuid4().hex[:6]}"
    try:
        entry = conformance_sandbox.ensure_account(name)
        assert entry.pw_name == name and entry.pw_uid != 0
        assert entry.pw_shell == "/usr/sbin/nologin"
        assert conformance_sandbox.ensure_account(name).pw_uid == entry.pw_uid  # found, not re-made
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False, timeout=60)
    with pytest.raises(KeyError):
        pwd.getpwnam(name)


@needs_root
def test_leftovers_of_the_account_in_tmp_are_removed_and_nothing_else() -> None:
    """Only what appeared in /tmp while the module ran and belongs to the account goes:
    not what was there before, not what another account made meanwhile."""
    nobody = pwd.getpwnam("nobody")
    tag = uuid.uuid4().hex[:10]
    before = Path("/tmp") / f"leftover-probe-before-{tag}"
    before.mkdir()
    os.chown(before, nobody.pw_uid, nobody.pw_gid)
    existed = set(os.listdir("/tmp"))
    made_dir = Path("/tmp") / f"leftover-probe-dir-{tag}"
    (made_dir / "sub").mkdir(parents=True)
    made_file = Path("/tmp") / f"leftover-probe-file-{tag}"
    made_file.write_text("x")
    others = Path("/tmp") / f"leftover-probe-root-{tag}"
    others.mkdir()
    for path in (made_dir, made_dir / "sub", made_file):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    try:
        conformance_sandbox.remove_leftovers(nobody.pw_uid, existed)
        assert not made_dir.exists() and not made_file.exists()
        assert before.is_dir() and others.is_dir()
    finally:
        for path in (before, others, made_dir):
            shutil.rmtree(path, ignore_errors=True)
        made_file.unlink(missing_ok=True)


def test_nothing_is_removed_when_run_as_this_process() -> None:
    marker = Path("/tmp") / f"leftover-probe-self-{uuid.uuid4().hex[:10]}"
    existed = set(os.listdir("/tmp"))
    marker.write_text("x")
    try:
        conformance_sandbox.remove_leftovers(None, existed)
        assert marker.exists()
    finally:
        marker.unlink()


def test_a_run_from_a_clone_in_tmp_keeps_it_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clone (and venv) under /tmp, as CI may make, must stay visible under each module's
    own /tmp: the names of those /tmp entries are kept; a run elsewhere keeps none."""
    from devtools.irods_server import launcher

    monkeypatch.setattr(launcher, "REPO_ROOT", Path("/tmp/ci-clone"))
    monkeypatch.setattr(sys, "prefix", "/tmp/ci-clone/.venv")
    monkeypatch.setattr(
        conformance_sandbox.sysconfig,
        "get_paths",
        lambda: {"purelib": "/tmp/other/site", "platlib": "/opt/site"},
    )
    assert conformance_sandbox.needed_in_tmp() == ["ci-clone", "other"]
    monkeypatch.setattr(launcher, "REPO_ROOT", Path("/work/repo"))
    monkeypatch.setattr(sys, "prefix", "/work/repo/.venv")
    monkeypatch.setattr(
        conformance_sandbox.sysconfig, "get_paths", lambda: {"purelib": "/a", "platlib": "/b"}
    )
    assert conformance_sandbox.needed_in_tmp() == []
