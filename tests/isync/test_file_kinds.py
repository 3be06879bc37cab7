"""Why one file failed, in one word (``shared.errors.FileErrorKind``): each isync error
class has its file kind, :func:`translate` gives OS errors the ``io_error`` kind, and every
kind of the vocabulary is one isync can record."""

from __future__ import annotations

import errno

import pytest
from irods import exception as ex

from services.isync import errors
from services.isync.errors import file_kind_of, translate
from shared.errors import FILE_ERROR_KINDS


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (errors.ChecksumMismatch("x"), "checksum_mismatch"),
        (errors.DestinationExists("x"), "name_taken"),
        (errors.PermissionDenied("x"), "permission_denied"),
        (errors.SourceNotFound("x"), "not_found"),
        (errors.FileSystemError("x"), "io_error"),
        (errors.ConnectionFailed("x"), "unavailable"),
        (errors.ObjectBusy("x"), "unavailable"),
        (errors.Interrupted("x"), "cancelled"),
        (errors.IsyncError("x"), "other"),
        (errors.AuthenticationError("x"), "other"),
        (errors.UsageError("x"), "other"),
        (KeyboardInterrupt(), "cancelled"),
        (RuntimeError("not translated"), "other"),
    ],
)
def test_each_error_class_has_its_file_kind(err: BaseException, kind: str) -> None:
    assert file_kind_of(err) == kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "io_error"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "io_error"),
        (OSError(errno.EROFS, "Read-only file system"), "io_error"),
        (OSError("file shrank while it was being hashed"), "io_error"),
        (PermissionError(13, "Permission denied"), "permission_denied"),
        (ex.CAT_NO_ACCESS_PERMISSION(), "permission_denied"),
        (FileNotFoundError(2, "No such file"), "not_found"),
        (ex.CAT_UNKNOWN_COLLECTION(), "not_found"),
        (ex.LOCKED_DATA_OBJECT_ACCESS(), "unavailable"),
        (ConnectionRefusedError(111, "refused"), "unavailable"),
        (KeyError(-999000), "other"),
        (RuntimeError("boom"), "other"),
    ],
)
def test_translated_errors_carry_the_kind_of_what_happened(exc: BaseException, kind: str) -> None:
    assert translate(exc, "/p/f").file_kind == kind


def test_every_file_kind_is_one_isync_records() -> None:
    """The vocabulary holds no kind nobody sets: the classes' kinds plus the engine's own
    ``parent_failed`` (a file under a directory that could not be made) are all of it."""

    def classes(root: type[errors.IsyncError]) -> list[type[errors.IsyncError]]:
        return [root, *(c for sub in root.__subclasses__() for c in classes(sub))]

    recorded = {cls.file_kind for cls in classes(errors.IsyncError)} | {"parent_failed"}
    assert recorded == set(FILE_ERROR_KINDS)
