"""Access control: ``acl.py`` (levels, groups, inheritance) and API 707 MOD_ACCESS_CONTROL.

The first part works on a real catalog without a server; the second drives the running
test server with the unmodified python-irodsclient, including real permission enforcement.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import irods.exception as ex
import pytest
from irods.access import iRODSAccess
from irods.message import ModAclRequest

from devtools.irods_server import acl, api_acl
from devtools.irods_server.catalog import now
from devtools.irods_server.errors import IrodsError, code_of
from tests.irods_server.test_metadata import HOME, Harness, call

READ_NAME, WRITE_NAME = "read_object", "modify_object"


async def ichmod(
    session: Any, level: str, path: str, user: str = "", recursive: bool = False, zone: str = ""
) -> None:
    message = ModAclRequest(
        recursiveFlag=int(recursive), accessLevel=level, userName=user, zone=zone, path=path
    )
    await call(session, 707, message)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.cat.close()


def acls(h: Harness, object_id: int) -> dict[str, int]:
    rows = h.cat.db.execute(
        "SELECT u.user_name, a.access_type_id FROM r_objt_access a"
        " JOIN r_user_main u ON u.user_id = a.user_id WHERE a.object_id = ?",
        (object_id,),
    )
    return {r[0]: r[1] for r in rows}


def inheritance(h: Harness, coll_id: int) -> str:
    sql = "SELECT coll_inheritance FROM r_coll_main WHERE coll_id = ?"
    return str(h.cat.db.execute(sql, (coll_id,)).fetchone()[0])


# -- acl.py ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("own", (False, "", acl.OWN)),
        ("read", (False, "", acl.READ)),
        ("write", (False, "", acl.WRITE)),
        ("modify_object", (False, "", acl.WRITE)),
        ("delete_object", (False, "", acl.DELETE_OBJECT)),
        ("null", (False, "", acl.NULL)),
        ("admin:own", (True, "", acl.OWN)),
        ("inherit", (False, "inherit", 0)),
        ("admin:noinherit", (True, "noinherit", 0)),
    ],
)
def test_parse_level(text: str, expected: tuple[bool, str, int]) -> None:
    assert api_acl.parse_level(text) == expected


@pytest.mark.parametrize("text", ["modify object", "owner", "", "resc:own"])
def test_parse_level_rejects(text: str) -> None:
    with pytest.raises(IrodsError) as e:
        api_acl.parse_level(text)
    assert e.value.code == code_of("CAT_INVALID_ARGUMENT")


def test_level_through_user_groups_and_public(h: Harness) -> None:
    alice = h.session("alice").require_user()
    data_id = h.data_object(f"{HOME}/rods/x")
    assert acl.level(h.cat, alice, data_id) == 0
    public = h.cat.user("public")
    assert public is not None
    acl.grant(h.cat, data_id, int(public["user_id"]), acl.READ, now())
    assert acl.level(h.cat, alice, data_id) == acl.READ
    team = h.cat.add_user("team", "rodsgroup")
    h.cat.add_member(team, alice.id)
    acl.grant(h.cat, data_id, team, acl.DELETE_OBJECT, now())
    assert acl.level(h.cat, alice, data_id) == acl.DELETE_OBJECT
    acl.grant(h.cat, data_id, alice.id, acl.WRITE, now())
    assert acl.level(h.cat, alice, data_id) == acl.DELETE_OBJECT  # the best one counts


def test_require(h: Harness) -> None:
    rods, alice = h.session().require_user(), h.session("alice").require_user()
    data_id = h.data_object(f"{HOME}/alice/x", owner="alice")
    acl.require(h.cat, alice, data_id, acl.OWN)
    acl.require(h.cat, rods, data_id, acl.OWN)  # a rodsadmin passes
    bob = h.session("bob").require_user()
    with pytest.raises(IrodsError) as e:
        acl.require(h.cat, bob, data_id, acl.READ, f"{HOME}/alice/x")
    assert e.value.code == code_of("CAT_NO_ACCESS_PERMISSION")
    assert f"{HOME}/alice/x" in e.value.message


def test_set_initial_with_and_without_inheritance(h: Harness) -> None:
    alice = h.session("alice").require_user()
    plain = h.collection(f"{HOME}/rods/plain")
    assert acls(h, h.data_object(f"{HOME}/rods/plain/a")) == {"rods": acl.OWN}
    parent = h.collection(f"{HOME}/rods/inh")
    acl.grant(h.cat, parent, alice.id, acl.READ, now())
    h.cat.db.execute("UPDATE r_coll_main SET coll_inheritance = '1' WHERE coll_id = ?", (parent,))
    data_id = h.data_object(f"{HOME}/rods/inh/a")
    assert acls(h, data_id) == {"rods": acl.OWN, "alice": acl.READ}
    sub = h.cat.create_collection(f"{HOME}/rods/inh/sub", "rods")
    h.cat.db.execute("DELETE FROM r_objt_access WHERE object_id = ?", (sub,))
    acl.set_initial(h.cat, sub, 0, parent)
    assert acls(h, sub) == {"rods": acl.OWN, "alice": acl.READ}
    assert inheritance(h, sub) == "1"
    assert inheritance(h, plain) == ""


# -- API 707 on the catalog --------------------------------------------------------------


async def test_owner_grants_changes_and_removes(h: Harness) -> None:
    rods = h.session()
    h.session("alice")
    data_id = h.data_object(f"{HOME}/rods/x")
    for level, expected in (("read", acl.READ), ("delete_object", 1130), ("write", acl.WRITE)):
        await ichmod(rods, level, f"{HOME}/rods/x", "alice")
        assert acls(h, data_id)["alice"] == expected
    await ichmod(rods, "null", f"{HOME}/rods/x", "alice")
    assert acls(h, data_id) == {"rods": acl.OWN}


async def test_every_43_level_name_is_stored(h: Harness) -> None:
    rods = h.session()
    h.session("alice")
    data_id = h.data_object(f"{HOME}/rods/x")
    for name, number in acl.LEVELS.items():
        if name != "null":
            await ichmod(rods, name, f"{HOME}/rods/x", "alice")
            assert acls(h, data_id)["alice"] == number


async def test_only_owners_change_acls(h: Harness) -> None:
    rods, alice = h.session(), h.session("alice")
    data_id = h.data_object(f"{HOME}/rods/x")
    await ichmod(rods, "delete_object", f"{HOME}/rods/x", "alice")
    for path in (f"{HOME}/rods/x", f"{HOME}/rods"):
        with pytest.raises(IrodsError) as e:
            await ichmod(alice, "own", path, "alice")
        assert e.value.code == code_of("CAT_NO_ACCESS_PERMISSION")
    with pytest.raises(IrodsError) as e:
        await ichmod(alice, "admin:own", f"{HOME}/rods/x", "alice")
    assert e.value.code == code_of("CAT_NO_ACCESS_PERMISSION")
    assert acls(h, data_id)["alice"] == acl.DELETE_OBJECT


async def test_owner_who_gives_up_own_needs_admin_mode(h: Harness) -> None:
    rods = h.session()
    data_id = h.data_object(f"{HOME}/rods/x")
    await ichmod(rods, "write", f"{HOME}/rods/x", "rods")
    with pytest.raises(IrodsError) as e:  # no longer an owner; rodsadmin is no bypass here
        await ichmod(rods, "own", f"{HOME}/rods/x", "rods")
    assert e.value.code == code_of("CAT_NO_ACCESS_PERMISSION")
    await ichmod(rods, "admin:own", f"{HOME}/rods/x", "rods")
    assert acls(h, data_id) == {"rods": acl.OWN}


async def test_group_grantee_and_zone(h: Harness) -> None:
    rods = h.session()
    h.cat.add_user("team", "rodsgroup")
    data_id = h.data_object(f"{HOME}/rods/x")
    await ichmod(rods, "read", f"{HOME}/rods/x", "team", zone="tempZone")
    assert acls(h, data_id)["team"] == acl.READ


@pytest.mark.parametrize(
    ("level", "path", "user", "recursive", "error"),
    [
        ("read", f"{HOME}/rods/x", "nobody", False, "CAT_INVALID_USER"),
        ("read", f"{HOME}/rods/none", "rods", False, "CAT_INVALID_ARGUMENT"),
        ("read", f"{HOME}/rods/x", "rods", True, "CAT_INVALID_ARGUMENT"),
        ("inherit", f"{HOME}/rods/x", "", False, "CAT_NO_ACCESS_PERMISSION"),
        ("bogus", f"{HOME}/rods/x", "rods", False, "CAT_INVALID_ARGUMENT"),
        ("read", "relative/x", "rods", False, "SYS_INVALID_FILE_PATH"),
    ],
)
async def test_errors(
    h: Harness, level: str, path: str, user: str, recursive: bool, error: str
) -> None:
    h.data_object(f"{HOME}/rods/x")
    with pytest.raises(IrodsError) as e:
        await ichmod(h.session(), level, path, user, recursive)
    assert e.value.code == code_of(error)


async def test_inherit_flag_recursive_or_not(h: Harness) -> None:
    rods = h.session()
    top = h.collection(f"{HOME}/rods/top")
    sub = h.collection(f"{HOME}/rods/top/sub")
    await ichmod(rods, "inherit", f"{HOME}/rods/top")
    assert (inheritance(h, top), inheritance(h, sub)) == ("1", "")
    await ichmod(rods, "inherit", f"{HOME}/rods/top", recursive=True)
    assert (inheritance(h, top), inheritance(h, sub)) == ("1", "1")
    await ichmod(rods, "noinherit", f"{HOME}/rods/top", recursive=True)
    assert (inheritance(h, top), inheritance(h, sub)) == ("0", "0")


async def test_recursive_acl_reaches_everything_below(h: Harness) -> None:
    rods, alice = h.session(), h.session("alice")
    top = h.collection(f"{HOME}/rods/top")
    sub = h.collection(f"{HOME}/rods/top/sub")
    objs = [h.data_object(f"{HOME}/rods/top/a"), h.data_object(f"{HOME}/rods/top/sub/b")]
    sibling = h.collection(f"{HOME}/rods/topx")  # a name prefix, not below
    # rods gives up ownership of one object: recursion still reaches it (owning the top is enough)
    await ichmod(rods, "read", f"{HOME}/rods/top/sub/b", "rods")
    await ichmod(rods, "write", f"{HOME}/rods/top", "alice", recursive=True)
    for object_id in (top, sub, *objs):
        assert acls(h, object_id)["alice"] == acl.WRITE
    assert "alice" not in acls(h, sibling)
    await ichmod(rods, "null", f"{HOME}/rods/top", "alice", recursive=True)
    assert all("alice" not in acls(h, i) for i in (top, sub, *objs))
    assert acl.level(h.cat, alice.require_user(), top) == 0


# -- end to end: python-irodsclient against the server -----------------------------------


@pytest.fixture
def e2e_coll(irods_session: Any, unique_name: str) -> Iterator[Any]:
    coll = irods_session.collections.create(f"{HOME}/rods/{unique_name}")
    yield coll
    coll.remove(recurse=True, force=True)


def _acl_set(session: Any, target: Any) -> set[tuple[str, str]]:
    return {(a.user_name, a.access_name) for a in session.acls.get(target)}


def test_e2e_set_and_get_for_user_and_group(
    irods_session: Any, irods_user: Any, e2e_coll: Any, unique_name: str
) -> None:
    name, _ = irods_user()
    group = irods_session.groups.create(f"g{unique_name}")
    try:
        obj = irods_session.data_objects.create(f"{e2e_coll.path}/f")
        irods_session.acls.set(iRODSAccess("read", obj.path, name))
        irods_session.acls.set(iRODSAccess("write", obj.path, group.name))
        assert _acl_set(irods_session, obj) == {
            ("rods", "own"),
            (name, READ_NAME),
            (group.name, WRITE_NAME),
        }
        irods_session.acls.set(iRODSAccess("null", obj.path, name))
        assert (name, READ_NAME) not in _acl_set(irods_session, obj)
        irods_session.acls.set(iRODSAccess("inherit", e2e_coll.path))
        assert irods_session.collections.get(e2e_coll.path).inheritance
    finally:
        group.remove()


def test_e2e_inheritance_and_recursion(irods_session: Any, irods_user: Any, e2e_coll: Any) -> None:
    name, alice = irods_user()
    old = irods_session.data_objects.create(f"{e2e_coll.path}/old")
    irods_session.acls.set(iRODSAccess("read", e2e_coll.path, name))
    irods_session.acls.set(iRODSAccess("inherit", e2e_coll.path))
    new = irods_session.data_objects.create(f"{e2e_coll.path}/new")
    sub = irods_session.collections.create(f"{e2e_coll.path}/sub")
    assert (name, READ_NAME) in _acl_set(irods_session, new)
    assert (name, READ_NAME) in _acl_set(irods_session, sub)
    assert (name, READ_NAME) not in _acl_set(irods_session, old)
    assert irods_session.collections.get(sub.path).inheritance
    irods_session.acls.set(iRODSAccess("write", e2e_coll.path, name), recursive=True)
    for target in (old, new, sub, e2e_coll):
        assert (name, WRITE_NAME) in _acl_set(irods_session, target)
    assert alice.data_objects.get(old.path).path == old.path


def test_e2e_permissions_are_enforced(irods_session: Any, irods_user: Any, e2e_coll: Any) -> None:
    name, alice = irods_user()
    path = f"{e2e_coll.path}/secret"
    with irods_session.data_objects.open(path, "w") as f:
        f.write(b"top secret")
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        alice.acls.set(iRODSAccess("own", path, name))
    denied = (ex.CAT_NO_ACCESS_PERMISSION, ex.OBJ_PATH_DOES_NOT_EXIST)
    with pytest.raises(denied), alice.data_objects.open(path, "r") as f:
        f.read()
    irods_session.acls.set(iRODSAccess("read", path, name))
    with alice.data_objects.open(path, "r") as f:
        assert f.read() == b"top secret"
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION), alice.data_objects.open(path, "a") as f:
        f.write(b"!")
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        alice.data_objects.unlink(path, force=True)
    irods_session.acls.set(iRODSAccess("write", path, name))
    with alice.data_objects.open(path, "a") as f:
        f.write(b"!")
    irods_session.acls.set(iRODSAccess("own", path, name))
    alice.data_objects.unlink(path, force=True)
    assert not irods_session.data_objects.exists(path)
