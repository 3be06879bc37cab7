"""Ingest with ``as_user`` under a default zone's rules (issue 14): a rodsuser client may
not register physical paths (PATH_REG_NOT_ALLOWED) nor call 622 modDataObjMeta
(SYS_NO_API_PRIV). The ingest registers through its rodsadmin proxy with noChkFilePerm,
stamps mtimes with touch, and names the zone setting where nothing else works."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from irods.access import iRODSAccess

from services.ingest import operations
from services.ingest.errors import IngestError
from services.ingest.store import JobState
from tests.ingest.conftest import make_tree


async def test_register_sync_as_user_registers_the_users_objects(
    ingest, irods_session, irods_user, tmp_path
):
    name, user_session = irods_user()
    home = f"/tempZone/home/{name}"
    src = make_tree(tmp_path / "src", 3)
    await ingest.start(1)
    job = ingest.configured(src, op="REGISTER_SYNC", as_user=name)
    job.target = f"{home}/registered"
    job = await ingest.run(job)
    assert job.state is JobState.COMPLETED, job.error
    assert job.counters["files_created"] == 3 and job.counters["files_failed"] == 0
    obj = user_session.data_objects.get(f"{home}/registered/1")
    assert (obj.owner_name, obj.replicas[0].path) == (name, str(src / "1"))
    irods_session.collections.unregister(f"{home}/registered", recurse=True)


async def test_put_sync_as_user_updates_a_changed_file(ingest, irods_session, irods_user, tmp_path):
    """The mtime stamp after a put goes through touch (20007), not 622: the second pass
    finds the first pass's objects up to date, and a changed file is modified once."""
    name, user_session = irods_user()
    home = f"/tempZone/home/{name}"
    src = make_tree(tmp_path / "src", 3)
    await ingest.start(1)
    job = ingest.configured(src, op="PUT_SYNC", as_user=name)
    job.target = f"{home}/synced"
    job = await ingest.run(job)
    assert job.counters["files_created"] == 3 and job.counters["files_failed"] == 0, job.counters
    (src / "2").write_text("changed content")
    again = await ingest.rerun(job)
    assert again.counters["files_failed"] == 0, again.counters
    assert (again.counters["files_modified"], again.counters["files_skipped"]) == (1, 2)
    with user_session.data_objects.open(f"{home}/synced/2", "r") as f:
        assert f.read() == b"changed content"
    irods_session.collections.remove(f"{home}/synced", recurse=True, force=True)


def test_a_registered_size_update_as_user_names_the_zone_setting(
    irods_server, irods_session, irods_user, tmp_path
):
    """622 with dataSize has no non-admin equivalent (data_object_modify_info refuses
    dataSize): one readable error naming client_api_allowlist_policy."""
    name, _ = irods_user()
    f = tmp_path / "f"
    f.write_text("v1")
    target = f"/tempZone/home/{name}/f"
    irods_session.data_objects.register(str(f), target)
    irods_session.acls.set(iRODSAccess("own", target, name))
    with irods_server.session(client_user=name, client_zone="tempZone") as as_user:
        meta = {"target": target, "size": 7, "mtime": time.time()}
        with pytest.raises(IngestError, match="client_api_allowlist_policy"):
            operations.update_metadata(None, None, as_user, meta)
    assert irods_session.data_objects.get(target).size == 2
    irods_session.data_objects.unregister(target)


def test_path_reg_not_allowed_is_one_readable_error(irods_user, tmp_path):
    """A rodsuser account (no as_user, no rodsadmin): KeyError(-129000) from
    python-irodsclient becomes an IngestError that says what to use instead."""
    name, user_session = irods_user()
    f = tmp_path / "f"
    f.write_text("v1")
    meta = {"physical_path": str(f), "target": f"/tempZone/home/{name}/f", "size": 2, "mtime": 1}
    with pytest.raises(IngestError, match=r"PATH_REG_NOT_ALLOWED.*rodsadmin"):
        operations.register_file(None, None, user_session, meta)
    assert not user_session.data_objects.exists(meta["target"])


async def test_register_as_replica_keeps_the_replicas_good_and_the_files_mtime(
    ingest, irods_session, tmp_path
):
    """A zone stamps a registered replica with the registration time and, given dataSize,
    stales the other replicas (rsRegReplica.cpp): the ingest sends no size for a replica of
    the same bytes and stamps the file's mtime, so the next pass skips every file."""
    tag = uuid.uuid4().hex[:6]
    vault = tmp_path / f"vault-{tag}"
    vault.mkdir()
    leaf = f"reg{tag}"
    irods_session.resources.create(leaf, "unixfilesystem", host="localhost", path=str(vault))
    src = make_tree(tmp_path / "src", 3)
    for f in src.iterdir():
        os.utime(f, (1_400_000_000, 1_400_000_000))  # not "now": a stamp of now would show
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, op="PUT"))
    again = await ingest.rerun(job, op="REGISTER_AS_REPLICA_SYNC", resource=leaf)
    assert again.counters["files_created"] == 3, again.counters
    obj = irods_session.data_objects.get(f"{ingest.collection}/2")
    assert sorted(r.status for r in obj.replicas) == ["1", "1"]
    mine = next(r for r in obj.replicas if r.resource_name == leaf)
    assert mine.modify_time.timestamp() == 1_400_000_000
    third = await ingest.rerun(job, op="REGISTER_AS_REPLICA_SYNC", resource=leaf)
    assert third.counters["files_skipped"] == 3, third.counters
