"""API 707 MOD_ACCESS_CONTROL: ichmod — set or remove a user's or group's access, and the
inheritance flag of collections, optionally recursively.

Follows iRODS 4.3's ``chlModAccessControl``: only an owner of the object may change its
ACLs, or a rodsadmin with the ``admin:`` prefix (admin mode); a recursive change needs
ownership of the top collection only. Levels are ``null`` (remove), ``read``, ``write``,
``inherit``, ``noinherit`` and the 4.3 token names (``read_object``, ``modify_object``,
``delete_object``, ``own``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from irods.message import ModAclRequest

from . import acl, namespace
from .catalog import Catalog, now
from .dispatch import Reply, Request, Session, UserInfo, api
from .errors import IrodsError

ADMIN_PREFIX = "admin:"
RESC_PREFIX = "resc:"
INHERIT, NO_INHERIT = "inherit", "noinherit"
_SHORT = {"null": acl.NULL, "read": acl.READ, "write": acl.WRITE}


@dataclass
class AclChange:
    """One parsed ichmod request."""

    path: str
    level: int  # access type id; acl.NULL removes; 0 for an inheritance change
    inherit: str = ""  # "inherit" | "noinherit" | ""
    user_name: str = ""
    zone: str = ""
    recursive: bool = False
    admin: bool = False


def parse_level(text: str) -> tuple[bool, str, int]:
    """``(admin_mode, inherit_word, level)`` for an ``accessLevel`` such as ``admin:own``."""
    admin = text.startswith(ADMIN_PREFIX)
    if admin:
        text = text[len(ADMIN_PREFIX) :]
    if text.startswith(RESC_PREFIX):
        raise IrodsError("CAT_INVALID_ARGUMENT", "resource ACLs are not supported")
    if text in (INHERIT, NO_INHERIT):
        return admin, text, 0
    level = _SHORT.get(text, acl.LEVELS.get(text))
    if level is None:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"access level '{text}' is invalid")
    return admin, "", level


def _target(cat: Catalog, user: UserInfo, change: AclChange) -> tuple[str, int]:
    """``("c", coll_id)`` or ``("d", data_id)`` after the ownership check iRODS does."""
    try:
        path = namespace.normalize(change.path)
    except IrodsError as e:
        raise IrodsError("SYS_INVALID_FILE_PATH", f"invalid path {change.path!r}") from e
    if path == "/":
        raise IrodsError("SYS_INVALID_FILE_PATH", "the path has no zone")

    def owned(object_id: int) -> bool:
        return change.admin or acl.level(cat, user, object_id) >= acl.OWN

    coll = namespace.coll(cat, path)
    coll_error = "CAT_UNKNOWN_COLLECTION"
    if coll is not None:
        if owned(int(coll["coll_id"])):
            return "c", int(coll["coll_id"])
        coll_error = "CAT_NO_ACCESS_PERMISSION"
    if change.inherit:
        message = "either the collection does not exist or you do not have sufficient access"
        raise IrodsError("CAT_NO_ACCESS_PERMISSION", message)
    reps = namespace.data_replicas(cat, path)
    if reps:
        data_id = int(reps[0]["data_id"])
        if owned(data_id):
            return "d", data_id
        if coll_error == "CAT_UNKNOWN_COLLECTION":
            raise IrodsError("CAT_NO_ACCESS_PERMISSION", f"{user.name} does not own {path}")
    if coll_error == "CAT_NO_ACCESS_PERMISSION":
        raise IrodsError(coll_error, f"{user.name} does not own collection {path}")
    raise IrodsError("CAT_INVALID_ARGUMENT", f"not a collection and not a data object: {path}")


def _set_inheritance(cat: Catalog, path: str, on: bool, recursive: bool) -> None:
    flag, ts = ("1" if on else "0"), now()
    rows = namespace.subcollections(cat, path) if recursive else [namespace.coll(cat, path)]
    for row in rows:
        if row is not None:
            cat.db.execute(
                "UPDATE r_coll_main SET coll_inheritance = ?, modify_ts = ? WHERE coll_id = ?",
                (flag, ts, row["coll_id"]),
            )


def _objects_below(cat: Catalog, path: str) -> list[int]:
    """Ids of ``path`` and every collection and data object below it."""
    colls = [int(r["coll_id"]) for r in namespace.subcollections(cat, path)]
    ids = list(colls)
    for coll_id in colls:
        rows = cat.db.execute(
            "SELECT DISTINCT data_id FROM r_data_main WHERE coll_id = ?", (coll_id,)
        ).fetchall()
        ids.extend(int(r[0]) for r in rows)
    return ids


def apply_change(cat: Catalog, user: UserInfo, change: AclChange) -> None:
    """Validate, then apply one ACL change (no commit)."""
    if change.admin and not user.is_admin:
        raise IrodsError("CAT_NO_ACCESS_PERMISSION", "You must be the admin to use the admin mode")
    kind, object_id = _target(cat, user, change)
    path = namespace.normalize(change.path)
    if change.inherit:
        _set_inheritance(cat, path, change.inherit == INHERIT, change.recursive)
        return
    grantee = cat.user(change.user_name, change.zone or None) if change.user_name else None
    if grantee is None:
        raise IrodsError("CAT_INVALID_USER", f"no user or group {change.user_name!r}")
    if change.recursive and kind == "d":
        message = f"Input path is not a collection and recursion was requested: {path}"
        raise IrodsError("CAT_INVALID_ARGUMENT", message)
    targets = _objects_below(cat, path) if change.recursive else [object_id]
    ts = now()
    for target in targets:
        acl.grant(cat, target, int(grantee["user_id"]), change.level, ts)


@api(707)
async def mod_access_control(session: Session, req: Request) -> Reply:
    """MOD_ACCESS_CONTROL: set, change or remove one ACL, or a collection's inheritance."""
    user = session.require_user()
    msg = req.parse(ModAclRequest)
    admin, inherit, level = parse_level(str(msg.accessLevel or ""))
    change = AclChange(
        path=str(msg.path or ""),
        level=level,
        inherit=inherit,
        user_name=str(msg.userName or ""),
        zone=str(msg.zone or ""),
        recursive=bool(msg.recursiveFlag),
        admin=admin,
    )
    cat = session.state.catalog
    try:
        apply_change(cat, user, change)
    except BaseException:
        cat.rollback()
        raise
    cat.commit()
    return Reply()
