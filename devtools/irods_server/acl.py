"""Access control: the ``r_objt_access`` rows behind every permission check.

Access levels are the ``access_type`` tokens of iRODS 4.3 (``catalog_utilities.hpp``):
a user's level on an object is the best level granted to the user itself or to any
group it belongs to (``public`` included). :func:`require` lets a rodsadmin pass (the
data paths' convention here); the metadata and ACL APIs use :func:`level` and, as iRODS
does, want a rodsadmin to ask for admin mode instead. A new object gets ``own`` for its
creator, unless its parent collection has inheritance on: then it gets a copy of the
parent's ACLs instead (a new collection also inherits the flag), exactly as iRODS's
catalog does (``chlRegDataObj`` / ``chlRegColl``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import tickets
from .catalog import ACCESS_TYPES, now
from .errors import IrodsError

if TYPE_CHECKING:
    from .catalog import Catalog
    from .dispatch import UserInfo

NULL = 1000
READ_METADATA = 1040
READ = 1050  # read_object
CREATE_METADATA = 1070
MODIFY_METADATA = 1080
DELETE_METADATA = 1090
WRITE = 1120  # modify_object
DELETE_OBJECT = 1130
OWN = 1200

# every access_type token of iRODS 4.3, name -> id (the r_tokn_main rows)
LEVELS: dict[str, int] = ACCESS_TYPES


def name_of(access_type_id: int) -> str:
    """The 4.3 token name of an access type id (the number itself if it has none)."""
    names = (name for name, number in LEVELS.items() if number == access_type_id)
    return next(names, str(access_type_id))


def level(cat: Catalog, user: UserInfo, object_id: int) -> int:
    """The best access ``user`` has on ``object_id`` through itself or its groups (0: none)."""
    row = cat.db.execute(_LEVEL_SQL, (object_id, user.id, user.id, cat.zone)).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


# the user itself, its groups and ``public`` (as Catalog.group_ids), in one statement
_LEVEL_SQL = (
    "SELECT max(access_type_id) FROM r_objt_access WHERE object_id = ? AND user_id IN ("
    " SELECT ? UNION SELECT group_user_id FROM r_user_group WHERE user_id = ?"
    " UNION SELECT user_id FROM r_user_main WHERE user_name = 'public' AND zone_name = ?)"
)


def allowed(cat: Catalog, user: UserInfo, object_id: int, needed: int) -> bool:
    """Whether ``user`` may act on ``object_id`` at level ``needed`` (rodsadmin always may).
    A connection that supplied a ticket goes by the ticket instead (``tickets.allows``)."""
    if user.is_admin:
        return True
    by_ticket = tickets.allows(cat, user, object_id, needed)
    if by_ticket is not None:
        return by_ticket
    return level(cat, user, object_id) >= needed


def require(cat: Catalog, user: UserInfo, object_id: int, needed: int, path: str = "") -> None:
    """Raise ``CAT_NO_ACCESS_PERMISSION`` unless ``user`` has at least ``needed`` on the object."""
    if not allowed(cat, user, object_id, needed):
        what = path or f"object {object_id}"
        message = f"{user.name} lacks {name_of(needed)} on {what}"
        raise IrodsError("CAT_NO_ACCESS_PERMISSION", message)


def grant(cat: Catalog, object_id: int, user_id: int, access_type_id: int, ts: str) -> None:
    """Set ``user_id``'s access on ``object_id``; ``NULL`` removes it. No commit."""
    if access_type_id <= NULL:
        cat.db.execute(
            "DELETE FROM r_objt_access WHERE object_id = ? AND user_id = ?", (object_id, user_id)
        )
        return
    cat.db.execute(
        "INSERT INTO r_objt_access (object_id, user_id, access_type_id, create_ts, modify_ts)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (object_id, user_id)"
        " DO UPDATE SET access_type_id = excluded.access_type_id, modify_ts = excluded.modify_ts",
        (object_id, user_id, access_type_id, ts, ts),
    )


def inherits(cat: Catalog, coll_id: int) -> bool:
    """Whether the collection ``coll_id`` has ACL inheritance on."""
    sql = "SELECT coll_inheritance FROM r_coll_main WHERE coll_id = ?"
    row = cat.db.execute(sql, (coll_id,)).fetchone()
    return row is not None and row[0] == "1"


def set_initial(
    cat: Catalog,
    object_id: int,
    owner_id: int,
    parent_coll_id: int | None,
    parent_inherits: bool | None = None,
) -> None:
    """The ACLs of a new data object or collection. No commit (the caller's transaction).

    Without inheritance on the parent: ``own`` for ``owner_id``. With it: a copy of the
    parent's ACLs, and a new collection gets the inheritance flag too. ``parent_inherits``
    saves the lookup when the caller has the parent's row at hand.
    """
    ts = now()
    if parent_inherits is None:
        parent_inherits = parent_coll_id is not None and inherits(cat, parent_coll_id)
    if parent_coll_id is not None and parent_inherits:
        cat.db.execute(
            "INSERT OR REPLACE INTO r_objt_access"
            " (object_id, user_id, access_type_id, create_ts, modify_ts)"
            " SELECT ?, user_id, access_type_id, ?, ? FROM r_objt_access WHERE object_id = ?",
            (object_id, ts, ts, parent_coll_id),
        )
        cat.db.execute(
            "UPDATE r_coll_main SET coll_inheritance = '1' WHERE coll_id = ?",
            (object_id,),
        )
        return
    grant(cat, object_id, owner_id, OWN, ts)


def remove_all(cat: Catalog, object_id: int) -> None:
    """Drop every ACL of a removed object. No commit."""
    cat.db.execute("DELETE FROM r_objt_access WHERE object_id = ?", (object_id,))
