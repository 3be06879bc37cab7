"""Catalog look-ups: one GenQuery per tree rather than one per file."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from irods.column import Like
from irods.models import Collection, DataObject


@dataclass(frozen=True)
class RemoteObject:
    """A data object as the catalog sees it (its best replica)."""

    path: str
    size: int
    checksum: str | None
    good: bool
    mtime: int


def _rows(query: Any) -> list[Any]:
    from irods.exception import CAT_NO_ROWS_FOUND

    try:
        return list(query.get_results())
    except CAT_NO_ROWS_FOUND:
        return []


def _merge(found: dict[str, RemoteObject], row: Any) -> None:
    path = posixpath.join(row[Collection.name], row[DataObject.name])
    mtime = row[DataObject.modify_time]
    obj = RemoteObject(
        path=path,
        size=int(row[DataObject.size] or 0),
        checksum=row[DataObject.checksum] or None,
        good=str(row[DataObject.replica_status]) == "1",
        mtime=int(mtime.timestamp()) if mtime is not None else 0,
    )
    old = found.get(path)
    if old is None or (obj.good and not old.good):
        found[path] = obj


_COLUMNS = (
    Collection.name,
    DataObject.name,
    DataObject.size,
    DataObject.checksum,
    DataObject.replica_status,
    DataObject.modify_time,
)


def objects_in(session: Any, coll: str, recursive: bool) -> dict[str, RemoteObject]:
    """Every data object directly in `coll` (and below it when `recursive`), by path."""
    found: dict[str, RemoteObject] = {}
    for row in _rows(session.query(*_COLUMNS).filter(Collection.name == coll)):
        _merge(found, row)
    if recursive:
        prefix = coll.rstrip("/") + "/"
        for row in _rows(session.query(*_COLUMNS).filter(Like(Collection.name, prefix + "%"))):
            if row[Collection.name].startswith(prefix):
                _merge(found, row)
    return found


def collections_under(session: Any, coll: str) -> set[str]:
    """`coll` itself (if it exists) and every collection below it."""
    prefix = coll.rstrip("/") + "/"
    out = {
        r[Collection.name]
        for r in _rows(session.query(Collection.name).filter(Collection.name == coll))
    }
    for row in _rows(session.query(Collection.name).filter(Like(Collection.name, prefix + "%"))):
        if row[Collection.name].startswith(prefix):
            out.add(row[Collection.name])
    return out


def stat_object(session: Any, path: str) -> RemoteObject | None:
    """The data object at `path`, or None."""
    coll, name = posixpath.split(path)
    query = session.query(*_COLUMNS).filter(Collection.name == coll).filter(DataObject.name == name)
    found: dict[str, RemoteObject] = {}
    for row in _rows(query):
        _merge(found, row)
    return found.get(path)


def collection_exists(session: Any, path: str) -> bool:
    return bool(_rows(session.query(Collection.id).filter(Collection.name == path)))
