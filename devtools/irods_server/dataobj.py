"""Data objects in the catalog and the vault: the helpers the data-object API modules
share (``api_streams``, ``api_objects``, ``api_replicas``, ``api_single_buffer``,
``api_collection``). No handlers here.

Replica status (``data_is_dirty``) is :data:`STALE`, :data:`GOOD`, :data:`INTERMEDIATE`
(being written) or :data:`WRITE_LOCKED` (a sibling of a replica being written);
:func:`check_locks` refuses what a real zone refuses while an object is being written.
A request's keywords choose a replica (:func:`pick_replica`) or the leaf resource a new
one goes to (:func:`dest_leaf`); :func:`create_object` and
:func:`new_replica_row` insert rows, :func:`replicate_to` copies a replica onto a leaf,
:func:`remove_object` deletes an object with its ACLs and AVU links.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import irods.keywords as kw
from irods.message import BinBytesBuf, Message, StringProperty

from . import acl, namespace, resource_policy, vault
from .catalog import now
from .dispatch import Request, Session
from .errors import IrodsError

STALE, GOOD, INTERMEDIATE, WRITE_LOCKED = 0, 1, 2, 3  # data_is_dirty
BUSY = frozenset({INTERMEDIATE, WRITE_LOCKED})
#: ``lib/core/include/irods/rodsErrorTable.h``; python-irodsclient 3.3 has no class for it
INTERMEDIATE_REPLICA_ACCESS = -405000
PUT_OPR, COPY_DEST, RSYNC_OPR = 1, 9, 14  # oprType (lib/api/include/irods/dataObjInpOut.h)
LOGICAL_OPRS = frozenset({PUT_OPR, COPY_DEST, RSYNC_OPR})
UNREG_OPR = 26  # oprType of unlink/trim that keeps the files (unregister)


class STR_PI(Message):
    _name = "STR_PI"
    myStr = StringProperty()


# -- request and reply bodies --------------------------------------------------------------


def kv_dict(pairs: Any) -> dict[str, str]:
    """A parsed KeyValPair_PI as a dict."""
    if pairs is None or not pairs.ssLen:
        return {}
    keys, values = pairs.keyWord, pairs.svalue
    return {str(k): "" if v is None else str(v) for k, v in zip(keys, values, strict=False)}


def kv_of(m: Any) -> dict[str, str]:
    """The KeyValPair_PI of a parsed message as a dict."""
    return kv_dict(getattr(m, "KeyValPair_PI", None))


def abs_path(raw: str | None, error: str = "SYS_INVALID_FILE_PATH") -> str:
    """``raw`` normalised; ``error`` unless it is an absolute logical path."""
    if not raw or not raw.startswith("/"):
        raise IrodsError(error, f"not an absolute logical path: {raw!r}")
    return namespace.normalize(raw)


def json_in(req: Request) -> dict[str, Any]:
    """The JSON document of a BinBytesBuf_PI (or BytesBuf_PI) request."""
    m = req.parse(BinBytesBuf)
    buf = m.buf if isinstance(m.buf, bytes | bytearray) else str(m.buf or "").encode()
    try:
        doc = json.loads(bytes(buf).rstrip(b"\0").decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        raise IrodsError("SYS_INVALID_INPUT_PARAM", "bad JSON input") from None
    if not isinstance(doc, dict):
        raise IrodsError("SYS_INVALID_INPUT_PARAM", "JSON input must be an object")
    return doc


def str_out(text: str) -> STR_PI:
    """A ``STR_PI`` reply message (JSON and checksums travel in one)."""
    return STR_PI(myStr=text)


# -- resources -----------------------------------------------------------------------------


def require_loaded(session: Session, name: str) -> None:
    """``SYS_RESC_DOES_NOT_EXIST`` for a resource (or hierarchy element) this connection's
    agent did not load when it started: a real agent reads the resource list once
    (``resc_mgr.init_from_catalog``, ``initServerInfo`` in
    ``server/core/src/initServer.cpp``), so it never sees a resource created later."""
    known = session.resources
    if known is None:
        return
    for part in name.split(";"):
        if part and part not in known:
            raise IrodsError("SYS_RESC_DOES_NOT_EXIST", f"resource {part!r} not loaded")


def dest_leaf(session: Session, name: str, *, direct_ok: bool = False) -> sqlite3.Row:
    """The leaf to write to for a resource name or hierarchy string."""
    cat = session.state.catalog
    require_loaded(session, name)
    if ";" not in name:
        row = cat.resource(name)
        if row is None:
            raise IrodsError("SYS_RESC_DOES_NOT_EXIST", f"no resource {name!r}")
        if row["resc_parent"] and not direct_ok:
            raise IrodsError("DIRECT_CHILD_ACCESS", f"{name} is not a root resource")
        if row["resc_parent"] and cat.children(int(row["resc_id"])):
            # a leaf may be named directly (register, replicate); a coordinating resource
            # inside a hierarchy may not: iRODS cannot resolve a hierarchy from its middle
            raise IrodsError("HIERARCHY_ERROR", f"{name} is neither a root nor a leaf resource")
    return cat.leaf_for(name)


def requested_resc(opts: dict[str, str], *, write: bool) -> str:
    """The resource (name or hierarchy) the keywords ask for, "" if none."""
    for key in (kw.RESC_HIER_STR_KW, kw.RESC_NAME_KW) + (
        (kw.DEST_RESC_NAME_KW, kw.DEF_RESC_NAME_KW) if write else ()
    ):
        if opts.get(key):
            return opts[key]
    return ""


def on_resc(session: Session, rep: sqlite3.Row, name: str) -> bool:
    """Whether replica ``rep`` lives at/under the resource (name or hierarchy) ``name``."""
    hier = session.state.catalog.resc_hier(int(rep["resc_id"]))
    if ";" in name:
        return hier == name
    return name in hier.split(";")


def hier_of(session: Session, resc_id: int) -> str:
    """``"root;child;leaf"`` of a leaf resource."""
    return session.state.catalog.resc_hier(resc_id)


def vault_of(session: Session, leaf: sqlite3.Row) -> str:
    """The vault directory of a leaf resource."""
    path = str(leaf["resc_def_path"])
    if not path:
        path = str(session.state.vault_root / str(leaf["resc_name"]))
    return path


# -- replica rows --------------------------------------------------------------------------


def insert_replica(
    session: Session,
    *,
    data_id: int,
    coll_id: int,
    name: str,
    repl_num: int,
    leaf: sqlite3.Row,
    phys: str,
    size: int = 0,
    status: int = GOOD,
    checksum: str = "",
    data_type: str = "generic",
    owner: tuple[str, str] | None = None,
    mode: str = "",
    modify_ts: str | None = None,
    comments: str = "",
) -> None:
    """One ``r_data_main`` row (owned by the client user unless ``owner``). No commit."""
    user = session.require_user()
    ts = now()
    owner_name, owner_zone = owner or (user.name, user.zone)
    session.state.catalog.db.execute(
        "INSERT INTO r_data_main (data_id, coll_id, data_name, data_repl_num, data_type_name,"
        " data_size, data_path, data_owner_name, data_owner_zone, data_is_dirty, data_checksum,"
        " data_mode, r_comment, create_ts, modify_ts, resc_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            data_id,
            coll_id,
            name,
            repl_num,
            data_type or "generic",
            size,
            phys,
            owner_name,
            owner_zone,
            status,
            checksum,
            mode,
            comments,
            ts,
            modify_ts or ts,
            int(leaf["resc_id"]),
        ),
    )


def next_repl_num(session: Session, data_id: int) -> int:
    """The replica number a new replica of ``data_id`` gets."""
    row = session.state.catalog.db.execute(
        "SELECT max(data_repl_num) FROM r_data_main WHERE data_id = ?", (data_id,)
    ).fetchone()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def parent_coll(session: Session, path: str) -> sqlite3.Row:
    """The row of ``path``'s parent collection; ``CAT_UNKNOWN_COLLECTION`` if none."""
    parent, _ = namespace.split(path)
    row = namespace.coll(session.state.catalog, parent)
    if row is None:
        raise IrodsError("CAT_UNKNOWN_COLLECTION", f"no collection {parent}")
    return row


def check_new_name(session: Session, path: str) -> None:
    """``CAT_NAME_EXISTS_AS_COLLECTION`` if ``path`` is a collection."""
    if namespace.coll(session.state.catalog, path) is not None:
        raise IrodsError("CAT_NAME_EXISTS_AS_COLLECTION", f"{path} is a collection")


def require_object(session: Session, path: str) -> list[sqlite3.Row]:
    """The object's replicas; ``OBJ_PATH_DOES_NOT_EXIST`` if there are none."""
    reps = namespace.data_replicas(session.state.catalog, path)
    if not reps:
        raise IrodsError("OBJ_PATH_DOES_NOT_EXIST", f"no data object {path}")
    return reps


def authorized_replicas(session: Session, path: str, needed: int) -> list[sqlite3.Row]:
    """The object's replicas, once the caller is known to hold ``needed`` access to it."""
    user = session.require_user()
    reps = require_object(session, path)
    acl.require(session.state.catalog, user, int(reps[0]["data_id"]), needed, path)
    return reps


def pick_replica(
    session: Session, reps: list[sqlite3.Row], opts: dict[str, str], *, for_write: bool
) -> sqlite3.Row | None:
    """The replica the keywords name (None: a resource without a replica was named)."""
    if opts.get(kw.REPL_NUM_KW, "") != "":
        try:
            wanted = int(opts[kw.REPL_NUM_KW])
        except ValueError:
            raise IrodsError("SYS_INVALID_INPUT_PARAM", "bad replica number") from None
        for rep in reps:
            if int(rep["data_repl_num"]) == wanted:
                return rep
        raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", f"no replica {wanted}")
    name = requested_resc(opts, write=for_write)
    candidates = [r for r in reps if on_resc(session, r, name)] if name else list(reps)
    if not candidates:
        return None
    good = [r for r in candidates if int(r["data_is_dirty"]) == GOOD]
    return (good or candidates)[0]


def at_rest(reps: list[sqlite3.Row]) -> list[sqlite3.Row]:
    """The replicas that are neither being written nor locked by a write."""
    return [r for r in reps if int(r["data_is_dirty"]) not in BUSY]


def check_locks(
    session: Session,
    path: str,
    reps: list[sqlite3.Row],
    opts: dict[str, str],
    *,
    write: bool,
    create: bool,
    opr_type: int = 0,
) -> list[sqlite3.Row]:
    """The replicas an open without a replica token may choose from, as iRODS 4.3.4
    decides while another client writes the object (none busy: all of them).

    A hierarchy named outright (``rescHier``) is not voted: ``try_lock``
    (``server/core/src/logical_locking.cpp``) answers ``INTERMEDIATE_REPLICA_ACCESS`` for
    the replica being written, ``LOCKED_DATA_OBJECT_ACCESS`` for a locked one. Otherwise
    (``resolve_resource_hierarchy``, ``server/core/src/irods_resource_redirect.cpp``) a
    create-open (``O_CREAT``) of an existing object is a write when it is a put, copy or
    rsync (``oprType``) or its resource holds a replica, else it creates a new replica
    and meets ``try_lock``: ``LOCKED_DATA_OBJECT_ACCESS``. Reads and writes are voted: an
    intermediate or write-locked replica votes zero (``calculate_with_repl_status``,
    ``server/core/src/voting.cpp``), so with none left (or the named one busy) the answer
    is ``HIERARCHY_ERROR``, "no valid resource found".
    """
    if not any(int(r["data_is_dirty"]) in BUSY for r in reps):
        return reps
    hier = opts.get(kw.RESC_HIER_STR_KW, "")
    if hier:
        named = [r for r in reps if on_resc(session, r, hier)]
        if named and int(named[0]["data_is_dirty"]) == INTERMEDIATE:
            raise IrodsError(INTERMEDIATE_REPLICA_ACCESS, f"{path}: its replica is being written")
        if not named or int(named[0]["data_is_dirty"]) == WRITE_LOCKED:
            raise IrodsError("LOCKED_DATA_OBJECT_ACCESS", f"{path} is locked by a write")
        return reps
    if write and create and opts.get(kw.REPL_NUM_KW, "") == "":
        resc = requested_resc(opts, write=True) or session.state.default_resource
        if opr_type not in LOGICAL_OPRS and not any(on_resc(session, r, resc) for r in reps):
            raise IrodsError("LOCKED_DATA_OBJECT_ACCESS", f"{path} is locked by a write")
    free = at_rest(reps)
    chosen = opts.get(kw.REPL_NUM_KW, "") != "" or bool(requested_resc(opts, write=write))
    if free and (not chosen or pick_replica(session, reps, opts, for_write=write) in free):
        return free
    raise IrodsError("HIERARCHY_ERROR", f"no valid resource found for {path}: it is being written")


def good_source(session: Session, reps: list[sqlite3.Row], opts: dict[str, str]) -> sqlite3.Row:
    """The replica to copy from: the one the keywords name, else the first good one."""
    if opts.get(kw.REPL_NUM_KW, "") != "" or opts.get(kw.RESC_NAME_KW):
        picked = pick_replica(
            session,
            reps,
            {k: opts[k] for k in (kw.REPL_NUM_KW, kw.RESC_NAME_KW) if k in opts},
            for_write=False,
        )
        if picked is None:
            raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", "no such source replica")
        return picked
    good = [r for r in reps if int(r["data_is_dirty"]) == GOOD]
    if not good:
        raise IrodsError("SYS_REPLICA_INACCESSIBLE", "no good replica to copy from")
    return good[0]


def create_object(
    session: Session, path: str, opts: dict[str, str], leaf: sqlite3.Row
) -> tuple[sqlite3.Row, str]:
    """A new data object's first replica (status intermediate) and its physical file."""
    cat = session.state.catalog
    user = session.require_user()
    size = opts.get(kw.DATA_SIZE_KW, "")  # the vote for create (resource_policy.py)
    resource_policy.check_create(leaf, int(size) if size.lstrip("-").isdigit() else -1)
    parent_path = namespace.split(path)[0]
    colls = {
        str(r["coll_name"]): r
        for r in cat.db.execute(
            "SELECT * FROM r_coll_main WHERE coll_name IN (?, ?)", (parent_path, path)
        )
    }  # the parent and (it must not exist) a collection of the new object's name, at once
    parent = colls.get(parent_path)
    if parent is None:
        raise IrodsError("CAT_UNKNOWN_COLLECTION", f"no collection {parent_path}")
    if path in colls:
        raise IrodsError("CAT_NAME_EXISTS_AS_COLLECTION", f"{path} is a collection")
    acl.require(cat, user, int(parent["coll_id"]), acl.WRITE, str(parent["coll_name"]))
    data_id = cat.next_id()
    phys = vault.replica_path(vault_of(session, leaf), cat.zone, path)
    insert_replica(
        session,
        data_id=data_id,
        coll_id=int(parent["coll_id"]),
        name=namespace.split(path)[1],
        repl_num=0,
        leaf=leaf,
        phys=phys,
        status=INTERMEDIATE,
        data_type=opts.get(kw.DATA_TYPE_KW, "generic"),
    )
    inherit = str(parent["coll_inheritance"]) == "1"
    acl.set_initial(cat, data_id, user.id, int(parent["coll_id"]), inherit)
    touch_parents(session, path)
    row = namespace.replicas_by_id(cat, data_id)[0]
    return row, phys


def new_replica_row(
    session: Session, first: sqlite3.Row, leaf: sqlite3.Row, status: int
) -> sqlite3.Row:
    """A new replica row of ``first``'s object on ``leaf`` (no file yet)."""
    cat = session.state.catalog
    data_id = int(first["data_id"])
    path = namespace.data_path(cat, data_id) or ""
    num = next_repl_num(session, data_id)
    insert_replica(
        session,
        data_id=data_id,
        coll_id=int(first["coll_id"]),
        name=str(first["data_name"]),
        repl_num=num,
        leaf=leaf,
        phys=vault.replica_path(vault_of(session, leaf), cat.zone, path),
        status=status,
        data_type=str(first["data_type_name"]),
        owner=(str(first["data_owner_name"]), str(first["data_owner_zone"])),
    )
    row = cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? AND data_repl_num = ?", (data_id, num)
    ).fetchone()
    assert row is not None
    return row


def replicate_to(session: Session, src: sqlite3.Row, leaf: sqlite3.Row) -> sqlite3.Row:
    """Make (or refresh) a good replica of ``src`` on ``leaf``."""
    cat = session.state.catalog
    data_id = int(src["data_id"])
    existing = cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? AND resc_id = ?",
        (data_id, int(leaf["resc_id"])),
    ).fetchone()
    if existing is None:
        existing = new_replica_row(session, src, leaf, INTERMEDIATE)
    dst_path = str(existing["data_path"])
    if dst_path != str(src["data_path"]):
        vault.copy(str(src["data_path"]), dst_path)
    cat.db.execute(
        "UPDATE r_data_main SET data_size = ?, data_is_dirty = ?, data_checksum = ?, modify_ts = ?,"
        " data_type_name = ? WHERE data_id = ? AND data_repl_num = ?",
        (
            int(src["data_size"]),
            GOOD,
            str(src["data_checksum"]),
            str(src["modify_ts"]),
            str(src["data_type_name"]),
            data_id,
            int(existing["data_repl_num"]),
        ),
    )
    row = cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? AND data_repl_num = ?",
        (data_id, int(existing["data_repl_num"])),
    ).fetchone()
    assert row is not None
    return row


def set_good_and_others_stale(session: Session, data_id: int, nums: list[int]) -> None:
    """``allReplStatus`` (``db_mod_data_obj_meta_op``, ``plugins/database/src/db_plugin.cpp``):
    these replicas good, every other one that is not being written stale."""
    marks = ",".join("?" * len(nums))
    db = session.state.catalog.db
    db.execute(
        "UPDATE r_data_main SET data_is_dirty = ?"
        f" WHERE data_id = ? AND data_repl_num IN ({marks})",
        (GOOD, data_id, *nums),
    )
    db.execute(
        "UPDATE r_data_main SET data_is_dirty = ? WHERE data_id = ? AND data_is_dirty != ?"
        f" AND data_repl_num NOT IN ({marks})",
        (STALE, data_id, INTERMEDIATE, *nums),
    )


def touch_parents(session: Session, *paths: str) -> None:
    """Stamp now on the parent collection of each path, as ``fs::server::last_write_time``
    after a create (``rsDataObjOpen.cpp``), a put (``rsDataObjPut.cpp``), a rename, an
    unlink, a collection create or removal (``rsCollCreate.cpp``, ``rsRmColl.cpp``)."""
    ts = now()
    for parent in {namespace.split(p)[0] for p in paths}:
        session.state.catalog.db.execute(
            "UPDATE r_coll_main SET modify_ts = ? WHERE coll_name = ?", (ts, parent)
        )


# -- removing objects, making collections --------------------------------------------------


def remove_object(session: Session, reps: list[sqlite3.Row], *, keep_files: bool = False) -> None:
    """Delete a data object's rows, ACLs, AVU links and (unless ``keep_files``) its files."""
    cat = session.state.catalog
    data_id = int(reps[0]["data_id"])
    if not keep_files:
        for rep in reps:
            vault.unlink(str(rep["data_path"]))
    cat.db.execute("DELETE FROM r_data_main WHERE data_id = ?", (data_id,))
    cat.db.execute("DELETE FROM r_objt_metamap WHERE object_id = ?", (data_id,))
    acl.remove_all(cat, data_id)


def ensure_colls(session: Session, path: str) -> sqlite3.Row:
    """Create ``path`` and missing parents (owned by the client user); return its row."""
    cat = session.state.catalog
    user = session.require_user()
    row = namespace.coll(cat, path)
    if row is not None:
        return row
    parent_path, _ = namespace.split(path)
    parent = ensure_colls(session, parent_path)
    cid = cat.next_id()
    ts = now()
    cat.db.execute(
        "INSERT INTO r_coll_main (coll_id, parent_coll_name, coll_name, coll_owner_name,"
        " coll_owner_zone, create_ts, modify_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (cid, parent_path, path, user.name, user.zone, ts, ts),
    )
    acl.set_initial(cat, cid, user.id, int(parent["coll_id"]))
    touch_parents(session, path)
    found = namespace.coll(cat, path)
    assert found is not None
    return found
