"""GenQuery orders rows only where iRODS adds an ORDER BY, as a real zone does.

``generateSQL`` (``plugins/database/src/general_query.cpp``) appends ``order by`` for the
columns the client flags (``setOrderByUser``), then for COL_COLL_NAME, COL_DATA_NAME and
COL_DATA_REPL_NUM when selected (``setOrderBy``), and for nothing else: other queries come
back in the database's order (here: catalog id order), not sorted by the selected columns.
Driven with unmodified python-irodsclient.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from irods.models import Collection, DataObject

HOME = "/tempZone/home/rods"
# created in this order: catalog id order differs from size order and from name order
NAMES = ["e", "a", "c", "d", "b"]
SIZES = [5, 1, 3, 4, 2]


@pytest.fixture
def sized(irods_session: Any, unique_name: str) -> Iterator[str]:
    coll = f"{HOME}/{unique_name}"
    irods_session.collections.create(coll)
    for name, size in zip(NAMES, SIZES, strict=True):
        with irods_session.data_objects.open(f"{coll}/{name}", "w") as f:
            f.write(b"x" * size)
    yield coll
    irods_session.collections.remove(coll, force=True)


def _sizes(query: Any) -> list[int]:
    return [int(row[DataObject.size]) for row in query]


def test_no_order_is_added_unless_asked(irods_session: Any, sized: str) -> None:
    """Only DATA_SIZE selected: no ORDER BY, rows in catalog (creation) order."""
    query = irods_session.query(DataObject.size).filter(Collection.name == sized)
    assert _sizes(query) == SIZES


def test_order_by_is_honoured(irods_session: Any, sized: str) -> None:
    query = irods_session.query(DataObject.size).filter(Collection.name == sized)
    assert _sizes(query.order_by(DataObject.size)) == sorted(SIZES)
    desc = irods_session.query(DataObject.size).filter(Collection.name == sized)
    assert _sizes(desc.order_by(DataObject.size, order="desc")) == sorted(SIZES, reverse=True)


def test_data_name_is_always_ordered_when_selected(irods_session: Any, sized: str) -> None:
    """``setOrderBy(COL_DATA_NAME)``: selecting DATA_NAME sorts by it without a flag."""
    query = irods_session.query(DataObject.size, DataObject.name).filter(Collection.name == sized)
    assert [r[DataObject.name] for r in query] == sorted(NAMES)
