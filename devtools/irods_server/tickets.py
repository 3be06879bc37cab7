"""Tickets: API 723 TICKET_ADMIN, and access through a ticket a client has supplied.

Follows iRODS 4.3.4:

- ``plugins/database/src/db_plugin.cpp`` ``db_mod_ticket_op`` for the operations:
  ``create`` (``read`` or ``write``, on a data object or collection the caller owns; a
  ticket string may not be a number: ``CAT_TICKET_INVALID``; no such path:
  ``CAT_UNKNOWN_COLLECTION``), ``mod`` (``uses``, ``write-file``, ``write-bytes``,
  ``expire`` and ``add``/``remove`` of ``host``, ``user``, ``group``; each updates
  ``modify_ts``), ``delete`` and ``session``. A caller acts only on its own tickets
  (another's: ``CAT_TICKET_INVALID``); a rodsadmin with ``ADMIN_KW`` acts on any
  (``execute_ticket_operation_as_admin``; a non-admin sending it:
  ``CAT_INSUFFICIENT_PRIVILEGE_LEVEL``). The tables and their defaults are
  ``icatSysTables.sql.pp.in``'s (a new ticket may write 10 files).
- ``plugins/database/src/mid_level_routines.cpp`` ``checkObjIdByTicket`` and
  ``cmlCheckTicketRestrictions`` for *using* one: once a connection has sent
  ``session <ticket>``, the access checks of its data paths (open, get, put, stat) go by
  the ticket instead of the ACLs (``cmlCheckDataObjId``): the ticket must be for the
  object or for a collection above it (a ``write`` ticket for a write), unexpired
  (``CAT_TICKET_EXPIRED``), for this client's host, user and groups if it names any
  (``CAT_TICKET_HOST_EXCLUDED`` / ``_USER_`` / ``_GROUP_``), within its uses
  (``CAT_TICKET_USES_EXCEEDED``) and, for a write, its file count
  (``CAT_TICKET_WRITE_USES_EXCEEDED``); each use is counted once per object.
  A ticket of the wrong type for the object is ``CAT_NO_ACCESS_PERMISSION``, as a real
  5.0.2 zone answers a put through a read ticket.
- ``plugins/database/src/general_query.cpp`` ``genqAppendAccessCheck``: with a session
  ticket, a non-admin's GenQuery sees only what the ticket covers (see ``genquery.py``),
  and the ticket columns show non-admins only their own tickets.

Not kept: write-byte counting at close (``cmlTicketUpdateWriteBytes``): ``write-bytes``
is stored and reported, never enforced.
"""

from __future__ import annotations

import calendar
import contextvars
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from irods.message import TicketAdminRequest

from . import namespace as ns
from .catalog import now
from .dispatch import Reply, Request, Session, UserInfo, api
from .errors import IrodsError

if TYPE_CHECKING:
    from .catalog import Catalog

TICKET_ADMIN_AN = 723
READ_OBJECT, MODIFY_OBJECT = 1050, 1120  # acl.READ, acl.WRITE (acl imports this module)
OWN = 1200
DEFAULT_WRITE_FILE_LIMIT = 10
# rodsErrorTable.h codes python-irodsclient 3.3.0 has no class for
CAT_HOSTNAME_INVALID = -855000
CAT_TICKET_USER_EXCLUDED = -893000
CAT_TICKET_HOST_EXCLUDED = -894000
CAT_TICKET_GROUP_EXCLUDED = -895000
CAT_TICKET_WRITE_USES_EXCEEDED = -896000
CAT_TICKET_WRITE_BYTES_EXCEEDED = -897000


@dataclass
class ActiveTicket:
    """The ticket a connection has supplied (``session``), and its use counting."""

    string: str
    host: str
    last_use: int = 0  # object id last counted against uses_limit
    last_write: int = 0  # object id last counted against write_file_limit


# one per connection: each connection runs in its own asyncio task (wire.Channel)
ACTIVE: contextvars.ContextVar[ActiveTicket | None] = contextvars.ContextVar(
    "irods_session_ticket", default=None
)


def active_string() -> str:
    """The supplied ticket of the current connection ('' when none)."""
    t = ACTIVE.get()
    return t.string if t is not None else ""


# -- using a ticket ------------------------------------------------------------------------------


def allows(cat: Catalog, user: UserInfo, object_id: int, needed: int) -> bool | None:
    """Whether the connection's ticket grants ``needed`` on ``object_id`` (None: no ticket
    supplied, so the ACLs decide). Raises the ticket's own errors (expired, excluded, used
    up, invalid)."""
    active = ACTIVE.get()
    if active is None:
        return None
    if needed > MODIFY_OBJECT:  # delete, own: never through a ticket
        return False
    modify = needed > READ_OBJECT
    row = _covering_ticket(cat, active.string, object_id, write_only=modify)
    if row is None:
        if modify and _covering_ticket(cat, active.string, object_id, write_only=False):
            return False  # a read ticket used for a write
        raise IrodsError("CAT_TICKET_INVALID", "the session ticket does not cover this object")
    expiry = str(row["ticket_expiry_ts"] or "")
    if expiry.strip().isdigit() and 0 < int(expiry) < int(time.time()):
        raise IrodsError("CAT_TICKET_EXPIRED", "the ticket has expired")
    check_restrictions(cat, int(row["ticket_id"]), active.host, user)
    ticket_id = int(row["ticket_id"])
    if modify:
        byte_limit = int(row["write_byte_limit"] or 0)
        if byte_limit > 0 and int(row["write_byte_count"] or 0) > byte_limit:
            raise IrodsError(CAT_TICKET_WRITE_BYTES_EXCEEDED, "ticket write bytes exceeded")
        file_limit = int(row["write_file_limit"] or 0)
        if file_limit > 0:
            if int(row["write_file_count"] or 0) > file_limit:
                raise IrodsError(CAT_TICKET_WRITE_USES_EXCEEDED, "ticket write uses exceeded")
            if active.last_write != object_id:
                cat.db.execute(
                    "UPDATE r_ticket_main SET write_file_count = write_file_count + 1"
                    " WHERE ticket_id = ?",
                    (ticket_id,),
                )
            active.last_write = object_id
    uses_limit = int(row["uses_limit"] or 0)
    if uses_limit > 0 and active.last_use != object_id:
        if int(row["uses_count"] or 0) >= uses_limit:
            raise IrodsError("CAT_TICKET_USES_EXCEEDED", "ticket uses exceeded")
        cat.db.execute(
            "UPDATE r_ticket_main SET uses_count = uses_count + 1 WHERE ticket_id = ?",
            (ticket_id,),
        )
        active.last_use = object_id
    return True


def _covering_ticket(
    cat: Catalog, ticket: str, object_id: int, *, write_only: bool
) -> sqlite3.Row | None:
    """The r_ticket_main row of ``ticket`` if it is for the object or a collection above it."""
    row = cat.db.execute(
        "SELECT coll_name FROM r_coll_main WHERE coll_id = ? OR coll_id IN"
        " (SELECT coll_id FROM r_data_main WHERE data_id = ?) LIMIT 1",
        (object_id, object_id),
    ).fetchone()
    if row is None:
        return None
    type_clause = " AND ticket_type = 'write'" if write_only else ""
    zone_root = f"/{cat.zone}"
    path = str(row[0])
    while path and path != zone_root and path != "/":
        found: sqlite3.Row | None = cat.db.execute(
            "SELECT * FROM r_ticket_main WHERE ticket_string = ?" + type_clause + " AND"
            " (object_id = ? OR object_id IN"
            " (SELECT coll_id FROM r_coll_main WHERE coll_name = ?))",
            (ticket, object_id, path),
        ).fetchone()
        if found is not None:
            return found
        path = ns.split(path)[0]
    return None


def check_restrictions(cat: Catalog, ticket_id: int, host: str, user: UserInfo) -> None:
    """``cmlCheckTicketRestrictions``: hosts, users (``name`` or ``name#zone``), groups."""
    hosts = [r[0] for r in cat.db.execute(_ALLOWED["host"][1], (ticket_id,))]
    if hosts and host not in hosts:
        raise IrodsError(CAT_TICKET_HOST_EXCLUDED, "this client's host may not use the ticket")
    users = [r[0] for r in cat.db.execute(_ALLOWED["user"][1], (ticket_id,))]
    if users and user.name not in users and f"{user.name}#{user.zone}" not in users:
        raise IrodsError(CAT_TICKET_USER_EXCLUDED, f"{user.name} may not use the ticket")
    groups = [r[0] for r in cat.db.execute(_ALLOWED["group"][1], (ticket_id,))]
    if groups:
        member = cat.db.execute(
            "SELECT 1 FROM r_user_group ug JOIN r_user_main g ON g.user_id = ug.group_user_id"
            " WHERE ug.user_id = ? AND g.user_type_name = 'rodsgroup' AND g.user_name IN ("
            + ", ".join("?" * len(groups))
            + ")",
            (user.id, *groups),
        ).fetchone()
        if member is None:
            raise IrodsError(CAT_TICKET_GROUP_EXCLUDED, f"{user.name} is in no allowed group")


# -- API 723 -------------------------------------------------------------------------------------

# restriction kind -> (table, select, insert, delete)
_ALLOWED = {
    "host": (
        "r_ticket_allowed_hosts",
        "SELECT host FROM r_ticket_allowed_hosts WHERE ticket_id = ?",
        "INSERT OR IGNORE INTO r_ticket_allowed_hosts (ticket_id, host) VALUES (?, ?)",
        "DELETE FROM r_ticket_allowed_hosts WHERE ticket_id = ? AND host = ?",
    ),
    "user": (
        "r_ticket_allowed_users",
        "SELECT user_name FROM r_ticket_allowed_users WHERE ticket_id = ?",
        "INSERT OR IGNORE INTO r_ticket_allowed_users (ticket_id, user_name) VALUES (?, ?)",
        "DELETE FROM r_ticket_allowed_users WHERE ticket_id = ? AND user_name = ?",
    ),
    "group": (
        "r_ticket_allowed_groups",
        "SELECT group_name FROM r_ticket_allowed_groups WHERE ticket_id = ?",
        "INSERT OR IGNORE INTO r_ticket_allowed_groups (ticket_id, group_name) VALUES (?, ?)",
        "DELETE FROM r_ticket_allowed_groups WHERE ticket_id = ? AND group_name = ?",
    ),
}
# mod <ticket> <attribute> <value>: the r_ticket_main column each sets
_LIMITS = {
    "uses": "uses_limit",
    "write-file": "write_file_limit",
    "write-bytes": "write_byte_limit",
}


@api(TICKET_ADMIN_AN)
async def ticket_admin(session: Session, req: Request) -> Reply:
    user = session.require_user()
    inp = req.parse(TicketAdminRequest)
    op, ticket = str(inp.arg1 or ""), str(inp.arg2 or "")
    args = [str(getattr(inp, f"arg{i}") or "") for i in (3, 4, 5)]
    pairs = inp.KeyValPair_PI
    kvp = set(pairs.keyWord) if pairs is not None and pairs.ssLen else set()
    cat = session.state.catalog
    if op == "session":
        host = args[0] or str(session.scratch.get("client_addr", ""))
        ACTIVE.set(ActiveTicket(ticket, host))
        return Reply()
    admin_mode = "irodsAdmin" in kvp
    if admin_mode and not user.is_admin:
        raise IrodsError("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", f"{user.name} is not a rodsadmin")
    if op == "create":
        _create(cat, user, ticket, args[0], args[1])
        return Reply()
    if op not in ("mod", "delete"):
        raise IrodsError("CAT_INVALID_ARGUMENT", f"invalid ticket operation {op!r}")
    ticket_id = _find(cat, ticket, None if admin_mode else user.id)
    if op == "delete":
        for table, *_ in _ALLOWED.values():
            cat.db.execute(f"DELETE FROM {table} WHERE ticket_id = ?", (ticket_id,))
        cat.db.execute("DELETE FROM r_ticket_main WHERE ticket_id = ?", (ticket_id,))
        return Reply()
    _modify(cat, ticket_id, args)
    return Reply()


def _create(cat: Catalog, user: UserInfo, ticket: str, kind: str, path: str) -> None:
    if not ticket or ticket.lstrip("-").isdigit():
        raise IrodsError("CAT_TICKET_INVALID", "a ticket string cannot be empty or a number")
    target = ns.object_id(cat, ns.normalize(path)) if path.startswith("/") else None
    if target is None:
        raise IrodsError("CAT_UNKNOWN_COLLECTION", f"{path}: no such data object or collection")
    obj_type, obj_id = target
    if not user.is_admin and not _owns(cat, user, obj_id):
        # cmlCheckDataObjOnly / cmlCheckDir with ACCESS_OWN
        raise IrodsError("CAT_NO_ACCESS_PERMISSION", f"{user.name} does not own {path}")
    if cat.db.execute("SELECT 1 FROM r_ticket_main WHERE ticket_string = ?", (ticket,)).fetchone():
        raise IrodsError("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", "that ticket string exists")
    ts = now()
    cat.db.execute(
        "INSERT INTO r_ticket_main (ticket_id, ticket_string, ticket_type, user_id, object_id,"
        " object_type, write_file_limit, create_ts, modify_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            cat.next_id(),
            ticket,
            "write" if kind.startswith("write") else "read",
            user.id,
            obj_id,
            "data" if obj_type == "d" else "collection",
            DEFAULT_WRITE_FILE_LIMIT,
            ts,
            ts,
        ),
    )


def _owns(cat: Catalog, user: UserInfo, object_id: int) -> bool:
    row = cat.db.execute(
        "SELECT max(access_type_id) FROM r_objt_access WHERE object_id = ? AND user_id IN ("
        " SELECT ? UNION SELECT group_user_id FROM r_user_group WHERE user_id = ?)",
        (object_id, user.id, user.id),
    ).fetchone()
    return row is not None and row[0] is not None and int(row[0]) >= OWN


def _find(cat: Catalog, ticket: str, owner_id: int | None) -> int:
    """The ticket's id, by string or by id; only the owner's unless ``owner_id`` is None."""
    owner = "" if owner_id is None else " AND user_id = ?"
    extra: tuple[int, ...] = () if owner_id is None else (owner_id,)
    for column, value in (("ticket_string", ticket), ("ticket_id", ticket)):
        if column == "ticket_id" and not ticket.isdigit():
            continue
        row = cat.db.execute(
            f"SELECT ticket_id FROM r_ticket_main WHERE {column} = ?{owner}",
            (value, *extra),
        ).fetchone()
        if row is not None:
            return int(row[0])
    raise IrodsError("CAT_TICKET_INVALID", f"no ticket {ticket!r} of yours")


def _modify(cat: Catalog, ticket_id: int, args: list[str]) -> None:
    attribute, value, extra = args
    ts = now()
    if attribute in _LIMITS:
        if not value.lstrip("-").isdigit():
            raise IrodsError("CAT_INVALID_ARGUMENT", f"{attribute}: {value!r} is not a number")
        cat.db.execute(
            f"UPDATE r_ticket_main SET {_LIMITS[attribute]} = ?, modify_ts = ? WHERE ticket_id = ?",
            (int(value), ts, ticket_id),
        )
        return
    if attribute.startswith("expir"):
        cat.db.execute(
            "UPDATE r_ticket_main SET ticket_expiry_ts = ?, modify_ts = ? WHERE ticket_id = ?",
            (expiry_value(value), ts, ticket_id),
        )
        return
    if attribute in ("add", "remove") and value in _ALLOWED:
        _table, _select, insert, delete = _ALLOWED[value]
        if attribute == "add":
            extra = _checked_restriction(cat, value, extra)
        cat.db.execute(insert if attribute == "add" else delete, (ticket_id, extra))
        cat.db.execute(
            "UPDATE r_ticket_main SET modify_ts = ? WHERE ticket_id = ?", (ts, ticket_id)
        )
        return
    raise IrodsError("CAT_INVALID_ARGUMENT", f"invalid ticket modification {attribute!r}")


def expiry_value(value: str) -> str:
    """``db_mod_ticket_op``'s expiry: '' or 0 clears it; epoch seconds or
    ``YYYY-MM-DD.hh:mm:ss`` (UTC) become 11-digit epoch seconds."""
    value = value.strip()
    if value in ("", "0"):
        return ""
    if value.isdigit():
        return f"{int(value):011d}"
    try:
        parsed = time.strptime(value, "%Y-%m-%d.%H:%M:%S")
    except ValueError:
        raise IrodsError(
            "CAT_INVALID_ARGUMENT", f"expiry {value!r}: epoch seconds or YYYY-MM-DD.hh:mm:ss"
        ) from None
    return f"{calendar.timegm(parsed):011d}"


def _checked_restriction(cat: Catalog, kind: str, value: str) -> str:
    if kind == "host":
        try:  # iRODS stores the address (convertHostToIp)
            return socket.gethostbyname(value)
        except OSError:
            raise IrodsError(CAT_HOSTNAME_INVALID, f"cannot resolve host {value!r}") from None
    name, _, zone = value.partition("#")
    row = cat.user(name, zone or None)
    if kind == "user" and (row is None or row["user_type_name"] == "rodsgroup"):
        raise IrodsError("CAT_INVALID_USER", f"no such user {value}")
    if kind == "group" and (row is None or row["user_type_name"] != "rodsgroup"):
        raise IrodsError("CAT_INVALID_GROUP", f"no such group {value}")
    return value
