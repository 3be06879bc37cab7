"""Paths: which side a path is on, rsync-style mapping, include/exclude globs, and the one
safe way a local part file or resume journal is opened (:func:`open_own_file`)."""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import stat
from dataclasses import dataclass
from typing import Literal

from services.isync.errors import DestinationExists, UsageError
from shared.irods import IRODS_PREFIXES

PART_SUFFIX = ".isync-part"


@dataclass(frozen=True)
class Location:
    """One end of a transfer: a local path or an absolute iRODS path."""

    kind: Literal["local", "irods"]
    path: str
    contents: bool  # a trailing '/' was given: copy the directory's contents

    @property
    def is_irods(self) -> bool:
        return self.kind == "irods"

    def display(self) -> str:
        return f"irods:{self.path}" if self.is_irods else self.path


def is_irods(text: str) -> bool:
    return text.startswith(IRODS_PREFIXES)


def parse_location(text: str, home: str) -> Location:
    """Parse `irods:/zone/x`, `i:rel/x` (relative to `home`) or a local path."""
    if not text:
        raise UsageError("empty path")
    if is_irods(text):
        raw = text.split(":", 1)[1]
        contents = raw.endswith("/") and raw.strip("/") != ""
        joined = raw if raw.startswith("/") else posixpath.join(home, raw) if raw else home
        path = posixpath.normpath(joined)
        if path.startswith("//"):
            path = path[1:]
        return Location("irods", path, contents)
    contents = text.endswith(os.sep) and text.strip(os.sep) != ""
    return Location("local", os.path.abspath(text), contents)


def basename(loc: Location) -> str:
    return posixpath.basename(loc.path) if loc.is_irods else os.path.basename(loc.path)


def join(loc_kind: str, base: str, rel: str) -> str:
    """Join a posix relative path onto a local or iRODS base path."""
    if not rel:
        return base
    if loc_kind == "irods":
        return posixpath.join(base, rel)
    return os.path.join(base, *rel.split("/"))


def tree_root(src: Location, dst: Location, dst_is_dir: bool) -> str:
    """Where a directory source lands (rsync rules): `src/` → dst, `src` → dst/name."""
    if src.contents:
        return dst.path
    return join(dst.kind, dst.path, basename(src))


def file_target(src: Location, dst: Location, dst_is_dir: bool) -> str:
    """Where a single-file source lands: into dst if it is a directory (or ends in '/')."""
    if dst_is_dir or dst.contents:
        return join(dst.kind, dst.path, basename(src))
    return dst.path


def part_name(path: str, kind: str) -> str:
    """The temporary name a file is written under until it is verified."""
    if kind == "irods":
        head, tail = posixpath.split(path)
        return posixpath.join(head, f".{tail}{PART_SUFFIX}")
    return path + PART_SUFFIX


#: How a part file or journal is opened: never through a link, never blocking on a FIFO.
_OWN_FILE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: Open errors that mean something other than a regular file is in the way.
_NOT_A_FILE = (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EAGAIN)


def open_own_file(path: str, flags: int, *, create: bool = False) -> int:
    """``path`` opened with ``flags``, refused unless it is a regular file of this user.

    A FIFO, device, directory, symbolic link or a second hard link at a part or journal
    path is neither followed nor waited on: DestinationExists names it and says to
    remove it. ``create``: made (0666 & ~umask) when missing and emptied; nothing is
    truncated before the checks (no ``O_TRUNC`` on what might be someone else's file).
    """
    mode = flags | _OWN_FILE | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, mode, 0o666)
    except OSError as e:
        # EACCES too: the kernel's protected_fifos/_regular/_symlinks refuse some of these
        if e.errno in _NOT_A_FILE or (e.errno == errno.EACCES and _foreign(path)):
            raise DestinationExists(_in_the_way(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
            raise DestinationExists(_in_the_way(path, st))
        os.set_blocking(fd, True)
        if create and flags & (os.O_WRONLY | os.O_RDWR):
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _foreign(path: str) -> bool:
    """Something other than this user's regular file lies at ``path``."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid()


def _in_the_way(path: str, st: os.stat_result | None = None) -> str:
    if st is None:
        try:
            st = os.lstat(path)
        except OSError:
            return f"{path} is not a regular file: remove it"
    if stat.S_ISLNK(st.st_mode):
        what = "a symbolic link"
    elif stat.S_ISFIFO(st.st_mode):
        what = "a FIFO"
    elif stat.S_ISDIR(st.st_mode):
        what = "a directory"
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        what = "a device"
    elif stat.S_ISSOCK(st.st_mode):
        what = "a socket"
    elif st.st_uid != os.geteuid():
        what = f"a file of uid {st.st_uid}"
    elif st.st_nlink != 1:
        what = "a file with other hard links"
    else:
        what = "not a regular file"
    return f"{path} is {what}, not this transfer's own file: it is not used (remove it)"


@dataclass(frozen=True)
class PathFilter:
    """rsync-like globs: a pattern containing '/' matches the relative path, else any name.

    A file is taken when it matches no exclude and (when includes are given) at least one
    include. An excluded directory is not descended into.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @staticmethod
    def _match(rel: str, pattern: str) -> bool:
        pat = pattern.rstrip("/")
        if "/" in pat:
            return fnmatch.fnmatchcase(rel, pat.lstrip("/"))
        return fnmatch.fnmatchcase(posixpath.basename(rel), pat)

    def excluded(self, rel: str) -> bool:
        return any(self._match(rel, p) for p in self.exclude)

    def wants_dir(self, rel: str) -> bool:
        return not self.excluded(rel)

    def wants_file(self, rel: str) -> bool:
        if self.excluded(rel) or posixpath.basename(rel).endswith(PART_SUFFIX):
            return False
        if posixpath.basename(rel).endswith(".isync-partial"):
            return False
        return not self.include or any(self._match(rel, p) for p in self.include)
