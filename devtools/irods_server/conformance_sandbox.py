"""Who runs the conformance modules, and what they see (``conformance.py``).

A real iRODS server runs as the unprivileged ``irods`` account and refuses root. Run as
root, the conformance runner runs each module's server and python-irodsclient process as
an account of its own (:func:`ensure_account` creates it when absent; :class:`Runner`
carries its uid and the Python it can run), and gives each module a ``/tmp`` and a
python-irodsclient ``test-data`` of its own in a private mount namespace
(:func:`private_mount_namespace`, :func:`own_tmp`, :func:`own_test_data`), so that neither
root-owned leftovers of earlier runs nor another module's files reach it. Where the
namespace is refused, :func:`remove_leftovers` cleans what the account left in /tmp.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# the account each server and each module runs as when the runner is root: a real server
# runs as the ``irods`` account and refuses root (exception_test's test_400 needs a vault
# under /home to be unwritable). A name of its own, so that nothing else owns its files.
RUN_AS = "irods-test"
ACCOUNT_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class AccountError(RuntimeError):
    """The account to run the servers and the modules as cannot be used."""


def ensure_account(name: str) -> pwd.struct_passwd:
    """The unprivileged account ``name``; created as a system account (no login, no home)
    with ``useradd`` when absent. AccountError if it is root or cannot be had."""
    if not ACCOUNT_NAME.fullmatch(name):
        raise AccountError(f"not an account name: {name!r} (lower case letters, digits, _ and -)")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create_account(name)
    if entry.pw_uid == 0:
        raise AccountError(f"--run-as {name!r} is root; name an unprivileged account")
    return entry


def _create_account(name: str) -> pwd.struct_passwd:
    cmd = ["useradd", "--system", "--user-group", "--no-create-home"]
    cmd += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise AccountError(
            f"no account {name!r} to run the servers as, and no useradd to create it"
        ) from None
    if proc.returncode != 0:
        raise AccountError(
            f"could not create the account {name!r} to run the servers as:"
            f" useradd exited {proc.returncode}: {proc.stderr.strip()}"
        )
    print(f"created the system account {name} (useradd --system) to run the servers as")
    return pwd.getpwnam(name)


@dataclass(frozen=True)
class Runner:
    """Who runs the servers and each module's child, and with which Python: the account's
    uid, or None for this process (unprivileged, or root with ``--run-as ''``)."""

    account: str = ""
    uid: int | None = None
    gid: int | None = None
    python: tuple[str, ...] = (sys.executable,)
    pythonpath: tuple[str, ...] = field(default=())
    # each module gets a /tmp of its own (root, in a private mount namespace: own_tmp)
    private_tmp: bool = False

    def popen_kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def give(self, *paths: Path) -> None:
        """Hand ``paths`` and everything under them to the account."""
        if self.uid is None or self.gid is None:
            return
        for path in paths:
            for top, dirs, files in os.walk(path):
                for item in [top, *(os.path.join(top, n) for n in dirs + files)]:
                    os.lchown(item, self.uid, self.gid)


def runner_for(name: str) -> Runner:
    """Root: a :class:`Runner` for account ``name`` (created if absent; '' keeps root).
    Any other account runs everything as itself."""
    if os.geteuid() != 0 or not name:
        return Runner()
    from .launcher import interpreter_for_others

    entry = ensure_account(name)
    holder: dict[str, Any] = {}
    try:
        python = interpreter_for_others(holder)
    except RuntimeError as e:
        raise AccountError(f"{e}; or pass --run-as '' to run the modules as root") from e
    path = holder.get("env", {}).get("PYTHONPATH", "")
    extra = tuple(p for p in path.split(os.pathsep) if p)
    return Runner(name, entry.pw_uid, entry.pw_gid, tuple(python), extra)


SHARED_TMP = "/tmp"  # PRC's tests put some resources' vaults at /tmp/<resource name>
CLONE_NEWNS = 0x00020000  # <sched.h>: a new mount namespace
# where the run's own directories go when each module gets a /tmp of its own (not under
# /tmp, which the module's own /tmp then hides)
PRIVATE_TMP_BASE = "/var/tmp"


def private_mount_namespace() -> bool:
    """Move this process (and every process it starts from now on) into a mount namespace
    of its own whose mounts do not propagate back, so that each module can be given a /tmp
    of its own (:func:`own_tmp`). False where the kernel or the container refuses; then
    nothing was mounted and the modules share the machine's /tmp."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        return False
    # a new namespace copies the propagation of /: make it private before mounting anything
    proc = subprocess.run(["mount", "--make-rprivate", "/"], capture_output=True, check=False)
    return proc.returncode == 0


@contextlib.contextmanager
def bind(source: Path, target: str, recursive: bool = False) -> Iterator[None]:
    """``source`` is mounted at ``target`` for this process and what it starts, until the
    block ends (in the private mount namespace: nothing outside sees it); ``recursive``
    takes the mounts below ``source`` along."""
    how = "--rbind" if recursive else "--bind"
    subprocess.run(["mount", how, str(source), target], check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", target], check=True, timeout=30)


def needed_in_tmp() -> list[str]:
    """The names of the machine's /tmp entries this run cannot do without: those holding
    the repository, the virtual environment or its packages (a clone in /tmp, as CI may
    make), which a module's own /tmp would otherwise hide from the server and the module."""
    from .launcher import REPO_ROOT

    paths = [
        str(REPO_ROOT),
        sys.prefix,
        *(sysconfig.get_paths()[k] for k in ("purelib", "platlib")),
    ]
    names = set()
    for path in paths:
        for p in (os.path.abspath(path), os.path.realpath(path)):
            parts = Path(p).parts
            if len(parts) > 2 and parts[1] == SHARED_TMP.strip("/"):
                names.add(parts[2])
    return sorted(names)


@contextlib.contextmanager
def _kept(source: Path, point: Path) -> Iterator[None]:
    """``source`` shown at ``point`` (inside a module's /tmp) while the block runs. If the
    mount cannot be undone the process ends at once: removing the module's directories
    afterwards would otherwise delete through it into ``source``."""
    point.mkdir(exist_ok=True)
    try:
        with bind(source, str(point)):
            yield
    finally:
        try:
            point.rmdir()  # empty once unmounted; not empty means still mounted
        except OSError as e:
            print(f"conformance: {point} still shows {source} ({e}); stopping", file=sys.stderr)
            os._exit(70)


@contextlib.contextmanager
def own_tmp(directory: Path) -> Iterator[None]:
    """``directory`` is /tmp for the module: it sees neither what earlier modules or runs (or
    other processes) left in /tmp, as root or as another account, nor leaves anything there
    (apart from the run's own code and packages if they live in /tmp: still there)."""
    directory.chmod(0o1777)  # as /tmp
    keep = needed_in_tmp()
    with contextlib.ExitStack() as stack:
        for name in keep:
            stack.enter_context(_kept(Path(SHARED_TMP) / name, directory / name))
        stack.enter_context(bind(directory, SHARED_TMP, recursive=bool(keep)))
        yield


def package_test_data() -> Path | None:
    """python-irodsclient's ``irods/test/test-data``: pool_test writes its ``*.json.test``
    files there (``irods_test_path()``), which an account other than the package's owner
    may not."""
    spec = importlib.util.find_spec("irods.test")
    locations = list(spec.submodule_search_locations or []) if spec else []
    found = [Path(loc) / "test-data" for loc in locations if (Path(loc) / "test-data").is_dir()]
    return found[0] if found else None


def own_test_data(copy: Path, runner: Runner) -> contextlib.AbstractContextManager[None]:
    """A copy of the package's ``test-data`` the module's account may write, mounted over
    it for the module (the installed package itself is neither changed nor shared)."""
    original = package_test_data()
    if original is None:
        return contextlib.nullcontext()
    shutil.copytree(original, copy)
    runner.give(copy)
    return bind(copy, str(original))


def remove_leftovers(uid: int | None, existed: set[str]) -> None:
    """Remove what the module's account (``uid``) made in /tmp while it ran: the vaults of
    PRC's resources at /tmp/<name> (a real server leaves them behind) and files its tests
    leave there, so that no later module or run meets them. Nothing when run as this
    process (None): /tmp entries of other processes of the same account are not ours."""
    if uid is None:
        return
    for name in set(os.listdir(SHARED_TMP)) - existed:
        path = os.path.join(SHARED_TMP, name)
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if st.st_uid != uid:
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
