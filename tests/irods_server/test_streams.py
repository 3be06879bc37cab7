"""Data-object streams (``api_streams``): put/get, open, seek, read, write, close,
replica tokens, descriptors; driven by the unmodified python-irodsclient."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import irods.exception as ex
import irods.keywords as kw
import pytest

from devtools.irods_server.launcher import ServerProcess

HOME = "/tempZone/home/rods"


def test_small_put_get_round_trip(irods_session: Any, coll: str, tmp_path: Path) -> None:
    src, back = tmp_path / "src", tmp_path / "back"
    src.write_bytes(b"small object\n" * 100)
    irods_session.data_objects.put(str(src), f"{coll}/small")
    irods_session.data_objects.get(f"{coll}/small", str(back))
    assert back.read_bytes() == src.read_bytes()
    obj = irods_session.data_objects.get(f"{coll}/small")
    assert obj.size == 1300
    assert obj.replicas[0].status == "1"
    assert obj.replicas[0].resource_name == "demoResc"


def test_parallel_put_get_of_large_object(irods_session: Any, coll: str, tmp_path: Path) -> None:
    data = os.urandom(1024 * 1024) * 40  # > 32 MiB: PRC uses parallel streams
    src, back = tmp_path / "big", tmp_path / "big.back"
    src.write_bytes(data)
    irods_session.data_objects.put(str(src), f"{coll}/big", num_threads=4)
    irods_session.data_objects.get(f"{coll}/big", str(back), num_threads=4)
    assert back.read_bytes() == data
    obj = irods_session.data_objects.get(f"{coll}/big")
    assert obj.size == len(data)
    assert obj.replicas[0].status == "1"


def test_open_seek_read_write(irods_session: Any, coll: str) -> None:
    path = f"{coll}/rw"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"0123456789")
    with irods_session.data_objects.open(path, "r+") as f:
        f.seek(4)
        f.write(b"xx")
        f.seek(0)
        assert f.read() == b"0123xx6789"
    with irods_session.data_objects.open(path, "a") as f:
        f.write(b"END")
    with irods_session.data_objects.open(path, "r") as f:
        f.seek(-3, os.SEEK_END)
        assert f.read() == b"END"
    assert irods_session.data_objects.get(path).size == 13
    with pytest.raises(ex.OBJ_PATH_DOES_NOT_EXIST):
        irods_session.data_objects.open(f"{coll}/absent", "r")


def test_replica_token_streams_write_at_offsets(irods_session: Any, coll: str) -> None:
    path = f"{coll}/token"
    first = irods_session.data_objects.open(path, "w")
    # the row exists, intermediate, while the object is open
    assert irods_session.data_objects.get(path).replicas[0].status == "2"
    token, hier = first.raw.replica_access_info()
    assert token and hier == "demoResc"
    second = irods_session.data_objects.open(
        path,
        "a",
        finalize_on_close=False,
        **{kw.RESC_HIER_STR_KW: hier, kw.REPLICA_TOKEN_KW: token},
    )
    second.seek(8)
    second.write(b"tail")  # leaves a gap 4..8, read back as zeros
    first.write(b"head")
    second.close()
    first.close()
    with irods_session.data_objects.open(path, "r") as f:
        assert f.read() == b"head\0\0\0\0tail"
    obj = irods_session.data_objects.get(path)
    assert (obj.size, obj.replicas[0].status) == (12, "1")


def test_second_writer_without_token_is_refused(irods_session: Any, coll: str) -> None:
    """The write vote of a replica being written is zero (``voting.cpp``): HIERARCHY_ERROR,
    as a real 5.0.2 zone answered (more in ``test_locks.py``)."""
    path = f"{coll}/locked"
    with irods_session.data_objects.open(path, "w") as first:
        first.write(b"x")
        with pytest.raises(ex.HIERARCHY_ERROR):
            irods_session.data_objects.open(path, "w")


def test_permission_denied_for_another_user(
    irods_session: Any, coll: str, irods_user: Callable[..., tuple[str, Any]]
) -> None:
    path = f"{coll}/private"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"secret")
    _, alice = irods_user()
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        alice.data_objects.open(path, "r")
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        alice.data_objects.unlink(path, force=True)
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        alice.data_objects.create(f"{coll}/intruder")
    assert irods_session.data_objects.exists(path)


def test_restart_keeps_objects(
    irods_server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    srv = irods_server_factory()
    with srv.session() as s, s.data_objects.open(f"{HOME}/persist", "w") as f:
        f.write(b"kept")
    srv.restart()
    with srv.session() as s, s.data_objects.open(f"{HOME}/persist", "r") as f:
        assert f.read() == b"kept"


def test_lost_connection_leaves_replica_stale_and_unlocked(irods_session: Any, coll: str) -> None:
    path = f"{coll}/abandoned"
    f = irods_session.data_objects.open(path, "w")
    f.write(b"partial")
    f.flush()
    f.do_close = False
    f.raw.conn.disconnect()  # the client goes away without closing the object
    deadline = time.monotonic() + 10
    while irods_session.data_objects.get(path).replicas[0].status == "2":
        assert time.monotonic() < deadline, "replica stayed intermediate"
        time.sleep(0.05)
    assert irods_session.data_objects.get(path).replicas[0].status == "0"
    with irods_session.data_objects.open(path, "w") as again:  # no longer locked
        again.write(b"whole")
    assert irods_session.data_objects.get(path).replicas[0].status == "1"


def test_bad_descriptors_get_clean_errors(irods_session: Any, coll: str) -> None:
    with irods_session.pool.get_connection() as conn:
        with pytest.raises(ex.SYS_BAD_FILE_DESCRIPTOR):
            conn.write_file(999, b"x")
        with pytest.raises(ex.SYS_BAD_FILE_DESCRIPTOR):
            conn.seek_file(999, 0, 0)
        with pytest.raises(ex.SYS_BAD_FILE_DESCRIPTOR):
            conn.close_file(999)
    # the connection is still usable afterwards
    irods_session.data_objects.create(f"{coll}/after")
    assert irods_session.data_objects.exists(f"{coll}/after")


def _status(session: Any, path: str) -> str:
    return str(session.data_objects.get(path).replicas[0].status)


def test_lost_secondary_stream_stales_the_replica_at_once(irods_session: Any, coll: str) -> None:
    """A parallel transfer loses one secondary stream while the first keeps writing: the
    lost agent's exit (``cleanup`` -> ``close_all_l1_descriptors`` ->
    ``finalize_replica_opened_for_create_or_write``, ``server/core/src/initServer.cpp``)
    makes the replica stale, with the vault's size and no checksum, at once, not when the
    last stream goes. The first stream's finalizing close then publishes its own state
    (``finalize_data_object``, ``server/api/src/rsDataObjClose.cpp``): good again."""
    path = f"{coll}/parallel"
    first = irods_session.data_objects.open(path, "w", **{kw.REG_CHKSUM_KW: ""})
    first.write(b"head")
    first.flush()
    token, hier = first.raw.replica_access_info()
    second = irods_session.data_objects.open(
        path,
        "a",
        finalize_on_close=False,
        **{kw.RESC_HIER_STR_KW: hier, kw.REPLICA_TOKEN_KW: token},
    )
    second.seek(8)
    second.write(b"tail")
    second.flush()
    assert _status(irods_session, path) == "2"
    second.do_close = False
    second.raw.conn.disconnect()  # this stream's connection is lost; the first one lives
    deadline = time.monotonic() + 10
    while _status(irods_session, path) == "2":
        assert time.monotonic() < deadline, "the replica stayed intermediate"
        time.sleep(0.05)
    obj = irods_session.data_objects.get(path)
    assert (obj.replicas[0].status, obj.size, obj.replicas[0].checksum) == ("0", 12, None)
    first.write(b"more")  # the first stream goes on writing
    first.close()
    obj = irods_session.data_objects.get(path)
    assert (obj.replicas[0].status, obj.size) == ("1", 12)


def test_write_open_without_create_on_a_resource_without_a_replica(
    irods_session: Any, coll: str, second_resc: str
) -> None:
    """An open without O_CREAT naming a root resource that holds no replica: only the roots
    holding a replica vote (``resolve_hier_for_open_or_write``,
    ``server/core/src/irods_resource_redirect.cpp``), so the best-voted existing replica is
    opened, for write as for read, and no replica is created (that takes O_CREAT:
    ``create_new_replica``, ``server/api/src/rsDataObjOpen.cpp``). A hierarchy given
    outright must hold one (``SYS_REPLICA_DOES_NOT_EXIST``); an unknown resource is
    ``SYS_RESC_DOES_NOT_EXIST`` (``get_keyword_from_inp``)."""
    path = f"{coll}/one_replica"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"abc")
    no_create: dict[str, Any] = {"create": False}  # O_WRONLY, no O_CREAT
    with irods_session.data_objects.open(
        path, "a", **no_create, **{kw.DEST_RESC_NAME_KW: second_resc}
    ) as f:
        f.write(b"def")
    obj = irods_session.data_objects.get(path)
    assert [(r.number, r.resource_name, r.status) for r in obj.replicas] == [(0, "demoResc", "1")]
    assert obj.size == 6
    with irods_session.data_objects.open(path, "r", **{kw.RESC_NAME_KW: second_resc}) as f:
        assert f.read() == b"abcdef"
    with pytest.raises(ex.SYS_REPLICA_DOES_NOT_EXIST):
        irods_session.data_objects.open(
            path, "a", **no_create, **{kw.RESC_HIER_STR_KW: second_resc}
        )
    with pytest.raises(ex.SYS_RESC_DOES_NOT_EXIST):
        irods_session.data_objects.open(
            path, "a", **no_create, **{kw.DEST_RESC_NAME_KW: "no_such_resc"}
        )
    assert len(irods_session.data_objects.get(path).replicas) == 1
