"""AVU metadata: API 706 MOD_AVU_METADATA and API 20002 ATOMIC_APPLY_METADATA_OPERATIONS.

As in iRODS, an AVU is one ``r_meta_main`` row shared by every object that carries it
through ``r_objt_metamap``; adding an AVU reuses an identical existing row. Object types
are ``-d`` data object, ``-C`` collection, ``-R`` resource, ``-u`` user or group (either
case). Data objects and collections need the create/delete/modify-metadata access level
(``own`` and ``modify_object`` include them); resources and users need a rodsadmin. The
admin keyword skips the access check and is refused to anyone but a rodsadmin. Error codes
follow the 4.3 catalog: a duplicate is ``CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME``, removing
what is not there ``CAT_SUCCESS_BUT_WITH_NO_INFO``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from typing import Any

from irods.message import BinBytesBuf, MetadataRequest

from . import acl, namespace
from .catalog import Catalog, now
from .dispatch import Reply, Request, Session, UserInfo, api
from .errors import IrodsError, code_of

ADMIN_KW = "irodsAdmin"
INVALID_OPERATION = -1811000
JSON_VALIDATION_ERROR = -172000

_TYPES = {"-d": "d", "-D": "d", "-c": "C", "-C": "C", "-r": "R", "-R": "R", "-u": "u", "-U": "u"}


# -- the objects AVUs hang on ------------------------------------------------------------


def object_kind(type_opt: str | None) -> str:
    """``d``, ``C``, ``R`` or ``u`` for an imeta type option such as ``-d``."""
    kind = _TYPES.get(type_opt or "")
    if kind is None:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"invalid object type {type_opt!r}")
    return kind


def resolve(
    cat: Catalog, user: UserInfo, kind: str, name: str | None, needed: int, admin: bool
) -> int:
    """The object id of ``name`` after the access check iRODS's ``checkAndGetObjectId`` does."""
    if not name:
        raise IrodsError("CAT_INVALID_ARGUMENT", "empty object name")
    if admin and not user.is_admin:
        raise IrodsError("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "admin mode needs a rodsadmin")
    if kind == "d":
        reps = namespace.data_replicas(cat, name) if name.startswith("/") else []
        if not reps:
            raise IrodsError("CAT_UNKNOWN_FILE", f"no data object {name}")
        object_id = int(reps[0]["data_id"])
    elif kind == "C":
        row = namespace.coll(cat, name) if name.startswith("/") else None
        if row is None:
            raise IrodsError("CAT_UNKNOWN_COLLECTION", f"collection '{name}' is unknown")
        object_id = int(row["coll_id"])
    elif kind == "R":
        if not user.is_admin:
            raise IrodsError(
                "CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "resource metadata needs a rodsadmin"
            )
        resc = cat.resource(name)
        if resc is None:
            raise IrodsError("CAT_INVALID_RESOURCE", f"no resource {name}")
        return int(resc["resc_id"])
    else:
        if not user.is_admin:
            raise IrodsError("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "needs a rodsadmin")
        user_name, _, zone = name.partition("#")
        row = cat.user(user_name, zone or None)
        if row is None:
            raise IrodsError("CAT_INVALID_USER", f"no user {name}")
        return int(row["user_id"])
    if not admin and acl.level(cat, user, object_id) < needed:
        raise IrodsError("CAT_NO_ACCESS_PERMISSION", f"{user.name} may not change AVUs of {name}")
    return object_id


# -- AVU rows ----------------------------------------------------------------------------


def find_avu(cat: Catalog, attr: str, value: str, units: str) -> int | None:
    """The id of an ``r_meta_main`` row holding exactly this triple, if any."""
    row = cat.db.execute(
        "SELECT meta_id FROM r_meta_main WHERE meta_attr_name = ? AND meta_attr_value = ?"
        " AND meta_attr_unit = ? ORDER BY meta_id LIMIT 1",
        (attr, value, units),
    ).fetchone()
    return None if row is None else int(row[0])


def find_or_insert_avu(cat: Catalog, attr: str, value: str, units: str) -> int:
    """The id of the AVU row for this triple, inserting it when new."""
    found = find_avu(cat, attr, value, units)
    if found is not None:
        return found
    meta_id, ts = cat.next_id(), now()
    cat.db.execute(
        "INSERT INTO r_meta_main (meta_id, meta_attr_name, meta_attr_value, meta_attr_unit,"
        " create_ts, modify_ts) VALUES (?, ?, ?, ?, ?, ?)",
        (meta_id, attr, value, units, ts, ts),
    )
    return meta_id


def is_attached(cat: Catalog, object_id: int, meta_id: int) -> bool:
    sql = "SELECT 1 FROM r_objt_metamap WHERE object_id = ? AND meta_id = ?"
    return cat.db.execute(sql, (object_id, meta_id)).fetchone() is not None


def attach(cat: Catalog, object_id: int, meta_id: int) -> None:
    """Link an AVU to an object; ``CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME`` if linked."""
    ts = now()
    try:
        cat.db.execute(
            "INSERT INTO r_objt_metamap (object_id, meta_id, create_ts, modify_ts)"
            " VALUES (?, ?, ?, ?)",
            (object_id, meta_id, ts, ts),
        )
    except sqlite3.IntegrityError as e:
        raise IrodsError("CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME", "AVU already present") from e


def detach(cat: Catalog, object_id: int, meta_ids: list[int]) -> int:
    """Unlink AVUs from an object; the number of links removed."""
    count = 0
    for meta_id in meta_ids:
        cur = cat.db.execute(
            "DELETE FROM r_objt_metamap WHERE object_id = ? AND meta_id = ?", (object_id, meta_id)
        )
        count += cur.rowcount
    return count


def attached(cat: Catalog, object_id: int) -> list[sqlite3.Row]:
    """The AVU rows linked to an object."""
    return cat.db.execute(
        "SELECT m.* FROM r_meta_main m JOIN r_objt_metamap o ON o.meta_id = m.meta_id"
        " WHERE o.object_id = ? ORDER BY m.meta_id",
        (object_id,),
    ).fetchall()


def remove_unused_avus(cat: Catalog) -> int:
    """``iadmin rum``: drop AVU rows no object links to; the number removed. No commit."""
    cur = cat.db.execute(
        "DELETE FROM r_meta_main WHERE meta_id NOT IN (SELECT meta_id FROM r_objt_metamap)"
    )
    return cur.rowcount


def like(pattern: str) -> re.Pattern[str]:
    """A regex matching what SQL ``LIKE pattern`` (backslash escape) matches, case-sensitive."""
    out: list[str] = []
    chars = iter(pattern)
    for c in chars:
        if c == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def _matching(rows: list[sqlite3.Row], attr: str, value: str, units: str) -> list[int]:
    a, v, u = like(attr), like(value), like(units)
    return [
        int(r["meta_id"])
        for r in rows
        if a.fullmatch(r["meta_attr_name"])
        and v.fullmatch(r["meta_attr_value"])
        and u.fullmatch(r["meta_attr_unit"])
    ]


def _exact(rows: list[sqlite3.Row], attr: str, value: str, units: str) -> list[int]:
    return [
        int(r["meta_id"])
        for r in rows
        if (r["meta_attr_name"], r["meta_attr_value"], r["meta_attr_unit"]) == (attr, value, units)
    ]


def _require_av(attr: str | None, value: str | None) -> tuple[str, str]:
    if not attr:
        raise IrodsError("CAT_INVALID_ARGUMENT", "attribute null or empty")
    if not value:
        raise IrodsError("CAT_INVALID_ARGUMENT", "value null or empty")
    return attr, value


# -- the MOD_AVU_METADATA operations -----------------------------------------------------


class _Op:
    """One MOD_AVU_METADATA request: its arguments, user and admin flag."""

    def __init__(self, cat: Catalog, user: UserInfo, args: list[str], admin: bool) -> None:
        self.cat, self.user, self.args, self.admin = cat, user, args, admin

    def arg(self, i: int) -> str:
        return self.args[i]

    def target(self, needed: int) -> int:
        return resolve(
            self.cat, self.user, object_kind(self.arg(1)), self.arg(2), needed, self.admin
        )

    def add(self) -> int:
        attr, value = _require_av(self.arg(3), self.arg(4))
        object_id = self.target(acl.CREATE_METADATA)
        attach(self.cat, object_id, find_or_insert_avu(self.cat, attr, value, self.arg(5)))
        return 0

    def adda(self) -> int:
        self.admin = True
        return self.add()

    def addw(self) -> int:
        """Add one AVU to every data object matching ``coll_pattern/name_pattern``."""
        attr, value = _require_av(self.arg(3), self.arg(4))
        if object_kind(self.arg(1)) != "d":
            raise IrodsError("CAT_INVALID_ARGUMENT", "addw works on data objects only")
        if self.admin and not self.user.is_admin:
            raise IrodsError("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "admin mode needs a rodsadmin")
        coll_pat, _, name_pat = self.arg(2).rpartition("/")
        c_re, n_re = like(coll_pat or "/"), like(name_pat)
        ids = sorted(
            {
                int(r[0])
                for r in self.cat.db.execute(
                    "SELECT d.data_id, c.coll_name, d.data_name FROM r_data_main d"
                    " JOIN r_coll_main c ON c.coll_id = d.coll_id"
                )
                if c_re.fullmatch(r[1]) and n_re.fullmatch(r[2])
            }
        )
        if not ids:
            raise IrodsError("CAT_NO_ROWS_FOUND", f"no data objects match {self.arg(2)}")
        if not self.admin and any(
            acl.level(self.cat, self.user, i) < acl.MODIFY_METADATA for i in ids
        ):
            raise IrodsError("CAT_NO_ACCESS_PERMISSION", "access denied")
        meta_id = find_or_insert_avu(self.cat, attr, value, self.arg(5))
        for object_id in ids:
            attach(self.cat, object_id, meta_id)
        return len(ids)

    def _remove(self, pick: Callable[[list[sqlite3.Row], str, str, str], list[int]]) -> int:
        attr, value = _require_av(self.arg(3), self.arg(4))
        object_id = self.target(acl.DELETE_METADATA)
        ids = pick(attached(self.cat, object_id), attr, value, self.arg(5))
        if detach(self.cat, object_id, ids) == 0:
            raise IrodsError("CAT_SUCCESS_BUT_WITH_NO_INFO", "no such AVU")
        return 0

    def rm(self) -> int:
        return self._remove(_exact)

    def rmw(self) -> int:
        return self._remove(_matching)

    def rmi(self) -> int:
        object_id = self.target(acl.DELETE_METADATA)
        try:
            meta_id = int(self.arg(3))
        except ValueError as e:
            raise IrodsError("CAT_INVALID_ARGUMENT", f"invalid AVU id {self.arg(3)!r}") from e
        if detach(self.cat, object_id, [meta_id]) == 0:
            raise IrodsError("CAT_SUCCESS_BUT_WITH_NO_INFO", f"no AVU {meta_id} on the object")
        return 0

    def set(self) -> int:
        """Replace every AVU with this attribute by one (in place when it is unshared)."""
        attr, value = _require_av(self.arg(3), self.arg(4))
        units = self.arg(5)
        object_id = self.target(acl.CREATE_METADATA)
        same = [
            int(r["meta_id"]) for r in attached(self.cat, object_id) if r["meta_attr_name"] == attr
        ]
        links = 0
        if same:
            marks = ",".join("?" * len(same))
            sql = f"SELECT count(*) FROM r_objt_metamap WHERE meta_id IN ({marks})"
            links = int(self.cat.db.execute(sql, same).fetchone()[0])
        if links == 1:
            self.cat.db.execute(
                "UPDATE r_meta_main SET meta_attr_value = ?, meta_attr_unit = ?, modify_ts = ?"
                " WHERE meta_id = ?",
                (value, units, now(), same[0]),
            )
            return 0
        detach(self.cat, object_id, same)
        attach(self.cat, object_id, find_or_insert_avu(self.cat, attr, value, units))
        return 0

    def mod(self) -> int:
        """Replace one AVU by a changed copy: ``n:`` new name, ``v:`` new value, ``u:`` units."""
        attr, value = _require_av(self.arg(3), self.arg(4))
        rest = [self.arg(i) for i in (5, 6, 7, 8)]
        units = ""
        if rest[0] and not rest[0].startswith(("n:", "v:", "u:")):
            units = rest[0]
            rest = rest[1:]
        new: dict[str, str] = {}
        for item in rest:
            if item[:2] in ("n:", "v:", "u:"):
                if item[0] in new:
                    raise IrodsError("CAT_INVALID_ARGUMENT", f"{item[:2]} given more than once")
                new[item[0]] = item[2:]
        if not new.get("n") and not new.get("v") and "u" not in new:
            raise IrodsError("CAT_INVALID_ARGUMENT", "mod needs n:, v: or u:")
        object_id = self.target(acl.DELETE_METADATA)
        ids = _exact(attached(self.cat, object_id), attr, value, units)
        if detach(self.cat, object_id, ids) == 0:
            raise IrodsError("CAT_SUCCESS_BUT_WITH_NO_INFO", "no such AVU")
        triple = (new.get("n") or attr, new.get("v") or value, new.get("u", units))
        object_id = self.target(acl.CREATE_METADATA)
        attach(self.cat, object_id, find_or_insert_avu(self.cat, *triple))
        return 0

    def cp(self) -> int:
        """Link every AVU of the source object to the destination object."""
        src_kind, dst_kind = object_kind(self.arg(1)), object_kind(self.arg(2))
        src = resolve(self.cat, self.user, src_kind, self.arg(3), acl.READ_METADATA, self.admin)
        dst = resolve(self.cat, self.user, dst_kind, self.arg(4), acl.CREATE_METADATA, self.admin)
        rows = attached(self.cat, src)
        if not rows:
            raise IrodsError("CAT_SUCCESS_BUT_WITH_NO_INFO", "source has no AVUs")
        for row in rows:
            attach(self.cat, dst, int(row["meta_id"]))
        return 0


_OPS: dict[str, Callable[[_Op], int]] = {
    "add": _Op.add,
    "adda": _Op.adda,
    "addw": _Op.addw,
    "rm": _Op.rm,
    "rmw": _Op.rmw,
    "rmi": _Op.rmi,
    "set": _Op.set,
    "mod": _Op.mod,
    "cp": _Op.cp,
}


def keywords(msg: Any) -> dict[str, str]:
    """The ``KeyValPair_PI`` of a parsed request as a dict."""
    kvp = getattr(msg, "KeyValPair_PI", None)
    if kvp is None or not kvp.ssLen:
        return {}
    return {str(k): str(v or "") for k, v in zip(kvp.keyWord, kvp.svalue, strict=False)}


def in_transaction(cat: Catalog, work: Callable[[], int]) -> int:
    """Run ``work`` and commit, or roll everything back when it raises."""
    try:
        result = work()
    except BaseException:
        cat.rollback()
        raise
    cat.commit()
    return result


@api(706)
async def mod_avu_metadata(session: Session, req: Request) -> Reply:
    """MOD_AVU_METADATA: imeta's add, adda, addw, rm, rmw, rmi, set, mod and cp."""
    user = session.require_user()
    msg = req.parse(MetadataRequest)
    args = [str(getattr(msg, f"arg{i}", None) or "") for i in range(10)]
    fn = _OPS.get(args[0])
    if fn is None:
        raise IrodsError("CAT_INVALID_ARGUMENT", f"unknown metadata operation {args[0]!r}")
    op = _Op(session.state.catalog, user, args, ADMIN_KW in keywords(msg))
    return Reply(int_info=in_transaction(session.state.catalog, lambda: fn(op)))


# -- ATOMIC_APPLY_METADATA_OPERATIONS ----------------------------------------------------

_ENTITY_KINDS = {"data_object": "d", "collection": "C", "user": "u", "resource": "R"}


class _AtomicError(Exception):
    """A failed atomic request: the error code and the JSON error object iRODS returns."""

    def __init__(self, code: int | str, message: str, op: Any = None, index: int = 0) -> None:
        self.code = code_of(code) if isinstance(code, str) else code
        self.info = {
            "operation": {} if op is None else op,
            "operation_index": index,
            "error_message": message,
        }
        super().__init__(message)


def _json_reply(int_info: int, body: dict[str, Any]) -> Reply:
    data = json.dumps(body).encode()
    return Reply(int_info=int_info, msg=BinBytesBuf(buflen=len(data), buf=data))


def _entity(cat: Catalog, user: UserInfo, request: dict[str, Any]) -> int:
    """The object id of the request's entity, after the permission check the API does."""
    try:
        name = request["entity_name"]
        type_name = request["entity_type"]
        if not isinstance(name, str) or not isinstance(type_name, str):
            raise TypeError("entity_name and entity_type must be strings")
    except (KeyError, TypeError) as e:
        raise _AtomicError("SYS_INVALID_INPUT_PARAM", str(e)) from e
    kind = _ENTITY_KINDS.get(type_name)
    if kind is None:
        message = f"Invalid entity type specified [entity_type={type_name}]"
        raise _AtomicError("SYS_INVALID_INPUT_PARAM", message)
    object_id = _lookup(cat, kind, name)
    if object_id is None:
        raise _AtomicError("SYS_INVALID_INPUT_PARAM", f"Entity does not exist [entity_name={name}]")
    if request.get("admin_mode") is True:
        if not user.is_admin:
            raise _AtomicError("CAT_INSUFFICIENT_PRIVILEGE_LEVEL", "User is not an administrator")
    elif kind in ("d", "C"):
        if acl.level(cat, user, object_id) < acl.WRITE:
            raise _AtomicError("CAT_NO_ACCESS_PERMISSION", "User not allowed to modify metadata")
    elif not user.is_admin:
        raise _AtomicError("CAT_NO_ACCESS_PERMISSION", "User not allowed to modify metadata")
    return object_id


def _lookup(cat: Catalog, kind: str, name: str) -> int | None:
    """The id of an entity by kind and name, without access checks (None if absent)."""
    if kind in ("d", "C") and not name.startswith("/"):
        return None
    if kind == "d":
        reps = namespace.data_replicas(cat, name)
        return int(reps[0]["data_id"]) if reps else None
    if kind == "C":
        row = namespace.coll(cat, name)
        return None if row is None else int(row["coll_id"])
    if kind == "R":
        resc = cat.resource(name)
        return None if resc is None else int(resc["resc_id"])
    found = cat.user(name)
    return None if found is None else int(found["user_id"])


def _apply(cat: Catalog, object_id: int, op: Any, index: int) -> None:
    """One atomic operation: ``add`` links (idempotent), ``remove`` unlinks (if linked)."""
    if not isinstance(op, dict):
        raise _AtomicError(JSON_VALIDATION_ERROR, "operation must be an object", op, index)
    try:
        attr, value, verb = op["attribute"], op["value"], op["operation"]
    except KeyError as e:
        raise _AtomicError(JSON_VALIDATION_ERROR, f"key {e} not found", op, index) from e
    units = op.get("units", "")
    if not all(isinstance(x, str) for x in (attr, value, verb, units)):
        raise _AtomicError(JSON_VALIDATION_ERROR, "AVU fields must be strings", op, index)
    if not attr or not value:
        message = f"Empty metadata attribute name or value [attribute={attr}, value={value}]"
        raise _AtomicError("SYS_INVALID_INPUT_PARAM", message, op, index)
    if verb == "add":
        meta_id = find_or_insert_avu(cat, attr, value, units)
        if not is_attached(cat, object_id, meta_id):
            attach(cat, object_id, meta_id)
    elif verb == "remove":
        meta_id_or_none = find_avu(cat, attr, value, units)
        if meta_id_or_none is not None:
            detach(cat, object_id, [meta_id_or_none])
    else:
        raise _AtomicError(INVALID_OPERATION, "Invalid metadata operation.", op, index)


def apply_atomic(cat: Catalog, user: UserInfo, raw: bytes) -> None:
    """Apply a JSON request's operations all or none; raises ``_AtomicError``."""
    try:
        request = json.loads(raw.rstrip(b"\0").decode())
    except (UnicodeDecodeError, ValueError) as e:
        raise _AtomicError("INPUT_ARG_NOT_WELL_FORMED_ERR", f"invalid JSON: {e}") from e
    if not isinstance(request, dict):
        raise _AtomicError("INPUT_ARG_NOT_WELL_FORMED_ERR", "the request must be a JSON object")
    object_id = _entity(cat, user, request)
    operations = request.get("operations")
    if not isinstance(operations, list):
        raise _AtomicError(JSON_VALIDATION_ERROR, "operations must be a list")

    def work() -> int:
        for index, op in enumerate(operations):
            _apply(cat, object_id, op, index)
        return 0

    in_transaction(cat, work)


@api(20002)
async def atomic_apply_metadata_operations(session: Session, req: Request) -> Reply:
    """ATOMIC_APPLY_METADATA_OPERATIONS: JSON in, ``{}`` or an error object out."""
    user = session.require_user()
    raw = req.parse(BinBytesBuf).buf or b""
    try:
        apply_atomic(session.state.catalog, user, raw if isinstance(raw, bytes) else raw.encode())
    except _AtomicError as e:
        return _json_reply(e.code, e.info)
    return _json_reply(0, {})
