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


@pytest.mark.parametrize(
    ("exc", "needle"),
    [
        (ex.HIERARCHY_ERROR("no valid resource found"), "(HIERARCHY_ERROR)"),
        (ex.LOCKED_DATA_OBJECT_ACCESS(), "(LOCKED_DATA_OBJECT_ACCESS)"),
        (KeyError(-405000), "(INTERMEDIATE_REPLICA_ACCESS)"),  # no python-irodsclient class
    ],
)
def test_an_object_being_written_is_busy_and_retryable(exc, needle):
    """What a zone answers while another client writes the object (issue 14)."""
    from services.isync.errors import ObjectBusy

    err = translate(exc, "irods:/z/o")
    assert isinstance(err, ObjectBusy) and not err.permanent
    assert str(err).startswith("irods:/z/o: the object is being written by another client")
    assert needle in str(err) and exit_status_for(err) == ExitStatus.FAILED


def test_a_collection_the_user_cannot_see_is_permission_denied():
    """A real zone's SYS_INVALID_INPUT_PARAM for a collection under an invisible one;
    any other SYS_INVALID_INPUT_PARAM stays a plain failure."""
    hidden = ex.SYS_INVALID_INPUT_PARAM(
        "a valid zone name does not appear at the root of the object path [/z/home/b/x]"
    )
    err = translate(hidden, "irods:/z/home/b/x")
    assert isinstance(err, PermissionDenied) and exit_status_for(err) == 5
    assert "not visible to this user" in str(err)
    other = translate(ex.SYS_INVALID_INPUT_PARAM("bad whence"), "x")
    assert not isinstance(other, PermissionDenied) and exit_status_for(other) == 1


def test_codes_python_irodsclient_lacks_get_their_names():
    """python-irodsclient 3.3 raises KeyError(code) for codes it has no class for."""
    err = translate(KeyError(-129000), "/f")
    assert str(err).startswith("/f: iRODS error PATH_REG_NOT_ALLOWED (-129000): try again")
    assert "iRODS error" in str(translate(KeyError(-999000)))
    assert "KeyError" in str(translate(KeyError("name")))  # an ordinary KeyError
