"""Physical files of replicas: where a new replica goes, and fast positional I/O on it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil

from . import hash_scheme
from .errors import IrodsError, code_of


def _unix_error(name: str, e: OSError, what: str) -> IrodsError:
    """An iRODS UNIX_FILE_* error carrying the errno, as the real server reports it."""
    return IrodsError(code_of(name) - (e.errno or 0), f"{what}: {e.strerror}")


CHUNK = 4 * 1024 * 1024


def replica_path(vault: str, zone: str, logical_path: str) -> str:
    """``<vault>/<logical path relative to /zone>``, made unique if a file is already there."""
    rel = logical_path.removeprefix(f"/{zone}/").lstrip("/")
    path = os.path.join(vault, rel)
    if not os.path.lexists(path):
        return path
    n = 1
    while os.path.lexists(f"{path}.{n}"):
        n += 1
    return f"{path}.{n}"


def open_file(
    path: str, *, create: bool = False, write: bool = False, truncate: bool = False
) -> int:
    """Open a replica's file and return an OS descriptor (parent directories made on create)."""
    flags = os.O_RDWR if write else os.O_RDONLY
    if create:
        flags |= os.O_CREAT
    if truncate:
        flags |= os.O_TRUNC
    try:
        try:
            return os.open(path, flags, 0o600)
        except FileNotFoundError:
            if not create:
                raise
        try:  # only when a directory is missing, as the unixfilesystem plugin's mkdir
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as e:
            where = os.path.dirname(path)
            raise _unix_error("UNIX_FILE_MKDIR_ERR", e, f"cannot make {where}") from None
        return os.open(path, flags, 0o600)
    except OSError as e:
        raise _unix_error("UNIX_FILE_OPEN_ERR", e, f"cannot open {path}") from None


def pread(fd: int, size: int, offset: int) -> bytes:
    return os.pread(fd, size, offset)


def pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    """Write all of ``data`` at ``offset`` (gaps below it read back as zeros)."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
    return done


def size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def truncate(path: str, length: int) -> None:
    try:
        os.truncate(path, length)
    except OSError as e:
        raise _unix_error("UNIX_FILE_TRUNCATE_ERR", e, "cannot truncate") from None


def copy(src: str, dst: str) -> None:
    """Copy a physical file (parent directories of ``dst`` made)."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        shutil.copyfile(src, dst)
    except OSError as e:
        raise _unix_error("UNIX_FILE_OPEN_ERR", e, "cannot copy replica") from None


def move(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.rename(src, dst)


def unlink(path: str) -> None:
    """Remove a physical file; a missing file is not an error."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def checksum(path: str, scheme: str) -> str:
    """The replica's checksum in the iRODS form of ``scheme`` (:mod:`.hash_scheme`):
    SHA256 ``sha2:`` + base64 of the raw digest, MD5 the plain lowercase hex digest."""
    digest = hashlib.md5(usedforsecurity=False) if scheme == hash_scheme.MD5 else hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except OSError as e:
        raise _unix_error("UNIX_FILE_OPEN_ERR", e, "cannot read replica") from None
    if scheme == hash_scheme.MD5:
        return digest.hexdigest()
    return hash_scheme.SHA256_PREFIX + base64.b64encode(digest.digest()).decode()
