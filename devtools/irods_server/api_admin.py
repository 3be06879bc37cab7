"""Admin APIs: 701 GENERAL_ADMIN (rodsadmin only) and 714 USER_ADMIN (own password,
groupadmin's users and groups): users, groups, passwords, zones and resources.

Passwords arrive obfuscated with the caller's own login password (see
``irods.password_obfuscation``); :func:`decode_new_password` undoes that.
"""

from __future__ import annotations

import hashlib
import sqlite3

from irods import password_obfuscation as obf
from irods.message import GeneralAdminRequest, UserAdminRequest

from . import api_specific_query, quotas
from .api_metadata import remove_unused_avus
from .catalog import Catalog, now
from .dispatch import Reply, Request, Session, UserInfo, api
from .errors import IrodsError

MAX_PASSWORD_LENGTH = 50
PASSWORD_PADDING = "1gCBizHWbwIYyWLoysGzTe6SyzqFKMniZX05faZHWAwQKXf6Fs"
USER_TYPES = ("rodsuser", "rodsadmin", "groupadmin")
EMPTY_HOST, EMPTY_PATH = "EMPTY_RESC_HOST", "EMPTY_RESC_PATH"
# iadmin modresc attribute -> r_resc_main column
RESC_ATTRS = {
    "type": "resc_type_name",
    "host": "resc_net",
    "path": "resc_def_path",
    "status": "resc_status",
    "comment": "r_comment",
    "info": "resc_info",
    "freespace": "free_space",
    "free_space": "free_space",
    "context": "resc_context",
    "class": "resc_class_name",
}


# -- passwords --------------------------------------------------------------------------------


def strip_padding(password: str) -> str:
    """Remove the fixed padding the client appends to short passwords."""
    total = MAX_PASSWORD_LENGTH - 10
    if len(password) == total:
        for n in range(total - 15):
            if password[n:] == PASSWORD_PADDING[: total - n]:
                return password[:n]
    return password


def decode_new_password(session: Session, scrambled: str, *, v2: bool = True) -> str:
    """Undo the client's obfuscation of a new password.

    ``v2`` (``obfuscate_new_password``): keyed with the caller's login password and client
    signature, with block chaining and a short random prefix. Otherwise
    (``obfuscate_new_password_with_key``): keyed with the caller's login password only.
    """
    login_pw = str(session.scratch.get("auth_password", ""))
    if v2:
        signature = str(session.scratch.get("client_signature", ""))
        key = (login_pw[:90] + signature[:100]).ljust(100, "\0")
        hashed = hashlib.md5(key.encode()).hexdigest()
        plain = obf.unscramble(scrambled, key=hashed, scramble_prefix="", block_chaining=True)
        plain = plain[1 + len(obf.v2_prefix[1:10]) :]
    else:
        plain = obf.unscramble(scrambled, key=login_pw, scramble_prefix="")
    return strip_padding(plain)


# -- helpers ------------------------------------------------------------------------------------


def split_user(name: str, zone: str, default_zone: str) -> tuple[str, str]:
    """``name#zone`` or ``name`` (+ separate zone) -> (name, zone)."""
    if "#" in name:
        name, z = name.split("#", 1)
        zone = zone or z
    return name, zone or default_zone


def home_paths(cat: Catalog, name: str, zone: str) -> tuple[str, str]:
    """The home and trash-home collections of a (possibly remote) user."""
    leaf = name if zone == cat.zone else f"{name}#{zone}"
    return f"/{cat.zone}/home/{leaf}", f"/{cat.zone}/trash/home/{leaf}"


def require_user_row(cat: Catalog, name: str, zone: str) -> sqlite3.Row:
    row = cat.user(name, zone)
    if row is None or row["user_type_name"] == "rodsgroup":
        raise IrodsError("CAT_INVALID_USER", f"no such user {name}#{zone}")
    return row


def require_group_row(cat: Catalog, name: str) -> sqlite3.Row:
    row = cat.user(name)
    if row is None or row["user_type_name"] != "rodsgroup":
        raise IrodsError("CAT_INVALID_GROUP", f"no such group {name}")
    return row


def valid_name(name: str, error: str = "CAT_INVALID_ARGUMENT") -> None:
    if not name or "/" in name or "#" in name or len(name) > 63 or name.strip() != name:
        raise IrodsError(error, f"invalid name {name!r}")


def coll_is_empty(cat: Catalog, path: str) -> bool:
    row = cat.db.execute("SELECT coll_id FROM r_coll_main WHERE coll_name = ?", (path,)).fetchone()
    if row is None:
        return True
    sub = cat.db.execute(
        "SELECT 1 FROM r_coll_main WHERE parent_coll_name = ? AND coll_name != ? LIMIT 1",
        (path, path),
    ).fetchone()
    data = cat.db.execute(
        "SELECT 1 FROM r_data_main WHERE coll_id = ? LIMIT 1", (row["coll_id"],)
    ).fetchone()
    return sub is None and data is None


def drop_collection(cat: Catalog, path: str) -> None:
    row = cat.db.execute("SELECT coll_id FROM r_coll_main WHERE coll_name = ?", (path,)).fetchone()
    if row is not None:
        cid = row["coll_id"]
        cat.db.execute("DELETE FROM r_objt_access WHERE object_id = ?", (cid,))
        cat.db.execute("DELETE FROM r_objt_metamap WHERE object_id = ?", (cid,))
        cat.db.execute("DELETE FROM r_coll_main WHERE coll_id = ?", (cid,))


# -- users and groups ----------------------------------------------------------------------------


def create_user(cat: Catalog, name: str, zone: str, user_type: str, password: str = "") -> int:
    """A user with its home and trash-home collections (owned by the user)."""
    valid_name(name, "USER_INVALID_USERNAME_FORMAT")
    if user_type not in USER_TYPES:
        raise IrodsError("CAT_INVALID_USER_TYPE", f"invalid user type {user_type!r}")
    if cat.db.execute("SELECT 1 FROM r_zone_main WHERE zone_name = ?", (zone,)).fetchone() is None:
        raise IrodsError("CAT_INVALID_ZONE", f"no zone {zone}")
    uid = cat.add_user(name, user_type, zone)
    if password:
        cat.set_password(uid, password)
    for path in home_paths(cat, name, zone):
        if cat.db.execute("SELECT 1 FROM r_coll_main WHERE coll_name = ?", (path,)).fetchone():
            raise IrodsError("CAT_NAME_EXISTS_AS_COLLECTION", f"{path} exists")
        cat.create_collection(path, name, zone)
    return uid


def remove_user(cat: Catalog, name: str, zone: str) -> None:
    row = require_user_row(cat, name, zone)
    homes = home_paths(cat, name, zone)
    for path in homes:
        if not coll_is_empty(cat, path):
            raise IrodsError("CAT_COLLECTION_NOT_EMPTY", f"{path} is not empty")
    for path in homes:
        drop_collection(cat, path)
    forget_principal(cat, int(row["user_id"]))


def forget_principal(cat: Catalog, uid: int) -> None:
    """Delete a user or group and everything keyed on its id."""
    db = cat.db
    db.execute("DELETE FROM r_user_group WHERE user_id = ? OR group_user_id = ?", (uid, uid))
    db.execute("DELETE FROM r_user_password WHERE user_id = ?", (uid,))
    db.execute("DELETE FROM r_user_auth WHERE user_id = ?", (uid,))
    db.execute("DELETE FROM r_objt_access WHERE user_id = ?", (uid,))
    db.execute("DELETE FROM r_objt_metamap WHERE object_id = ?", (uid,))
    db.execute("DELETE FROM r_user_main WHERE user_id = ?", (uid,))


def create_group(cat: Catalog, name: str) -> int:
    valid_name(name)
    return cat.add_user(name, "rodsgroup")


def remove_group(cat: Catalog, name: str) -> None:
    row = require_group_row(cat, name)
    if name == "public":
        raise IrodsError("CAT_INVALID_ARGUMENT", "the public group cannot be removed")
    forget_principal(cat, int(row["user_id"]))


def change_membership(cat: Catalog, group: str, op: str, user: str, zone: str) -> None:
    grow = require_group_row(cat, group)
    urow = require_user_row(cat, user, zone)
    gid, uid = int(grow["user_id"]), int(urow["user_id"])
    if op == "add":
        if cat.db.execute(
            "SELECT 1 FROM r_user_group WHERE group_user_id = ? AND user_id = ?", (gid, uid)
        ).fetchone():
            raise IrodsError("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", f"{user} is in {group}")
        cat.add_member(gid, uid)
    elif op == "remove":
        cur = cat.db.execute(
            "DELETE FROM r_user_group WHERE group_user_id = ? AND user_id = ?", (gid, uid)
        )
        if cur.rowcount == 0:
            raise IrodsError("CAT_INVALID_ARGUMENT", f"{user} is not in {group}")
    else:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"unknown group operation {op!r}")


def modify_user(session: Session, name: str, zone: str, option: str, value: str) -> None:
    cat = session.state.catalog
    row = require_user_row(cat, name, zone)
    uid = int(row["user_id"])
    if option == "password":
        cat.set_password(uid, decode_new_password(session, value))
    elif option == "type":
        if value not in USER_TYPES:
            raise IrodsError("CAT_INVALID_USER_TYPE", f"invalid user type {value!r}")
        _update_user(cat, uid, "user_type_name", value)
    elif option == "info":
        _update_user(cat, uid, "user_info", value)
    elif option == "comment":
        _update_user(cat, uid, "r_comment", value)
    elif option == "addAuth":  # db_mod_user_op: a DN (user_auth_name) for the user
        if not value:
            raise IrodsError("CAT_INVALID_ARGUMENT", "addAuth needs a DN")
        try:
            cat.db.execute(
                "INSERT INTO r_user_auth (user_id, user_auth_name, create_ts) VALUES (?, ?, ?)",
                (uid, value, now()),
            )
        except sqlite3.IntegrityError:
            raise IrodsError(
                "CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", f"{name} has DN {value}"
            ) from None
    elif option == "rmAuth":
        cat.db.execute(
            "DELETE FROM r_user_auth WHERE user_id = ? AND user_auth_name = ?", (uid, value)
        )
    else:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"cannot modify user {option!r}")


def _update_user(cat: Catalog, uid: int, column: str, value: str) -> None:
    cat.db.execute(
        f"UPDATE r_user_main SET {column} = ?, modify_ts = ? WHERE user_id = ?",
        (value, now(), uid),
    )


# -- zones ----------------------------------------------------------------------------------------


def add_zone(cat: Catalog, name: str, ztype: str, conn: str, comment: str) -> None:
    valid_name(name)
    if ztype != "remote":
        raise IrodsError("CAT_INVALID_ARGUMENT", "only remote zones can be added")
    if cat.db.execute("SELECT 1 FROM r_zone_main WHERE zone_name = ?", (name,)).fetchone():
        raise IrodsError("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", f"zone {name} exists")
    ts = now()
    cat.db.execute(
        "INSERT INTO r_zone_main (zone_id, zone_name, zone_type_name, zone_conn_string,"
        " r_comment, create_ts, modify_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (cat.next_id(), name, ztype, conn, comment, ts, ts),
    )
    cat.create_collection(f"/{name}", "rods", cat.zone)


def remove_zone(cat: Catalog, name: str) -> None:
    row = cat.db.execute("SELECT * FROM r_zone_main WHERE zone_name = ?", (name,)).fetchone()
    if row is None:
        raise IrodsError("CAT_INVALID_ZONE", f"no zone {name}")
    if row["zone_type_name"] == "local":
        raise IrodsError("CAT_INVALID_ARGUMENT", "the local zone cannot be removed")
    if cat.db.execute("SELECT 1 FROM r_user_main WHERE zone_name = ?", (name,)).fetchone():
        raise IrodsError("CAT_INVALID_ARGUMENT", f"zone {name} still has users")
    drop_collection(cat, f"/{name}")
    cat.db.execute("DELETE FROM r_zone_main WHERE zone_name = ?", (name,))


# -- resources --------------------------------------------------------------------------------


def require_resource(cat: Catalog, name: str) -> sqlite3.Row:
    row = cat.resource(name)
    if row is None:
        raise IrodsError("SYS_RESC_DOES_NOT_EXIST", f"no resource {name}")
    return row


def add_resource(cat: Catalog, name: str, rtype: str, location: str, context: str) -> None:
    valid_name(name)
    if not rtype:
        raise IrodsError("CAT_INVALID_RESOURCE_TYPE", "resource type missing")
    host, _, path = location.partition(":")
    cat.add_resource(name, rtype, host or EMPTY_HOST, path or EMPTY_PATH, context)


def remove_resource(cat: Catalog, name: str, dry_run: bool) -> None:
    row = require_resource(cat, name)
    rid = int(row["resc_id"])
    if cat.db.execute("SELECT 1 FROM r_data_main WHERE resc_id = ? LIMIT 1", (rid,)).fetchone():
        raise IrodsError("CAT_RESOURCE_NOT_EMPTY", f"resource {name} holds data")
    if cat.children(rid):
        raise IrodsError("CAT_RESOURCE_NOT_EMPTY", f"resource {name} has children")
    if row["resc_parent"]:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"resource {name} is a child; remove it first")
    if not dry_run:
        cat.db.execute("DELETE FROM r_objt_metamap WHERE object_id = ?", (rid,))
        cat.db.execute("DELETE FROM r_resc_main WHERE resc_id = ?", (rid,))


def modify_resource(cat: Catalog, name: str, attr: str, value: str) -> None:
    row = require_resource(cat, name)
    if attr == "name":
        valid_name(value)
        if cat.resource(value) is not None:
            raise IrodsError("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", f"resource {value} exists")
        column = "resc_name"
    elif attr in RESC_ATTRS:
        column = RESC_ATTRS[attr]
    else:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"cannot modify resource {attr!r}")
    cat.db.execute(
        f"UPDATE r_resc_main SET {column} = ?, modify_ts = ? WHERE resc_id = ?",
        (value, now(), row["resc_id"]),
    )


def add_child(cat: Catalog, parent: str, child: str, context: str) -> None:
    prow, crow = require_resource(cat, parent), require_resource(cat, child)
    if crow["resc_parent"]:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"{child} already has a parent")
    if cat.root_of(int(prow["resc_id"]))["resc_id"] == crow["resc_id"]:
        raise IrodsError("CAT_INVALID_ARGUMENT", "that would make a cycle")
    cat.db.execute(
        "UPDATE r_resc_main SET resc_parent = ?, resc_parent_context = ?, modify_ts = ?"
        " WHERE resc_id = ?",
        (str(prow["resc_id"]), context, now(), crow["resc_id"]),
    )


def remove_child(cat: Catalog, parent: str, child: str) -> None:
    prow, crow = require_resource(cat, parent), require_resource(cat, child)
    if crow["resc_parent"] != str(prow["resc_id"]):
        raise IrodsError("CAT_INVALID_ARGUMENT", f"{child} is not a child of {parent}")
    cat.db.execute(
        "UPDATE r_resc_main SET resc_parent = '', resc_parent_context = '', modify_ts = ?"
        " WHERE resc_id = ?",
        (now(), crow["resc_id"]),
    )


# -- API 701 --------------------------------------------------------------------------------


def _args(msg: GeneralAdminRequest | UserAdminRequest) -> list[str]:
    return [str(getattr(msg, f"arg{i}") or "") for i in range(10)]


@api(701)
async def general_admin(session: Session, req: Request) -> Reply:
    user = session.require_user()
    if not user.is_admin:
        raise IrodsError("SYS_NO_API_PRIV", "general admin requires rodsadmin")
    a = _args(req.parse(GeneralAdminRequest))
    cat = session.state.catalog
    op, what = a[0], a[1]
    if op == "add" and what == "user":
        name, zone = split_user(a[2], a[4], cat.zone)
        if a[3] == "rodsgroup":
            create_group(cat, name)
        else:
            create_user(cat, name, zone, a[3])
    elif op == "add" and what == "group":
        create_group(cat, a[2])
    elif op == "rm" and what in ("user", "group"):
        name, zone = split_user(a[2], a[3], cat.zone)
        if (name, zone) == (user.name, user.zone):
            raise IrodsError("CAT_INVALID_USER", "cannot remove your own admin account")
        row = cat.user(name, zone)
        if row is not None and row["user_type_name"] == "rodsgroup":
            remove_group(cat, name)
        elif what == "group":
            raise IrodsError("CAT_INVALID_GROUP", f"no such group {name}")
        else:
            remove_user(cat, name, zone)
    elif op == "modify" and what == "user":
        name, zone = split_user(a[2], a[5], cat.zone)
        modify_user(session, name, zone, a[3], a[4])
    elif op == "modify" and what == "group":
        change_membership(cat, a[2], a[3], *split_user(a[4], a[5], cat.zone))
    elif op == "add" and what == "zone":
        add_zone(cat, a[2], a[3], a[4], a[5])
    elif op == "rm" and what == "zone":
        remove_zone(cat, a[2])
    elif op == "add" and what == "resource":
        add_resource(cat, a[2], a[3], a[4], a[5])
    elif op == "rm" and what == "resource":
        remove_resource(cat, a[2], dry_run=a[3] == "--dryrun")
    elif op == "modify" and what == "resource":
        modify_resource(cat, a[2], a[3], a[4])
    elif op == "add" and what == "childtoresc":
        add_child(cat, a[2], a[3], a[4])
    elif op == "rm" and what == "childfromresc":
        remove_child(cat, a[2], a[3])
    elif op == "rm" and what == "unusedAVUs":
        remove_unused_avus(cat)
    elif op == "add" and what == "specificQuery":
        api_specific_query.add(cat, a[2], a[3])
    elif op == "rm" and what == "specificQuery":
        api_specific_query.remove(cat, a[2])
    elif op == "set-quota":
        quotas.set_quota(cat, a[1], a[2], a[3], a[4])
    elif op == "calculate-usage":
        quotas.calculate_usage(cat)
    else:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"unsupported admin operation {op} {what}")
    return Reply()


# -- API 714 --------------------------------------------------------------------------------


def _may_manage_group(cat: Catalog, user: UserInfo, group: str) -> None:
    if user.is_admin:
        return
    grow = require_group_row(cat, group)
    members = [
        r[0]
        for r in cat.db.execute(
            "SELECT user_id FROM r_user_group WHERE group_user_id = ? AND user_id != ?",
            (grow["user_id"], grow["user_id"]),
        )
    ]
    if members and user.id not in members:
        raise IrodsError("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", f"not a member of {group}")


@api(714)
async def user_admin(session: Session, req: Request) -> Reply:
    user = session.require_user()
    a = _args(req.parse(UserAdminRequest))
    cat = session.state.catalog
    op = a[0]
    if op == "userpw":
        name, zone = split_user(a[1], "", cat.zone)
        if (name, zone) != (user.name, user.zone) and not user.is_admin:
            raise IrodsError("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "may change own password only")
        if a[2] != "password":
            raise IrodsError("CAT_INVALID_ARGUMENT", f"unsupported userpw option {a[2]!r}")
        row = require_user_row(cat, name, zone)
        cat.set_password(int(row["user_id"]), decode_new_password(session, a[3]))
        return Reply()
    if user.type not in ("rodsadmin", "groupadmin"):
        raise IrodsError("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "requires groupadmin")
    if op == "mkuser":
        name, zone = split_user(a[1], "", cat.zone)
        password = decode_new_password(session, a[2], v2=False) if a[2] else ""
        create_user(cat, name, zone, "rodsuser", password)
    elif op == "mkgroup":
        create_group(cat, a[1])
    elif op == "modify" and a[1] == "group":
        _may_manage_group(cat, user, a[2])
        change_membership(cat, a[2], a[3], *split_user(a[4], a[5], cat.zone))
    else:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"unsupported user admin operation {op!r}")
    return Reply()
