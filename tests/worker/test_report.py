"""The report a transfer's events carry (``TaskEvent.report``): failed files with their
reasons, the checksum verification result, and a dry run's plan. Real worker, fork-server
child as a real Unix user, the iRODS test server."""

from __future__ import annotations

import os
from pathlib import Path

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
