"""Data objects as a whole (``api_objects``): truncate, unlink, rename, copy,
modDataObjMeta and touch; driven by the unmodified python-irodsclient."""

from __future__ import annotations

import os
from typing import Any

import irods.exception as ex
import irods.keywords as kw
import pytest
from irods.access import iRODSAccess

TRASH = "/tempZone/trash/home/rods"


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


def test_trash_rules_of_unlink(
    irods_session: Any, coll: str, unique_name: str, irods_user: Any
) -> None:
    """``rsDataObjUnlink.cpp`` / ``rsMkTrashPath`` (``rsRmColl.cpp``), 4.3.4: a non-forced
    unlink inside the trash moves the object again (as a real 5.0.2 zone did); only
    force, unregister or irmtrash's keyword deletes, and that keyword outside the trash is
    SYS_INVALID_FILE_PATH. Another user's object goes to the caller's trash under the
    owner's name (``/trash/home/<caller>/<owner>/...``)."""
    path = f"{coll}/twice"
    irods_session.data_objects.create(path)
    irods_session.data_objects.unlink(path)
    first = f"{TRASH}/{unique_name}/twice"
    irods_session.data_objects.unlink(first)
    again = f"{TRASH}/trash/home/rods/{unique_name}/twice"
    assert not irods_session.data_objects.exists(first)
    assert irods_session.data_objects.exists(again)
    irods_session.data_objects.create(f"{coll}/kept")
    with pytest.raises(ex.SYS_INVALID_FILE_PATH):
        irods_session.data_objects.unlink(f"{coll}/kept", **{kw.RMTRASH_KW: ""})
    assert irods_session.data_objects.exists(f"{coll}/kept")
    irods_session.data_objects.unlink(again, **{kw.RMTRASH_KW: ""})
    assert not irods_session.data_objects.exists(again)
    irods_session.collections.remove(f"{TRASH}/trash", force=True)

    owner, bob = irods_user()
    theirs = f"/tempZone/home/{owner}/shared"
    bob.data_objects.create(theirs)
    bob.acls.set(iRODSAccess("own", theirs, "rods"))
    irods_session.data_objects.unlink(theirs)
    assert irods_session.data_objects.exists(f"{TRASH}/{owner}/shared")
    irods_session.collections.remove(f"{TRASH}/{owner}", force=True)


def test_rename_needs_own(irods_session: Any, coll: str, irods_user: Any) -> None:
    """``db_rename_object_op`` / ``db_move_object_op`` (``plugins/database/src/db_plugin.cpp``):
    own on the object (or collection) and modify_object on the target collection; a
    user with delete_object or modify_object may not rename."""
    name, alice = irods_user()
    home = f"/tempZone/home/{name}"
    path = f"{coll}/theirs"
    irods_session.data_objects.create(path)
    sub = f"{coll}/sub"
    irods_session.collections.create(sub)
    irods_session.acls.set(iRODSAccess("write", coll, name))
    for level in ("delete_object", "modify_object"):
        irods_session.acls.set(iRODSAccess(level, path, name))
        irods_session.acls.set(iRODSAccess(level, sub, name))
        with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
            alice.data_objects.move(path, f"{home}/moved")
        with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
            alice.collections.move(sub, f"{home}/moved-sub")
    irods_session.acls.set(iRODSAccess("own", path, name))
    alice.data_objects.move(path, f"{home}/moved")
    assert alice.data_objects.exists(f"{home}/moved")
