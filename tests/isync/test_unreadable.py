"""An unreadable file is reported while the others complete.

Tests run as root, which ignores mode bits, so the CLI runs as a throwaway unprivileged
Unix user (useradd + setpriv) against a root-owned 0600 file.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.isync.errors import PermissionDenied
from tests.isync.conftest import REPO

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"),
    reason="needs root, useradd and setpriv to act as an unprivileged user",
)


@pytest.fixture
def unix_user() -> Iterator[tuple[int, int, Path]]:
    name = "isync" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    base = Path(tempfile.mkdtemp(prefix="isync-user-"))
    try:
        import pwd

        pw = pwd.getpwnam(name)
        os.chmod(base, 0o755)  # noqa: S103 - the unprivileged user must reach it
        state = base / "state"
        state.mkdir()
        os.chown(state, pw.pw_uid, pw.pw_gid)
        yield pw.pw_uid, pw.pw_gid, base
    finally:
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run(["userdel", name], check=False)


def run_as(uid: int, gid: int, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    cmd += [sys.executable, "-m", "services.isync", *args]
    return subprocess.run(cmd, cwd=REPO, env=environ, capture_output=True, text=True, timeout=60)


def test_unreadable_file_is_reported_and_others_complete(
    unix_user, isync_environ, irods_session, coll
):
    uid, gid, base = unix_user
    src = base / "src"
    src.mkdir(mode=0o755)
    for name in ("a.txt", "c.txt"):
        (src / name).write_bytes(name.encode())
        os.chmod(src / name, 0o644)
    secret = src / "b secret.txt"
    secret.write_bytes(b"nope")
    os.chmod(secret, 0o600)
    environ = {**isync_environ, "HOME": str(base), "XDG_STATE_HOME": str(base / "state")}

    result = run_as(uid, gid, environ, "-r", "--json", f"{src}/", f"i:{coll}")
    assert result.returncode == 1, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    failed = [x for x in lines if x["type"] == "file" and x["outcome"] == "failed"]
    assert [(Path(x["src"]).name, x["error"]) for x in failed] == [
        ("b secret.txt", f"{secret}: permission denied: {PermissionDenied.hint}")
    ]
    assert [x["kind"] for x in failed] == ["permission_denied"]
    assert {o.name for o in irods_session.collections.get(coll).data_objects} == {"a.txt", "c.txt"}

    single = run_as(uid, gid, environ, str(secret), f"i:{coll}/")
    assert single.returncode == 5
    want = f"isync: failed: {secret}: permission denied: {PermissionDenied.hint}"
    assert single.stderr.strip() == want
