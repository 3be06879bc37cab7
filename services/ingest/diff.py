"""Change detection: one directory's listing against one catalog query per collection.

Nothing is remembered between passes: what is in iRODS *is* the state.  A file is
unchanged when the replica it corresponds to has the same size and the same
modification time (whole seconds) as the file; PUT_SYNC and PUT_APPEND set the object's
modify time to the file's, so the rule holds for every operation.

Listings page on one connection (``services.isync.catalog.all_rows``): the worker's
sessions hold several connections after a large put, and an iRODS agent keeps a query's
cursor to itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from irods.column import Criterion
from irods.models import Collection, DataObject

from services.isync.catalog import all_rows
from shared.ingest.utils import PUT_OPERATIONS, Operation


@dataclass(frozen=True, slots=True)
class Replica:
    """One replica row of the catalog."""

    number: int
    resc_hier: str
    path: str
    size: int
    mtime: int

    def under(self, resource: str) -> bool:
        """True when ``resource`` is this replica's leaf or one of its ancestors."""
        return resource in self.resc_hier.split(";")


class Action(Enum):
    """What a file task must do with a file."""

    CREATE = "create"
    MODIFY = "modify"
    SKIP = "skip"


def _epoch(value: Any) -> int:
    if hasattr(value, "timestamp"):
        return int(value.timestamp())
    return int(value)


def list_data_objects(session: Any, collection: str) -> dict[str, list[Replica]]:
    """Every data object directly in ``collection``: name → replicas (one GenQuery)."""
    query = session.query(
        DataObject.name,
        DataObject.replica_number,
        DataObject.resc_hier,
        DataObject.path,
        DataObject.size,
        DataObject.modify_time,
    ).filter(Criterion("=", Collection.name, collection))
    out: dict[str, list[Replica]] = {}
    for row in all_rows(session, query):
        out.setdefault(row[DataObject.name], []).append(
            Replica(
                int(row[DataObject.replica_number]),
                row[DataObject.resc_hier] or "",
                row[DataObject.path] or "",
                int(row[DataObject.size] or 0),
                _epoch(row[DataObject.modify_time]),
            )
        )
    for replicas in out.values():
        replicas.sort(key=lambda r: r.number)
    return out


def list_subcollections(session: Any, collection: str) -> list[str]:
    """Full paths of the collections directly in ``collection`` (one GenQuery)."""
    query = session.query(Collection.name).filter(
        Criterion("=", Collection.parent_name, collection)
    )
    return [row[Collection.name] for row in all_rows(session, query)]


def same(replica: Replica, size: int, mtime: float) -> bool:
    return replica.size == size and replica.mtime == int(mtime)


def classify(
    replicas: list[Replica],
    size: int,
    mtime: float,
    op: Operation,
    physical_path: str,
    to_resource: str | None = None,
    force: bool = False,
) -> Action:
    """The action for one file given its catalog replicas (``force``: ignore the cache)."""
    if not replicas:
        return Action.CREATE
    if op is Operation.PUT:
        return Action.SKIP
    if op is Operation.REGISTER_AS_REPLICA_SYNC and to_resource:
        mine = [r for r in replicas if r.under(to_resource) and r.path == physical_path]
        if not mine:
            return Action.MODIFY
        return Action.MODIFY if force or not same(mine[0], size, mtime) else Action.SKIP
    if op in PUT_OPERATIONS:
        ref = replicas[0]
    else:
        ref = next((r for r in replicas if r.path == physical_path), replicas[0])
    return Action.MODIFY if force or not same(ref, size, mtime) else Action.SKIP
