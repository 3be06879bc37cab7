"""What an ingest pass costs in iRODS requests per file, counted on the wire (a TCP tap
between the workers and the test server), and the one-request put's safety.

A small file's PUT is one DATA_OBJ_PUT (606) carrying the data, as iput sends it: the
server creates, writes and finalises the replica in that call, and without a force flag
refuses an object that exists, so no look before it (not even with --initial_ingest).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from irods.session import iRODSSession
from pydantic import SecretStr

from bench._wiretap import WireTap
from services.ingest import operations
from shared.ingest.utils import Operation
from shared.irods import IrodsAccount
from tests.ingest.conftest import make_tree

FILES = 120
#: requests a connection costs whatever it does (not per file)
PER_CONNECTION = {"RODS_CONNECT", "RODS_DISCONNECT", "AUTHENTICATION_APN"}


@pytest.fixture
def tap(irods_server: Any) -> Iterator[WireTap]:
    with WireTap(irods_server.host, irods_server.port) as t:
        yield t


def through(tap: WireTap, server: Any) -> IrodsAccount:
    """rods on the test server, connecting through ``tap``."""
    return IrodsAccount(
        host="127.0.0.1",
        port=tap.port,
        user="rods",
        zone="tempZone",
        password=SecretStr(server.admin_password),
    )


def work(tap: WireTap) -> Counter[str]:
    """The requests ``tap`` saw, those every connection costs left out."""
    return Counter({k: v for k, v in tap.counts().items() if k not in PER_CONNECTION})


@pytest.mark.parametrize("initial", [False, True])
async def test_a_small_file_put_is_one_request(ingest, irods_server, irods_session, tap, initial):
    src = make_tree(ingest.tmp / "src", FILES)
    ingest.account = through(tap, irods_server)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "put", files_per_task=50, initial_ingest=initial))
    assert job.counters["files_created"] == FILES, job.counters
    seen = work(tap)
    assert seen["DATA_OBJ_PUT_AN"] == FILES, seen
    # the rest is per directory and per task (the root's checks, the collection, its listing)
    assert sum(seen.values()) <= FILES + 6, seen
    for name in ("DATA_OBJ_OPEN_AN", "DATA_OBJ_WRITE_AN", "DATA_OBJ_CLOSE_AN", "OBJ_STAT_AN"):
        assert seen[name] == 0, seen
    with irods_session.data_objects.open(f"{ingest.collection}/7", "r") as f:
        assert f.read() == b"i" * 7
    assert irods_session.data_objects.get(f"{ingest.collection}/0").size == 0


async def test_a_registration_is_one_request(ingest, irods_server, tap):
    src = make_tree(ingest.tmp / "src", FILES)
    ingest.account = through(tap, irods_server)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "register", files_per_task=50))
    assert job.counters["files_created"] == FILES, job.counters
    seen = work(tap)
    assert seen["PHY_PATH_REG_AN"] == FILES, seen
    assert sum(seen.values()) <= FILES + 6, seen


@pytest.fixture
def tapped_session(tap: WireTap, irods_server: Any) -> Iterator[iRODSSession]:
    with iRODSSession(
        host="127.0.0.1",
        port=tap.port,
        user="rods",
        zone="tempZone",
        password=irods_server.admin_password,
    ) as session:
        yield session


def put_meta(path: Path, target: str, **extra: Any) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path), "target": target, "size": st.st_size, "mtime": st.st_mtime, **extra}


@pytest.mark.parametrize("initial", [False, True])
def test_a_put_that_creates_never_overwrites(
    irods_session, tapped_session, tap, tmp_path, unique_name, initial
):
    """An object made after the listing (another job, a user): the server refuses the
    put without force, the file fails saying so, and the object keeps its content."""
    coll = f"/tempZone/home/rods/{unique_name}"
    irods_session.collections.create(coll)
    with irods_session.data_objects.open(f"{coll}/f", "w") as f:
        f.write(b"already here")
    src = tmp_path / "f"
    src.write_bytes(b"new")
    tap.reset()
    meta = put_meta(src, f"{coll}/f", initial_ingest=initial)
    with pytest.raises(operations.ObjectExists, match="already exists and is not overwritten"):
        operations.create_file(None, None, tapped_session, meta, Operation.PUT)
    calls = work(tap)  # the put, then one read to compare; no write, no unlink of theirs
    assert calls["DATA_OBJ_PUT_AN"] == 1, calls
    assert not calls["DATA_OBJ_WRITE_AN"] and not calls["DATA_OBJ_UNLINK_AN"], calls
    with irods_session.data_objects.open(f"{coll}/f", "r") as f:
        assert f.read() == b"already here"
    irods_session.collections.remove(coll, recurse=True, force=True)


@pytest.mark.parametrize("initial", [False, True])
def test_an_object_an_earlier_attempt_left_with_the_same_bytes_counts_as_put(
    irods_session, tapped_session, tap, tmp_path, unique_name, initial
):
    """A task redelivered after its worker was killed meets the object that worker's put
    made: the same bytes, so the file counts as put (not failed), nothing is rewritten."""
    coll = f"/tempZone/home/rods/{unique_name}"
    irods_session.collections.create(coll)
    with irods_session.data_objects.open(f"{coll}/f", "w") as f:
        f.write(b"new")
    before = irods_session.data_objects.get(f"{coll}/f").modify_time
    src = tmp_path / "f"
    src.write_bytes(b"new")
    tap.reset()
    meta = put_meta(src, f"{coll}/f", initial_ingest=initial)
    operations.create_file(None, None, tapped_session, meta, Operation.PUT)
    assert meta["bytes_sent"] == 3
    calls = work(tap)
    assert calls["DATA_OBJ_PUT_AN"] == 1 and not calls["DATA_OBJ_WRITE_AN"], calls
    obj = irods_session.data_objects.get(f"{coll}/f")
    assert (obj.size, obj.modify_time) == (3, before)
    irods_session.collections.remove(coll, recurse=True, force=True)


def test_put_sync_of_a_changed_file_overwrites_in_one_request(
    irods_session, tapped_session, tap, tmp_path, unique_name
):
    coll = f"/tempZone/home/rods/{unique_name}"
    irods_session.collections.create(coll)
    with irods_session.data_objects.open(f"{coll}/f", "w") as f:
        f.write(b"old content")
    src = tmp_path / "f"
    src.write_bytes(b"new")
    tap.reset()
    meta = put_meta(src, f"{coll}/f")
    operations.upload_file(None, None, tapped_session, meta, Operation.PUT_SYNC)
    # the put (forced) and the modify time stamped from the file
    assert work(tap) == Counter({"DATA_OBJ_PUT_AN": 1, "TOUCH_APN": 1})
    obj = irods_session.data_objects.get(f"{coll}/f")
    assert obj.size == 3
    assert int(obj.modify_time.timestamp()) == int(meta["mtime"])
    with irods_session.data_objects.open(f"{coll}/f", "r") as f:
        assert f.read() == b"new"
    irods_session.collections.remove(coll, recurse=True, force=True)


def test_a_file_past_the_single_buffer_goes_open_write_close(
    irods_session, tapped_session, tap, tmp_path, unique_name
):
    coll = f"/tempZone/home/rods/{unique_name}"
    irods_session.collections.create(coll)
    src = tmp_path / "big"
    data = bytes(range(256)) * (operations.SINGLE_BUFFER_MAX // 256) + b"+"
    src.write_bytes(data)
    tap.reset()
    operations.create_file(None, None, tapped_session, put_meta(src, f"{coll}/big"), Operation.PUT)
    seen = work(tap)
    assert seen["DATA_OBJ_PUT_AN"] == 0 and seen["DATA_OBJ_OPEN_AN"] == 1, seen
    with irods_session.data_objects.open(f"{coll}/big", "r") as f:
        assert f.read() == data
    irods_session.collections.remove(coll, recurse=True, force=True)
