"""Collections on the iRODS test server, driven by the unmodified python-irodsclient."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import irods.exception as ex
import pytest
from irods.api_number import api_number
from irods.message import FileOpenRequest, StringStringMap, iRODSMessage
from irods.models import Collection, DataObject

from devtools.irods_server.api_collection import RodsObjStat
from devtools.irods_server.launcher import ServerProcess

HOME = "/tempZone/home/rods"
TRASH = "/tempZone/trash/home/rods"


def test_create_with_parents_and_without(irods_session: Any, unique_name: str) -> None:
    deep = f"{HOME}/{unique_name}/a/b/c"
    coll = irods_session.collections.create(deep)
    assert coll.path == deep
    assert irods_session.collections.exists(f"{HOME}/{unique_name}/a")
    with pytest.raises(ex.CAT_UNKNOWN_COLLECTION):
        irods_session.collections.create(f"{HOME}/{unique_name}/x/y", recurse=False)
    # creating an existing collection with parents is fine
    irods_session.collections.create(deep)
    irods_session.collections.remove(f"{HOME}/{unique_name}", force=True)


def test_remove_goes_to_trash_unless_forced(irods_session: Any, unique_name: str) -> None:
    root = f"{HOME}/{unique_name}"
    irods_session.collections.create(f"{root}/sub")
    irods_session.data_objects.create(f"{root}/sub/obj")
    irods_session.collections.remove(root)
    assert not irods_session.collections.exists(root)
    assert irods_session.collections.exists(f"{TRASH}/{unique_name}/sub")
    assert irods_session.data_objects.exists(f"{TRASH}/{unique_name}/sub/obj")
    # removing from the trash without force moves it again (rsRmColl: only force, unreg
    # or irmtrash's keyword delete); force deletes for good
    irods_session.collections.remove(f"{TRASH}/{unique_name}")
    assert not irods_session.collections.exists(f"{TRASH}/{unique_name}")
    again = f"{TRASH}/trash/home/rods/{unique_name}"
    assert irods_session.data_objects.exists(f"{again}/sub/obj")
    irods_session.collections.remove(f"{TRASH}/trash", force=True)
    irods_session.collections.create(root)
    irods_session.collections.remove(root, force=True)
    assert not irods_session.collections.exists(f"{TRASH}/{unique_name}")


def test_remove_non_empty_without_recurse_fails(irods_session: Any, unique_name: str) -> None:
    root = f"{HOME}/{unique_name}"
    irods_session.collections.create(f"{root}/child")
    with pytest.raises(ex.CAT_COLLECTION_NOT_EMPTY):
        irods_session.collections.remove(root, recurse=False)
    irods_session.collections.remove(root, force=True)


def test_rename_moves_tree_and_vault_files(
    irods_server: ServerProcess, irods_session: Any, unique_name: str
) -> None:
    src, dest = f"{HOME}/{unique_name}", f"{HOME}/{unique_name}_moved"
    irods_session.collections.create(f"{src}/deep")
    with irods_session.data_objects.open(f"{src}/deep/f", "w") as f:
        f.write(b"payload")
    irods_session.collections.move(src, dest)
    assert not irods_session.collections.exists(src)
    obj = irods_session.data_objects.get(f"{dest}/deep/f")
    assert Path(obj.replicas[0].path).read_bytes() == b"payload"
    assert f"/{unique_name}_moved/deep/" in obj.replicas[0].path
    sub = irods_session.query(Collection.name, Collection.parent_name).filter(
        Collection.name == f"{dest}/deep"
    )
    assert [r[Collection.parent_name] for r in sub] == [dest]
    irods_session.collections.remove(dest, force=True)
    rows = irods_session.query(DataObject.name).filter(Collection.name == f"{dest}/deep").all()
    assert len(rows) == 0


def test_permission_denied_for_other_user(
    irods_session: Any, irods_user: Callable[..., tuple[str, Any]], unique_name: str
) -> None:
    private = f"{HOME}/{unique_name}"
    irods_session.collections.create(private)
    _, alice = irods_user()
    with pytest.raises(ex.SYS_INVALID_INPUT_PARAM):  # a collection she cannot see: as
        alice.collections.create(f"{private}/intrusion")  # a real zone (test_visibility.py)
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        alice.collections.remove(private, force=True)
    assert irods_session.collections.exists(private)
    irods_session.collections.remove(private, force=True)


def test_register_directory_tree_and_unregister(
    irods_session: Any, unique_name: str, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "inner").mkdir(parents=True)
    (tree / "top.txt").write_bytes(b"top")
    (tree / "inner" / "leaf.bin").write_bytes(b"\x00" * 10)
    coll = f"{HOME}/{unique_name}"
    irods_session.collections.register(str(tree), coll)
    leaf = irods_session.data_objects.get(f"{coll}/inner/leaf.bin")
    assert leaf.size == 10
    assert leaf.replicas[0].path == str(tree / "inner" / "leaf.bin")
    irods_session.collections.unregister(coll, force=True)
    assert not irods_session.collections.exists(coll)
    assert (tree / "top.txt").read_bytes() == b"top"


def _obj_stat(session: Any, path: str) -> tuple[int, RodsObjStat]:
    request = FileOpenRequest(
        objPath=path,
        createMode=0,
        openFlags=0,
        offset=0,
        dataSize=0,
        numThreads=0,
        oprType=0,
        KeyValPair_PI=StringStringMap(),
    )
    with session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", msg=request, int_info=api_number["OBJ_STAT_AN"]))
        reply = conn.recv()
    return reply.int_info, reply.get_main_message(RodsObjStat)


def test_obj_stat_of_object_and_collection(irods_session: Any, unique_name: str) -> None:
    coll = f"{HOME}/{unique_name}"
    irods_session.collections.create(coll)
    with irods_session.data_objects.open(f"{coll}/f", "w") as f:
        f.write(b"12345")
    kind, stat = _obj_stat(irods_session, f"{coll}/f")
    assert (kind, stat.objType, stat.objSize, stat.ownerName) == (1, 1, 5, "rods")
    kind, stat = _obj_stat(irods_session, coll)
    assert (kind, stat.objType) == (2, 2)
    with pytest.raises(ex.USER_FILE_DOES_NOT_EXIST):
        _obj_stat(irods_session, f"{coll}/absent")
    irods_session.collections.remove(coll, force=True)
