"""Paths: which side a path is on, rsync-style mapping, include/exclude globs."""

from __future__ import annotations

import fnmatch
import os
import posixpath
from dataclasses import dataclass
from typing import Literal

from services.isync.errors import UsageError
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
