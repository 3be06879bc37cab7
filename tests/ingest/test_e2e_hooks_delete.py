"""Every hook fires for every operation; every operation x delete-mode cell."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from pathlib import Path

import pytest

from services.ingest.store import JobState
from shared.ingest.utils import DeleteMode, Operation, delete_mode_is_compatible_with_operation
from tests.ingest.conftest import append, make_tree


def events(log):
    return (
        Counter(line.split()[0] for line in log.read_text().splitlines())
        if log.exists()
        else Counter()
    )


def gone(path):
    return not Path(path).exists()


def make_leaf(session, tmp_path):
    name = "leaf" + uuid.uuid4().hex[:6]
    vault = tmp_path / f"vault-{name}"
    vault.mkdir()
    session.resources.create(name, "unixfilesystem", host="localhost", path=str(vault))
    return name


OPS = [op.name for op in Operation]


@pytest.mark.parametrize("op", OPS)
async def test_every_hook_fires_for_every_operation(ingest, irods_session, tmp_path, op):
    src = make_tree(tmp_path / "src", 3)
    make_tree(src / "sub", 2)
    resource = make_leaf(irods_session, tmp_path) if op == "REGISTER_AS_REPLICA_SYNC" else None
    deleting = {
        "REGISTER_SYNC": "UNREGISTER",
        "REGISTER_AS_REPLICA_SYNC": "UNREGISTER",
        "PUT_SYNC": "NO_TRASH",
        "PUT_APPEND": "TRASH",
    }.get(op, "DO_NOT_DELETE")
    log = tmp_path / "hooks.log"
    await ingest.start(1)
    job = ingest.configured(src, op=op, log=str(log), resource=resource, delete=deleting)
    first = await ingest.run(job)
    assert first.state is JobState.COMPLETED, first.error
    e = events(log)
    assert e["pre_job"] == e["post_job"] == 1
    assert e["pre_coll_create"] == e["post_coll_create"] == 2  # target and sub
    assert e["pre_data_obj_create"] == e["post_data_obj_create"] == 5

    log.unlink()
    append(src / "1", b"more")
    if deleting != "DO_NOT_DELETE":
        (src / "2").unlink()
        shutil.rmtree(src / "sub")
    second = await ingest.rerun(job)
    assert second.counters["files_failed"] == 0, second.counters
    e = events(log)
    if op == "NO_OP":  # nothing was created: the changed file reports creation again,
        # unchanged files and directories fire nothing (the anchor's sync time)
        assert e["pre_coll_create"] == e["post_coll_create"] == 0
        assert e["pre_data_obj_create"] == e["post_data_obj_create"] == 1
        assert e["pre_data_obj_modify"] == 0
        return
    # coll_modify only for a directory that changed since the last pass (the anchor's
    # mtime/ctime against its sync time): appending to a file changes no directory
    colls = 1 if deleting != "DO_NOT_DELETE" else 0
    assert e["pre_coll_modify"] == e["post_coll_modify"] == colls
    modified = 0 if op == "PUT" else 1
    assert e["pre_data_obj_modify"] == e["post_data_obj_modify"] == modified
    if deleting != "DO_NOT_DELETE":
        assert e["pre_data_obj_delete"] == e["post_data_obj_delete"] == 3  # 2, sub/0, sub/1
        assert e["pre_coll_delete"] == e["post_coll_delete"] == 1
        assert not irods_session.collections.exists(f"{ingest.collection}/sub")


CELLS = [(op, mode) for op in Operation for mode in DeleteMode]


@pytest.mark.parametrize(("op", "mode"), CELLS, ids=[f"{o.name}-{m.name}" for o, m in CELLS])
async def test_operation_delete_mode_cell(ingest, irods_session, tmp_path, op, mode):
    src = make_tree(tmp_path / "src", 2)
    resource = (
        make_leaf(irods_session, tmp_path) if op is Operation.REGISTER_AS_REPLICA_SYNC else None
    )
    await ingest.start(1)
    job = ingest.configured(src, op=op.name, delete=mode.name, resource=resource)
    first = await ingest.run(job)
    if not delete_mode_is_compatible_with_operation(mode, op):
        assert first.state is JobState.FAILED
        assert "incompatible" in (first.error or "")
        return
    assert first.state is JobState.COMPLETED and first.counters["files_failed"] == 0
    target = f"{ingest.collection}/1"
    if op is Operation.NO_OP:
        assert not irods_session.data_objects.exists(target)
        return
    assert irods_session.data_objects.exists(target)
    vault_path = irods_session.data_objects.get(target).replicas[0].path
    (src / "1").unlink()
    second = await ingest.rerun(job)
    assert second.state is JobState.COMPLETED and second.counters["files_failed"] == 0
    trash = f"/tempZone/trash/home/rods/{ingest.collection.rsplit('/', 1)[1]}/1"
    if mode is DeleteMode.DO_NOT_DELETE:
        assert irods_session.data_objects.exists(target)
        assert second.counters["files_deleted"] == 0
        return
    assert not irods_session.data_objects.exists(target)
    assert second.counters["files_deleted"] == 1
    if mode is DeleteMode.TRASH:
        assert irods_session.data_objects.exists(trash)
    if mode is DeleteMode.NO_TRASH:
        assert not irods_session.data_objects.exists(trash)
        assert gone(vault_path)
