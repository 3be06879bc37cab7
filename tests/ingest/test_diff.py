"""services/ingest/diff.py against the test server: a worker's long-lived session with
several connections still lists a 2,000-object collection correctly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.irods_server.catalog import Catalog
from devtools.irods_server.launcher import ServerProcess
from services.ingest import diff

BIG = "/tempZone/home/rods/ingest-two-thousand"
COUNT = 2000


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("diff") / "data"
    subcollections: dict[str, list[str]] = {
        f"{BIG}/d{i:03d}": [] for i in range(600)
    }  # more than one page too
    Catalog.seed(data, {BIG: [f"f{i:04d}" for i in range(COUNT)], **subcollections})
    with ServerProcess(data) as srv:
        yield srv


def test_listing_two_thousand_objects_with_several_pooled_connections(
    big_server: ServerProcess,
) -> None:
    """As after a large put (python-irodsclient opens extra connections in the same pool):
    each page must go to the agent that holds the query's cursor (general_query.cpp)."""
    with big_server.session() as session:
        for _ in range(4):
            held = [session.pool.get_connection() for _ in range(3)]
            for conn in held:
                conn.release()
            listed = diff.list_data_objects(session, BIG)
            assert sorted(listed) == [f"f{i:04d}" for i in range(COUNT)]
            assert all(len(r) == 1 and r[0].number == 0 for r in listed.values())
            subs = diff.list_subcollections(session, BIG)
            assert sorted(subs) == [f"{BIG}/d{i:03d}" for i in range(600)]
        assert diff.list_data_objects(session, f"{BIG}/d000") == {}
