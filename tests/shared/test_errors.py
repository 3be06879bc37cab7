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


def test_every_kind_has_an_exit_status_and_isync_codes_hold() -> None:
    from shared.errors import EXIT_BY_KIND, ExitStatus, exit_status_of

    assert exit_status_of(KeyboardInterrupt()) is ExitStatus.INTERRUPTED
    assert exit_status_of(InvalidInput("x")) is ExitStatus.USAGE
    assert exit_status_of(NotFound("x")) is ExitStatus.NOT_FOUND
    assert exit_status_of(Unavailable("x")) is ExitStatus.FAILED
    assert exit_status_of(PermissionError(13, "denied")) is ExitStatus.PERMISSION_DENIED
    # the codes the README documents for isync are the shared vocabulary's
    assert [int(s) for s in ExitStatus] == [0, 1, 2, 3, 4, 5, 130]
    assert set(EXIT_BY_KIND.values()) <= set(ExitStatus) - {ExitStatus.SUCCESS}


def test_validation_errors_say_what_to_fix_and_never_echo_the_input() -> None:
    from pydantic import BaseModel, Field, ValidationError

    class Body(BaseModel):
        password: str = Field(min_length=20)
        count: int

    try:
        Body.model_validate({"password": "hunter2-secret", "count": "many"})
    except ValidationError as e:
        err = InvalidInput.from_validation(e)
    assert err.message.startswith("password: String should have at least 20 characters")
    assert "count: " in err.message and "hunter2" not in err.message
    assert "hunter2" not in repr(err.errors) and "many" not in repr(err.errors)
    assert [x["field"] for x in err.errors] == ["password", "count"]
    assert err.message.endswith("(correct what is named and try again)")


def test_importing_shared_errors_does_not_import_pydantic() -> None:
    # isync's command path imports shared.errors; pydantic is only an annotation here
    import subprocess
    import sys

    probe = "import sys, shared.errors; print('pydantic' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
