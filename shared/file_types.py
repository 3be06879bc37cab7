"""What kind of file an ``lstat`` mode is: one answer for the worker and the ingest scanner.

Names are automated ingest's (its ``--exclude_file_type`` values), so ingest uses them as
they are; the transfer side's directory listing shows a few of them in the Go stager's
words (``dir``, ``symlink``) at its own edge.
"""

from __future__ import annotations

import stat
from enum import StrEnum


class FileType(StrEnum):
    """A file's type, named as automated ingest names it."""

    REGULAR = "regular"
    DIRECTORY = "directory"
    CHARACTER = "character"
    BLOCK = "block"
    SOCKET = "socket"
    PIPE = "pipe"
    LINK = "link"
    UNKNOWN = "unknown"


_TESTS = (
    (stat.S_ISLNK, FileType.LINK),
    (stat.S_ISDIR, FileType.DIRECTORY),
    (stat.S_ISREG, FileType.REGULAR),
    (stat.S_ISCHR, FileType.CHARACTER),
    (stat.S_ISBLK, FileType.BLOCK),
    (stat.S_ISSOCK, FileType.SOCKET),
    (stat.S_ISFIFO, FileType.PIPE),
)


def file_type(mode: int) -> FileType:
    """The type in ``st_mode`` (from ``lstat``, so a link is a link)."""
    for test, kind in _TESTS:
        if test(mode):
            return kind
    return FileType.UNKNOWN
