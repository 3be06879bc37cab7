"""Specific queries (API 722; ``iadmin asq``/``rsq`` through API 701) as iRODS 4.3.4's
``db_specific_query_op``, ``db_add_specific_query_op`` and ``db_del_specific_query_op``
(``plugins/database/src/db_plugin.cpp``) answer them, run as SQL on the catalog."""

from __future__ import annotations

from typing import Any

import pytest
from irods.exception import (
    CAT_INVALID_ARGUMENT,
    CAT_NO_ROWS_FOUND,
    CAT_SQL_ERR,
    CAT_SUCCESS_BUT_WITH_NO_INFO,
    CAT_UNKNOWN_SPECIFIC_QUERY,
    SYS_NO_API_PRIV,
)
from irods.models import DataObject
from irods.query import SpecificQuery

HOME = "/tempZone/home/rods"


def rows(query: SpecificQuery) -> list[list[Any]]:
    return [[r[i] for i in sorted(r)] for r in query]


def test_builtin_queries_of_a_fresh_install(irods_session: Any) -> None:
    aliases = {r[0] for r in rows(SpecificQuery(irods_session, alias="ls"))}
    assert {"ls", "lsl", "ShowCollAcls", "findQueryByAlias", "ilsLADataObjects"} <= aliases
    found = rows(SpecificQuery(irods_session, alias="findQueryByAlias", args=["lsl"]))
    assert found == [["lsl", "select alias, sqlStr from R_SPECIFIC_QUERY where sqlStr like ?"]]
    acls = rows(SpecificQuery(irods_session, alias="ShowCollAcls", args=[HOME]))
    assert ["rods", "tempZone", "own", "rodsadmin"] in acls


def test_register_run_page_and_remove(irods_session: Any, unique_name: str) -> None:
    coll = f"{HOME}/{unique_name}"
    irods_session.collections.create(coll)
    try:
        for i in range(5):
            irods_session.data_objects.create(f"{coll}/obj{i}")
        sql = (
            "select DATA_NAME, DATA_ID from R_DATA_MAIN join R_COLL_MAIN using (COLL_ID)"
            " where COLL_NAME = ? order by DATA_NAME"
        )
        q = SpecificQuery(irods_session, sql, unique_name, [DataObject.name, DataObject.id],
                          args=[coll])  # fmt: skip
        q.register()
        with pytest.raises(CAT_INVALID_ARGUMENT, match=r"^Alias is not unique$"):
            q.register()
        first = q.execute(limit=2)
        assert [r[DataObject.name] for r in first] == ["obj0", "obj1"]
        assert first.continue_index > 0  # the rest waits on this connection
        names = [r[DataObject.name] for r in SpecificQuery(irods_session, alias=unique_name,
                 columns=[DataObject.name, DataObject.id], args=[coll])]  # fmt: skip
        assert names == [f"obj{i}" for i in range(5)]
        ils = rows(SpecificQuery(irods_session, alias="ilsLADataObjects", args=[coll, "3", "1"]))
        assert [(r[1], r[9], r[11]) for r in ils] == [
            (f"obj{i}", "rods", "1200") for i in (1, 2, 3)
        ]
        by_sql = rows(SpecificQuery(irods_session, sql=sql, args=[coll]))  # the SQL itself
        assert len(by_sql) == 5
        with pytest.raises(CAT_NO_ROWS_FOUND):
            next(iter(SpecificQuery(irods_session, alias=unique_name, args=["/nowhere"])))
        q.remove()
        with pytest.raises(CAT_UNKNOWN_SPECIFIC_QUERY):
            next(iter(SpecificQuery(irods_session, alias=unique_name, args=[coll])))
        with pytest.raises(CAT_SUCCESS_BUT_WITH_NO_INFO):
            q.remove()
    finally:
        irods_session.collections.remove(coll, recurse=True, force=True)


def test_attack_a_rodsuser_may_run_but_not_register_or_remove(
    irods_session: Any, irods_user: Any, unique_name: str
) -> None:
    _, user = irods_user()
    with pytest.raises(SYS_NO_API_PRIV):
        SpecificQuery(user, "select user_name, user_id from R_USER_MAIN", unique_name).register()
    with pytest.raises(SYS_NO_API_PRIV):
        SpecificQuery(user, alias="ls").remove()
    assert rows(SpecificQuery(user, alias="findQueryByAlias", args=["ls"]))  # may run


def test_attack_arguments_are_bound_not_spliced(irods_session: Any) -> None:
    q = SpecificQuery(irods_session, alias="findQueryByAlias", args=["x' OR '1'='1"])
    with pytest.raises(CAT_NO_ROWS_FOUND):
        next(iter(q))


def test_attack_a_registered_statement_cannot_change_the_catalog(
    irods_session: Any, unique_name: str
) -> None:
    bad = SpecificQuery(irods_session, "delete from R_COLL_MAIN", unique_name)
    bad.register()
    try:
        with pytest.raises(CAT_SQL_ERR):
            next(iter(SpecificQuery(irods_session, alias=unique_name)))
        assert irods_session.collections.get(HOME).name == "rods"
    finally:
        bad.remove()


def test_a_too_short_query_is_refused(irods_session: Any) -> None:
    with pytest.raises(CAT_INVALID_ARGUMENT):
        SpecificQuery(irods_session, "sel", "short").register()
