import pytest
from irods import exception as ex

from services.isync.errors import (
    AuthenticationError,
    ConnectionFailed,
    PermissionDenied,
    SourceNotFound,
    translate,
)
from services.isync.status import ExitStatus, exit_status_for


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
    assert exit_status_for(RuntimeError("x")) == ExitStatus.FILES_FAILED
    assert "ValueError" in str(translate(ValueError("bad\nvalue")))
