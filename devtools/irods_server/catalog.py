"""The catalog: an SQLite mirror of the iRODS ICAT tables, bootstrapped like a fresh install.

:meth:`Catalog.open` applies ``schema.sql`` and, on an empty database only, creates what
``irods_setup`` would: zone ``tempZone``, rodsadmin ``rods``, group ``public``, the home and
trash collections and resource ``demoResc``. Lookups for users, groups and resources live
here; collections and data objects are in ``namespace.py``, permissions in ``acl.py``.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import IrodsError
from .state import DEFAULT_RESOURCE

SCHEMA = Path(__file__).with_name("schema.sql")
FIRST_ID = 10000

# access_type tokens, as iRODS 4.3 stores them (catalog_utilities.hpp)
ACCESS_TYPES = {
    "null": 1000,
    "execute": 1010,
    "read_annotation": 1020,
    "read_system_metadata": 1030,
    "read_metadata": 1040,
    "read_object": 1050,
    "write_annotation": 1060,
    "create_metadata": 1070,
    "modify_metadata": 1080,
    "delete_metadata": 1090,
    "administer_object": 1100,
    "create_object": 1110,
    "modify_object": 1120,
    "delete_object": 1130,
    "create_token": 1140,
    "delete_token": 1150,
    "curate": 1160,
    "own": 1200,
}
USER_TYPES = ("rodsadmin", "rodsuser", "groupadmin", "rodsgroup")
OWN = ACCESS_TYPES["own"]
READ = ACCESS_TYPES["read_object"]
NO_EXPIRY = "9999-12-31"


def now() -> str:
    """The current time as iRODS stores it: 11-digit zero-padded epoch seconds."""
    return f"{int(time.time()):011d}"


class Catalog:
    """One SQLite connection holding the whole catalog; used from the event loop only."""

    def __init__(self, db: sqlite3.Connection, zone: str) -> None:
        self.db = db
        self.zone = zone
        # resource rows by name / id / parent id, read on every open and close: cached,
        # and dropped by a (connection-local) trigger whenever r_resc_main changes
        self._resc: dict[tuple[str, Any], Any] = {}
        self._resc_changing = False

    @classmethod
    def open(cls, path: Path, zone: str = "tempZone", vault_root: Path | None = None) -> Catalog:
        """Open (creating and bootstrapping once) the catalog database at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")  # survives a killed server, not a power cut
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA.read_text())
        cat = cls(db, zone)
        cat._watch_resources()
        if db.execute("SELECT COUNT(*) FROM r_objt_seq").fetchone()[0] == 0:
            cat._bootstrap(vault_root if vault_root is not None else path.parent / "vault")
        return cat

    def _watch_resources(self) -> None:
        self.db.create_function("irods_resc_changed", 0, self._resources_changed)
        for op in ("INSERT", "UPDATE", "DELETE"):
            self.db.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS resc_{op.lower()} AFTER {op} ON r_resc_main"
                " BEGIN SELECT irods_resc_changed(); END"
            )

    def _resources_changed(self) -> None:
        self._resc.clear()
        self._resc_changing = True  # not cached again until that transaction has ended

    def _resc_cached(self, key: tuple[str, Any], sql: str, one: bool) -> Any:
        if self._resc_changing:
            if self.db.in_transaction:  # uncommitted resource changes: ask the database
                cur = self.db.execute(sql, (key[1],))
                return cur.fetchone() if one else cur.fetchall()
            self._transaction_ended()
        try:
            return self._resc[key]
        except KeyError:
            cur = self.db.execute(sql, (key[1],))
            value = self._resc[key] = cur.fetchone() if one else cur.fetchall()
            return value

    def close(self) -> None:
        self.db.close()

    # -- ids and transactions -------------------------------------------------------------

    def next_id(self) -> int:
        """The next value of the shared object-id sequence."""
        row = self.db.execute("UPDATE r_objt_seq SET next_id = next_id + 1 RETURNING next_id")
        return int(row.fetchone()[0]) - 1

    def commit(self) -> None:
        self.db.commit()
        self._transaction_ended()

    def rollback(self) -> None:
        self.db.rollback()
        self._transaction_ended()

    def _transaction_ended(self) -> None:
        if self._resc_changing:  # resources changed (or not, if rolled back): cache afresh
            self._resc.clear()
            self._resc_changing = False

    # -- users and groups -----------------------------------------------------------------

    def user(self, name: str, zone: str | None = None) -> sqlite3.Row | None:
        """The ``r_user_main`` row of a user or group, or None."""
        return self.db.execute(
            "SELECT * FROM r_user_main WHERE user_name = ? AND zone_name = ?",
            (name, zone or self.zone),
        ).fetchone()

    def group_ids(self, user_id: int) -> list[int]:
        """Ids of every group the user is in, including ``public`` and the user itself."""
        ids = {user_id}
        ids.update(
            r[0]
            for r in self.db.execute(
                "SELECT group_user_id FROM r_user_group WHERE user_id = ?", (user_id,)
            )
        )
        public = self.user("public")
        if public is not None:
            ids.add(int(public["user_id"]))
        return sorted(ids)

    def password(self, user_id: int) -> str | None:
        """The user's own (non-temporary) password, None when it has none."""
        row = self.db.execute(
            "SELECT rcat_password FROM r_user_password WHERE user_id = ? AND pass_expiry_ts = ?",
            (user_id, NO_EXPIRY),
        ).fetchone()
        return None if row is None else str(row[0])

    def passwords(self, user_id: int) -> list[str]:
        """Every password the user may log in with now: its own plus unexpired temporary ones."""
        rows = self.db.execute(
            "SELECT rcat_password, pass_expiry_ts FROM r_user_password WHERE user_id = ?",
            (user_id,),
        ).fetchall()
        t = int(time.time())
        return [str(r[0]) for r in rows if r[1] == NO_EXPIRY or int(r[1]) > t]

    def set_password(self, user_id: int, password: str) -> None:
        """Replace the user's password (and drop its temporary ones)."""
        ts = now()
        self.db.execute("DELETE FROM r_user_password WHERE user_id = ?", (user_id,))
        self.db.execute(
            "INSERT INTO r_user_password (user_id, rcat_password, pass_expiry_ts, create_ts,"
            " modify_ts) VALUES (?, ?, ?, ?, ?)",
            (user_id, password, NO_EXPIRY, ts, ts),
        )

    def add_temp_password(self, user_id: int, password: str, ttl_seconds: int) -> None:
        """A temporary password (PAM, temp-password APIs) valid for ``ttl_seconds``."""
        ts = now()
        self.db.execute(
            "INSERT INTO r_user_password (user_id, rcat_password, pass_expiry_ts, create_ts,"
            " modify_ts) VALUES (?, ?, ?, ?, ?)",
            (user_id, password, f"{int(time.time()) + ttl_seconds:011d}", ts, ts),
        )

    def add_user(self, name: str, user_type: str, zone: str | None = None) -> int:
        """Insert a user or group row (its personal-group row too, and ``public`` membership
        for users). Raises ``CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME`` if it exists."""
        if user_type not in USER_TYPES:
            raise IrodsError("CAT_INVALID_USER_TYPE", f"invalid user type {user_type!r}")
        if self.user(name, zone) is not None:
            raise IrodsError("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", f"{name} exists")
        uid, ts = self.next_id(), now()
        self.db.execute(
            "INSERT INTO r_user_main (user_id, user_name, user_type_name, zone_name,"
            " create_ts, modify_ts) VALUES (?, ?, ?, ?, ?, ?)",
            (uid, name, user_type, zone or self.zone, ts, ts),
        )
        self.add_member(uid, uid)
        public = self.user("public")
        if user_type != "rodsgroup" and public is not None:
            self.add_member(int(public["user_id"]), uid)
        return uid

    def add_member(self, group_id: int, user_id: int) -> None:
        ts = now()
        self.db.execute(
            "INSERT OR IGNORE INTO r_user_group (group_user_id, user_id, create_ts, modify_ts)"
            " VALUES (?, ?, ?, ?)",
            (group_id, user_id, ts, ts),
        )

    # -- collections (bootstrap and home collections; namespace.py does the rest) --------

    def create_collection(self, path: str, owner: str, owner_zone: str | None = None) -> int:
        """Insert a collection row owned by ``owner`` (an ``own`` ACL); parent must exist."""
        parent = path.rsplit("/", 1)[0] or "/"
        owner_row = self.user(owner, owner_zone)
        if owner_row is None:
            raise IrodsError("CAT_INVALID_USER", f"no user {owner}")
        cid, ts = self.next_id(), now()
        self.db.execute(
            "INSERT INTO r_coll_main (coll_id, parent_coll_name, coll_name, coll_owner_name,"
            " coll_owner_zone, create_ts, modify_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cid, parent, path, owner, owner_zone or self.zone, ts, ts),
        )
        self.grant(cid, int(owner_row["user_id"]), OWN)
        return cid

    def grant(self, object_id: int, user_id: int, access_type_id: int) -> None:
        """Set (replace) the access of ``user_id`` on ``object_id``."""
        ts = now()
        self.db.execute(
            "INSERT OR REPLACE INTO r_objt_access (object_id, user_id, access_type_id,"
            " create_ts, modify_ts) VALUES (?, ?, ?, ?, ?)",
            (object_id, user_id, access_type_id, ts, ts),
        )

    def add_empty_objects(self, path: str, names: list[str], owner: str = "rods") -> None:
        """Catalog rows for empty data objects ``names`` in collection ``path`` (created if
        missing), one good replica each on the default resource, ``owner`` with ``own``:
        a fixture for listing tests, thousands of objects without a round trip each (no
        vault file is written; reading one answers as a lost file would)."""
        row = self.db.execute("SELECT coll_id FROM r_coll_main WHERE coll_name = ?", (path,))
        found = row.fetchone()
        coll_id = int(found[0]) if found else self.create_collection(path, owner)
        owner_row = self.user(owner)
        resc = self.resource(DEFAULT_RESOURCE)
        if owner_row is None or resc is None:
            raise IrodsError("CAT_INVALID_USER", f"no user {owner} or no {DEFAULT_RESOURCE}")
        ts = now()
        for name in names:
            data_id = self.next_id()
            self.db.execute(
                "INSERT INTO r_data_main (data_id, coll_id, data_name, data_repl_num,"
                " data_size, data_path, data_owner_name, data_owner_zone, data_is_dirty,"
                " create_ts, modify_ts, resc_id) VALUES (?, ?, ?, 0, 0, ?, ?, ?, 1, ?, ?, ?)",
                (
                    data_id,
                    coll_id,
                    name,
                    f"/nonexistent/{data_id}",
                    owner,
                    self.zone,
                    ts,
                    ts,
                    int(resc["resc_id"]),
                ),
            )
            self.grant(data_id, int(owner_row["user_id"]), OWN)

    @classmethod
    def seed(cls, data_dir: Path, collections: Mapping[str, list[str]]) -> None:
        """Write a server data directory whose catalog holds ``collections`` (path → names
        of empty objects, see :meth:`add_empty_objects`), for a server started on it."""
        cat = cls.open(data_dir / "catalog.sqlite")
        try:
            for path, names in collections.items():
                cat.add_empty_objects(path, names)
            cat.commit()
        finally:
            cat.close()

    # -- resources --------------------------------------------------------------------------

    def resource(self, name: str) -> sqlite3.Row | None:
        sql = "SELECT * FROM r_resc_main WHERE resc_name = ?"
        return self._resc_cached(("name", name), sql, True)

    def resource_names(self) -> frozenset[str]:
        """Every resource's name (what an agent loads when it starts)."""
        rows = self.db.execute("SELECT resc_name FROM r_resc_main").fetchall()
        return frozenset(str(r[0]) for r in rows)

    def resource_by_id(self, resc_id: int) -> sqlite3.Row | None:
        sql = "SELECT * FROM r_resc_main WHERE resc_id = ?"
        return self._resc_cached(("id", int(resc_id)), sql, True)

    def children(self, resc_id: int) -> list[sqlite3.Row]:
        """Child resources of ``resc_id``, by name."""
        sql = "SELECT * FROM r_resc_main WHERE resc_parent = ? ORDER BY resc_name"
        return list(self._resc_cached(("kids", str(resc_id)), sql, False))

    def _parent(self, row: sqlite3.Row) -> sqlite3.Row | None:
        parent = row["resc_parent"]
        return self.resource_by_id(int(parent)) if parent else None

    def resc_hier(self, resc_id: int) -> str:
        """The hierarchy string ``root;child;leaf`` of a resource."""
        row = self.resource_by_id(resc_id)
        if row is None:
            raise IrodsError("SYS_INVALID_RESC_INPUT", f"no resource id {resc_id}")
        names = [str(row["resc_name"])]
        while (row := self._parent(row)) is not None:
            names.append(str(row["resc_name"]))
        return ";".join(reversed(names))

    def root_of(self, resc_id: int) -> sqlite3.Row:
        """The root of the hierarchy that holds ``resc_id``."""
        row = self.resource_by_id(resc_id)
        if row is None:
            raise IrodsError("SYS_INVALID_RESC_INPUT", f"no resource id {resc_id}")
        while (parent := self._parent(row)) is not None:
            row = parent
        return row

    def leaf_for(self, name: str) -> sqlite3.Row:
        """The leaf resource to write to for a root, inner or leaf resource ``name``.

        Also accepts a hierarchy string (``root;leaf``): its last element is the leaf.
        A coordinating resource picks a child: random at random, others the first.
        """
        row = self.resource(name.rsplit(";", 1)[-1])
        if row is None:
            raise IrodsError("SYS_INVALID_RESC_INPUT", f"unknown resource {name!r}")
        while kids := self.children(int(row["resc_id"])):
            row = random.choice(kids) if row["resc_type_name"] == "random" else kids[0]
        if row["resc_type_name"] in ("passthru", "random", "replication", "roundrobin"):
            raise IrodsError("SYS_INVALID_RESC_INPUT", f"resource {name!r} has no leaf")
        return row

    def add_resource(
        self,
        name: str,
        resc_type: str,
        host: str = "localhost",
        vault_path: str = "",
        context: str = "",
        zone: str | None = None,
    ) -> int:
        if self.resource(name) is not None:
            raise IrodsError("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", f"resource {name} exists")
        rid, ts = self.next_id(), now()
        self.db.execute(
            "INSERT INTO r_resc_main (resc_id, resc_name, zone_name, resc_type_name, resc_net,"
            " resc_def_path, resc_context, create_ts, modify_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rid, name, zone or self.zone, resc_type, host, vault_path, context, ts, ts),
        )
        return rid

    # -- bootstrap ----------------------------------------------------------------------------

    def _bootstrap(self, vault_root: Path) -> None:
        """Create what a fresh iRODS install has. Runs once, in one transaction."""
        db, ts, zone = self.db, now(), self.zone
        db.execute("INSERT INTO r_objt_seq (next_id) VALUES (?)", (FIRST_ID,))
        db.executemany(
            "INSERT INTO r_tokn_main (token_namespace, token_id, token_name) VALUES (?, ?, ?)",
            [("access_type", num, name) for name, num in ACCESS_TYPES.items()]
            + [("user_type", 1 + i, name) for i, name in enumerate(USER_TYPES)]
            + [("data_type", 1, "generic")],
        )
        db.execute(
            "INSERT INTO r_zone_main (zone_id, zone_name, zone_type_name, create_ts, modify_ts)"
            " VALUES (?, ?, 'local', ?, ?)",
            (self.next_id(), zone, ts, ts),
        )
        public = self.add_user("public", "rodsgroup")
        rods = self.add_user("rods", "rodsadmin")
        self.add_member(public, rods)
        self.set_password(rods, "rods")
        vault = vault_root / "demoResc"
        vault.mkdir(parents=True, exist_ok=True)
        self.add_resource("demoResc", "unixfilesystem", "localhost", str(vault))
        for path in (
            "/",
            f"/{zone}",
            f"/{zone}/home",
            f"/{zone}/home/rods",
            f"/{zone}/home/public",
            f"/{zone}/trash",
            f"/{zone}/trash/home",
            f"/{zone}/trash/home/public",
            f"/{zone}/trash/home/rods",
        ):
            cid = self.create_collection(path, "rods")
            if path in (f"/{zone}/home/public", f"/{zone}/trash/home/public"):
                # as setup_catalog (scripts/irods/database_connect.py): owned by rods, the
                # one ACL is the group public's own
                self.db.execute("DELETE FROM r_objt_access WHERE object_id = ?", (cid,))
                self.grant(cid, public, OWN)
        self.commit()
