"""Which errors mean a lost iRODS connection (tried again on a new one), the backoff, and
what a file still needs after a lost try (the catalog of the iRODS test server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from irods.exception import (
    CAT_NO_ACCESS_PERMISSION,
    OVERWRITE_WITHOUT_FORCE_FLAG,
    NetworkException,
    get_exception_by_code,
)
from pydantic import ValidationError

from services.ingest.diff import Action
from services.ingest.errors import IngestError
from services.ingest.processing import Context, Reconnect, connection_lost, file_meta, retake
from services.ingest.s3 import S3Error
from services.ingest.sessions import SessionPool
from services.ingest.settings import IngestSettings
from services.ingest.store import IngestOptions, Job
from services.ingest.tasks import FileItem
from tests.ingest.conftest import rods_account

HANDLERS = Path(__file__).parent / "handlers"


def _s3_failure() -> BaseException:
    """An S3Error raised (``from None``) while a refused connection was being handled."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError:
            raise S3Error("S3 bucket 'b' cannot be read at http://127.0.0.1:9") from None
    except S3Error as e:
        return e


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
        _s3_failure(),  # an S3 endpoint that refuses: S3 retries on its own, not an iRODS loss
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


@pytest.fixture
def put_ctx(irods_server: Any) -> Iterator[Context]:
    """A PUT job's context in this process, its sessions on the test server."""
    pool = SessionPool(rods_account(irods_server))
    job = Job(
        name="j" + uuid.uuid4().hex[:10],
        root="/nonexistent",
        target="/tempZone/home/rods",
        handler=(HANDLERS / "put.py").read_text(),
        handler_label="put",
        options=IngestOptions(),
    )
    try:
        yield Context.load(job, pool)
    finally:
        pool.close()


def _item(size: int, action: Literal["create", "modify"] = "create") -> FileItem:
    return FileItem(name="f", logical="f", size=size, mtime=1.0, ctime=1.0, action=action)


def _collection(session: Any, data: bytes | None) -> str:
    coll = f"/tempZone/home/rods/retake-{uuid.uuid4().hex[:10]}"
    session.collections.create(coll)
    if data is not None:
        with session.data_objects.open(f"{coll}/f", "w") as f:
            f.write(data)
    return coll


def _retake(ctx: Context, coll: str, item: FileItem) -> Any:
    meta = file_meta(ctx, "/nonexistent/f", f"{coll}/f", item.size, 1.0, 1.0, "regular")
    return retake(ctx, ctx.session(meta), meta, item, coll)


def test_a_file_the_lost_try_put_whole_is_not_put_again(put_ctx: Context) -> None:
    session = put_ctx.sessions.get()
    coll = _collection(session, b"x" * 100)
    assert _retake(put_ctx, coll, _item(100)) is None


def test_a_file_the_lost_try_never_reached_is_put(put_ctx: Context) -> None:
    coll = _collection(put_ctx.sessions.get(), None)
    assert _retake(put_ctx, coll, _item(100)) == (Action.CREATE, [])


def test_the_part_a_lost_put_left_is_removed_and_put_again(put_ctx: Context) -> None:
    session = put_ctx.sessions.get()
    coll = _collection(session, b"x" * 10)
    assert _retake(put_ctx, coll, _item(100)) == (Action.CREATE, [])
    assert not session.data_objects.exists(f"{coll}/f")


def test_a_part_of_a_file_that_was_there_before_is_not_removed(put_ctx: Context) -> None:
    session = put_ctx.sessions.get()
    coll = _collection(session, b"x" * 10)
    with pytest.raises(IngestError, match="PUT does not overwrite"):
        _retake(put_ctx, coll, _item(100, action="modify"))
    assert session.data_objects.exists(f"{coll}/f")


def test_the_retries_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGER_INGEST__RECONNECT_TRIES", "2")
    monkeypatch.setenv("STAGER_INGEST__RECONNECT_DELAY", "0.5")
    s = IngestSettings().ingest
    assert (s.reconnect_tries, s.reconnect_delay) == (2, 0.5)
    monkeypatch.setenv("STAGER_INGEST__RECONNECT_TRIES", "-1")
    with pytest.raises(ValidationError, match="reconnect_tries"):
        IngestSettings()
