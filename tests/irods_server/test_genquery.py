"""GenQuery: the engine over a real catalog, then API 702 through the unmodified client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from irods.column import Between, In, Like, NotLike
from irods.exception import CAT_UNKNOWN_SPECIFIC_QUERY
from irods.models import (
    Collection,
    CollectionAccess,
    CollectionMeta,
    DataAccess,
    DataObject,
    DataObjectMeta,
    Group,
    Resource,
    User,
)
from irods.query import SpecificQuery

from devtools.irods_server import columns
from devtools.irods_server.catalog import Catalog, now
from devtools.irods_server.errors import IrodsError, code_of
from devtools.irods_server.genquery import (
    NO_DISTINCT,
    ORDER_BY,
    ORDER_BY_DESC,
    UPPER_CASE_WHERE,
    Access,
    GenQuery,
    build_sql,
    like_to_glob,
    run,
)
from devtools.irods_server.launcher import ServerProcess

HOME = "/tempZone/home/rods"
BIG = f"{HOME}/big"
BIG_COUNT = 10_000
OWN, READ = 1200, 1050
ODD_NAME = 'odd & <name> it\'s "q" \u00e9\u1000'


# -- catalog fixtures: rows written with plain SQL ---------------------------------------------


def _coll(cat: Catalog, path: str) -> int:
    return cat.create_collection(path, "rods")


def _data(
    cat: Catalog, coll_id: int, name: str, size: int = 0, resc_id: int = 0, repls: int = 1
) -> int:
    data_id, ts = cat.next_id(), now()
    resc = resc_id or int(cat.db.execute("SELECT resc_id FROM r_resc_main").fetchone()[0])
    for repl in range(repls):
        cat.db.execute(
            "INSERT INTO r_data_main (data_id, coll_id, data_name, data_repl_num, data_size,"
            " data_path, data_owner_name, data_owner_zone, data_is_dirty, create_ts, modify_ts,"
            " resc_id) VALUES (?, ?, ?, ?, ?, ?, 'rods', 'tempZone', 1, ?, ?, ?)",
            (data_id, coll_id, name, repl, size, f"/vault/{name}.{repl}", ts, ts, resc),
        )
    cat.grant(data_id, int(cat.user("rods")["user_id"]), OWN)  # type: ignore[index]
    return data_id


def _avu(cat: Catalog, object_id: int, name: str, value: str, units: str = "") -> None:
    meta_id, ts = cat.next_id(), now()
    cat.db.execute(
        "INSERT INTO r_meta_main (meta_id, meta_attr_name, meta_attr_value, meta_attr_unit,"
        " create_ts, modify_ts) VALUES (?, ?, ?, ?, ?, ?)",
        (meta_id, name, value, units, ts, ts),
    )
    cat.db.execute(
        "INSERT INTO r_objt_metamap (object_id, meta_id, create_ts, modify_ts) VALUES (?,?,?,?)",
        (object_id, meta_id, ts, ts),
    )


def _populate(cat: Catalog) -> dict[str, int]:
    """A small tree: /home/rods/{a,b}, objects with AVUs, a root;leaf hierarchy."""
    ids: dict[str, int] = {}
    root = cat.add_resource("rootResc", "passthru", "localhost", "")
    leaf = cat.add_resource("leafResc", "unixfilesystem", "localhost", "/v/leaf")
    cat.db.execute("UPDATE r_resc_main SET resc_parent = ? WHERE resc_id = ?", (str(root), leaf))
    ids["a"], ids["b"] = _coll(cat, f"{HOME}/a"), _coll(cat, f"{HOME}/b")
    for i in range(3, 9):
        obj = _data(cat, ids["a"], f"obj-{i}", size=i)
        ids[f"obj-{i}"] = obj
        _avu(cat, obj, "A_meta", f"1{i}")
        _avu(cat, obj, "B_meta", f"2{i}")
        ids[f"dummy{i}"] = _data(cat, ids["a"], f"obj-dummy{i}")
    ids["two"] = _data(cat, ids["b"], "two", size=100, resc_id=leaf, repls=2)
    ids["Case"] = _data(cat, ids["b"], "caseSENSITIVE")
    ids["odd"] = _data(cat, ids["b"], ODD_NAME)
    _data(cat, ids["b"], "CASEsensitive")
    _avu(cat, ids["a"], "coll_attr", "x")
    _avu(cat, ids["a"], "coll_attr2", "y")
    ids["leaf"], ids["root"] = leaf, root
    cat.commit()
    return ids


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog.open(tmp_path / "catalog.sqlite")
    yield catalog
    catalog.close()


@pytest.fixture
def ids(cat: Catalog) -> dict[str, int]:
    return _populate(cat)


def q(select: list[int], *conds: tuple[int, str], options: int = 0, **kw: Any) -> GenQuery:
    return GenQuery(select=[(n, 1) for n in select], conditions=list(conds), options=options, **kw)


def names(cat: Catalog, query: GenQuery, access: Access | None = None) -> list[str]:
    return [row[0] for row in run(cat.db, query, access)]


def _code(exc: pytest.ExceptionInfo[IrodsError]) -> int:
    return exc.value.code


# -- the engine -----------------------------------------------------------------------------------


def test_like_patterns_become_case_sensitive_globs() -> None:
    assert like_to_glob("%a_b%") == "*a?b*"
    assert like_to_glob(r"x\_y\%") == "x_y%"
    assert like_to_glob("[*?]") == "[[][*][?]]"


def test_every_prc_column_on_our_schema_is_mapped() -> None:
    from irods.models import ModelBase

    kept = [n for n in ModelBase.columns() if not columns.is_empty_table_column(n) and n]
    missing = [n for n in kept if n not in columns.COLUMNS and n != 424]  # 424: iRODS 5 only
    assert missing == []


def test_conditions_equal_like_in_between(cat: Catalog, ids: dict[str, int]) -> None:
    assert names(cat, q([403], (403, "= 'obj-3'"))) == ["obj-3"]
    assert names(cat, q([403], (403, "like 'obj-dummy%'"), (403, "<> 'obj-dummy8'"))) == [
        f"obj-dummy{i}" for i in range(3, 8)
    ]
    assert names(cat, q([403], (403, "not like '%dummy%'"), (501, f"= '{HOME}/a'"))) == [
        f"obj-{i}" for i in range(3, 9)
    ]
    assert names(cat, q([403], (403, "in ('obj-4','two')"))) == ["obj-4", "two"]
    assert names(cat, q([403], (407, "between '4' '6'"))) == ["obj-4", "obj-5", "obj-6"]
    assert names(cat, q([403], (407, ">= '7'"), (407, "< '100'"))) == ["obj-7", "obj-8"]
    assert names(cat, q([403], (401, f"= '{ids['obj-5']}'"))) == ["obj-5"]


def test_like_is_case_sensitive_unless_upper_case_where(cat: Catalog, ids: dict[str, int]) -> None:
    assert names(cat, q([403], (403, "like '%SENSITIVE'"))) == ["caseSENSITIVE"]
    with pytest.raises(IrodsError) as exc:
        run(cat.db, q([403], (403, "= 'casesensitive'")))
    assert _code(exc) == code_of("CAT_NO_ROWS_FOUND")
    both = q([403], (403, "= 'CASESENSITIVE'"), options=UPPER_CASE_WHERE)
    assert names(cat, both) == ["CASEsensitive", "caseSENSITIVE"]


def test_begin_of_parent_of_compound_and_numeric_cast(cat: Catalog, ids: dict[str, int]) -> None:
    assert names(cat, q([501], (501, f"parent_of '{HOME}/a/x'"))) == [
        "/",
        "/tempZone",
        "/tempZone/home",
        HOME,
        f"{HOME}/a",
    ]
    assert names(cat, q([501], (501, f"begin_of '{HOME}/b/c'"), (501, "like '/tempZone/%'"))) == [
        "/tempZone/home",
        HOME,
        f"{HOME}/b",
    ]
    assert names(cat, q([403], (403, "= 'obj-3' || = 'two'"))) == ["obj-3", "two"]
    assert names(cat, q([403], (403, "like 'obj-%' && like '%-4'"))) == ["obj-4"]
    _avu(cat, ids["two"], "num", "10")
    _avu(cat, ids["obj-3"], "num", "9")
    assert names(cat, q([403], (600, "= 'num'"), (601, "n> '9.5'"))) == ["two"]
    assert names(cat, q([403], (600, "= 'num'"), (601, "n< '9.5'"))) == ["obj-3"]
    assert names(cat, q([403], (600, "= 'num'"), (601, "< '9.5'"))) == ["obj-3", "two"]  # text


@pytest.mark.parametrize(
    ("cond", "error"),
    [
        ("obj-3", "CAT_INVALID_ARGUMENT"),
        ("~ 'x'", "CAT_INVALID_ARGUMENT"),
        ("in ()", "CAT_INVALID_ARGUMENT"),
        ("between '1'", "CAT_INVALID_ARGUMENT"),
    ],
)
def test_bad_conditions_are_clean_errors(cat: Catalog, cond: str, error: str) -> None:
    with pytest.raises(IrodsError) as exc:
        run(cat.db, q([403], (403, cond)))
    assert _code(exc) == code_of(error)


def test_unknown_and_unlinkable_columns(cat: Catalog) -> None:
    with pytest.raises(IrodsError) as exc:
        run(cat.db, q([99999]))
    assert _code(exc) == code_of("CAT_UNKNOWN_TABLE")
    with pytest.raises(IrodsError) as exc:
        run(cat.db, q([102, 202]))  # zone and user tables have no link
    assert _code(exc) == code_of("CAT_FAILED_TO_LINK_TABLES")
    with pytest.raises(IrodsError) as exc:
        run(cat.db, q([1000]))  # delayed rules: not kept, so no rows
    assert _code(exc) == code_of("CAT_NO_ROWS_FOUND")


def test_distinct_by_default_and_no_distinct(cat: Catalog, ids: dict[str, int]) -> None:
    two = (403, "= 'two'")
    assert names(cat, q([403], two)) == ["two"]  # two replicas, one distinct row
    assert names(cat, q([403], two, options=NO_DISTINCT)) == ["two", "two"]


def test_default_order_and_order_by_desc(cat: Catalog, ids: dict[str, int]) -> None:
    rows = run(cat.db, q([404, 403, 501], (501, "like '/tempZone/home/rods/%'")))
    assert rows == sorted(rows, key=lambda r: (r[2], r[1], int(r[0])))
    desc = GenQuery(select=[(403, ORDER_BY_DESC)], conditions=[(501, f"= '{HOME}/a'")])
    got = names(cat, desc)
    assert got == sorted(got, reverse=True) and len(got) == 12
    asc = GenQuery(select=[(407, 1), (500, ORDER_BY)], conditions=[(403, "like 'obj-%'")])
    assert run(cat.db, asc)[0][1] == str(ids["a"])


def test_aggregates_group_by_the_other_columns(cat: Catalog, ids: dict[str, int]) -> None:
    per_coll = GenQuery(select=[(501, 1), (401, 6), (407, 4)], conditions=[(501, "like '%/a'")])
    assert run(cat.db, per_coll) == [[f"{HOME}/a", "12", str(sum(range(3, 9)))]]
    only = GenQuery(select=[(407, 3), (407, 2)], conditions=[(501, f"= '{HOME}/a'")])
    assert run(cat.db, only) == [["8", "0"]]
    avg = GenQuery(select=[(407, 5)], conditions=[(403, "in ('obj-3','obj-4')")])
    assert run(cat.db, avg) == [["3.5"]]


def test_repeated_avu_names_open_separate_joins(cat: Catalog, ids: dict[str, int]) -> None:
    sel = [403, 600, 601]
    both = q(sel, (600, "= 'A_meta'"), (601, "< '20'"), (600, "= 'B_meta'"), (601, ">= '20'"))
    assert len(run(cat.db, both)) == 6
    assert {r[1] for r in run(cat.db, both)} == {"A_meta"}  # selected columns: first join
    stomp = q(sel, (600, "= 'B_meta'"), (601, "< '28'"), (600, "= 'B_meta'"), (601, "like '2_'"))
    assert len(run(cat.db, stomp)) == 5
    _avu(cat, ids["obj-8"], "B_meta", "29")
    same = q(sel, (600, "= 'B_meta'"), (601, "= '28'"), (600, "= 'B_meta'"), (601, "= '29'"))
    assert names(cat, same) == ["obj-8"]
    colls = q([501], (610, "= 'coll_attr'"), (610, "= 'coll_attr2'"), (611, "= 'x'"))
    assert names(cat, colls) == [f"{HOME}/a"]
    with pytest.raises(IrodsError) as exc:
        run(cat.db, q([202], (640, "= 'a'"), (640, "= 'b'")))
    assert _code(exc) == code_of("CAT_INVALID_ARGUMENT")


def test_resource_name_and_hierarchy_of_replicas(cat: Catalog, ids: dict[str, int]) -> None:
    rows = run(cat.db, q([403, 409, 422, 423], (403, "= 'two'")))
    assert rows == [["two", "leafResc", "rootResc;leafResc", str(ids["leaf"])]]
    assert names(cat, q([403], (422, "= 'rootResc;leafResc'"))) == ["two"]
    assert names(cat, q([403], (422, "like 'rootResc;%'"))) == ["two"]
    assert names(cat, q([302], (317, f"= '{ids['root']}'"))) == ["leafResc"]


def test_access_joins_name_tokens_and_users(cat: Catalog, ids: dict[str, int]) -> None:
    rows = run(cat.db, q([403, 701, 202, 700], (403, "= 'obj-3'")))
    assert rows == [["obj-3", "own", "rods", str(OWN)]]
    public = int(cat.user("public")["user_id"])  # type: ignore[index]
    rows = run(cat.db, q([501, 711, 1300], (501, "= '/tempZone/home/public'")))
    assert ["/tempZone/home/public", "own", "public"] in rows
    members = run(cat.db, q([202], (901, "= 'public'"), (203, "<> 'rodsgroup'")))
    assert members == [["rods"]]
    assert run(cat.db, q([900, 901], (901, "= 'public'"))) == [[str(public), "public"]]


def test_non_admin_sees_only_what_it_may_read(cat: Catalog, ids: dict[str, int]) -> None:
    alice = cat.add_user("alice", "rodsuser")
    cat.grant(ids["obj-4"], alice, READ)
    cat.grant(ids["a"], alice, READ)
    access = Access(cat.group_ids(alice))
    assert names(cat, q([403], (403, "like 'obj-%'")), access) == ["obj-4"]
    got = names(cat, q([501], (501, "like '/tempZone/home/%'")), access)
    assert got == ["/tempZone/home/public", f"{HOME}/a"]  # public: via the group
    assert len(names(cat, q([202]), access)) >= 3  # users are not restricted


def test_offset_and_listing_plan_uses_indexes(cat: Catalog, ids: dict[str, int]) -> None:
    listing = q([403, 404], (501, f"= '{HOME}/a'"), offset=10)
    assert names(cat, listing) == ["obj-dummy7", "obj-dummy8"]
    sql, params = build_sql(q([403, 407], (501, f"= '{HOME}/a'")))
    plan = " | ".join(str(r[3]) for r in cat.db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING INDEX" in plan and "SCAN r_data_main" not in plan, plan


# -- API 702 through the unmodified client --------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict]]:
    data = tmp_path_factory.mktemp("genquery") / "data"
    cat = Catalog.open(data / "catalog.sqlite")
    ids = _populate(cat)
    big = _coll(cat, BIG)
    for i in range(BIG_COUNT):
        _data(cat, big, f"f{i:05d}", size=i)
    _coll(cat, f"{BIG}/sub")
    for i in range(1200):
        _avu(cat, ids["obj-3"], f"k{i:04d}", "1")
    alice = cat.add_user("alice", "rodsuser")
    cat.set_password(alice, "apw")
    cat.grant(ids["obj-4"], alice, READ)
    cat.grant(ids["a"], alice, READ)
    cat.commit()
    cat.close()
    with ServerProcess(data) as srv:
        yield srv, ids


@pytest.fixture
def sess(server: tuple[ServerProcess, dict]) -> Iterator[Any]:
    with server[0].session() as s:
        yield s


def test_listing_ten_thousand_objects_pages_and_is_fast(sess: Any) -> None:
    start = time.monotonic()
    objs = sess.collections.get(BIG).data_objects
    elapsed = time.monotonic() - start
    assert [o.name for o in objs[:2]] == ["f00000", "f00001"] and len(objs) == BIG_COUNT
    assert elapsed < 15, f"listing took {elapsed:.1f}s"
    assert [c.name for c in sess.collections.get(BIG).subcollections] == ["sub"]


def test_paging_batches_continue_and_close(sess: Any) -> None:
    query = sess.query(DataObject.name).filter(Collection.name == BIG)
    batches = [len(b) for b in query.get_batches()]
    # a full last page keeps the statement open: the client's next page is empty
    # (CAT_NO_ROWS_FOUND, which Query.execute turns into an empty batch), as on iRODS
    assert batches == [500] * (BIG_COUNT // 500) + [0]
    for _ in range(3):  # unfinished iterations close their query
        for _row in query:
            break
    assert query.limit(7).all().length == 7
    assert len(query.offset(BIG_COUNT - 3).all()) == 3
    assert sess.query(User.name).filter(User.name == "nobody").first() is None


def test_client_conditions_orders_and_aggregates(sess: Any, server: tuple) -> None:
    ids = server[1]
    got = sess.query(DataObject.name).filter(Like(DataObject.name, "obj-dummy%")).all()
    assert sorted(r[DataObject.name] for r in got) == [f"obj-dummy{i}" for i in range(3, 9)]
    got = sess.query(DataObject.name).filter(In(DataObject.id, [ids["obj-3"], ids["two"]])).all()
    assert {r[DataObject.name] for r in got} == {"obj-3", "two"}
    got = sess.query(DataObject.name).filter(Between(DataObject.size, (4, 5)))
    assert {r[DataObject.name] for r in got} == {"obj-4", "obj-5", "f00004", "f00005"}
    got = sess.query(DataObject.name).filter(
        NotLike(DataObject.name, "f%"), Like(DataObject.name, "%case%")
    )
    assert {r[DataObject.name] for r in got} == {"caseSENSITIVE"}
    names_desc = [r[User.name] for r in sess.query(User.name).order_by(User.name, order="desc")]
    assert names_desc == sorted(names_desc, reverse=True) and "rods" in names_desc
    row = sess.query(DataObject.size).filter(Collection.name == BIG).sum(DataObject.size).one()
    assert row[DataObject.size] == sum(range(BIG_COUNT))
    row = sess.query(DataObject.id).filter(Collection.name == BIG).count(DataObject.id).one()
    assert row[DataObject.id] == BIG_COUNT
    insensitive = sess.query(DataObject.name, case_sensitive=False)
    got = insensitive.filter(DataObject.name == "casesensitive").all()
    assert {r[DataObject.name] for r in got} == {"caseSENSITIVE", "CASEsensitive"}


def test_client_multiple_avu_criteria_and_metadata(sess: Any) -> None:
    q = (
        sess.query(DataObject, DataObjectMeta)
        .filter(DataObjectMeta.name == "A_meta", DataObjectMeta.value < "20")
        .filter(DataObjectMeta.name == "B_meta", DataObjectMeta.value >= "20")
    )
    assert len(list(q)) == 6
    meta = sess.metadata.get(DataObject, f"{HOME}/a/obj-3")
    assert len(meta) == 1202  # paged past 500 by the client's metadata manager
    assert sess.query(Collection.name).filter(CollectionMeta.name == "coll_attr").one()
    acl = sess.query(DataObject.name, DataAccess.name).filter(DataObject.name == "obj-3").one()
    assert acl[DataAccess.name] == "own"
    assert (
        sess.query(Collection.name, CollectionAccess.name)
        .filter(Collection.name == HOME)
        .one()[CollectionAccess.name]
        == "own"
    )
    assert sess.query(Group).filter(Group.name == "public").one()[Group.name] == "public"
    hier = sess.query(DataObject.resc_hier, Resource.name).filter(DataObject.name == "two").one()
    assert hier[DataObject.resc_hier] == "rootResc;leafResc" and hier[Resource.name] == "leafResc"


def test_client_non_admin_is_restricted(server: tuple) -> None:
    with server[0].session(user="alice", password="apw") as alice:
        got = [r[DataObject.name] for r in alice.query(DataObject.name)]
        assert got == ["obj-4"]


def test_client_round_trips_odd_names(sess: Any) -> None:
    row = sess.query(DataObject.name).filter(DataObject.name == ODD_NAME).one()
    assert row[DataObject.name] == ODD_NAME
    # iRODS pairs quotes inside "in (...)", so a name with a quote cannot be listed there
    got = sess.query(DataObject.name).filter(Like(DataObject.name, "odd & <%")).all()
    assert [r[DataObject.name] for r in got] == [ODD_NAME]


def _raw_query(sess: Any, conn: Any = None, **fields: Any) -> Any:
    """Send a GenQueryInp built by hand (options the client's Query does not expose) on
    ``conn``, or on a connection the session's pool hands out."""
    from irods.api_number import api_number
    from irods.message import (
        GenQueryRequest,
        GenQueryResponse,
        IntegerIntegerMap,
        IntegerStringMap,
        StringStringMap,
        iRODSMessage,
    )

    args: dict[str, Any] = {
        "maxRows": 10,
        "continueInx": 0,
        "partialStartIndex": 0,
        "options": 0,
        "KeyValPair_PI": StringStringMap({}),
        "InxIvalPair_PI": IntegerIntegerMap({DataObject.name.icat_id: 1}),
        "InxValPair_PI": IntegerStringMap({Collection.name.icat_id: f"= '{BIG}'"}),
    }
    args.update(fields)
    msg = iRODSMessage(
        "RODS_API_REQ", msg=GenQueryRequest(**args), int_info=api_number["GEN_QUERY_AN"]
    )
    if conn is not None:
        conn.send(msg)
        return conn.recv().get_main_message(GenQueryResponse)
    with sess.pool.get_connection() as held:
        held.send(msg)
        return held.recv().get_main_message(GenQueryResponse)


def test_total_row_count_continue_and_close_by_max_rows_zero(server: tuple) -> None:
    """general_query.cpp chlGenQuery: totalRowCount with the first page only; a
    continuation fetches from the same statement; maxRows 0 frees it; a continuation
    naming the freed slot dereferences NULL (cllGetRow) and the agent dies."""
    from irods.exception import SYS_INVALID_ZONE_NAME, NetworkException
    from irods.message import StringStringMap

    with server[0].session() as sess, sess.pool.get_connection() as conn:
        first = _raw_query(sess, conn, options=0x20)
        assert (first.rowCnt, first.totalRowCount) == (10, BIG_COUNT) and first.continueInx == 1
        nxt = _raw_query(sess, conn, continueInx=first.continueInx, options=0x20)
        assert nxt.SqlResult_PI[0].value[0] == "f00010"
        assert (nxt.continueInx, nxt.totalRowCount) == (first.continueInx, 0)
        closed = _raw_query(sess, conn, continueInx=first.continueInx, maxRows=0)
        assert closed.rowCnt == 0
        with pytest.raises(SYS_INVALID_ZONE_NAME):
            _raw_query(sess, conn, KeyValPair_PI=StringStringMap({"zone": "otherZone"}))
        with pytest.raises(NetworkException):
            _raw_query(sess, conn, continueInx=first.continueInx)


def test_a_full_last_page_keeps_the_statement_until_no_rows_found(server: tuple) -> None:
    """chlGenQuery: a page that fills maxRows answers continueInx > 0 even with no row
    left; the next continuation is CAT_NO_ROWS_FOUND and frees the slot (irods/irods#4157);
    a short page frees it at once (continueInx 0); AUTO_CLOSE answers -1."""
    from irods.exception import CAT_NO_ROWS_FOUND
    from irods.message import IntegerStringMap

    twelve = {"InxValPair_PI": IntegerStringMap({501: f"= '{HOME}/a'"})}
    with server[0].session() as sess, sess.pool.get_connection() as conn:
        full = _raw_query(sess, conn, maxRows=12, **twelve)
        assert (full.rowCnt, full.continueInx) == (12, 1)
        with pytest.raises(CAT_NO_ROWS_FOUND):
            _raw_query(sess, conn, continueInx=1, maxRows=12, **twelve)
        short = _raw_query(sess, conn, maxRows=13, **twelve)  # slot 0 is free again
        assert (short.rowCnt, short.continueInx) == (12, 0)
        auto = _raw_query(sess, conn, maxRows=5, options=0x100, **twelve)
        assert (auto.rowCnt, auto.continueInx) == (5, -1)
        again = _raw_query(sess, conn, maxRows=5, **twelve)
        assert again.continueInx == 1  # nothing was left open by the two above


def test_statement_table_is_per_connection_and_full_at_fifty(server: tuple) -> None:
    """low_level_odbc.cpp cllExecSqlWithResult: 50 statements per agent, the lowest free
    slot first, then CAT_STATEMENT_TABLE_FULL (no silent eviction); another connection
    has its own table, and a continuation of an index it never opened drops it."""
    from irods.exception import CAT_STATEMENT_TABLE_FULL, NetworkException
    from irods.message import IntegerStringMap

    srv = server[0]
    small = {"InxValPair_PI": IntegerStringMap({501: f"= '{HOME}/a'"}), "maxRows": 1}
    with srv.session() as one, one.pool.get_connection() as conn:
        opened = [_raw_query(one, conn, **small).continueInx for _ in range(50)]
        assert opened == list(range(1, 51))
        with pytest.raises(CAT_STATEMENT_TABLE_FULL):
            _raw_query(one, conn, **small)
        _raw_query(one, conn, continueInx=7, maxRows=0)
        assert _raw_query(one, conn, **small).continueInx == 7  # the freed slot is reused
        with srv.session() as two, two.pool.get_connection() as other:
            assert _raw_query(two, other, **small).continueInx == 1  # its own table
            with pytest.raises(NetworkException):
                _raw_query(two, other, continueInx=opened[-1], maxRows=100)
        rest = _raw_query(one, conn, continueInx=opened[-1], maxRows=100)
        assert (rest.rowCnt, rest.continueInx) == (11, 0)  # still there on its own agent


def test_a_continuation_naming_another_querys_slot_reads_its_rows(server: tuple) -> None:
    """chlGenQuery reads icss->stmtPtr[continueInx - 1] whatever query filled it and
    labels the values with the request's own columns: wrong rows, no error."""
    from irods.message import IntegerIntegerMap, IntegerStringMap

    with server[0].session() as sess, sess.pool.get_connection() as conn:
        objs = _raw_query(sess, conn, maxRows=2)  # BIG's objects, slot 0
        colls = {
            "InxIvalPair_PI": IntegerIntegerMap({Collection.name.icat_id: 1}),
            "InxValPair_PI": IntegerStringMap({Collection.name.icat_id: f"= '{BIG}'"}),
            "continueInx": objs.continueInx,
        }
        wrong = _raw_query(sess, conn, **colls)
        assert wrong.SqlResult_PI[0].attriInx == Collection.name.icat_id
        assert wrong.SqlResult_PI[0].value[:2] == ["f00002", "f00003"]
        _raw_query(sess, conn, continueInx=objs.continueInx, maxRows=0)


def test_pooled_client_paging_on_another_connection_breaks_as_on_a_real_zone(
    server: tuple,
) -> None:
    """What python-irodsclient itself does (query.py: every page through
    pool.get_connection()): the first page on one connection, the continuation on another
    that never opened the query; a real 5.0.2 zone dropped that connection."""
    from irods.exception import NetworkException

    with server[0].session() as sess:
        query = sess.query(DataObject.name).filter(Collection.name == BIG)
        a = sess.pool.get_connection()  # held: the first page goes to a second one, b
        first = query.execute()
        b = sess.pool.get_connection()  # the only idle one: b
        a.release()  # now the continuation can only go to a
        assert first.continue_index == 1
        with pytest.raises(NetworkException):
            query.continue_index(first.continue_index).execute()
        rest = _raw_query(sess, b, continueInx=first.continue_index, maxRows=100)
        assert rest.SqlResult_PI[0].value[0] == "f00500"  # b still holds it
        b.release()


def test_unknown_specific_query_is_a_clean_error(sess: Any) -> None:
    with pytest.raises(CAT_UNKNOWN_SPECIFIC_QUERY):
        next(iter(SpecificQuery(sess, alias="no_such_alias")))
    assert sess.query(Collection.name).filter(Collection.name == HOME).one()  # still usable
