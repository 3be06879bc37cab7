"""Catalog look-ups: one GenQuery per tree rather than one per file.

Every query here runs through :func:`all_rows`, which pages a query on *one* connection.
An iRODS agent keeps a query's cursor in its own statement table
(``plugins/database/src/general_query.cpp`` ``chlGenQuery``), while python-irodsclient
sends each 500-row page on whatever idle connection its pool pops: in a session with
several connections a listing of more than 500 rows then reads another agent's empty slot
(the agent dies, the client sees a dropped connection) or another query's rows. Services
that list the catalog (ingest's ``diff.py``, the API's DAC look-up) use it too.
"""

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


def all_rows(session: Any, query: Any) -> list[Any]:
    """Every row of a python-irodsclient GenQuery ``query``, all its pages sent on one
    connection of ``session``'s pool, held for the whole query (a connection that fails
    mid-query is dropped, not returned to the pool). No rows is an empty list."""
    from irods.api_number import api_number
    from irods.exception import CAT_NO_ROWS_FOUND
    from irods.message import GenQueryResponse, iRODSMessage
    from irods.results import ResultSet

    def send(conn: Any, page: Any) -> ResultSet | None:
        # Query._message() is the GenQueryInp python-irodsclient itself sends (query.py)
        msg = iRODSMessage("RODS_API_REQ", msg=page._message(), int_info=api_number["GEN_QUERY_AN"])
        conn.send(msg)
        try:
            return ResultSet(conn.recv().get_main_message(GenQueryResponse))
        except CAT_NO_ROWS_FOUND:
            return None

    rows: list[Any] = []
    conn = session.pool.get_connection()
    try:
        inx = 0
        while (result := send(conn, query.continue_index(inx))) is not None:
            rows.extend(result)
            inx = int(result.continue_index)
            if inx <= 0:
                break
    except BaseException:
        # the reply may be half read: drop the connection (its agent frees the statement)
        conn.disconnect()
        conn.release(destroy=True)
        raise
    conn.release()
    return rows


def _rows(query: Any) -> list[Any]:
    return all_rows(query.sess, query)


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


def collections_among(session: Any, paths: list[str]) -> set[str]:
    """Which of `paths` are collections, in one query."""
    from irods.column import In

    if len(paths) == 1:
        return set(paths) if collection_exists(session, paths[0]) else set()
    query = session.query(Collection.name).filter(In(Collection.name, list(paths)))
    return {r[Collection.name] for r in _rows(query)}


def collection_exists(session: Any, path: str) -> bool:
    return bool(_rows(session.query(Collection.id).filter(Collection.name == path)))
