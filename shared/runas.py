"""Become a Unix user (vetted by :mod:`shared.unix_users`) and drop root for good.

Used by the transfer worker's fork server and the ingest worker's owner children.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import pkgutil
import socket
import sys
from collections.abc import Iterable

from shared.errors import StagerError
from shared.unix_users import Identity

_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38


#: Modules the standard library loads lazily (codecs, executors) that children use.
LAZY_STDLIB = (
    "encodings.idna",
    "encodings.ascii",
    "encodings.latin_1",
    "encodings.utf_8",
    "concurrent.futures.thread",
    "ssl",
    "hmac",
    "xml.etree.ElementTree",
    "xml.etree.cElementTree",
)


class PrivilegeDropFailed(StagerError):
    """setgid/initgroups/setuid did not leave the process as the user."""


_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def drop_privileges(ident: Identity) -> None:
    """setgid, initgroups, setuid to ``ident``, then prove root cannot come back.

    The process is also made non-dumpable, so the user cannot ptrace it or read
    its memory (it may hold a service account's repository password).
    """
    os.setgid(ident.gid)
    os.initgroups(ident.name, ident.gid)
    os.setuid(ident.uid)
    if os.getuid() != ident.uid or os.geteuid() != ident.uid or os.getegid() != ident.gid:
        raise PrivilegeDropFailed(f"still not {ident.name} after setuid")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise PrivilegeDropFailed("setuid(0) succeeded after dropping privileges")
    _prctl(_PR_SET_DUMPABLE, 0)


def die_with_parent(sig: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies."""
    _prctl(_PR_SET_PDEATHSIG, sig)


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process (which reaps them)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def forbid_new_privileges() -> None:
    """``no_new_privs``: no exec of this process or its children gains privileges again
    (set-uid binaries, file capabilities)."""
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)


def preload(packages: Iterable[str], label: str, modules: Iterable[str] = ()) -> None:
    """Import ``packages`` whole, ``modules`` and :data:`LAZY_STDLIB`, before dropping root.

    A process that becomes a user may no longer read the interpreter's files (e.g. a venv
    under /root), so nothing it needs may load lazily afterwards. ``label`` prefixes the
    stderr line for a package that cannot be imported.
    """
    for mod in (*LAZY_STDLIB, *modules):
        with contextlib.suppress(ImportError):
            importlib.import_module(mod)
    for name in packages:
        try:
            pkg = importlib.import_module(name)
        except ImportError as e:
            print(f"{label}: cannot preload {name}: {e}", file=sys.stderr)
            continue
        for info in pkgutil.walk_packages(pkg.__path__, name + "."):
            if ".test" in info.name or info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except Exception as e:  # optional extras (e.g. PAM, GSI plugins) may be absent
                print(f"{label}: skipped {info.name}: {type(e).__name__}", file=sys.stderr)
    socket.getaddrinfo("localhost", 0)  # loads the resolver's own lazy pieces
