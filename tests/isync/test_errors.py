import pytest
from irods import exception as ex

from services.isync.errors import (
    KIND_BY_STATUS,
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


def test_every_failure_status_has_a_kind_and_only_the_hopeless_are_permanent():
    assert set(KIND_BY_STATUS) == set(ExitStatus) - {ExitStatus.SUCCESS}
    permanent = {s for s, kind in KIND_BY_STATUS.items() if kind.permanent}
    assert permanent == {
        ExitStatus.USAGE,
        ExitStatus.AUTHENTICATION,
        ExitStatus.NOT_FOUND,
        ExitStatus.PERMISSION_DENIED,
    }
