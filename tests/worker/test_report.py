"""The report a transfer's events carry (``TaskEvent.report``): failed files with their
reasons, the checksum verification result, and a dry run's plan. Real worker, fork-server
child as a real Unix user, the iRODS test server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.isync import FileOutcome, TransferOptions, TransferReport
from services.worker.jobs.transfer import _failure, task_report
from shared.errors import ErrorKind, FileErrorKind
from tests.worker.conftest import irods_worker, task_message
from tests.worker.test_transfer_e2e import _read_object, _tree

FINAL = {"completed", "retry", "archived"}


async def test_a_clean_upload_reports_its_checksums_verified(
    start_worker, unix_user, open_dir, irods_server, unique_name
) -> None:
    user = unix_user()
    src = open_dir / "up"
    files = _tree(src, user.pw_uid, user.pw_gid)
    w = await start_worker(**irods_worker(irods_server))
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    msg = task_message(user.pw_name, src=f"{src}/", dst=f"irods:{coll}")
    await w.submit(msg)
    done = await w.events.until(msg.task_id, FINAL, limit=60)
    assert done.state == "completed", done.error
    assert done.report is not None
    assert done.report.checksum == "verified" and done.report.checksum_files == len(files)
    assert done.report.file_errors == [] and done.report.file_errors_total == 0
    assert done.report.plan is None


async def test_failed_files_are_named_with_their_reasons(
    start_worker, unix_user, open_dir, irods_server, unique_name
) -> None:
    user = unix_user()
    src = open_dir / "up"
    _tree(src, user.pw_uid, user.pw_gid)
    secret = src / "sub" / "private.dat"
    secret.write_bytes(b"root only")  # owned by root, 0600: the user cannot read it
    secret.chmod(0o600)
    w = await start_worker(**irods_worker(irods_server))
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    msg = task_message(user.pw_name, src=f"{src}/", dst=f"irods:{coll}")
    await w.submit(msg)
    final = await w.events.until(msg.task_id, {"completed", "archived"}, limit=60)
    assert final.state == "archived", final.error
    report = final.report
    assert report is not None and report.file_errors_total == 1
    [err] = report.file_errors
    assert err.path == str(secret) and "permission" in err.error.lower()
    assert report.checksum == "not_verified"  # one file never made it


async def test_a_dry_run_reports_the_plan_and_moves_nothing(
    start_worker, unix_user, open_dir, irods_server, irods_session, unique_name
) -> None:
    user = unix_user()
    src = open_dir / "up"
    files = _tree(src, user.pw_uid, user.pw_gid)
    w = await start_worker(**irods_worker(irods_server))
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    first = task_message(user.pw_name, src=f"{src}/", dst=f"irods:{coll}")
    await w.submit(first)
    assert (await w.events.until(first.task_id, FINAL, limit=60)).state == "completed"
    # now: a.txt unchanged (skip), sub/b.bin changed (conflict), new.txt new (transfer)
    (src / "sub" / "b.bin").write_bytes(os.urandom(1000))
    new = src / "new.txt"
    new.write_bytes(b"n" * 123)
    os.chown(new, user.pw_uid, user.pw_gid)
    plain = task_message(user.pw_name, src=f"{src}/", dst=f"irods:{coll}")
    dry = plain.model_copy(update={"task": plain.task.model_copy(update={"dryRun": True})})
    await w.submit(dry)
    done = await w.events.until(dry.task_id, FINAL, limit=60)
    assert done.state == "completed", done.error  # refused files are findings, not failures
    assert done.report is not None and done.report.plan is not None
    plan = done.report.plan
    assert (plan.transfer_files, plan.transfer_bytes) == (1, 123)
    assert (plan.skip_files, plan.skip_bytes) == (1, len(files["a.txt"]))
    assert (plan.conflict_files, plan.fail_files) == (1, 0)
    assert plan.entries_total == 3
    actions = {Path(e.src).name: e.action for e in plan.entries}
    assert actions == {"a.txt": "skip", "b.bin": "conflict", "new.txt": "transfer"}
    conflict = next(e for e in plan.entries if e.action == "conflict")
    assert conflict.reason and "exists and differs" in conflict.reason
    assert done.report.checksum is None
    # nothing moved: new.txt is not there, b.bin is the first upload's
    assert not irods_session.data_objects.exists(f"{coll}/new.txt")
    assert _read_object(irods_session, f"{coll}/sub/b.bin") == files["sub/b.bin"]


# --- decided by kind, not by the words of the message (no worker needed) -------------------


def _report(*outcomes: FileOutcome) -> TransferReport:
    failed = sum(1 for o in outcomes if o.outcome == "failed")
    return TransferReport(
        src="/p",
        dst="irods:/z",
        outcomes=list(outcomes),
        files_total=len(outcomes),
        files_failed=failed,
        exit_status=1 if failed else 0,
    )


def _failed(name: str, kind: FileErrorKind | None, error: str = "it went wrong") -> FileOutcome:
    return FileOutcome(
        src=f"/p/{name}",
        dst=f"/z/{name}",
        outcome="failed",
        error=error,
        kind=kind,
        exit_status=1,
    )


def test_the_checksum_result_follows_the_kind_not_the_words() -> None:
    ok = FileOutcome(src="/p/a", dst="/z/a", outcome="transferred", checksum="sha2:x")
    wordy = _failed("b", "io_error", error="checksum mismatch in the name only")
    assert task_report(_report(ok, wordy), TransferOptions()).checksum == "not_verified"
    mismatch = _failed("b", "checksum_mismatch", error="the copy differed")
    report = task_report(_report(ok, mismatch), TransferOptions(verify_checksum=True))
    assert report.checksum == "mismatch"
    assert [(e.path, e.kind) for e in report.file_errors] == [("/p/b", "checksum_mismatch")]


def test_file_errors_carry_their_kind_and_a_missing_one_is_other() -> None:
    report = task_report(
        _report(_failed("a", "permission_denied"), _failed("b", None)), TransferOptions()
    )
    assert [e.kind for e in report.file_errors] == ["permission_denied", "other"]


def test_a_dry_run_calls_a_taken_name_a_conflict_by_its_kind() -> None:
    taken = _failed("a", "name_taken", error="something else is there")
    wordy = _failed("b", "permission_denied", error="/z/b exists and differs (in words only)")
    plan = task_report(_report(taken, wordy), TransferOptions(dry_run=True)).plan
    assert plan is not None
    assert {e.src: e.action for e in plan.entries} == {"/p/a": "conflict", "/p/b": "fail"}


@pytest.mark.parametrize(
    ("kinds", "permanent", "kind"),
    [
        (["permission_denied", "not_found"], True, ErrorKind.PERMISSION_DENIED),
        (["not_found"], True, ErrorKind.FAILED),
        (["not_found", "unavailable"], False, ErrorKind.FAILED),
        (["checksum_mismatch"], False, ErrorKind.FAILED),
    ],
)
def test_a_failure_is_permanent_when_every_file_s_kind_is_hopeless(
    kinds: list[FileErrorKind], permanent: bool, kind: ErrorKind
) -> None:
    err = _failure(_report(*(_failed(str(i), k) for i, k in enumerate(kinds))))
    assert err.permanent is permanent and err.kind == kind
