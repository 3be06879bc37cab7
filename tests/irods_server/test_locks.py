"""Logical locking of an object being written, as iRODS 4.3.4 (and a real 5.0.2 zone):
the replica written is intermediate (2), its siblings write-locked (3), and what another
client may do meanwhile follows ``server/core/src/voting.cpp``,
``server/core/src/logical_locking.cpp`` and ``server/core/src/irods_resource_redirect.cpp``.
Driven by the unmodified python-irodsclient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import irods.exception as ex
import irods.keywords as kw
import pytest

from tests.irods_server.test_single_buffer import get, put


@pytest.fixture
def writing(irods_session: Any, coll: str) -> Iterator[tuple[str, Any]]:
    """An object with 6 good bytes that is open for writing (2 more written) on a second
    connection of the session: ``(path, the open file)``."""
    path = f"{coll}/busy"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"before")
    f = irods_session.data_objects.open(path, "r+")
    f.write(b"xx")
    f.flush()
    yield path, f
    f.close()


def statuses(session: Any, path: str) -> list[str]:
    return [r.status for r in session.data_objects.get(path).replicas]


def test_a_read_open_of_an_object_being_written_is_hierarchy_error(
    irods_session: Any, writing: tuple[str, Any]
) -> None:
    """``calculate_with_repl_status``: an intermediate replica without a token votes zero;
    "no valid resource found" is HIERARCHY_ERROR (-1803000), not the partial bytes."""
    path, _ = writing
    with pytest.raises(ex.HIERARCHY_ERROR):
        irods_session.data_objects.open(path, "r")


def test_a_single_buffer_get_of_an_object_being_written_is_hierarchy_error(
    irods_session: Any, writing: tuple[str, Any]
) -> None:
    """608 resolves the hierarchy for open the same way (``rsDataObjGet.cpp``)."""
    path, _ = writing
    with pytest.raises(ex.HIERARCHY_ERROR):
        get(irods_session, path)


def test_a_checksum_of_an_object_being_written_is_refused_and_nothing_stored(
    irods_session: Any, writing: tuple[str, Any]
) -> None:
    """629 (``rsDataObjChksum.cpp``): the open vote gives HIERARCHY_ERROR; a replica named
    by resource is checked by ``check_replica_accessibility``: SYS_REPLICA_INACCESSIBLE."""
    path, _ = writing
    with pytest.raises(ex.HIERARCHY_ERROR):
        irods_session.data_objects.chksum(path)
    with pytest.raises(ex.SYS_REPLICA_INACCESSIBLE):
        irods_session.data_objects.chksum(path, **{kw.RESC_NAME_KW: "demoResc"})
    assert irods_session.data_objects.get(path).replicas[0].checksum in (None, "")


def test_a_second_writer_is_refused_as_the_source_decides(
    irods_session: Any, second_resc: str, writing: tuple[str, Any]
) -> None:
    """Without a token: a write-open (also with O_CREAT on the object's own resource, and
    a forced put: ``oprType`` PUT makes the create a write) is voted → HIERARCHY_ERROR; a
    hierarchy named outright meets ``try_lock`` → INTERMEDIATE_REPLICA_ACCESS (-405000,
    no class in python-irodsclient 3.3: a KeyError); a create of a new replica elsewhere
    meets the siblings' locks → LOCKED_DATA_OBJECT_ACCESS. The bytes stay the writer's."""
    path, f = writing
    with pytest.raises(ex.HIERARCHY_ERROR):
        irods_session.data_objects.open(path, "w")
    with pytest.raises(ex.HIERARCHY_ERROR):
        irods_session.data_objects.open(path, "a", create=False)
    with pytest.raises(ex.HIERARCHY_ERROR):
        put(irods_session, path, b"intruder", **{kw.FORCE_FLAG_KW: ""})
    with pytest.raises(KeyError) as err:
        irods_session.data_objects.open(path, "w", **{kw.RESC_HIER_STR_KW: "demoResc"})
    assert err.value.args == (-405000,)
    with pytest.raises(ex.LOCKED_DATA_OBJECT_ACCESS):
        irods_session.data_objects.open(path, "w", **{kw.DEST_RESC_NAME_KW: second_resc})
    f.close()
    with irods_session.data_objects.open(path, "r") as back:
        assert back.read() == b"xxfore"


def test_siblings_are_write_locked_during_a_write(
    irods_session: Any, coll: str, second_resc: str
) -> None:
    """``lock_data_object``: the other replicas are write-locked (3) while one is written;
    at close they are stale when the data changed, their old status when it did not;
    a lost writer's connection restores them too."""
    path = f"{coll}/pair"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"v1")
    irods_session.data_objects.replicate(path, second_resc)
    assert statuses(irods_session, path) == ["1", "1"]

    f = irods_session.data_objects.open(path, "a", **{kw.RESC_NAME_KW: "demoResc"})
    assert statuses(irods_session, path) == ["2", "3"]
    with pytest.raises(ex.HIERARCHY_ERROR):  # the locked sibling cannot be read either
        irods_session.data_objects.open(path, "r", **{kw.RESC_NAME_KW: second_resc})
    f.close()  # nothing written
    assert statuses(irods_session, path) == ["1", "1"]

    f = irods_session.data_objects.open(path, "a", **{kw.RESC_NAME_KW: "demoResc"})
    f.write(b"+more")
    f.close()
    assert statuses(irods_session, path) == ["1", "0"]

    irods_session.data_objects.replicate(path, second_resc)  # both good again
    f = irods_session.data_objects.open(path, "a", **{kw.RESC_NAME_KW: "demoResc"})
    assert statuses(irods_session, path) == ["2", "3"]
    f.do_close = False
    f.raw.conn.disconnect()  # the writer goes away
    f.raw.conn = None
    with irods_session.data_objects.open(path, "r", **{kw.RESC_NAME_KW: second_resc}) as back:
        assert back.read() == b"v1+more"
    assert statuses(irods_session, path) == ["0", "1"]


def test_parallel_streams_with_the_token_are_not_locked_out(
    irods_session: Any, coll: str, tmp_path: Path
) -> None:
    """The replica token is what lets a client's own further streams in
    (``replica_access_table``): a 40 MiB parallel put and get work as before."""
    data = b"0123456789abcdef" * (40 * 1024 * 64)
    src, back = tmp_path / "big", tmp_path / "big.back"
    src.write_bytes(data)
    irods_session.data_objects.put(str(src), f"{coll}/big", num_threads=4)
    irods_session.data_objects.get(f"{coll}/big", str(back), num_threads=4)
    assert back.read_bytes() == data
    assert statuses(irods_session, f"{coll}/big") == ["1"]
