"""Change detection: one directory's listing against one catalog query per collection.

Two checks, both must pass for a file to be unchanged: the replica it corresponds to has
the same size and the same modification time (whole seconds) as the file (PUT_SYNC and
PUT_APPEND set the object's modify time to the file's, so the rule holds for every
operation), and what the job recorded of the file when it last synced it (size, mtime and
ctime in nanoseconds, inode; :data:`services.ingest.store.entries_table`) is what the
file shows now.  The second catches a same-size rewrite within the same second, and a
file replaced by another; a file only its ctime changed on (chmod, chown, a link count)
gets the modify hooks without a transfer, as the anchor's metadata-only sync.

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
    META = "meta"  # only the ctime changed: the modify hooks fire, nothing is transferred
    SKIP = "skip"


def _epoch(value: Any) -> int:
    if hasattr(value, "timestamp"):
        return int(value.timestamp())
    return int(value)


def list_data_objects(
    session: Any, collection: str, name: str | None = None
) -> dict[str, list[Replica]]:
    """Every data object directly in ``collection`` (or only the one called ``name``):
    name → replicas (one GenQuery)."""
    query = session.query(
        DataObject.name,
        DataObject.replica_number,
        DataObject.resc_hier,
        DataObject.path,
        DataObject.size,
        DataObject.modify_time,
    ).filter(Criterion("=", Collection.name, collection))
    if name is not None:
        query = query.filter(Criterion("=", DataObject.name, name))
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


Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def compare(now: Stat | None, known: Stat | None) -> Action | None:
    """What the recorded state says: None (nothing recorded), SKIP, META or MODIFY."""
    if now is None or known is None:
        return None
    if (now[0], now[1], now[3]) != (known[0], known[1], known[3]):
        return Action.MODIFY
    return Action.SKIP if now[2] == known[2] else Action.META


def classify(
    replicas: list[Replica],
    size: int,
    mtime: float,
    op: Operation,
    physical_path: str,
    to_resource: str | None = None,
    force: bool = False,
    stat: Stat | None = None,
    known: Stat | None = None,
) -> Action:
    """The action for one file given its catalog replicas and what the job recorded of it
    (``stat``: the file now, ``known``: at its last sync; ``force``: ignore the cache).

    As the anchor: ``PUT`` never touches an existing object (a ctime-only change still
    gets the modify hooks there, as its metadata-only sync did); ``NO_OP`` keeps no
    object, so only the record tells a file it has seen from a new one.
    """
    recorded = compare(stat, known)
    if op is Operation.NO_OP and not force and recorded is Action.SKIP:
        return Action.SKIP
    if not replicas:
        return Action.CREATE
    if op is Operation.PUT:
        return Action.META if recorded is Action.META and not force else Action.SKIP
    if op is Operation.REGISTER_AS_REPLICA_SYNC and to_resource:
        mine = [r for r in replicas if r.under(to_resource) and r.path == physical_path]
        if not mine:
            return Action.MODIFY
        ref = mine[0]
    elif op in PUT_OPERATIONS:
        ref = replicas[0]
    else:
        ref = next((r for r in replicas if r.path == physical_path), replicas[0])
    if force or not same(ref, size, mtime):
        return Action.MODIFY
    return recorded or Action.SKIP
