"""GenQuery2 (API 10221) as iRODS 4.3.4 answers it (``server/api/src/rs_genquery2.cpp``,
grammar ``server/genquery2/dsl/parser.y``): rows as JSON, the SQL text, the column
mappings; a non-admin sees only what it may read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from irods.exception import SYS_INVALID_INPUT_PARAM, SYS_INVALID_ZONE_NAME
from irods.genquery2 import GenQuery2

from devtools.irods_server.api_genquery2 import like_to_glob, tokenize

HOME = "/tempZone/home/rods"


@pytest.fixture
def tree(irods_session: Any, unique_name: str) -> Iterator[str]:
    base = f"{HOME}/{unique_name}"
    for sub in ("a", "b", "c_x"):
        irods_session.collections.create(f"{base}/{sub}")
    for name, size in (("one", 1), ("two", 2), ("three", 3)):
        with irods_session.data_objects.open(f"{base}/a/{name}", "w") as f:
            f.write(b"x" * size)
    yield base
    irods_session.collections.remove(base, recurse=True, force=True)


def q(session: Any, text: str) -> list[list[str]]:
    return list(GenQuery2(session).execute(text))


def test_select_where_and_or_not_in_between_like(irods_session: Any, tree: str) -> None:
    s = irods_session
    assert q(s, f"SELECT COLL_NAME WHERE COLL_NAME = '{tree}/a'") == [[f"{tree}/a"]]
    both = q(s, f"select COLL_NAME where COLL_NAME = '{tree}/a' or COLL_NAME = '{tree}/b'")
    assert sorted(both) == [[f"{tree}/a"], [f"{tree}/b"]]
    like = f"SELECT COLL_NAME WHERE COLL_NAME LIKE '{tree}/%' AND COLL_NAME LIKE '%_x'"
    assert q(s, like) == [[f"{tree}/c_x"]]
    names = f"SELECT DATA_NAME WHERE COLL_NAME = '{tree}/a' AND"
    assert q(s, f"{names} DATA_NAME IN ('one', 'three') ORDER BY DATA_NAME") == [
        ["one"],
        ["three"],
    ]
    assert q(s, f"{names} NOT (DATA_NAME = 'one') ORDER BY DATA_NAME DESC") == [
        ["two"],
        ["three"],
    ]
    assert q(s, f"{names} DATA_SIZE BETWEEN '2' AND '3' ORDER BY DATA_NAME LIMIT 1") == [["three"]]
    assert q(s, f"{names} DATA_NAME NOT LIKE 't%'") == [["one"]]
    rows = q(s, f"SELECT DATA_NAME, DATA_SIZE, DATA_ID WHERE COLL_NAME = '{tree}/a'"
             " ORDER BY DATA_SIZE OFFSET 1")  # fmt: skip
    assert [r[:2] for r in rows] == [["two", "2"], ["three", "3"]]
    assert all(r[2].isdigit() for r in rows)


def test_distinct_by_default_and_no_distinct(irods_session: Any, tree: str) -> None:
    text = f"COLL_NAME WHERE COLL_NAME = '{tree}/a'"
    assert q(irods_session, f"SELECT {text}") == [[f"{tree}/a"]]
    assert (
        q(irods_session, f"SELECT NO DISTINCT {text} AND DATA_NAME LIKE '%'") == [[f"{tree}/a"]] * 3
    )


def test_sql_and_column_mappings(irods_session: Any) -> None:
    g = GenQuery2(irods_session)
    assert "R_COLL_MAIN" in g.get_sql(f"SELECT COLL_NAME WHERE COLL_NAME = '{HOME}'").upper()
    mappings = g.get_column_mappings()
    assert mappings["DATA_ID"] == {"R_DATA_MAIN": "data_id"}
    assert mappings["COLL_NAME"] == {"R_COLL_MAIN": "coll_name"}
    assert mappings["META_DATA_ATTR_NAME"] == {"R_META_MAIN": "meta_attr_name"}


def test_attack_a_rodsuser_sees_only_what_it_may_read(
    irods_session: Any, irods_user: Any, tree: str
) -> None:
    name, user = irods_user()
    assert q(user, f"SELECT COLL_NAME WHERE COLL_NAME LIKE '{tree}%'") == []
    assert q(user, f"SELECT DATA_NAME WHERE COLL_NAME = '{tree}/a'") == []
    own = f"/tempZone/home/{name}"
    assert q(user, f"SELECT COLL_NAME WHERE COLL_NAME = '{own}'") == [[own]]
    assert len(q(irods_session, f"SELECT DATA_NAME WHERE COLL_NAME = '{tree}/a'")) == 3


def test_attack_sql_injection_through_literals_and_names(irods_session: Any, tree: str) -> None:
    s = irods_session
    assert q(s, f"SELECT COLL_NAME WHERE COLL_NAME = '{tree}/a'' OR ''1''=''1'") == []
    for bad in (
        "SELECT COLL_NAME; DROP TABLE r_coll_main",
        "SELECT r_coll_main.coll_name",
        "SELECT COLL_NAME WHERE COLL_NAME = 1 OR 1 = 1",
        "SELECT count(COLL_NAME)",
        "SELECT NO_SUCH_COLUMN",
        "DELETE FROM R_COLL_MAIN",
        "",
    ):
        with pytest.raises(SYS_INVALID_INPUT_PARAM):
            q(s, bad)
    assert q(s, f"SELECT COLL_NAME WHERE COLL_NAME = '{tree}/a'") == [[f"{tree}/a"]]


def test_unknown_zone(irods_session: Any) -> None:
    with pytest.raises(SYS_INVALID_ZONE_NAME):
        GenQuery2(irods_session).execute("SELECT COLL_NAME", zone="otherZone")


def test_tokenizer_and_like_translation() -> None:
    assert tokenize("select COLL_NAME where X = 'it''s'") == [
        ("kw", "SELECT"), ("id", "COLL_NAME"), ("kw", "WHERE"), ("id", "X"), ("op", "="),
        ("str", "it's"),
    ]  # fmt: skip
    assert like_to_glob("a%b_c*[") == "a*b?c[*][[]"
