import pytest
from irods import exception as ex

from services.isync.errors import (
    AuthenticationError,
    ConnectionFailed,
    PermissionDenied,
    SourceNotFound,
    exit_status_for,
    translate,
)
from shared.errors import ExitStatus


@pytest.mark.parametrize(
    ("exc", "kind", "status"),
    [
        (PermissionError(13, "Permission denied"), PermissionDenied, 5),
        (FileNotFoundError(2, "No such file"), SourceNotFound, 4),
        (ex.CAT_INVALID_AUTHENTICATION(), AuthenticationError, 3),
        (ex.CAT_NO_ACCESS_PERMISSION(), PermissionDenied, 5),
        (ex.OBJ_PATH_DOES_NOT_EXIST(), SourceNotFound, 4),
        (ConnectionRefusedError(111, "refused"), ConnectionFailed, 1),
    ],
)
def test_translation_and_exit_status(exc, kind, status):
    err = translate(exc, "/x")
    assert isinstance(err, kind)
    assert str(err).startswith("/x: ")
    assert "\n" not in str(err)
    assert exit_status_for(err) == status


def test_interrupt_and_unknown():
    assert exit_status_for(KeyboardInterrupt()) == ExitStatus.INTERRUPTED
    assert exit_status_for(RuntimeError("x")) == ExitStatus.FAILED
    assert "ValueError" in str(translate(ValueError("bad\nvalue")))


def test_each_error_kind_gives_its_status_and_only_the_hopeless_are_permanent():
    from services.isync.errors import (
        ChecksumMismatch,
        DestinationExists,
        Interrupted,
        IsyncError,
        UsageError,
    )

    errors = [
        IsyncError("x"),
        UsageError("x"),
        AuthenticationError("x"),
        SourceNotFound("x"),
        PermissionDenied("x"),
        Interrupted("x"),
        ConnectionFailed("x"),
        ChecksumMismatch("x"),
        DestinationExists("x"),
    ]
    assert [int(e.exit_status) for e in errors] == [1, 2, 3, 4, 5, 130, 1, 1, 1]
    permanent = {type(e).__name__ for e in errors if e.permanent}
    assert permanent == {"UsageError", "AuthenticationError", "SourceNotFound", "PermissionDenied"}
