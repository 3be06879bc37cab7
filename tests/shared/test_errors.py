"""shared.errors: every error has a kind, and whether to retry follows from it."""

from __future__ import annotations

import pytest

from shared.errors import (
    ConfigError,
    DecryptError,
    ErrorKind,
    Forbidden,
    InvalidInput,
    NotFound,
    StagerError,
    Unavailable,
    kind_of,
)
from shared.unix_users import UnknownUser, UserRefused


@pytest.mark.parametrize(
    ("error", "kind", "permanent"),
    [
        (InvalidInput("x"), ErrorKind.INVALID, True),
        (Forbidden("x"), ErrorKind.FORBIDDEN, True),
        (UserRefused("x"), ErrorKind.FORBIDDEN, True),
        (UnknownUser("x"), ErrorKind.INVALID, True),
        (Unavailable("x"), ErrorKind.UNAVAILABLE, False),
        (ConfigError("x"), ErrorKind.CONFIG, True),
        (DecryptError("x"), ErrorKind.INTERNAL, True),
        (StagerError("x"), ErrorKind.INTERNAL, False),
    ],
)
def test_kind_and_permanent_defaults(error: StagerError, kind: ErrorKind, permanent: bool) -> None:
    assert (error.kind, error.permanent) == (kind, permanent)


def test_permanent_can_be_set_per_error() -> None:
    assert Unavailable("x", permanent=True).permanent
    assert not InvalidInput("x", permanent=False).permanent


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (PermissionError(13, "denied"), ErrorKind.PERMISSION_DENIED),
        (FileNotFoundError(2, "gone"), ErrorKind.NOT_FOUND),
        (NotADirectoryError(20, "file"), ErrorKind.NOT_A_DIRECTORY),
        (TimeoutError(), ErrorKind.TIMEOUT),
        (RuntimeError("boom"), ErrorKind.FAILED),
        (NotFound("x"), ErrorKind.NOT_FOUND),
    ],
)
def test_kind_of_any_exception(exc: BaseException, kind: ErrorKind) -> None:
    assert kind_of(exc) is kind
    assert kind_of(exc).permanent == (kind not in {ErrorKind.TIMEOUT, ErrorKind.FAILED})


def test_kinds_are_their_wire_values() -> None:
    assert ErrorKind("permission_denied") is ErrorKind.PERMISSION_DENIED
    assert f"{ErrorKind.NOT_FOUND}" == "not_found"
