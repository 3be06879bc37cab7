"""Become a Unix user: resolve and vet the account, then drop root for good."""

from __future__ import annotations

import ctypes
import os
import pwd
from dataclasses import dataclass

from shared.errors import StagerError

#: Accounts below this uid are system accounts and never run transfers.
DEFAULT_MIN_UID = 1000

_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class UserRefused(StagerError):
    """The account does not exist, is root, or is a system account."""

    status = 400
    title = "user refused"


class PrivilegeDropFailed(StagerError):
    """setgid/initgroups/setuid did not leave the process as the user."""


@dataclass(frozen=True)
class Identity:
    """The account a child process runs as."""

    name: str
    uid: int
    gid: int
    home: str


def resolve_user(name: str, min_uid: int = DEFAULT_MIN_UID) -> Identity:
    """Look ``name`` up; refuse root, system accounts and unknown users."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError as e:
        raise UserRefused(f"unknown user {name!r}: give an existing Unix account") from e
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        raise UserRefused(f"user {name!r} is root: transfers never run as root")
    if pw.pw_uid < max(min_uid, 1):
        raise UserRefused(
            f"user {name!r} is a system account (uid {pw.pw_uid} < {min_uid}): "
            "transfers run only as regular users"
        )
    return Identity(name=pw.pw_name, uid=pw.pw_uid, gid=pw.pw_gid, home=pw.pw_dir)


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
