"""Become a Unix user (vetted by :mod:`shared.unix_users`) and drop root for good."""

from __future__ import annotations

import ctypes
import os

from shared.errors import StagerError
from shared.unix_users import Identity

_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


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
    os.environ.update(HOME=ident.home, USER=ident.name, LOGNAME=ident.name)


def die_with_parent(sig: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies."""
    _prctl(_PR_SET_PDEATHSIG, sig)


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process (which reaps them)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
