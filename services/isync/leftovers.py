"""What a run leaves behind until it finishes, noted so a pipeline cancel or final failure
can remove it.

With ``TransferOptions.leftovers`` set (the worker sets it per task run; the ``isync``
command does not), a run appends one JSON line to that file for each thing it creates
that only a finished transfer makes disappear:

* ``irods_part``: a large upload's hidden ``.NAME.isync-part`` data object;
* ``file``: a local file: a put's resume journal, a get's part file (often preallocated to
  the object's full size) and its ``.isync-partial`` journal;
* ``collection``: a collection this run created (not one that was there before);
* ``dir``: a local directory this run created (a download's tree, or the parents of its
  destination), not one that was there before.

An entry is written before the thing is first written to, so a run killed at any point
has noted it. The ledger survives a crash and a retry (the next attempt resumes from the
parts and appends to the same ledger); :func:`clean` removes what is still there: parts
and journals, and collections and directories only while they are empty (deepest first,
never one that holds anything; a directory the run made first loses the part files and
journals in it, which a child killed mid-file may have left unnoted), then the ledger
itself. It runs as the user, on the user's own session.

What a ledger names is checked before it is removed, so a ledger edited by hand removes
nothing else: iRODS entries must lie under the task's destination (and a part object must
have a part name), local files must be the user's own regular files, local directories
the user's own, at, under or above the task's local side.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from services.isync.journal import SIDECAR_SUFFIX
from services.isync.paths import PART_SUFFIX, open_own_file

Kind = Literal["irods_part", "file", "collection", "dir"]
_KINDS = ("irods_part", "file", "collection", "dir")
#: The largest ledger read back (a tree of very many collections stays well below it).
MAX_LEDGER_BYTES = 64 * 1024 * 1024


class Ledger:
    """Appends entries to the run's ledger file; a no-op without one. Thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._noted: set[tuple[str, str]] = set()
        #: why the ledger was switched off (None: it works, or there is none)
        self.error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def note(self, kind: Kind, path: str) -> None:
        """Record ``path`` (once per run). A ledger that cannot be written (its directory
        not the user's, a full disk) never fails the transfer: it is switched off and the
        reason kept in ``error``; a cancel then removes only what it can still find."""
        if self.path is None:
            return
        with self._lock:
            if (kind, path) in self._noted or self.path is None:
                return
            line = json.dumps({"kind": kind, "path": path}) + "\n"
            try:
                if not self._noted:  # the directory once per run, not per entry
                    self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = _open_for_append(str(self.path))
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
            except OSError as e:
                self.error = f"{self.path}: {e.strerror or e}"
                self.path = None
                return
            self._noted.add((kind, path))


def _open_for_append(path: str) -> int:
    """The ledger opened to append: this user's own regular file, made if missing."""
    try:
        return open_own_file(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(path, flags, 0o600)


@dataclass
class Cleaned:
    """What :func:`clean` removed, kept, and could not remove."""

    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # a collection not empty, an entry refused
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "removed": len(self.removed),
            "kept": len(self.kept),
            "errors": self.errors[:10],
        }


def read(path: Path) -> list[tuple[str, str]]:
    """The ledger's entries in the order noted (unknown or broken lines are skipped)."""
    try:
        fd = open_own_file(str(path), os.O_RDONLY)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_LEDGER_BYTES)
    entries: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for line in raw.splitlines():
        try:
            item = json.loads(line)
            kind, where = item["kind"], item["path"]
        except (ValueError, KeyError, TypeError):
            continue
        if kind in _KINDS and isinstance(where, str) and (kind, where) not in seen:
            seen.add((kind, where))
            entries.append((kind, where))
    return entries


def clean(
    path: Path,
    session: Any,
    irods_root: str | None,
    *,
    collections: bool = True,
    local_root: str | None = None,
) -> Cleaned:
    """Remove what the ledger at ``path`` names and is still there, then the ledger.

    ``irods_root``: the task's iRODS side (its destination collection or object path);
    iRODS entries outside it are refused. ``local_root``: the task's local side; a
    directory neither at, under nor above it is refused (None: no directory is removed).
    ``collections=False`` (a completed run) removes the parts and journals only: a
    completed tree keeps its (possibly empty) collections and directories.
    """
    done = Cleaned()
    entries = read(path)
    for kind, where in entries:
        if kind == "file":
            _remove_local(where, done)
        elif kind == "irods_part":
            if _under(where, irods_root) and posixpath.basename(where).endswith(PART_SUFFIX):
                _remove_object(session, where, done)
            else:
                done.kept.append(where)
    if collections:
        colls = [w for k, w in entries if k == "collection"]
        for where in sorted(colls, key=lambda p: p.count("/"), reverse=True):  # deepest first
            if _under(where, irods_root):
                _remove_empty_collection(session, where, done)
            else:
                done.kept.append(where)
        dirs = [w for k, w in entries if k == "dir"]
        for where in sorted(dirs, key=lambda p: p.count("/"), reverse=True):  # deepest first
            if _near_local(where, local_root):
                _remove_empty_dir(where, done)
            else:
                done.kept.append(where)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return done


def _near_local(path: str, root: str | None) -> bool:
    """``path`` is the local root, lies under it, or is one of its parents (a download
    into a new ``/a/new/dir`` makes ``/a/new`` too)."""
    if not root or not os.path.isabs(path) or not os.path.isabs(root):
        return False
    path, root = os.path.normpath(path), os.path.normpath(root)
    return path == root or root.startswith(path.rstrip("/") + "/") or path.startswith(root + "/")


def _is_own(where: str, is_kind: Callable[[int], bool], done: Cleaned) -> bool:
    """``where`` exists, is of the kind ``is_kind`` tests its mode for (not following a
    link), and belongs to this process's user; else it is noted as kept (a link, another
    kind, someone else's) or as an error, and left alone."""
    try:
        st = os.lstat(where)
    except FileNotFoundError:
        return False
    except OSError as e:
        done.errors.append(f"{where}: {e.strerror or e}")
        return False
    if not is_kind(st.st_mode) or st.st_uid != os.getuid():
        done.kept.append(where)
        return False
    return True


def _remove_empty_dir(where: str, done: Cleaned) -> None:
    """Remove the user's own directory ``where`` once it holds nothing but this project's
    part files and journals (those go first); anything else in it keeps it."""
    if not _is_own(where, stat.S_ISDIR, done):
        return
    try:
        names = os.listdir(where)
    except OSError as e:
        done.errors.append(f"{where}: {e.strerror or e}")
        return
    for name in names:
        if name.endswith((PART_SUFFIX, SIDECAR_SUFFIX, SIDECAR_SUFFIX + ".tmp")):
            _remove_local(os.path.join(where, name), done)
    try:
        os.rmdir(where)
        done.removed.append(where)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
            done.kept.append(where)
        else:
            done.errors.append(f"{where}: {e.strerror or e}")


def _under(path: str, root: str | None) -> bool:
    if not root or not path.startswith("/"):
        return False
    root = posixpath.normpath(root)
    path = posixpath.normpath(path)
    parent = posixpath.dirname(root)  # a single-file put's part lies beside its target
    return (
        path == root
        or path.startswith(root.rstrip("/") + "/")
        or (posixpath.dirname(path) == parent and posixpath.basename(path).endswith(PART_SUFFIX))
    )


def _remove_local(where: str, done: Cleaned) -> None:
    """Unlink the user's own regular file ``where`` (and a journal's ``.tmp``)."""
    for candidate in (where, where + ".tmp"):
        if not _is_own(candidate, stat.S_ISREG, done):
            continue
        try:
            os.unlink(candidate)
            done.removed.append(candidate)
        except FileNotFoundError:
            pass
        except OSError as e:
            done.errors.append(f"{candidate}: {e.strerror or e}")


def _remove_object(session: Any, where: str, done: Cleaned) -> None:
    try:
        session.data_objects.unlink(where, force=True)
        done.removed.append(f"irods:{where}")
    except Exception as e:
        if _missing(e):
            return
        done.errors.append(f"irods:{where}: {type(e).__name__}")


def _remove_empty_collection(session: Any, where: str, done: Cleaned) -> None:
    """Remove ``where`` only if it is empty (a non-recursive rmcoll refuses otherwise)."""
    try:
        session.collections.remove(where, recurse=False, force=True)
        done.removed.append(f"irods:{where}")
    except Exception as e:
        name = type(e).__name__
        if name == "CAT_COLLECTION_NOT_EMPTY":
            done.kept.append(f"irods:{where}")
        elif not _missing(e):
            done.errors.append(f"irods:{where}: {name}")


def _missing(e: BaseException) -> bool:
    name = type(e).__name__
    return name in {
        "DataObjectDoesNotExist",
        "CollectionDoesNotExist",
        "CAT_NO_ROWS_FOUND",
        "CAT_UNKNOWN_COLLECTION",
        "CAT_UNKNOWN_FILE",
        "USER_FILE_DOES_NOT_EXIST",
        "OBJ_PATH_DOES_NOT_EXIST",
    }
