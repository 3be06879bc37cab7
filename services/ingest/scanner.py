"""Directory listing for ingest: one directory at a time, with the seed's excludes.

``scan_dir`` lists one directory with ``os.scandir`` (one ``lstat`` per entry, no
recursion: sub-directories become their own tasks), so memory is bounded by the
largest single directory, never by the tree.  Names stay as ``os`` gives them
(surrogate-escaped when not UTF-8); ``logical_name`` turns them into iRODS names the way
the seed does.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from services.ingest.charmap import CharMap, translate_element
from shared.file_types import FileType, file_type
from shared.ingest.utils import is_unicode_encode_error_path

#: The seed's file-type names for ``--exclude_file_type``.
FILE_TYPES = tuple(str(t) for t in FileType if t is not FileType.UNKNOWN)
UNICODE_ERROR_PREFIX = "irods_UnicodeEncodeError_"


@dataclass(frozen=True)
class Excludes:
    """``--exclude_file_type`` / ``_file_name`` / ``_directory_name``.

    The regexes are matched (``re.match``) against the entry's full path, as the seed
    does, so ``/data/x/5`` or ``(\\S+)\\.hidden`` both work.
    """

    file_types: frozenset[str] = frozenset()
    file_names: tuple[re.Pattern[str], ...] = ()
    dir_names: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def build(
        cls,
        file_types: Iterable[str] = (),
        file_names: Iterable[str] = (),
        dir_names: Iterable[str] = (),
    ) -> Excludes:
        """Validate and compile; a bad type or regex raises ``ValueError`` naming it."""
        types = frozenset(t.strip() for t in file_types if t.strip())
        unknown = sorted(types - set(FILE_TYPES))
        if unknown:
            raise ValueError(
                f"unknown file type(s) {', '.join(unknown)}; use: {', '.join(FILE_TYPES)}"
            )
        return cls(types, _compile(file_names), _compile(dir_names))

    def excluded(self, full_path: str, kind: str) -> bool:
        if kind == "directory":
            return "directory" in self.file_types or any(r.match(full_path) for r in self.dir_names)
        return kind in self.file_types or any(r.match(full_path) for r in self.file_names)


def _compile(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    out = []
    for p in patterns:
        try:
            out.append(re.compile(p))
        except re.error as e:
            raise ValueError(f"invalid regular expression {p!r}: {e}") from e
    return tuple(out)


#: What change detection compares: size, mtime and ctime in nanoseconds, inode.
Stat = tuple[int, int, int, int]


def stat_of(st: os.stat_result) -> Stat:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass(slots=True)
class Entry:
    """One directory entry, from a single ``lstat`` (a symbolic link: and its target's).

    ``stat`` is what a pass records and the next compares: for a link, its target's
    (what a put copies), so a link is re-synced when its target changes and not else.
    """

    name: str
    path: str
    kind: str
    size: int
    mtime: float
    ctime: float
    mode: int
    stat: Stat = (0, 0, 0, 0)
    #: an S3 object's ETag (from the listing; None for files)
    etag: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.kind == "directory"


@dataclass
class Listing:
    """What ``scan_dir`` found: entries to sync, and what it left out and why."""

    entries: list[Entry] = field(default_factory=list)
    excluded: int = 0
    unreadable: list[str] = field(default_factory=list)


def _readable(entry: Entry) -> bool:
    """Unreadable entries are skipped (logged, not failed), like the seed (#277).

    A symbolic link counts as readable when what it points to is (checked as the job's
    owner): a link to a file the owner may not read is not registered for the iRODS
    server's own account to read later.
    """
    if entry.kind == "link":
        return os.access(entry.path, os.R_OK)
    if not entry.mode & (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH):
        return False
    return os.access(entry.path, os.R_OK | (os.X_OK if entry.is_dir else 0))


def iter_dir(path: str) -> Iterator[Entry]:
    """Every entry of one directory (not recursive), in ``scandir`` order."""
    with os.scandir(path) as it:
        for de in it:
            try:
                st = de.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            kind = file_type(st.st_mode)
            recorded = stat_of(st)
            if kind == "link":
                with contextlib.suppress(OSError):  # dangling or unreadable: the link's own
                    recorded = stat_of(os.stat(de.path))
            yield Entry(
                de.name,
                os.path.join(path, de.name),
                kind,
                st.st_size,
                st.st_mtime,
                st.st_ctime,
                st.st_mode,
                recorded,
            )


def scan_dir(path: str, excludes: Excludes) -> Listing:
    """List one directory, dropping excluded and unreadable entries."""
    listing = Listing()
    for entry in iter_dir(path):
        if excludes.excluded(entry.path, entry.kind):
            listing.excluded += 1
        elif not _readable(entry):
            listing.unreadable.append(entry.path)
        else:
            listing.entries.append(entry)
    return listing


def b64_path(path: str) -> str:
    """Base64 of the path's bytes as on disk (the seed's AVU value)."""
    return base64.b64encode(os.fsencode(os.path.abspath(path))).decode("ascii")


def logical_name(entry_path: str, name: str, cmap: CharMap | None) -> tuple[str, str | None]:
    """The iRODS name for a file or directory and, if renamed, why.

    Returns ``(name, reason)``: reason is ``"UnicodeEncodeError"`` for a name that is not
    UTF-8 (named ``irods_UnicodeEncodeError_<base64 of the full path>``, as the seed does),
    ``"character_map"`` when the handler's map changed it, else ``None``.  Base64 may
    contain ``/``, which cannot be in a name: it becomes ``_`` (never in base64), where the
    seed produced an unusable name.
    """
    if is_unicode_encode_error_path(name):
        # standard base64 as the seed, but "/" (which would split the name) becomes "_"
        safe = b64_path(entry_path).replace("/", "_")
        return UNICODE_ERROR_PREFIX + safe, "UnicodeEncodeError"
    if cmap:
        mapped = translate_element(name, cmap)
        if mapped != name:
            return mapped, "character_map"
    return name, None


def walk(root: str, excludes: Excludes) -> Iterator[tuple[str, Listing]]:
    """Depth-first listings of a whole tree (used by benchmarks and tests)."""
    stack = [root]
    while stack:
        path = stack.pop()
        listing = scan_dir(path, excludes)
        stack.extend(e.path for e in listing.entries if e.is_dir)
        yield path, listing
