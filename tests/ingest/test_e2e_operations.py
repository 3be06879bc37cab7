"""The seed's operation scenarios end to end (test iRODS server, RabbitMQ, workers)."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid

import pytest

from services.ingest.store import JobState
from tests.ingest.conftest import append, make_tree


def read(session, path, **opts):
    with session.data_objects.open(path, "r", **opts) as f:
        return f.read()


def bump(path, text):
    path.write_text(text)
    t = time.time() + 10
    os.utime(path, (t, t))


async def test_put_then_modify_keeps_old_content(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 5)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "put"))
    assert job.counters["files_created"] == 5
    assert read(irods_session, f"{ingest.collection}/3") == b"iii"
    phys = irods_session.data_objects.get(f"{ingest.collection}/3").replicas[0].path
    assert phys != str(src / "3")  # copied into the vault, not registered in place
    bump(src / "3", "changed!")
    again = await ingest.rerun(job)
    assert again.counters["files_skipped"] == 5
    assert read(irods_session, f"{ingest.collection}/3") == b"iii"


async def test_put_sync_replaces_only_changed(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 5)
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, op="PUT_SYNC"))
    assert job.counters["files_created"] == 5
    bump(src / "3", "replaced content")
    again = await ingest.rerun(job)
    assert again.counters["files_modified"] == 1
    assert again.counters["files_skipped"] == 4  # unchanged files are not re-put
    assert again.counters["bytes"] == len("replaced content")
    assert read(irods_session, f"{ingest.collection}/3") == b"replaced content"
    obj = irods_session.data_objects.get(f"{ingest.collection}/3")
    assert obj.size == len("replaced content")


async def test_put_append_sends_only_new_bytes(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 5)
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, op="PUT_APPEND"))
    append(src / "4", b"appended")
    again = await ingest.rerun(job)
    assert again.counters["files_modified"] == 1
    assert again.counters["bytes"] == len("appended")
    assert read(irods_session, f"{ingest.collection}/4") == b"iiiiappended"


def make_resources(session, tmp_path):
    """A standalone leaf, and a hierarchy root -> leaf (as in the seed's tests)."""
    tag = uuid.uuid4().hex[:6]
    leaf, root, child = f"reg{tag}", f"root{tag}", f"child{tag}"
    for name in (leaf, child):
        vault = tmp_path / f"vault-{name}"
        vault.mkdir()
        session.resources.create(name, "unixfilesystem", host="localhost", path=str(vault))
    session.resources.create(root, "passthru")
    session.resources.add_child(root, child)
    return leaf, root, child


async def test_register_as_replica_after_put_gives_two_replicas(ingest, irods_session, tmp_path):
    leaf, _root, _child = make_resources(irods_session, tmp_path)
    src = make_tree(tmp_path / "src", 3)
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, op="PUT"))
    assert job.counters["files_created"] == 3
    again = await ingest.rerun(job, op="REGISTER_AS_REPLICA_SYNC", resource=leaf)
    assert again.counters["files_created"] == 3, again.counters
    obj = irods_session.data_objects.get(f"{ingest.collection}/2")
    assert len(obj.replicas) == 2
    assert {r.resource_name for r in obj.replicas} >= {leaf}
    mine = next(r for r in obj.replicas if r.resource_name == leaf)
    assert mine.path == str(src / "2")
    # a third pass with nothing changed does nothing
    third = await ingest.rerun(job, op="REGISTER_AS_REPLICA_SYNC", resource=leaf)
    assert third.counters["files_skipped"] == 3


async def test_to_resource_hierarchy_root_works_leaf_fails(ingest, irods_session, tmp_path):
    _leaf, root, child = make_resources(irods_session, tmp_path)
    src = make_tree(tmp_path / "src", 3)
    await ingest.start(1)
    ok = await ingest.run(ingest.configured(src, op="PUT", resource=root))
    assert ok.state is JobState.COMPLETED and ok.counters["files_created"] == 3
    obj = irods_session.data_objects.get(f"{ingest.collection}/1")
    assert obj.replicas[0].resource_name == child
    other = tmp_path / "other"
    make_tree(other, 2)
    bad = ingest.configured(other, op="PUT", resource=child)
    bad.target = ingest.collection + "_leaf"
    bad = await ingest.run(bad)
    assert bad.counters["files_failed"] == 2
    assert not irods_session.data_objects.exists(f"{ingest.collection}_leaf/1")


async def test_deep_and_empty_trees(ingest, irods_session, tmp_path):
    src = tmp_path / "src"
    make_tree(src, 2, depth=12)
    (src / "empty" / "deeper" / "still").mkdir(parents=True)
    await ingest.start(2)
    job = await ingest.run(ingest.job(src, "register"))
    assert job.state is JobState.COMPLETED
    assert job.counters["dirs"] == 13 + 3
    deep = ingest.collection + "/" + "/".join(f"a{i}" for i in range(12))
    assert irods_session.data_objects.exists(deep + "/1")
    assert irods_session.collections.exists(ingest.collection + "/empty/deeper/still")


async def test_empty_root(ingest, irods_session, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "register"))
    assert job.state is JobState.COMPLETED
    assert irods_session.collections.exists(ingest.collection)
    assert job.counters["files_seen"] == 0


async def test_excludes_by_regex_and_type(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 6)
    (src / "skipdir").mkdir()
    (src / "skipdir" / "x").write_text("x")
    (src / "keepdir").mkdir()
    (src / "keepdir" / "y.hidden").write_text("y")
    os.symlink(src / "5", src / "link_to_5")
    await ingest.start(1)
    job = ingest.job(
        src,
        "register",
        exclude_file_name=[str(src / "5"), r"(\S+)\.hidden"],
        exclude_directory_name=[r".*/skipdir$"],
        exclude_file_type=["link"],
    )
    job = await ingest.run(job)
    assert job.counters["files_failed"] == 0
    c = ingest.collection
    assert irods_session.data_objects.exists(f"{c}/4")
    assert not irods_session.data_objects.exists(f"{c}/5")
    assert not irods_session.data_objects.exists(f"{c}/link_to_5")
    assert not irods_session.collections.exists(f"{c}/skipdir")
    assert irods_session.collections.exists(f"{c}/keepdir")
    assert not irods_session.data_objects.exists(f"{c}/keepdir/y.hidden")
    assert job.counters["files_excluded"] == 4


async def test_unreadable_file_skipped_without_failing(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 3)
    bad = src / "this_file_is_unreadable"
    bad.write_text("secret")
    bad.chmod(0)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "register"))
    assert job.state is JobState.COMPLETED
    assert job.counters["files_failed"] == 0 and job.counters["files_unreadable"] == 1
    assert not irods_session.data_objects.exists(f"{ingest.collection}/this_file_is_unreadable")
    assert irods_session.data_objects.exists(f"{ingest.collection}/2")


@pytest.mark.parametrize("target", ["/invalidZone/home/rods/x", "/tempZ/home/rods/x"])
async def test_bad_target_zone_fails_clearly(ingest, tmp_path, target):
    src = make_tree(tmp_path / "src", 2)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "register", target=target))
    assert job.state is JobState.FAILED
    assert "zone" in (job.error or "") and target.split("/")[1] in job.error


async def test_retries_then_success(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 4)
    marks = tmp_path / "marks"
    marks.mkdir()
    ingest.give(marks)  # the handler marks files in it, as the job's owner
    await ingest.start(1)
    job = await ingest.run(
        ingest.configured(src, op="REGISTER_SYNC", max_retries=2, fail_once_dir=str(marks))
    )
    assert job.counters["files_failed"] == 0
    assert job.counters["retries"] == 4
    assert job.counters["files_created"] == 4


async def test_as_user_acts_as_that_user(ingest, irods_session, irods_user, tmp_path):
    name, user_session = irods_user()
    home = f"/tempZone/home/{name}"
    src = make_tree(tmp_path / "src", 2)
    await ingest.start(1)
    job = ingest.configured(src, op="PUT", as_user=name)
    job.target = f"{home}/ingested"
    job = await ingest.run(job)
    assert job.state is JobState.COMPLETED and job.counters["files_created"] == 2, job.error
    obj = user_session.data_objects.get(f"{home}/ingested/1")
    assert obj.owner_name == name
    irods_session.collections.remove(f"{home}/ingested", recurse=True, force=True)


async def test_timeout_fails_the_file(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 2)
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, op="NO_OP", sleep=1.0, timeout=0.2))
    assert job.state is JobState.COMPLETED
    assert job.counters["files_failed"] == 2


async def test_no_retries_means_failure(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 2)
    marks = tmp_path / "marks"
    marks.mkdir()
    ingest.give(marks)  # the handler marks files in it, as the job's owner
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, fail_once_dir=str(marks)))
    assert job.state is JobState.COMPLETED
    assert job.counters["files_failed"] == 2 and job.counters["retries"] == 0


async def test_fifo_is_not_put(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 2)
    os.mkfifo(src / "pipe")
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "put"))
    assert job.state is JobState.COMPLETED  # the pass does not hang on the pipe
    assert job.counters["files_created"] == 2 and job.counters["files_failed"] == 1


@pytest.mark.parametrize("handler", ["put", "register"])
async def test_checksum_option(ingest, irods_session, tmp_path, handler):
    src = make_tree(tmp_path / "src", 3)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, handler, checksum=True))
    assert job.counters["files_created"] == 3
    obj = irods_session.data_objects.get(f"{ingest.collection}/2")
    digest = base64.b64encode(hashlib.sha256(b"ii").digest()).decode()
    assert obj.checksum == f"sha2:{digest}"


@pytest.mark.parametrize("op", ["PUT", "PUT_SYNC", "PUT_APPEND"])
async def test_initial_ingest_never_overwrites(ingest, irods_session, tmp_path, capfd, op):
    """The anchor's put without force: with --initial_ingest an object that exists already
    fails that file (counted failed, a clear error) and keeps its content; the rest land."""
    src = make_tree(tmp_path / "src", 4)
    irods_session.collections.create(ingest.collection)
    with irods_session.data_objects.open(f"{ingest.collection}/2", "w") as f:
        f.write(b"already here")
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, op=op, initial_ingest=True))
    assert job.counters["files_failed"] == 1
    assert job.counters["files_created"] == 3
    assert read(irods_session, f"{ingest.collection}/2") == b"already here"
    assert read(irods_session, f"{ingest.collection}/3") == b"iii"
    err = capfd.readouterr()
    assert f"data object {ingest.collection}/2 already exists and is not overwritten" in (
        err.out + err.err
    )
