"""Data objects on the iRODS test server, driven by the unmodified python-irodsclient."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.manager.data_object_manager import Server_Checksum_Warning
from irods.message import RErrorStack

from devtools.irods_server.launcher import ServerProcess

HOME = "/tempZone/home/rods"
TRASH = "/tempZone/trash/home/rods"


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def coll(irods_session: Any, unique_name: str) -> Iterator[str]:
    path = f"{HOME}/{unique_name}"
    irods_session.collections.create(path)
    yield path
    irods_session.collections.remove(path, force=True)


@pytest.fixture
def second_resc(irods_session: Any, unique_name: str, tmp_path: Path) -> Iterator[str]:
    name = f"r_{unique_name}"
    vault = tmp_path / "vault2"
    vault.mkdir()
    irods_session.resources.create(name, "unixfilesystem", "localhost", str(vault))
    yield name


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
    path = f"{coll}/locked"
    with irods_session.data_objects.open(path, "w") as first:
        first.write(b"x")
        with pytest.raises(ex.LOCKED_DATA_OBJECT_ACCESS):
            irods_session.data_objects.open(path, "w")


def test_truncate(irods_session: Any, coll: str) -> None:
    path = f"{coll}/trunc"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"abcdefgh")
    irods_session.data_objects.truncate(path, 3)
    with irods_session.data_objects.open(path, "r") as f:
        assert f.read() == b"abc"
    assert irods_session.data_objects.get(path).size == 3


def test_unlink_to_trash_and_for_good(irods_session: Any, coll: str, unique_name: str) -> None:
    path = f"{coll}/gone"
    irods_session.data_objects.create(path)
    phys = irods_session.data_objects.get(path).replicas[0].path
    irods_session.data_objects.unlink(path)
    assert not irods_session.data_objects.exists(path)
    trashed = f"{TRASH}/{unique_name}/gone"
    assert irods_session.data_objects.exists(trashed)
    irods_session.data_objects.unlink(trashed, force=True)
    assert not irods_session.data_objects.exists(trashed)
    irods_session.data_objects.create(path)
    phys = irods_session.data_objects.get(path).replicas[0].path
    irods_session.data_objects.unlink(path, force=True)
    assert not irods_session.data_objects.exists(path)
    assert not os.path.exists(phys)


def test_rename_and_copy(irods_session: Any, coll: str) -> None:
    with irods_session.data_objects.open(f"{coll}/a", "w") as f:
        f.write(b"content")
    irods_session.data_objects.move(f"{coll}/a", f"{coll}/b")
    assert not irods_session.data_objects.exists(f"{coll}/a")
    irods_session.data_objects.copy(f"{coll}/b", f"{coll}/c")
    with pytest.raises(ex.OVERWRITE_WITHOUT_FORCE_FLAG):
        irods_session.data_objects.copy(f"{coll}/b", f"{coll}/c")
    for name in ("b", "c"):
        with irods_session.data_objects.open(f"{coll}/{name}", "r") as f:
            assert f.read() == b"content"
    b, c = (irods_session.data_objects.get(f"{coll}/{n}") for n in "bc")
    assert b.replicas[0].path != c.replicas[0].path


def test_replicate_write_stales_and_trim(irods_session: Any, coll: str, second_resc: str) -> None:
    path = f"{coll}/repl"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"v1")
    irods_session.data_objects.replicate(path, second_resc)
    obj = irods_session.data_objects.get(path)
    assert sorted((r.resource_name, r.status) for r in obj.replicas) == sorted(
        [
            ("demoResc", "1"),
            (second_resc, "1"),
        ]
    )
    with irods_session.data_objects.open(path, "w", **{kw.DEST_RESC_NAME_KW: second_resc}) as f:
        f.write(b"v2")
    statuses = {r.resource_name: r.status for r in irods_session.data_objects.get(path).replicas}
    assert statuses == {"demoResc": "0", second_resc: "1"}
    irods_session.data_objects.trim(path, **{kw.COPIES_KW: 1})  # the stale one goes
    remaining = irods_session.data_objects.get(path).replicas
    assert [r.resource_name for r in remaining] == [second_resc]
    irods_session.data_objects.unlink(path, force=True)


def test_replicate_to_hierarchy_root_lands_on_leaf(
    irods_session: Any, coll: str, unique_name: str, tmp_path: Path
) -> None:
    root, leaf = f"root_{unique_name}", f"leaf_{unique_name}"
    irods_session.resources.create(leaf, "unixfilesystem", "localhost", str(tmp_path / "leaf"))
    irods_session.resources.create(root, "passthru")
    irods_session.resources.add_child(root, leaf)
    path = f"{coll}/hier"
    irods_session.data_objects.create(path)
    irods_session.data_objects.replicate(path, root)
    hiers = sorted(r.resc_hier for r in irods_session.data_objects.get(path).replicas)
    assert hiers == sorted(["demoResc", f"{root};{leaf}"])
    with pytest.raises(ex.DIRECT_CHILD_ACCESS):
        irods_session.data_objects.open(f"{coll}/direct", "w", **{kw.RESC_NAME_KW: leaf})
    irods_session.data_objects.unlink(path, force=True)


def test_checksum_and_verification(irods_session: Any, coll: str, second_resc: str) -> None:
    path = f"{coll}/sum"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"abcd")
    assert irods_session.data_objects.chksum(path) == sha2(b"abcd")
    assert irods_session.data_objects.get(path).checksum == sha2(b"abcd")
    irods_session.data_objects.replicate(path, second_resc)
    irods_session.data_objects.modDataObjMeta(
        {"objPath": path, "rescName": second_resc}, {"chksum": ""}
    )
    errors = RErrorStack()
    with pytest.raises(Server_Checksum_Warning):
        irods_session.data_objects.chksum(path, r_error=errors, **{kw.VERIFY_CHKSUM_KW: ""})
    assert len(errors) == 1
    assert "No checksum available for replica [1]" in errors[0].message


def test_put_with_register_checksum(irods_session: Any, coll: str, tmp_path: Path) -> None:
    src = tmp_path / "c"
    src.write_bytes(b"checked")
    irods_session.data_objects.put(str(src), f"{coll}/c", **{kw.REG_CHKSUM_KW: ""})
    assert irods_session.data_objects.get(f"{coll}/c").checksum == sha2(b"checked")


def test_register_and_register_as_replica(
    irods_session: Any, coll: str, second_resc: str, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_bytes(b"registered")
    two.write_bytes(b"registered")
    path = f"{coll}/reg"
    irods_session.data_objects.register(str(one), path, **{kw.VERIFY_CHKSUM_KW: ""})
    obj = irods_session.data_objects.get(path)
    assert (obj.size, obj.replicas[0].path) == (10, str(one))
    assert obj.checksum == sha2(b"registered")
    irods_session.data_objects.register(
        str(two), path, **{kw.REG_REPL_KW: "", kw.RESC_NAME_KW: second_resc}
    )
    obj = irods_session.data_objects.get(path)
    assert sorted(r.path for r in obj.replicas) == sorted([str(one), str(two)])
    irods_session.data_objects.unregister(path)
    assert not irods_session.data_objects.exists(path)
    assert one.exists() and two.exists()


def test_mod_data_obj_meta_and_touch(irods_session: Any, coll: str) -> None:
    path = f"{coll}/meta"
    irods_session.data_objects.create(path)
    irods_session.data_objects.modDataObjMeta(
        {"objPath": path}, {"dataSize": 1024, "dataModify": 4096}
    )
    obj = irods_session.data_objects.get(path)
    assert obj.size == 1024
    assert int(obj.modify_time.timestamp()) == 4096
    irods_session.data_objects.touch(path, seconds_since_epoch=1_700_000_000)
    assert int(irods_session.data_objects.get(path).modify_time.timestamp()) == 1_700_000_000
    irods_session.data_objects.touch(f"{coll}/made_by_touch")
    assert irods_session.data_objects.get(f"{coll}/made_by_touch").size == 0


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
