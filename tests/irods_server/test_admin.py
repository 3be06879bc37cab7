"""Admin APIs 701/714: users, groups, passwords, zones, resources and hierarchies."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import irods.exception as ex
import pytest
from irods.message import GeneralAdminRequest, UserAdminRequest, iRODSMessage
from irods.password_obfuscation import obfuscate_new_password_with_key

from devtools.irods_server.launcher import ServerProcess

UGLY_PASSWORD = r"""abc123!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~Z"""


def general(session: Any, *args: str) -> int:
    with session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", msg=GeneralAdminRequest(*args), int_info=701))
        return int(conn.recv().int_info)


def user_admin(session: Any, *args: str) -> int:
    with session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", msg=UserAdminRequest(*args), int_info=714))
        return int(conn.recv().int_info)


def query(srv: ServerProcess, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{srv.data_dir / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in db.execute(sql, params)]
    finally:
        db.close()


def logs_in(srv: ServerProcess, user: str, password: str) -> bool:
    with srv.session(user, password) as s:
        try:
            s.pool.get_connection().release()
        except ex.CAT_INVALID_AUTHENTICATION:
            return False
    return True


@pytest.fixture
def name() -> str:
    return "a" + uuid.uuid4().hex[:10]


@pytest.fixture
def admin(irods_server: ServerProcess) -> Iterator[Any]:
    with irods_server.session() as s:
        yield s


def test_create_user_with_home_and_password(
    irods_server: ServerProcess, admin: Any, name: str
) -> None:
    assert general(admin, "add", "user", name, "rodsuser", "", "") == 0
    admin.users.modify(name, "password", UGLY_PASSWORD)
    assert logs_in(irods_server, name, UGLY_PASSWORD)
    assert not logs_in(irods_server, name, "wrong")
    homes = query(
        irods_server,
        "SELECT coll_name, coll_owner_name FROM r_coll_main WHERE coll_name LIKE ?",
        f"%/{name}",
    )
    assert sorted(homes) == [
        (f"/tempZone/home/{name}", name),
        (f"/tempZone/trash/home/{name}", name),
    ]
    in_public = query(
        irods_server,
        "SELECT 1 FROM r_user_group g JOIN r_user_main p ON g.group_user_id = p.user_id"
        " JOIN r_user_main u ON g.user_id = u.user_id"
        " WHERE p.user_name = 'public' AND u.user_name = ?",
        name,
    )
    assert in_public == [(1,)]
    general(admin, "rm", "user", name)
    assert (
        query(irods_server, "SELECT 1 FROM r_coll_main WHERE coll_name LIKE ?", f"%/{name}") == []
    )
    assert query(irods_server, "SELECT 1 FROM r_user_main WHERE user_name = ?", name) == []


def test_duplicate_user_and_bad_type(admin: Any, name: str) -> None:
    general(admin, "add", "user", name, "rodsuser", "", "")
    try:
        with pytest.raises(ex.CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME):
            general(admin, "add", "user", name, "rodsuser", "", "")
        with pytest.raises(ex.CAT_INVALID_USER_TYPE):
            general(admin, "add", "user", name + "x", "superuser", "", "")
    finally:
        general(admin, "rm", "user", name)


def test_user_changes_own_password(irods_server: ServerProcess, admin: Any, name: str) -> None:
    general(admin, "add", "user", name, "rodsuser", "", "")
    admin.users.modify(name, "password", "first-pw")
    try:
        with irods_server.session(name, "first-pw") as s:
            s.users.modify_password("first-pw", "second-pw")
        assert logs_in(irods_server, name, "second-pw")
        assert not logs_in(irods_server, name, "first-pw")
    finally:
        general(admin, "rm", "user", name)


def test_rodsuser_has_no_admin_rights(irods_server: ServerProcess, admin: Any, name: str) -> None:
    general(admin, "add", "user", name, "rodsuser", "", "")
    admin.users.modify(name, "password", "pw-1234")
    try:
        with irods_server.session(name, "pw-1234") as s:
            with pytest.raises(ex.SYS_NO_API_PRIV):
                general(s, "add", "user", name + "x", "rodsuser", "", "")
            with pytest.raises(ex.CAT_INSUFFICIENT_PRIVILEGE_LEVEL):
                user_admin(s, "mkgroup", name + "g", "rodsgroup")
            with pytest.raises(ex.CAT_INSUFFICIENT_PRIVILEGE_LEVEL):
                user_admin(s, "userpw", "rods", "password", "whatever")
    finally:
        general(admin, "rm", "user", name)


def test_modify_user_type_info_comment(irods_server: ServerProcess, admin: Any, name: str) -> None:
    general(admin, "add", "user", name, "rodsuser", "", "")
    try:
        general(admin, "modify", "user", f"{name}#tempZone", "type", "rodsadmin", "")
        general(admin, "modify", "user", name, "info", "the info", "")
        general(admin, "modify", "user", name, "comment", "a <comment> & more", "")
        row = query(
            irods_server,
            "SELECT user_type_name, user_info, r_comment FROM r_user_main WHERE user_name = ?",
            name,
        )
        assert row == [("rodsadmin", "the info", "a <comment> & more")]
    finally:
        general(admin, "rm", "user", name)


def test_groupadmin_makes_users_and_groups_but_cannot_remove_them(
    irods_server: ServerProcess, admin: Any, name: str
) -> None:
    general(admin, "add", "user", name, "groupadmin", "", "")
    admin.users.modify(name, "password", "ga-pw")
    group, member = name + "grp", name + "m"
    try:
        with irods_server.session(name, "ga-pw") as ga:
            assert user_admin(ga, "mkgroup", group, "rodsgroup") == 0
            scrambled = obfuscate_new_password_with_key("member-pw", "ga-pw")
            assert user_admin(ga, "mkuser", member, scrambled) == 0
            user_admin(ga, "modify", "group", group, "add", name, "")
            user_admin(ga, "modify", "group", group, "add", member, "")
            with pytest.raises(ex.SYS_NO_API_PRIV):
                general(ga, "rm", "group", group)
        assert logs_in(irods_server, member, "member-pw")
        members = query(
            irods_server,
            "SELECT u.user_name FROM r_user_group g JOIN r_user_main p"
            " ON g.group_user_id = p.user_id JOIN r_user_main u ON g.user_id = u.user_id"
            " WHERE p.user_name = ? AND u.user_id != p.user_id ORDER BY 1",
            group,
        )
        assert members == sorted([(name,), (member,)])
        general(admin, "modify", "group", group, "remove", member, "")
        with pytest.raises(ex.CAT_INVALID_ARGUMENT):
            general(admin, "modify", "group", group, "remove", member, "")
    finally:
        general(admin, "rm", "group", group)
        general(admin, "rm", "user", member)
        general(admin, "rm", "user", name)
    assert query(irods_server, "SELECT 1 FROM r_user_main WHERE user_name = ?", group) == []


def test_remove_user_with_nonempty_home_fails(
    irods_server: ServerProcess, admin: Any, name: str
) -> None:
    general(admin, "add", "user", name, "rodsuser", "", "")
    admin.collections.create(f"/tempZone/home/{name}/sub")
    with pytest.raises(ex.CAT_COLLECTION_NOT_EMPTY):
        general(admin, "rm", "user", name)
    admin.collections.remove(f"/tempZone/home/{name}/sub", recurse=True, force=True)
    general(admin, "rm", "user", name)


def test_remote_zone_and_remote_user(irods_server: ServerProcess, admin: Any, name: str) -> None:
    general(admin, "add", "zone", "otherZone", "remote", "", "")
    general(admin, "add", "user", f"{name}#otherZone", "rodsuser", "otherZone", "")
    colls = query(
        irods_server, "SELECT coll_name FROM r_coll_main WHERE coll_name LIKE ?", f"%{name}%"
    )
    assert sorted(colls) == [
        (f"/tempZone/home/{name}#otherZone",),
        (f"/tempZone/trash/home/{name}#otherZone",),
    ]
    general(admin, "rm", "user", f"{name}#otherZone")
    general(admin, "rm", "zone", "otherZone")
    assert query(irods_server, "SELECT 1 FROM r_zone_main WHERE zone_name = 'otherZone'") == []


def test_resources_and_hierarchy(irods_server: ServerProcess, admin: Any, name: str) -> None:
    root, leaf = name + "_pt", name + "_ufs"
    general(admin, "add", "resource", leaf, "unixfilesystem", f"localhost:/tmp/{leaf}", "", "")
    general(admin, "add", "resource", root, "passthru", "EMPTY_RESC_HOST:EMPTY_RESC_PATH", "", "")
    general(admin, "add", "childtoresc", root, leaf, "ctx")
    rows = query(
        irods_server,
        "SELECT r.resc_name, r.resc_net, r.resc_def_path, p.resc_name, r.resc_parent_context"
        " FROM r_resc_main r LEFT JOIN r_resc_main p ON CAST(p.resc_id AS TEXT) = r.resc_parent"
        " WHERE r.resc_name IN (?, ?) ORDER BY 1",
        root,
        leaf,
    )
    assert rows == [
        (root, "EMPTY_RESC_HOST", "EMPTY_RESC_PATH", None, ""),
        (leaf, "localhost", f"/tmp/{leaf}", root, "ctx"),
    ]
    with pytest.raises(ex.CAT_RESOURCE_NOT_EMPTY):
        general(admin, "rm", "resource", root)
    general(admin, "modify", "resource", leaf, "comment", "hello")
    general(admin, "modify", "resource", leaf, "context", "a=1;b=2")
    assert query(
        irods_server, "SELECT r_comment, resc_context FROM r_resc_main WHERE resc_name = ?", leaf
    ) == [("hello", "a=1;b=2")]
    general(admin, "rm", "childfromresc", root, leaf)
    general(admin, "rm", "resource", leaf, "--dryrun")
    assert query(irods_server, "SELECT 1 FROM r_resc_main WHERE resc_name = ?", leaf) == [(1,)]
    general(admin, "rm", "resource", leaf)
    general(admin, "rm", "resource", root)
    assert (
        query(irods_server, "SELECT 1 FROM r_resc_main WHERE resc_name IN (?, ?)", root, leaf) == []
    )


def test_bad_user_names_and_removing_oneself(admin: Any) -> None:
    for bad in ("a/b", " lead", ""):
        with pytest.raises(ex.USER_INVALID_USERNAME_FORMAT):
            general(admin, "add", "user", bad, "rodsuser", "", "")
    with pytest.raises(ex.CAT_INVALID_USER):
        general(admin, "rm", "user", "rods#tempZone")


def test_unknown_resource_and_operation(admin: Any) -> None:
    with pytest.raises(ex.SYS_RESC_DOES_NOT_EXIST):
        general(admin, "rm", "resource", "no_such_resc")
    with pytest.raises(ex.CAT_INVALID_ARGUMENT):
        general(admin, "frobnicate", "thing")
