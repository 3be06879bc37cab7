"""Every error a user can meet says what happened and what to do: each error kind and
each isync error class has a hint, every message :func:`translate` makes ends with one,
and the API's own HTTP errors and the per-file messages of a transfer carry one too."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from irods import exception as ex

from services.api.middleware import http_detail
from services.isync import errors
from services.isync.errors import IsyncError, translate
from shared.errors import ErrorKind

#: words a hint starts with or holds: it tells the reader to do something
_DO = (
    "ask", "check", "choose", "correct", "fix", "free", "give", "raise", "read", "rename",
    "remove", "report", "run", "see", "seal", "send", "set", "tell", "try", "use", "act",
)  # fmt: skip


def _actionable(text: str) -> bool:
    words = text.replace(";", " ").replace(",", " ").replace(":", " ").split()
    return any(w.strip("().").lower() in _DO for w in words)


def _classes(root: type[IsyncError]) -> list[type[IsyncError]]:
    out = [root]
    for sub in root.__subclasses__():
        out += _classes(sub)
    return out


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_error_kind_has_a_hint_that_says_what_to_do(kind: ErrorKind) -> None:
    assert kind.hint and _actionable(kind.hint), kind


def test_every_isync_error_class_has_its_hint() -> None:
    classes = _classes(IsyncError)
    assert len(classes) >= 10
    for cls in classes:
        assert cls.hint and _actionable(cls.hint), cls.__name__


# (exception, expected class, what the message must hold): happened + what to do
CASES = [
    (PermissionError(13, "Permission denied"), errors.PermissionDenied, "ask the owner"),
    (ex.CAT_NO_ACCESS_PERMISSION(), errors.PermissionDenied, "choose another source"),
    (
        ex.SYS_INVALID_INPUT_PARAM("a valid zone name does not appear at the root"),
        errors.PermissionDenied,
        "not visible to this user): ask the owner",
    ),
    (FileNotFoundError(2, "No such file"), errors.SourceNotFound, "check the path"),
    (ex.CAT_UNKNOWN_COLLECTION(), errors.SourceNotFound, "check the path"),
    (ex.CAT_INVALID_AUTHENTICATION(), errors.AuthenticationError, "check the iRODS user"),
    (ConnectionRefusedError(111, "refused"), errors.ConnectionFailed, "check the host"),
    (socket.gaierror(-2, "Name or service not known"), errors.ConnectionFailed, "check the host"),
    (TimeoutError("timed out"), errors.ConnectionFailed, "try again"),
    (ex.LOCKED_DATA_OBJECT_ACCESS(), errors.ObjectBusy, "try again once"),
    (
        OSError(errno.ENOSPC, "No space left on device"),
        errors.FileSystemError,
        "ENOSPC: No space left",
    ),
    (OSError(errno.ENOSPC, "No space left on device"), errors.FileSystemError, "free space"),
    (OSError(errno.EROFS, "Read-only file system"), errors.FileSystemError, "writable filesystem"),
    (OSError(errno.ENAMETOOLONG, "File name too long"), errors.FileSystemError, "shorter name"),
    (OSError(errno.EIO, "Input/output error"), errors.FileSystemError, "report this message"),
    (OSError("file shrank while it was being hashed"), errors.FileSystemError, "run it again once"),
    (KeyError(-129000), IsyncError, "PATH_REG_NOT_ALLOWED (-129000): try again"),
    (KeyError(-999000), IsyncError, "ask the iRODS administrators"),
    (ex.SYS_INVALID_INPUT_PARAM("bad whence"), IsyncError, "ask the iRODS administrators"),
    (RuntimeError("boom"), IsyncError, "RuntimeError: boom: try again"),
]


@pytest.mark.parametrize(("exc", "cls", "needle"), CASES)
def test_each_translated_message_says_what_happened_and_what_to_do(
    exc: BaseException, cls: type[IsyncError], needle: str
) -> None:
    err = translate(exc, "irods:/z/home/u/x")
    assert type(err) is cls
    text = str(err)
    assert text.startswith("irods:/z/home/u/x: ") and "\n" not in text
    assert needle in text, text
    what_to_do = text.rsplit(": ", 1)[-1].rsplit("; ", 1)[-1]
    assert _actionable(what_to_do), text


@pytest.mark.parametrize(
    ("exc", "needle"),
    [
        (web.HTTPNotFound(), "see /v1/docs"),
        (web.HTTPMethodNotAllowed("PATCH", ["GET"]), "see /v1/docs"),
        (web.HTTPUnsupportedMediaType(), "application/json"),
        (web.HTTPRequestTimeout(), "send it again"),
        (web.HTTPRequestHeaderFieldsTooLarge(), "send fewer or shorter headers"),
        (web.HTTPBadRequest(), "bad request: correct"),
        (web.HTTPConflict(), "conflict: correct"),
        (web.HTTPServiceUnavailable(), "service unavailable: try again later"),
        (web.HTTPGatewayTimeout(), "gateway timeout: try again later"),
        (web.HTTPInternalServerError(), "internal server error: report it"),
    ],
)
def test_the_api_s_own_http_errors_say_what_to_do(exc: web.HTTPException, needle: str) -> None:
    detail = http_detail(make_mocked_request("GET", "/v1/x"), exc)
    assert needle in detail and _actionable(detail), detail


def test_a_clash_and_an_interrupt_say_what_to_do() -> None:
    """The per-file messages the engine writes itself (what lands in a job's error)."""
    from services.isync.engine import _clash

    clash = _clash(ex.CAT_NAME_EXISTS_AS_DATAOBJ(), "/z/a", "put", want_dir=True)
    assert clash is not None and isinstance(clash, errors.DestinationExists)
    assert str(clash) == (
        "irods:/z/a is a data object but a collection goes there: rename or remove it, "
        "or copy to another destination"
    )
    local = _clash(NotADirectoryError(20, "Not a directory"), "/d/a", "get", want_dir=True)
    assert local is not None and "is a file but a directory goes there: rename" in str(local)
    assert _actionable(errors.Interrupted.hint) and "resumes" in errors.Interrupted.hint


@pytest.mark.parametrize("kind", ["timeout", "noprogress"])
def test_a_worker_time_limit_says_what_to_do(kind: str) -> None:
    """What lands in a job's error field when the watchdog stops it."""
    from services.worker.time_limit import Expired

    text = str(Expired(kind, 4))
    assert ("timeout=4s" if kind == "timeout" else "timeout_noprogress=4s") in text
    assert _actionable(text.split("=4s: ", 1)[1]), text


def test_an_unwritable_report_says_what_to_do(tmp_path: Path, run_isync: Any, coll: str) -> None:
    """The copy itself succeeds; the report that cannot be written is one line with a hint."""
    f = tmp_path / "f.txt"
    f.write_text("x")
    report = tmp_path / "no-such-dir" / "report.json"
    result = run_isync("--report", str(report), str(f), f"i:{coll}/")
    assert result.code == 0, result.stderr
    assert f"cannot write report {report}: " in result.stderr
    assert "choose a writable path for --report" in result.stderr
    assert "Traceback" not in result.stderr
