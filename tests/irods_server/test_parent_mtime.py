"""A collection's mtime follows what happens in it, as iRODS 4.3.4 stamps it
(``fs::server::last_write_time`` on the parent in ``rsDataObjOpen.cpp`` after a create,
``rsDataObjPut.cpp``, ``rsDataObjRename.cpp`` (both parents), ``rsDataObjUnlink.cpp``,
``rsCollCreate.cpp`` and ``rsRmColl.cpp``); a real 5.0.2 zone was seen doing it on create."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.irods_server.test_single_buffer import put

OLD = 1_000_000_000


def mtime(session: Any, path: str) -> float:
    return float(session.collections.get(path).modify_time.timestamp())


@pytest.fixture
def aged(irods_session: Any) -> Callable[[str], None]:
    """``aged(coll)``: set the collection's mtime far back (API 20007 touch)."""

    def age(path: str) -> None:
        irods_session.collections.touch(path, seconds_since_epoch=OLD)
        assert mtime(irods_session, path) == OLD

    return age


def test_each_change_in_a_collection_stamps_it(
    irods_session: Any, coll: str, aged: Callable[[str], None], tmp_path: Path
) -> None:
    other = f"{coll}/other"
    irods_session.collections.create(other)
    steps: list[tuple[str, Callable[[], Any], list[str]]] = [
        ("create", lambda: irods_session.data_objects.create(f"{coll}/a"), [coll]),
        ("open O_CREAT", lambda: irods_session.data_objects.open(f"{coll}/b", "w").close(), [coll]),
        ("606 put", lambda: put(irods_session, f"{coll}/c", b"data"), [coll]),
        (
            "rename",
            lambda: irods_session.data_objects.move(f"{coll}/a", f"{other}/a"),
            [coll, other],
        ),
        ("unlink", lambda: irods_session.data_objects.unlink(f"{other}/a", force=True), [other]),
        ("mkdir", lambda: irods_session.collections.create(f"{coll}/sub"), [coll]),
        ("rmdir", lambda: irods_session.collections.remove(f"{coll}/sub", force=True), [coll]),
    ]
    for what, step, stamped in steps:
        for path in (coll, other):
            aged(path)
        before = int(time.time())
        step()
        for path in (coll, other):
            want_new = path in stamped
            assert (mtime(irods_session, path) >= before) is want_new, (what, path)
            if not want_new:
                assert mtime(irods_session, path) == OLD, (what, path)


def test_reading_and_a_write_open_of_an_existing_object_leave_it(
    irods_session: Any, coll: str, aged: Callable[[str], None]
) -> None:
    """Only a create stamps the parent (``!data_object_exists``), not a read or a write
    of an object that was there."""
    irods_session.collections.create(coll)
    with irods_session.data_objects.open(f"{coll}/x", "w") as f:
        f.write(b"1")
    aged(coll)
    with irods_session.data_objects.open(f"{coll}/x", "r") as f:
        f.read()
    with irods_session.data_objects.open(f"{coll}/x", "a") as f:
        f.write(b"2")
    assert mtime(irods_session, coll) == OLD
