"""Planning: walk the source, map every file to its destination, look up what exists."""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field
from typing import Any, Literal

from services.isync import catalog
from services.isync.catalog import RemoteObject
from services.isync.errors import (
    IsyncError,
    PermissionDenied,
    SourceNotFound,
    UsageError,
    translate,
)
from services.isync.models import FileOutcome, TransferOptions
from services.isync.paths import Location, PathFilter, file_target, join, tree_root


@dataclass
class FileTask:
    """One file to copy. For a put `remote` is the existing destination, for a get the source."""

    src: str
    dst: str
    size: int
    mtime_ns: int = 0
    remote: RemoteObject | None = None


@dataclass
class Plan:
    direction: Literal["put", "get"]
    files: list[FileTask] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)  # destination directories, parents first
    notes: list[FileOutcome] = field(default_factory=list)  # skipped or failed while walking
    single_file: bool = False
    # the directory everything lands in: when it cannot be made, nothing can be copied
    root: str | None = None


def _note(src: str, dst: str, outcome: Any, text: str) -> FileOutcome:
    return FileOutcome(src=src, dst=dst, outcome=outcome, reason=text)


def _failed(src: str, dst: str, err: IsyncError) -> FileOutcome:
    return FileOutcome(
        src=src,
        dst=dst,
        outcome="failed",
        error=str(err),
        kind=err.file_kind,
        exit_status=err.exit_status,
    )


def plan_put(session: Any, src: Location, dst: Location, options: TransferOptions) -> Plan:
    """Local → iRODS."""
    try:
        st = os.stat(src.path)
    except OSError as e:
        raise translate(e, src.path) from e
    plan = Plan("put")
    if stat.S_ISDIR(st.st_mode):
        if not options.recursive:
            raise UsageError(f"{src.path} is a directory (use -r)")
        if not os.access(src.path, os.R_OK | os.X_OK):
            raise PermissionDenied(f"{src.path}: permission denied: {PermissionDenied.hint}")
        root = plan.root = tree_root(src, dst, False)
        plan.dirs.append(root)
        _walk_local(src.path, root, "", PathFilter(options.include, options.exclude), options, plan)
        existing = catalog.objects_in(session, root, recursive=True)
        colls = catalog.collections_under(session, root)
        plan.dirs = [d for d in plan.dirs if d not in colls]
    elif stat.S_ISREG(st.st_mode):
        plan.single_file = True
        # one query answers both: is DST a collection, and does the target's parent exist
        parent_of_dst = posixpath.dirname(dst.path.rstrip("/")) or "/"
        colls = catalog.collections_among(session, list(dict.fromkeys([dst.path, parent_of_dst])))
        target = file_target(src, dst, dst.path in colls)
        parent = plan.root = posixpath.dirname(target)
        if parent not in colls:
            plan.dirs.append(parent)
        plan.files.append(FileTask(src.path, target, st.st_size, st.st_mtime_ns))
        obj = catalog.stat_object(session, target)
        existing = {target: obj} if obj else {}
    else:
        raise UsageError(f"{src.path} is not a regular file or directory")
    for task in plan.files:
        task.remote = existing.get(task.dst)
    return plan


def _walk_local(
    top: str, dst_root: str, rel: str, filt: PathFilter, options: TransferOptions, plan: Plan
) -> None:
    directory = os.path.join(top, *rel.split("/")) if rel else top
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
        err = translate(e, directory)
        plan.notes.append(_failed(directory, join("irods", dst_root, rel), err))
        return
    for entry in entries:
        child = f"{rel}/{entry.name}" if rel else entry.name
        dst = join("irods", dst_root, child)
        try:
            is_link = entry.is_symlink()
            if is_link and not options.follow_symlinks:
                plan.notes.append(
                    _note(entry.path, dst, "skipped", "symlink skipped (use --follow-symlinks)")
                )
                continue
            st = os.stat(entry.path) if is_link else entry.stat(follow_symlinks=False)
        except OSError as e:
            err = translate(e, entry.path)
            plan.notes.append(_failed(entry.path, dst, err))
            continue
        if stat.S_ISDIR(st.st_mode):
            if filt.wants_dir(child) and not (is_link and _is_loop(top, entry.path)):
                plan.dirs.append(dst)
                _walk_local(top, dst_root, child, filt, options, plan)
        elif stat.S_ISREG(st.st_mode):
            if filt.wants_file(child):
                plan.files.append(FileTask(entry.path, dst, st.st_size, st.st_mtime_ns))
        elif filt.wants_file(child):
            plan.notes.append(_note(entry.path, dst, "skipped", "special file skipped"))


def _is_loop(top: str, path: str) -> bool:
    """A followed directory symlink that points at or above the tree being copied."""
    real, real_top = os.path.realpath(path), os.path.realpath(top)
    return real_top == real or real_top.startswith(real.rstrip("/") + "/")


def plan_get(session: Any, src: Location, dst: Location, options: TransferOptions) -> Plan:
    """iRODS → local."""
    plan = Plan("get")
    obj = catalog.stat_object(session, src.path)
    if obj is not None:
        plan.single_file = True
        target = file_target(src, dst, os.path.isdir(dst.path))
        plan.root = os.path.dirname(target)
        plan.dirs.append(plan.root)
        plan.files.append(FileTask(src.path, target, obj.size, remote=obj))
        return plan
    colls = catalog.collections_under(session, src.path) if options.recursive else set()
    if not colls:
        if options.recursive or not catalog.collection_exists(session, src.path):
            raise SourceNotFound(f"irods:{src.path}: no such data object or collection")
        raise UsageError(f"irods:{src.path} is a collection (use -r)")
    filt = PathFilter(options.include, options.exclude)
    root = plan.root = tree_root(src, dst, os.path.isdir(dst.path))
    prefix = src.path.rstrip("/") + "/"

    def rel_of(path: str) -> str:
        return path[len(prefix) :] if path.startswith(prefix) else ""

    def dir_wanted(rel: str) -> bool:
        parts = rel.split("/") if rel else []
        return all(filt.wants_dir("/".join(parts[: i + 1])) for i in range(len(parts)))

    for coll in sorted(colls):
        rel = rel_of(coll)
        if dir_wanted(rel):
            plan.dirs.append(join("local", root, rel))
    for path, remote in sorted(catalog.objects_in(session, src.path, recursive=True).items()):
        rel = rel_of(path)
        if dir_wanted(posixpath.dirname(rel)) and filt.wants_file(rel):
            plan.files.append(FileTask(path, join("local", root, rel), remote.size, remote=remote))
    return plan
