"""Which errors mean a lost iRODS connection (tried again on a new one), and the backoff."""

from __future__ import annotations

import pytest
from irods.exception import (
    CAT_NO_ACCESS_PERMISSION,
    OVERWRITE_WITHOUT_FORCE_FLAG,
    NetworkException,
    get_exception_by_code,
)

from services.ingest.errors import IngestError
from services.ingest.processing import Reconnect, connection_lost


def wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as e:
            raise IngestError("put failed") from e
    except IngestError as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        NetworkException("Could not connect to specified host and port: 127.0.0.1:1247"),
        NetworkException("Could not receive server response"),
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        get_exception_by_code(-1111),  # SYS_SOCK_OPEN_ERR with errno 111
        get_exception_by_code(-4000),  # SYS_HEADER_READ_LEN_ERR
        get_exception_by_code(-115000),  # SYS_SOCK_READ_TIMEDOUT
        wrapped(NetworkException("Could not receive server response")),
    ],
    ids=repr,
)
def test_connection_errors_are_transient(error: BaseException) -> None:
    assert connection_lost(error)


@pytest.mark.parametrize(
    "error",
    [
        CAT_NO_ACCESS_PERMISSION(),
        OVERWRITE_WITHOUT_FORCE_FLAG(),
        IngestError("/tempZone/home/rods/x exists"),
        ValueError("bad"),
        PermissionError(13, "Permission denied"),
        wrapped(ValueError("bad")),
    ],
    ids=repr,
)
def test_other_errors_are_not(error: BaseException) -> None:
    assert not connection_lost(error)


def test_default_backoff_doubles_to_about_a_minute() -> None:
    r = Reconnect()
    waits = [r.wait(n) for n in range(1, r.tries + 1)]
    assert waits == [2.0, 4.0, 8.0, 16.0, 30.0]
    assert 55 <= sum(waits) <= 65
