"""AVU metadata (API 706 and the atomic API 20002).

Two layers: the handlers called directly on a real catalog (precise catalog effects and
error codes, no server needed), and the unmodified python-irodsclient against the running
test server (end to end, listing through GenQuery).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import irods.exception as ex
import pytest
from irods.message import BinBytesBuf, JSON_Binary_Request, MetadataRequest
from irods.meta import AVUOperation, iRODSMeta
from irods.models import Collection, DataObject, Resource, User

from devtools.irods_server import acl, api_metadata
from devtools.irods_server.catalog import Catalog, now
from devtools.irods_server.dispatch import HANDLERS, Reply, Request, Session, UserInfo
from devtools.irods_server.errors import IrodsError, code_of
from devtools.irods_server.state import ServerState

ZONE = "tempZone"
HOME = f"/{ZONE}/home"


class Harness:
    """A real catalog plus sessions, for calling API handlers without a server."""

    def __init__(self, tmp_path: Path) -> None:
        self.cat = Catalog.open(tmp_path / "catalog.sqlite")
        self.state = ServerState(data_dir=tmp_path, catalog=self.cat)

    def session(self, name: str = "rods", user_type: str = "rodsuser") -> Session:
        row = self.cat.user(name)
        if row is None:
            self.cat.add_user(name, user_type)
            self.cat.create_collection(f"{HOME}/{name}", name)
            self.cat.commit()
            row = self.cat.user(name)
        assert row is not None
        info = UserInfo(name, ZONE, int(row["user_id"]), str(row["user_type_name"]))
        return Session(state=self.state, user=info)

    def collection(self, path: str, owner: str = "rods") -> int:
        cid = self.cat.create_collection(path, owner)
        self.cat.commit()
        return cid

    def data_object(self, path: str, owner: str = "rods") -> int:
        """A one-replica data object row with ``own`` for ``owner`` (or inherited ACLs)."""
        parent, name = path.rsplit("/", 1)
        coll = self.cat.db.execute(
            "SELECT coll_id FROM r_coll_main WHERE coll_name = ?", (parent,)
        ).fetchone()
        owner_row = self.cat.user(owner)
        assert coll is not None and owner_row is not None
        data_id, ts = self.cat.next_id(), now()
        resc = self.cat.resource("demoResc")
        assert resc is not None
        self.cat.db.execute(
            "INSERT INTO r_data_main (data_id, coll_id, data_name, data_repl_num, data_path,"
            " data_owner_name, data_owner_zone, create_ts, modify_ts, resc_id)"
            " VALUES (?, ?, ?, 0, '/dev/null', ?, ?, ?, ?, ?)",
            (data_id, coll[0], name, owner, ZONE, ts, ts, resc["resc_id"]),
        )
        acl.set_initial(self.cat, data_id, int(owner_row["user_id"]), int(coll[0]))
        self.cat.commit()
        return data_id

    def avus(self, object_id: int) -> list[tuple[str, str, str]]:
        return [
            (r["meta_attr_name"], r["meta_attr_value"], r["meta_attr_unit"])
            for r in api_metadata.attached(self.cat, object_id)
        ]


async def call(session: Session, api: int, message: Any) -> Reply:
    """Call the registered handler of ``api`` with a python-irodsclient message."""
    return await HANDLERS[api](session, Request(api=api, msg=message.pack().encode()))


async def imeta(session: Session, *args: str, admin: bool = False) -> Reply:
    opts = {"irodsAdmin": ""} if admin else {}
    return await call(session, 706, MetadataRequest(*args, **opts))


async def atomic(session: Session, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    reply = await call(session, 20002, JSON_Binary_Request(request))
    assert isinstance(reply.msg, BinBytesBuf)
    return reply.int_info, json.loads(reply.msg.buf)


def code(name: str) -> int:
    return code_of(name)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.cat.close()


@pytest.fixture
def obj(h: Harness) -> tuple[str, int]:
    path = f"{HOME}/rods/obj"
    return path, h.data_object(path)


# -- API 706 on the catalog --------------------------------------------------------------


async def test_add_shares_one_avu_row_between_objects(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    path, data_id = obj
    other = h.data_object(f"{HOME}/rods/other")
    await imeta(rods, "add", "-d", path, "a", "v", "u")
    await imeta(rods, "add", "-d", f"{HOME}/rods/other", "a", "v", "u")
    await imeta(rods, "add", "-C", f"{HOME}/rods", "a", "v")
    assert h.avus(data_id) == [("a", "v", "u")] == h.avus(other)
    rows = h.cat.db.execute("SELECT count(*) FROM r_meta_main WHERE meta_attr_name = 'a'")
    assert rows.fetchone()[0] == 2  # (a, v, u) shared; (a, v, '') separate


async def test_duplicate_add_is_refused(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    await imeta(rods, "add", "-d", obj[0], "a", "v")
    with pytest.raises(IrodsError) as e:
        await imeta(rods, "add", "-d", obj[0], "a", "v")
    assert e.value.code == code("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME")
    assert h.avus(obj[1]) == [("a", "v", "")]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("add", "-d", f"{HOME}/rods/nothing", "a", "v"), "CAT_UNKNOWN_FILE"),
        (("add", "-C", f"{HOME}/nothing", "a", "v"), "CAT_UNKNOWN_COLLECTION"),
        (("add", "-R", "noResc", "a", "v"), "CAT_INVALID_RESOURCE"),
        (("add", "-u", "nobody", "a", "v"), "CAT_INVALID_USER"),
        (("add", "-x", f"{HOME}/rods", "a", "v"), "CAT_INVALID_ARGUMENT"),
        (("add", "-C", f"{HOME}/rods", "a"), "CAT_INVALID_ARGUMENT"),
        (("frobnicate", "-C", f"{HOME}/rods", "a", "v"), "CAT_INVALID_ARGUMENT"),
        (("rm", "-C", f"{HOME}/rods", "a", "v"), "CAT_SUCCESS_BUT_WITH_NO_INFO"),
        (("rmi", "-C", f"{HOME}/rods", "12345"), "CAT_SUCCESS_BUT_WITH_NO_INFO"),
        (("cp", "-C", "-C", f"{HOME}/rods", f"{HOME}/public"), "CAT_SUCCESS_BUT_WITH_NO_INFO"),
    ],
)
async def test_errors(h: Harness, args: tuple[str, ...], error: str) -> None:
    with pytest.raises(IrodsError) as e:
        await imeta(h.session(), *args)
    assert e.value.code == code(error)


async def test_rm_exact_and_rmi(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    path, data_id = obj
    for value in ("1", "2", "3"):
        await imeta(rods, "add", "-d", path, "a", value, "u")
    await imeta(rods, "rm", "-d", path, "a", "1", "u")
    assert h.avus(data_id) == [("a", "2", "u"), ("a", "3", "u")]
    meta_id = api_metadata.find_avu(h.cat, "a", "2", "u")
    assert meta_id is not None
    await imeta(rods, "rmi", "-d", path, str(meta_id))
    assert h.avus(data_id) == [("a", "3", "u")]
    # the AVU row stays for other objects; only the link goes
    assert api_metadata.find_avu(h.cat, "a", "2", "u") == meta_id


async def test_rm_matches_units_exactly(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    path, data_id = obj
    for units in ("u1", "u2", ""):
        await imeta(rods, "add", "-d", path, "a", "1", units)
    await imeta(rods, "rm", "-d", path, "a", "1", "u1")
    await imeta(rods, "rm", "-d", path, "a", "1")  # no units: only the unit-less AVU
    assert h.avus(data_id) == [("a", "1", "u2")]
    with pytest.raises(IrodsError) as e:
        await imeta(rods, "rm", "-d", path, "a", "1")
    assert e.value.code == code("CAT_SUCCESS_BUT_WITH_NO_INFO")


async def test_rmw_uses_case_sensitive_like_wildcards(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    path, data_id = obj
    for attr, value in (("size", "10"), ("size", "11"), ("Size", "12"), ("sixe", "1"), ("x", "1")):
        await imeta(rods, "add", "-d", path, attr, value)
    await imeta(rods, "rmw", "-d", path, "si_e", "1%")
    assert h.avus(data_id) == [("Size", "12", ""), ("x", "1", "")]
    with pytest.raises(IrodsError) as e:
        await imeta(rods, "rmw", "-d", path, "zz%", "%")
    assert e.value.code == code("CAT_SUCCESS_BUT_WITH_NO_INFO")


async def test_set_replaces_all_values_of_an_attribute(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    path, data_id = obj
    await imeta(rods, "set", "-d", path, "a", "1")  # none yet: add
    first = api_metadata.find_avu(h.cat, "a", "1", "")
    await imeta(rods, "set", "-d", path, "a", "2", "u")  # one unshared AVU: updated in place
    assert h.avus(data_id) == [("a", "2", "u")]
    assert api_metadata.find_avu(h.cat, "a", "2", "u") == first
    await imeta(rods, "add", "-d", path, "a", "3")
    await imeta(rods, "add", "-d", path, "b", "3")
    await imeta(rods, "set", "-d", path, "a", "4")  # several: remove all, add one
    assert sorted(h.avus(data_id)) == [("a", "4", ""), ("b", "3", "")]


async def test_set_does_not_touch_a_shared_avu(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    other_path = f"{HOME}/rods/other"
    other = h.data_object(other_path)
    await imeta(rods, "add", "-d", obj[0], "a", "1")
    await imeta(rods, "add", "-d", other_path, "a", "1")
    await imeta(rods, "set", "-d", obj[0], "a", "2")
    assert h.avus(obj[1]) == [("a", "2", "")]
    assert h.avus(other) == [("a", "1", "")]


async def test_mod_with_new_name_value_and_units(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    path, data_id = obj
    await imeta(rods, "add", "-d", path, "a", "1", "u")
    await imeta(rods, "mod", "-d", path, "a", "1", "u", "n:b", "v:2")
    assert h.avus(data_id) == [("b", "2", "u")]
    await imeta(rods, "mod", "-d", path, "b", "2", "u", "u:")
    assert h.avus(data_id) == [("b", "2", "")]
    await imeta(rods, "mod", "-d", path, "b", "2", "u:kg")  # no units: first n:/v:/u: at arg5
    assert h.avus(data_id) == [("b", "2", "kg")]
    with pytest.raises(IrodsError) as e:
        await imeta(rods, "mod", "-d", path, "b", "2", "kg")
    assert e.value.code == code("CAT_INVALID_ARGUMENT")
    with pytest.raises(IrodsError) as e:
        await imeta(rods, "mod", "-d", path, "nope", "2", "kg", "v:3")
    assert e.value.code == code("CAT_SUCCESS_BUT_WITH_NO_INFO")


async def test_mod_onto_an_existing_avu_rolls_back(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    path, data_id = obj
    await imeta(rods, "add", "-d", path, "a", "1")
    await imeta(rods, "add", "-d", path, "a", "2")
    with pytest.raises(IrodsError) as e:
        await imeta(rods, "mod", "-d", path, "a", "1", "v:2")
    assert e.value.code == code("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME")
    assert h.avus(data_id) == [("a", "1", ""), ("a", "2", "")]


async def test_cp_between_object_types(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    coll_id = h.collection(f"{HOME}/rods/c")
    await imeta(rods, "add", "-d", obj[0], "a", "1")
    await imeta(rods, "add", "-d", obj[0], "b", "2", "u")
    await imeta(rods, "cp", "-d", "-C", obj[0], f"{HOME}/rods/c")
    assert h.avus(coll_id) == h.avus(obj[1])


async def test_addw_adds_to_matching_data_objects(h: Harness) -> None:
    rods = h.session()
    ids = [h.data_object(f"{HOME}/rods/f{i}.txt") for i in range(3)]
    skipped = h.data_object(f"{HOME}/rods/g.txt")
    reply = await imeta(rods, "addw", "-d", f"{HOME}/rods/f%.txt", "k", "v")
    assert reply.int_info == 3
    assert [h.avus(i) for i in ids] == [[("k", "v", "")]] * 3
    assert h.avus(skipped) == []


async def test_resource_and_user_metadata_need_an_admin(h: Harness) -> None:
    alice = h.session("alice")
    rods = h.session()
    for args in (("add", "-R", "demoResc", "a", "v"), ("add", "-u", "alice", "a", "v")):
        with pytest.raises(IrodsError) as e:
            await imeta(alice, *args)
        assert e.value.code == code("CAT_INSUFFICIENT_PRIVILEGE_LEVEL")
        await imeta(rods, *args)
    resc = h.cat.resource("demoResc")
    assert resc is not None and h.avus(int(resc["resc_id"])) == [("a", "v", "")]
    assert h.avus(alice.require_user().id) == [("a", "v", "")]


async def test_access_levels_govern_metadata(h: Harness) -> None:
    rods, alice = h.session(), h.session("alice")
    path = f"{HOME}/rods/shared"
    data_id = h.data_object(path)
    uid = alice.require_user().id
    for level in (None, acl.READ):
        if level is not None:
            acl.grant(h.cat, data_id, uid, level, now())
        with pytest.raises(IrodsError) as e:
            await imeta(alice, "add", "-d", path, "a", "v")
        assert e.value.code == code("CAT_NO_ACCESS_PERMISSION")
    acl.grant(h.cat, data_id, uid, acl.CREATE_METADATA, now())
    await imeta(alice, "add", "-d", path, "a", "v")
    with pytest.raises(IrodsError) as e:  # create_metadata does not include delete_metadata
        await imeta(alice, "rm", "-d", path, "a", "v")
    assert e.value.code == code("CAT_NO_ACCESS_PERMISSION")
    acl.grant(h.cat, data_id, uid, acl.WRITE, now())
    await imeta(alice, "rm", "-d", path, "a", "v")
    await imeta(rods, "add", "-d", path, "b", "v")
    assert h.avus(data_id) == [("b", "v", "")]


async def test_admin_keyword(h: Harness) -> None:
    rods, alice = h.session(), h.session("alice")
    path = f"{HOME}/alice/own"
    data_id = h.data_object(path, owner="alice")
    with pytest.raises(IrodsError) as e:  # a rodsadmin needs the keyword, as in iRODS
        await imeta(rods, "add", "-d", path, "a", "v")
    assert e.value.code == code("CAT_NO_ACCESS_PERMISSION")
    await imeta(rods, "add", "-d", path, "a", "v", admin=True)
    await imeta(rods, "adda", "-d", path, "b", "v")
    with pytest.raises(IrodsError) as e:
        await imeta(alice, "add", "-d", path, "c", "v", admin=True)
    assert e.value.code == code("CAT_INSUFFICIENT_PRIVILEGE_LEVEL")
    assert h.avus(data_id) == [("a", "v", ""), ("b", "v", "")]


async def test_group_access_counts(h: Harness) -> None:
    alice = h.session("alice")
    group = h.cat.add_user("team", "rodsgroup")
    h.cat.add_member(group, alice.require_user().id)
    path = f"{HOME}/rods/team"
    data_id = h.data_object(path)
    acl.grant(h.cat, data_id, group, acl.WRITE, now())
    h.cat.commit()
    await imeta(alice, "add", "-d", path, "a", "v")
    assert h.avus(data_id) == [("a", "v", "")]


# -- API 20002 on the catalog ------------------------------------------------------------


def _ops(*ops: tuple[str, str, str, str]) -> list[dict[str, str]]:
    return [
        {"operation": op, "attribute": a, "value": v, **({"units": u} if u else {})}
        for op, a, v, u in ops
    ]


async def test_atomic_applies_all_operations(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    await imeta(rods, "add", "-d", obj[0], "a", "1")
    request = {
        "entity_name": obj[0],
        "entity_type": "data_object",
        "operations": _ops(
            ("remove", "a", "1", ""),
            ("add", "a", "2", "u"),
            ("add", "a", "2", "u"),  # adding what is there is no error
            ("remove", "zz", "9", ""),  # nor is removing what is not
        ),
    }
    assert await atomic(rods, request) == (0, {})
    assert h.avus(obj[1]) == [("a", "2", "u")]


async def test_atomic_failure_changes_nothing(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    ops = _ops(("add", "a", "1", ""), ("add", "b", "", ""))
    request = {"entity_name": obj[0], "entity_type": "data_object", "operations": ops}
    code_, body = await atomic(rods, request)
    assert code_ == code("SYS_INVALID_INPUT_PARAM")
    assert body["operation_index"] == 1
    assert body["operation"] == ops[1]
    assert "Empty metadata attribute name or value" in body["error_message"]
    assert h.avus(obj[1]) == []


@pytest.mark.parametrize(
    ("request_", "error", "text"),
    [
        (
            {"entity_name": f"{HOME}/rods/none", "entity_type": "data_object", "operations": []},
            "SYS_INVALID_INPUT_PARAM",
            f"Entity does not exist [entity_name={HOME}/rods/none]",
        ),
        (
            {"entity_name": "tempZone", "entity_type": "zone", "operations": []},
            "SYS_INVALID_INPUT_PARAM",
            "Invalid entity type",
        ),
        (
            {"entity_name": "demoResc", "entity_type": "resource", "operations": []},
            "CAT_NO_ACCESS_PERMISSION",
            "User not allowed to modify metadata",
        ),
        (
            {"entity_name": "demoResc", "entity_type": "resource", "admin_mode": True},
            "CAT_INSUFFICIENT_PRIVILEGE_LEVEL",
            "User is not an administrator",
        ),
    ],
)
async def test_atomic_errors(h: Harness, request_: dict[str, Any], error: str, text: str) -> None:
    code_, body = await atomic(h.session("alice"), request_)
    assert code_ == code(error)
    assert text in body["error_message"]


async def test_atomic_rejects_malformed_json(h: Harness) -> None:
    message = BinBytesBuf(buflen=5, buf=b"{nope")
    reply = await call(h.session(), 20002, message)
    assert reply.int_info == code("INPUT_ARG_NOT_WELL_FORMED_ERR")


async def test_atomic_needs_modify_object_on_data(h: Harness, obj: tuple[str, int]) -> None:
    alice = h.session("alice")
    request = {
        "entity_name": obj[0],
        "entity_type": "data_object",
        "operations": _ops(("add", "a", "1", "")),
    }
    acl.grant(h.cat, obj[1], alice.require_user().id, acl.READ, now())
    assert (await atomic(alice, request))[0] == code("CAT_NO_ACCESS_PERMISSION")
    acl.grant(h.cat, obj[1], alice.require_user().id, acl.WRITE, now())
    assert await atomic(alice, request) == (0, {})
    assert h.avus(obj[1]) == [("a", "1", "")]


def test_like_translation() -> None:
    pattern = api_metadata.like(r"a_b%c\%d\_")
    assert pattern.fullmatch("aXbYYYc%d_")
    assert not pattern.fullmatch("aXbYYYcXd_")
    assert not pattern.fullmatch("AXbc%d_")


def test_avu_link_is_unique(h: Harness, obj: tuple[str, int]) -> None:
    meta_id = api_metadata.find_or_insert_avu(h.cat, "a", "b", "")
    api_metadata.attach(h.cat, obj[1], meta_id)
    with pytest.raises(IrodsError):
        api_metadata.attach(h.cat, obj[1], meta_id)
    with pytest.raises(sqlite3.IntegrityError):
        h.cat.db.execute("INSERT INTO r_objt_metamap VALUES (?, ?, '0', '0')", (obj[1], meta_id))


async def test_remove_unused_avus_keeps_linked_ones(h: Harness, obj: tuple[str, int]) -> None:
    rods = h.session()
    await imeta(rods, "add", "-d", obj[0], "keep", "1")
    await imeta(rods, "add", "-d", obj[0], "drop", "1")
    await imeta(rods, "rm", "-d", obj[0], "drop", "1")
    assert api_metadata.remove_unused_avus(h.cat) == 1
    assert api_metadata.find_avu(h.cat, "drop", "1", "") is None
    assert h.avus(obj[1]) == [("keep", "1", "")]


# -- end to end: python-irodsclient against the server -----------------------------------


@pytest.fixture
def e2e_coll(irods_session: Any, unique_name: str) -> Iterator[Any]:
    coll = irods_session.collections.create(f"{HOME}/rods/{unique_name}")
    yield coll
    coll.remove(recurse=True, force=True)


def _triples(avus: list[Any]) -> list[tuple[str, str, str | None]]:
    return sorted((m.name, m.value, m.units) for m in avus)


def test_e2e_data_object_metadata(irods_session: Any, e2e_coll: Any) -> None:
    obj = irods_session.data_objects.create(f"{e2e_coll.path}/f")
    obj.metadata.add("a", "1", "u")
    obj.metadata.add("b", "2")
    assert _triples(obj.metadata.items()) == [("a", "1", "u"), ("b", "2", None)]
    with pytest.raises(ex.CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME):
        obj.metadata.add("a", "1", "u")
    obj.metadata.set("a", "3")
    obj.metadata.remove("b", "2")
    fetched = irods_session.metadata.get(DataObject, obj.path)
    assert _triples(fetched) == [("a", "3", None)]
    del obj.metadata["a"]
    assert obj.metadata.items() == []


def test_e2e_collection_metadata_and_atomic(irods_session: Any, e2e_coll: Any) -> None:
    irods_session.metadata.add(Collection, e2e_coll.path, iRODSMeta("k", "v"))
    e2e_coll.metadata.apply_atomic_operations(
        AVUOperation(operation="remove", avu=iRODSMeta("k", "v")),
        AVUOperation(operation="add", avu=iRODSMeta("k", "v", "u")),
        AVUOperation(operation="add", avu=iRODSMeta("k2", "v2")),
    )
    got = irods_session.metadata.get(Collection, e2e_coll.path)
    assert _triples(got) == [("k", "v", "u"), ("k2", "v2", None)]


def test_e2e_atomic_error_carries_json(irods_session: Any, e2e_coll: Any) -> None:
    absent = f"{e2e_coll.path}/absent"
    with pytest.raises(ex.iRODSException) as e:
        irods_session.metadata.apply_atomic_operations(
            Collection, absent, AVUOperation(operation="add", avu=iRODSMeta("a", "b"))
        )
    body = e.value.server_msg.get_json_encoded_struct()
    assert f"Entity does not exist [entity_name={e2e_coll.path}/absent]" in body["error_message"]


def test_e2e_resource_and_user_metadata(
    irods_session: Any, irods_user: Any, unique_name: str
) -> None:
    name, _ = irods_user()
    irods_session.metadata.add(User, name, iRODSMeta("role", "tester"))
    assert _triples(irods_session.users.get(name).metadata.items()) == [("role", "tester", None)]
    resc = irods_session.resources.get("demoResc")
    resc.metadata.add(unique_name, "1")
    try:
        got = irods_session.metadata.get(Resource, "demoResc")
        assert (unique_name, "1", None) in _triples(got)
    finally:
        resc.metadata.remove(unique_name, "1")


def test_e2e_rodsuser_cannot_tag_others_objects(
    irods_session: Any, irods_user: Any, e2e_coll: Any
) -> None:
    _, alice = irods_user()
    obj = irods_session.data_objects.create(f"{e2e_coll.path}/f")
    with pytest.raises(ex.CAT_NO_ACCESS_PERMISSION):
        alice.metadata.add(DataObject, obj.path, iRODSMeta("a", "b"))
    with pytest.raises(ex.CAT_INSUFFICIENT_PRIVILEGE_LEVEL):
        alice.metadata.add(Resource, "demoResc", iRODSMeta("a", "b"))
