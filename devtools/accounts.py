"""Throwaway Unix accounts for tests, benchmarks, the fuzz stack and the fault campaign.

One way to make them (``useradd -M -U``: no home, a group of its own, uid >= 20000 unless
given) and one way to remove them (their leftover processes killed first, then
``userdel``). Needs root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import uuid


def add_account(
    name: str | None = None,
    *,
    prefix: str = "stg",
    login_shell: str = "/bin/bash",
    uid: int | None = None,
) -> pwd.struct_passwd:
    """Create ``name`` (or ``prefix`` + a random suffix); raises CalledProcessError."""
    name = name or prefix + uuid.uuid4().hex[:8]
    ids = ["-u", str(uid)] if uid is not None else ["-K", "UID_MIN=20000"]
    subprocess.run(
        ["useradd", "-M", "-U", "-s", login_shell, *ids, name], check=True, capture_output=True
    )
    return pwd.getpwnam(name)


def kill_processes_of(uid: int) -> None:
    """SIGKILL every process running as ``uid`` (e.g. a child lingering for its next task)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    os.kill(int(entry), signal.SIGKILL)


def remove_account(name: str) -> None:
    """Kill what still runs as ``name``, then delete the account (a missing one is fine)."""
    with contextlib.suppress(KeyError):
        kill_processes_of(pwd.getpwnam(name).pw_uid)
    subprocess.run(["userdel", name], check=False, capture_output=True)
