"""services/isync/catalog.py against the test server: listings page on one connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from irods.models import Collection, DataObject

from devtools.irods_server.catalog import Catalog
from devtools.irods_server.launcher import ServerProcess
from services.isync import catalog

HOME = "/tempZone/home/rods"
BIG = f"{HOME}/two-thousand"
COUNT = 2000


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose catalog holds a collection of 2,000 objects (rows written directly)."""
    data: Path = tmp_path_factory.mktemp("catalog") / "data"
    Catalog.seed(data, {BIG: [f"o{i:04d}" for i in range(COUNT)], f"{BIG}/sub": ["s0", "s1"]})
    with ServerProcess(data) as srv:
        yield srv


def _widen(session: Any, n: int = 3) -> None:
    """Leave ``n`` idle connections in the session's pool (as after a parallel transfer)."""
    held = [session.pool.get_connection() for _ in range(n)]
    for conn in held:
        conn.release()


def test_listing_two_thousand_objects_through_a_pool_of_several_connections(
    big_server: ServerProcess,
) -> None:
    """The client pages on whatever idle connection its pool pops; the agent keeps each
    cursor to itself (general_query.cpp chlGenQuery), so every page must stay on one."""
    with big_server.session() as session:
        for _ in range(4):
            _widen(session)
            found = catalog.objects_in(session, BIG, recursive=True)
            assert len(found) == COUNT + 2
            assert f"{BIG}/o1999" in found and f"{BIG}/sub/s1" in found
            assert catalog.collections_under(session, BIG) == {BIG, f"{BIG}/sub"}
        assert len(session.pool.idle) == 3 and not session.pool.active


def test_all_rows_holds_one_connection_and_leaves_no_statement_open(
    big_server: ServerProcess,
) -> None:
    with big_server.session() as session:
        _widen(session)
        query = session.query(DataObject.name).filter(Collection.name == BIG)
        for _ in range(3):
            names = [r[DataObject.name] for r in catalog.all_rows(session, query)]
            assert sorted(names) == [f"o{i:04d}" for i in range(COUNT)]
        # 2,000 is a multiple of the page size: the last page's statement is freed by the
        # CAT_NO_ROWS_FOUND that follows it, so 50 more listings never fill the table
        for _ in range(50):
            assert len(catalog.all_rows(session, query.limit(1000))) == COUNT
        none = session.query(DataObject.name).filter(Collection.name == f"{BIG}/nothing")
        assert catalog.all_rows(session, none) == []


def test_a_connection_that_fails_mid_query_is_dropped_not_pooled(
    big_server: ServerProcess,
) -> None:
    from irods.exception import NetworkException

    with big_server.session() as session:
        query = session.query(DataObject.name).filter(Collection.name == BIG)
        calls = {"n": 0}
        real = query.continue_index

        def failing(inx: int) -> Any:
            calls["n"] += 1
            if calls["n"] == 2:
                raise NetworkException("cut")
            return real(inx)

        query.continue_index = failing
        with pytest.raises(NetworkException):
            catalog.all_rows(session, query)
        assert not session.pool.active and not session.pool.idle
        assert len(catalog.all_rows(session, real(0))) == COUNT  # a fresh connection
