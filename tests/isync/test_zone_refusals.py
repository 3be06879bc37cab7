"""isync against what a default zone refuses (issue 14), on the strict test server:
a get of an object another client is writing, and a put under a collection the user
cannot see. Each ends with one readable line and the right exit status, leaves no part
file, and is classified for the pipeline (retry, or archive at once)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from services.isync.engine import transfer
from services.isync.errors import IsyncError, ObjectBusy, PermissionDenied
from services.isync.models import TransferOptions
from services.isync.progress import NullSink
from services.worker.jobs.transfer import TransferFailed
from services.worker.retries import RetryPolicy
from shared.irods import IrodsAccount
from tests.conftest import DEFAULT_USER_PASSWORD


@pytest.fixture
def being_written(irods_session: Any, coll: str) -> Iterator[Callable[[int], str]]:
    """``being_written(size)``: an object of ``size`` bytes that another client (a second
    connection) holds open for writing while the test runs."""
    held: list[Any] = []
    irods_session.collections.create(coll)

    def make(size: int) -> str:
        path = f"{coll}/busy{size}"
        with irods_session.data_objects.open(path, "w") as f:
            f.write(os.urandom(size))
        f = irods_session.data_objects.open(path, "r+")
        f.write(b"new")
        f.flush()
        held.append(f)
        return path

    yield make
    for f in held:
        f.close()


@pytest.mark.parametrize("size", [1000, 3 * 1024 * 1024])
def test_a_get_of_an_object_being_written_says_so_and_leaves_nothing(
    run_isync: Callable[..., Any], being_written: Callable[[int], str], tmp_path: Path, size: int
) -> None:
    """A real zone answers HIERARCHY_ERROR; isync says the object is being written, exits
    1 (a later run can succeed, so the worker retries it) and leaves no part file or
    journal (the 3 MiB case goes through the large-file path and its preallocation)."""
    path = being_written(size)
    dst = tmp_path / "out"
    dst.mkdir()
    res = run_isync("--large-threshold", "1M", f"i:{path}", str(dst / "copy"))
    assert res.code == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "being written" in ln]
    assert lines and "HIERARCHY_ERROR" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(os.listdir(dst)) == []


def test_a_get_of_an_object_being_written_is_retried_by_the_pipeline(
    account: IrodsAccount, being_written: Callable[[int], str], tmp_path: Path
) -> None:
    path = being_written(1000)
    report = transfer(f"i:{path}", str(tmp_path / "copy"), account, TransferOptions(), NullSink())
    [failed] = [o for o in report.outcomes if o.outcome == "failed"]
    assert failed.exit_status == 1 and "being written" in (failed.error or "")
    assert not os.path.exists(tmp_path / "copy.isync-part")


def test_a_put_under_an_invisible_collection_is_permission_denied_and_not_retried(
    run_isync: Callable[..., Any],
    irods_user: Callable[..., tuple[str, Any]],
    irods_server: Any,
    tmp_path: Path,
) -> None:
    """A real zone answers SYS_INVALID_INPUT_PARAM ("a valid zone name does not appear at
    the root of the object path") for a collection under one the user cannot see: isync
    exits 5 with one line, and the pipeline archives the job at once."""
    owner, bob = irods_user()
    alice, _ = irods_user()
    hidden = f"/tempZone/home/{owner}/hidden"
    bob.collections.create(hidden)
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    as_alice = {"IRODS_USER_NAME": alice, "IRODS_PASSWORD": DEFAULT_USER_PASSWORD}
    res = run_isync("-r", f"{src}/", f"i:{hidden}/in", environ=as_alice)
    assert res.code == 5, res.stderr
    assert "permission denied" in res.stderr and "not visible" in res.stderr
    assert "Traceback" not in res.stderr
    account = IrodsAccount(
        host=irods_server.host,
        port=irods_server.port,
        user=alice,
        zone=irods_server.zone,
        password=SecretStr(DEFAULT_USER_PASSWORD),
    )
    with pytest.raises(IsyncError) as err:
        transfer(f"{src}/", f"i:{hidden}/in", account, TransferOptions(recursive=True), NullSink())
    assert isinstance(err.value, PermissionDenied)
    failed = TransferFailed(str(err.value), kind=err.value.kind)  # as run_child raises it
    assert failed.permanent and not RetryPolicy().should_retry(1, permanent=failed.permanent)


def test_object_busy_is_not_permanent() -> None:
    assert not ObjectBusy("x").permanent and ObjectBusy("x").exit_status == 1
