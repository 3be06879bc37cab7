"""The users' resume-journal directories under ``state_dir``, made by root without
following links.

Root creates ``state_dir`` (0711) and ``state_dir/<uid>`` (0700, then owned by the user).
A user who can write somewhere on that path could plant a symbolic link where root is
about to ``mkdir`` and ``chown``, and get a root-owned directory given to them. So every
step is relative to an open directory descriptor: each component is opened with
``O_DIRECTORY | O_NOFOLLOW`` (a link or a non-directory is refused, never followed),
created with ``mkdir(dir_fd=…)`` when missing, and checked with ``fstat``:

* every component of ``state_dir`` is owned by root and writable by nobody else, unless
  it is sticky (as ``/tmp``), where no one can rename root's entries;
* ``state_dir/<uid>`` is a directory owned by root (just made) or by that user; a new one
  is ``fchmod``-ed 0700, then ``fchown``-ed to the user, through its own descriptor (an
  existing one of the user's is left as the user keeps it).

A refusal is a :class:`StateDirError`: the task fails with its message, nothing changes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from shared.errors import ErrorKind, StagerError
from shared.unix_users import Identity

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Modes of what root creates: the shared part traversable, each user's part private.
BASE_MODE = 0o711
USER_MODE = 0o700


class StateDirError(StagerError):
    """``state_dir`` (or a user's directory in it) is not safe for root to use."""

    kind = ErrorKind.INVALID
    title = "unsafe state directory"


def _open_dir(name: str, parent: int, where: str, *, create: int | None) -> int:
    """``name`` in ``parent`` as a directory descriptor, never through a link."""
    for _ in range(2):
        try:
            return os.open(name, _DIR, dir_fd=parent)
        except FileNotFoundError:
            if create is None:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, create, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StateDirError(
                    f"state_dir: {where} is a symbolic link or not a directory; the worker "
                    "does not follow it (remove it, or configure the real path)"
                ) from None
            raise
    raise StateDirError(f"state_dir: {where} vanished while it was being created")


def _check_trusted(fd: int, where: str) -> None:
    st = os.fstat(fd)
    if st.st_uid not in (0, os.geteuid()):
        raise StateDirError(
            f"state_dir: {where} is owned by uid {st.st_uid}, not root: that user could "
            "swap what is in it (use a root-owned path)"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise StateDirError(
            f"state_dir: {where} is writable by others without the sticky bit (chmod go-w or +t it)"
        )


def open_base(path: Path) -> int:
    """A descriptor of ``path``, made (0711) where missing; every component checked."""
    if not path.is_absolute():
        raise StateDirError(f"state_dir must be an absolute path, not {path}")
    fd = os.open("/", _DIR)
    where = "/"
    try:
        _check_trusted(fd, where)
        for part in path.parts[1:]:
            where = os.path.join(where, part)
            child = _open_dir(part, fd, where, create=BASE_MODE)
            os.close(fd)
            fd = child
            _check_trusted(fd, where)
    except BaseException:
        os.close(fd)
        raise
    return fd


def user_state_dir(base: Path, ident: Identity) -> Path:
    """``base/<uid>``: made 0700 and given to the user, without following any link.

    Raises StateDirError: refused (permanent), or an OS error on the way (retried).
    """
    try:
        return _user_state_dir(base, ident)
    except OSError as e:
        raise StateDirError(
            f"state_dir: cannot prepare {base}/{ident.uid}: {e.strerror or e}", permanent=False
        ) from None


def _user_state_dir(base: Path, ident: Identity) -> Path:
    name = str(ident.uid)
    where = str(base / name)
    parent = open_base(base)
    try:
        fd = _open_dir(name, parent, where, create=USER_MODE)
    finally:
        os.close(parent)
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, ident.uid):
            raise StateDirError(
                f"state_dir: {where} belongs to uid {st.st_uid}, not to {ident.name}; "
                "the worker does not hand it over (remove it)"
            )
        if st.st_uid == 0:  # made now (or left by root): private first, then the user's
            os.fchmod(fd, USER_MODE)
        if (st.st_uid, st.st_gid) != (ident.uid, ident.gid):
            os.fchown(fd, ident.uid, ident.gid)  # CAP_CHOWN; no CAP_FOWNER needed
    finally:
        os.close(fd)
    return base / name
