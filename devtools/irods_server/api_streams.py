"""Data-object streams: 601 create / 602 open (:func:`open_object`), 675 read, 676 write,
674 lseek, 673 close and 20004 REPLICA_CLOSE (:func:`close_descriptor`), 20000
GET_FILE_DESCRIPTOR_INFO and 10220 GET_RESOURCE_INFO_FOR_OPERATION.

Every open gets an :class:`OpenReplica` registered under a replica token in
``state.replica_tokens``; further opens presenting the token (parallel streams) share its
OS file descriptor and write at arbitrary offsets with ``os.pwrite``. The catalog row
exists from the create-open on (replica status 2, intermediate); the finalizing close sets
size, mtime, status 1 and marks the object's other replicas stale. A connection that goes
away releases its streams (:func:`release_session`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import irods.keywords as kw
from irods.message import BinBytesBuf, FileOpenRequest, FileSeekResponse, OpenedDataObjRequest

from . import acl, namespace, vault
from .catalog import now
from .dataobj import (
    GOOD,
    INTERMEDIATE,
    STALE,
    WRITE_LOCKED,
    abs_path,
    check_locks,
    create_object,
    dest_leaf,
    hier_of,
    json_in,
    kv_of,
    new_replica_row,
    pick_replica,
    replicate_to,
    requested_resc,
    str_out,
)
from .dispatch import Reply, Request, Session, api, on_disconnect
from .errors import IrodsError

if TYPE_CHECKING:
    from .state import ServerState


O_ACCMODE, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND = 3, 1, 2, 64, 512, 1024
MAX_READ = 64 * 1024 * 1024


# -- open replicas and descriptors ---------------------------------------------------------


@dataclass(eq=False)
class OpenReplica:
    """One replica opened by one or more streams sharing a replica token."""

    token: str
    data_id: int
    repl_num: int
    logical_path: str
    phys: str
    resc_id: int
    fd: int
    write: bool
    opts: dict[str, str]
    refs: int = 0
    written: bool = False
    truncated: bool = False
    finalized: bool = False
    holders: list[weakref.ref[Session]] = field(default_factory=list)
    # the other replicas this write locked: repl num -> status before (restored unless
    # the write changed the data, which leaves them stale)
    locked: dict[int, int] = field(default_factory=dict)
    declared_size: int = 0  # the open's dataSize (L1desc dataSize): checked at close
    created: bool = False  # a new data object or replica (open_type CREATE_TYPE)
    original_status: int = GOOD  # the replica's status before the open made it intermediate
    flags: int = 0  # the open's openFlags
    opr_type: int = 0  # the open's oprType
    # the siblings (repl num -> status before) a lost stream unlocked while others wrote on
    unlocked_early: dict[int, int] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.refs > 0 and any(h() is not None for h in self.holders)


@dataclass(eq=False)
class Handle:
    """An L1 descriptor of one connection."""

    rep: OpenReplica
    write: bool
    append: bool = False
    pos: int = 0
    primary: bool = True
    closed: bool = False
    bytes_written: int = 0


def _fds(session: Session) -> dict[int, Handle]:
    """This connection's open descriptors (kept in ``scratch``: released when it goes away)."""
    fds: dict[int, Handle] | None = session.scratch.get("dataobj.fds")
    if fds is None:
        fds = session.scratch["dataobj.fds"] = {}
        session.scratch["dataobj.finalizer"] = weakref.finalize(
            session, _release, fds, session.state
        )
    return fds


def _new_fd(session: Session, handle: Handle) -> int:
    fds = _fds(session)
    fd = 3
    while fd in fds:
        fd += 1
    fds[fd] = handle
    return fd


@on_disconnect
def release_session(session: Session) -> None:
    """Drop every stream a closing connection still has open (call at disconnect)."""
    _release(_fds(session), session.state)


def _release(fds: dict[int, Handle], state: ServerState) -> None:
    """Streams left open by a lost connection: close them. Each write stream among them,
    the first or a secondary one, stales its replica at once (:func:`stale_lost_writer`),
    even while other streams of the replica keep writing."""
    for handle in list(fds.values()):
        if handle.closed:
            continue
        handle.closed = True
        rep = handle.rep
        _drop_ref(rep)
        if handle.write and not rep.finalized:
            with contextlib.suppress(Exception):
                stale_lost_writer(state, rep)
        if rep.refs <= 0:
            state.replica_tokens.pop(rep.token, None)
    fds.clear()


def stale_lost_writer(state: ServerState, rep: OpenReplica) -> None:
    """A connection holding a write stream of ``rep`` went away: as a real agent's exit
    (``cleanup`` -> ``close_all_l1_descriptors`` -> ``finalize_replica_opened_for_create_or_write``,
    ``server/core/src/initServer.cpp``, 4.3.4), the replica becomes stale with the vault's
    size, mtime now and no checksum, and its siblings are unlocked (their status restored)
    at once. Streams of other connections may go on writing; a later finalizing close of
    the first stream publishes its own state over this one (``finalize_data_object``,
    ``rsDataObjClose.cpp``; ``db_data_object_finalize_op`` checks no "before" state), so
    it can still make the replica good and, if it wrote, stale the siblings."""
    cat = state.catalog
    if not rep.unlocked_early:
        rep.unlocked_early = dict(rep.locked)
    unlock_siblings(state, rep, stale=False)
    cat.db.execute(
        "UPDATE r_data_main SET data_is_dirty = ?, data_size = ?, modify_ts = ?,"
        " data_checksum = '' WHERE data_id = ? AND data_repl_num = ? AND data_is_dirty = ?",
        (STALE, vault.size(rep.phys), now(), rep.data_id, rep.repl_num, INTERMEDIATE),
    )
    cat.commit()


def lock_siblings(state: ServerState, rep: OpenReplica) -> None:
    """Write-lock (status 3) the object's other replicas while ``rep`` is written, as
    ``logical_locking.cpp`` ``lock_data_object`` does; remember what they were."""
    cat = state.catalog
    for row in cat.db.execute(
        "SELECT data_repl_num, data_is_dirty FROM r_data_main"
        " WHERE data_id = ? AND data_repl_num != ?",
        (rep.data_id, rep.repl_num),
    ).fetchall():
        rep.locked[int(row["data_repl_num"])] = int(row["data_is_dirty"])
    cat.db.execute(
        "UPDATE r_data_main SET data_is_dirty = ? WHERE data_id = ? AND data_repl_num != ?",
        (WRITE_LOCKED, rep.data_id, rep.repl_num),
    )


def unlock_siblings(state: ServerState, rep: OpenReplica, *, stale: bool) -> None:
    """The write of ``rep`` is over: its siblings go back to what they were, or stale
    when the data changed (``unlock_data_object``)."""
    cat = state.catalog
    for num, before in rep.locked.items():
        cat.db.execute(
            "UPDATE r_data_main SET data_is_dirty = ?"
            " WHERE data_id = ? AND data_repl_num = ? AND data_is_dirty = ?",
            (STALE if stale else before, rep.data_id, num, WRITE_LOCKED),
        )
    rep.locked.clear()
    if stale and rep.unlocked_early:  # unlocked when a stream was lost; the write went on
        for num in rep.unlocked_early:
            cat.db.execute(
                "UPDATE r_data_main SET data_is_dirty = ?"
                " WHERE data_id = ? AND data_repl_num = ? AND data_is_dirty NOT IN (?, ?)",
                (STALE, rep.data_id, num, INTERMEDIATE, WRITE_LOCKED),
            )
        rep.unlocked_early.clear()


def _drop_ref(rep: OpenReplica) -> None:
    rep.refs -= 1
    if rep.refs == 0:
        with contextlib.suppress(OSError):
            os.close(rep.fd)


def handle_of(session: Session, fd: Any) -> Handle:
    try:
        handle = _fds(session).get(int(fd or 0))
    except (TypeError, ValueError):
        handle = None
    if not isinstance(handle, Handle) or handle.closed:
        raise IrodsError("SYS_BAD_FILE_DESCRIPTOR", f"bad descriptor {fd}")
    return handle


def is_open_for_write(session: Session, data_id: int) -> bool:
    """Whether a live stream writes to ``data_id`` (forgetting dead ones on the way)."""
    for token, rep in list(session.state.replica_tokens.items()):
        if not isinstance(rep, OpenReplica):
            continue
        if not rep.alive():
            session.state.replica_tokens.pop(token, None)
            continue
        if rep.data_id == data_id and rep.write:
            return True
    return False


# -- open / create -------------------------------------------------------------------------


async def _open(session: Session, req: Request, *, create_api: bool) -> Reply:
    inp = req.parse(FileOpenRequest)
    fd = open_object(
        session,
        abs_path(inp.objPath),
        kv_of(inp),
        int(inp.openFlags or 0),
        create_api=create_api,
        opr_type=int(inp.oprType or 0),
        declared_size=int(inp.dataSize or 0),
    )
    return Reply(int_info=fd)


def _unregister_replica(session: Session, data_id: int, repl_num: int) -> None:
    """Remove a replica row whose file could not be made (and the object, if it was its
    only replica), so a create the vault refused leaves nothing in the catalog."""
    db = session.state.catalog.db
    db.execute(
        "DELETE FROM r_data_main WHERE data_id = ? AND data_repl_num = ?", (data_id, repl_num)
    )
    if db.execute("SELECT 1 FROM r_data_main WHERE data_id = ?", (data_id,)).fetchone() is None:
        db.execute("DELETE FROM r_objt_access WHERE object_id = ?", (data_id,))


def open_object(
    session: Session,
    path: str,
    opts: dict[str, str],
    flags: int,
    *,
    create_api: bool,
    opr_type: int = 0,
    declared_size: int = 0,
) -> int:
    """Open (or create) a replica as 601/602 do; the new L1 descriptor."""
    write = create_api or (flags & O_ACCMODE) in (O_WRONLY, O_RDWR)
    cat = session.state.catalog
    user = session.require_user()

    token = opts.get(kw.REPLICA_TOKEN_KW, "")
    if token:
        shared = session.state.replica_tokens.get(token)
        if not isinstance(shared, OpenReplica) or not shared.alive():
            raise IrodsError("SYS_REPLICA_INACCESSIBLE", "unknown or expired replica token")
        if write and not shared.write:
            raise IrodsError("SYS_REPLICA_INACCESSIBLE", "token belongs to a read-only open")
        shared.refs += 1
        shared.holders.append(weakref.ref(session))
        handle = Handle(shared, write=write, append=bool(flags & O_APPEND), primary=False)
        return _new_fd(session, handle)

    reps = namespace.data_replicas(cat, path)
    created = False
    truncate = write and bool(flags & O_TRUNC)
    if not reps:
        if not (create_api or flags & O_CREAT):
            if namespace.coll(cat, path) is not None:
                raise IrodsError("CAT_NAME_EXISTS_AS_COLLECTION", f"{path} is a collection")
            raise IrodsError("OBJ_PATH_DOES_NOT_EXIST", f"no data object {path}")
        name = requested_resc(opts, write=True) or session.state.default_resource
        target, phys = create_object(
            session, path, opts, dest_leaf(session, name, direct_ok=";" in name)
        )
        created = truncate = True
    else:
        data_id = int(reps[0]["data_id"])
        acl.require(cat, user, data_id, acl.WRITE if write else acl.READ, path)
        reps = check_locks(
            session,
            path,
            reps,
            opts,
            write=write,
            create=create_api or bool(flags & O_CREAT),
            opr_type=opr_type,
        )
        if create_api:
            truncate = True
        picked = pick_replica(session, reps, opts, for_write=write)
        if picked is None:
            name = requested_resc(opts, write=write)
            if not (create_api or flags & O_CREAT):
                picked = _best_voted(session, path, reps, opts, name)
            else:
                picked = new_replica_row(
                    session, reps[0], dest_leaf(session, name, direct_ok=";" in name), INTERMEDIATE
                )
                created = truncate = True
        target = picked
        phys = str(target["data_path"])
    original = int(target["data_is_dirty"])
    data_id = int(target["data_id"])
    try:
        fd = vault.open_file(phys, create=write, write=write, truncate=truncate)
    except IrodsError:
        if created:  # the vault refused the file: unregister the replica, as rsDataObjCreate
            _unregister_replica(session, data_id, int(target["data_repl_num"]))
        raise
    if write and not created:  # a created replica is intermediate already
        cat.db.execute(
            "UPDATE r_data_main SET data_is_dirty = ? WHERE data_id = ? AND data_repl_num = ?",
            (INTERMEDIATE, data_id, int(target["data_repl_num"])),
        )
    rep = OpenReplica(
        token=str(uuid.uuid4()),
        data_id=data_id,
        repl_num=int(target["data_repl_num"]),
        logical_path=path,
        phys=phys,
        resc_id=int(target["resc_id"]),
        fd=fd,
        write=write,
        opts=opts,
        refs=1,
        truncated=truncate and not created,
        written=created,
        holders=[weakref.ref(session)],
        declared_size=declared_size if write else 0,
        created=created,
        original_status=original,
        flags=flags | (O_CREAT if create_api else 0),
        opr_type=opr_type,
    )
    if write:
        lock_siblings(session.state, rep)
    session.state.replica_tokens[rep.token] = rep
    handle = Handle(rep, write=write, append=bool(flags & O_APPEND))
    return _new_fd(session, handle)


def _best_voted(
    session: Session, path: str, reps: list[sqlite3.Row], opts: dict[str, str], name: str
) -> sqlite3.Row:
    """An open without ``O_CREAT`` whose keywords name a resource holding no replica.

    As ``get_data_object_info_for_open`` (``server/api/src/rsDataObjOpen.cpp``) and
    ``resolve_hier_for_open_or_write`` (``server/core/src/irods_resource_redirect.cpp``),
    4.3.4: a hierarchy given outright (``rescHier``) must hold a replica
    (``SYS_REPLICA_DOES_NOT_EXIST``); a resource name (``rescName``, ``destRescName``) is
    checked (``SYS_RESC_DOES_NOT_EXIST``, ``DIRECT_CHILD_ACCESS`` for a child:
    ``get_keyword_from_inp``), but only the roots that hold a replica vote, so the name
    matches none and the best-voted existing replica (a good one first) is opened. No
    replica is created: that takes ``O_CREAT`` (``create_new_replica``)."""
    if opts.get(kw.RESC_HIER_STR_KW):
        raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", f"no replica of {path} in {name}")
    row = session.state.catalog.resource(name)
    if row is None:
        raise IrodsError("SYS_RESC_DOES_NOT_EXIST", f"no resource {name!r}")
    if row["resc_parent"]:
        raise IrodsError("DIRECT_CHILD_ACCESS", f"{name} is not a root resource")
    return min(reps, key=lambda r: (int(r["data_is_dirty"]) != GOOD, int(r["data_repl_num"])))


@api(601)
async def data_obj_create(session: Session, req: Request) -> Reply:
    return await _open(session, req, create_api=True)


@api(602)
async def data_obj_open(session: Session, req: Request) -> Reply:
    return await _open(session, req, create_api=False)


# -- I/O -----------------------------------------------------------------------------------


@api(675)
async def data_obj_read(session: Session, req: Request) -> Reply:
    inp = req.parse(OpenedDataObjRequest)
    handle = handle_of(session, inp.l1descInx)
    size = min(max(0, int(inp.len or 0)), MAX_READ)  # a short read is valid
    data = vault.pread(handle.rep.fd, size, handle.pos) if size else b""
    handle.pos += len(data)
    return Reply(int_info=len(data), bs=data)


@api(676)
async def data_obj_write(session: Session, req: Request) -> Reply:
    inp = req.parse(OpenedDataObjRequest)
    handle = handle_of(session, inp.l1descInx)
    if not handle.write:
        raise IrodsError("SYS_BAD_FILE_DESCRIPTOR", "descriptor not open for writing")
    if handle.append:
        handle.pos = os.fstat(handle.rep.fd).st_size
    written = vault.pwrite(handle.rep.fd, req.bs, handle.pos)
    handle.pos += written
    handle.bytes_written += written
    handle.rep.written = True
    return Reply(int_info=written)


@api(674)
async def data_obj_lseek(session: Session, req: Request) -> Reply:
    inp = req.parse(OpenedDataObjRequest)
    handle = handle_of(session, inp.l1descInx)
    offset, whence = int(inp.offset or 0), int(inp.whence or 0)
    if whence == os.SEEK_SET:
        pos = offset
    elif whence == os.SEEK_CUR:
        pos = handle.pos + offset
    elif whence == os.SEEK_END:
        pos = os.fstat(handle.rep.fd).st_size + offset
    else:
        raise IrodsError("SYS_INVALID_INPUT_PARAM", f"bad whence {whence}")
    if pos < 0:
        raise IrodsError("UNIX_FILE_LSEEK_ERR", "negative offset")
    handle.pos = pos
    return Reply(msg=FileSeekResponse(offset=pos))


# -- close ---------------------------------------------------------------------------------


def _finalize(session: Session, rep: OpenReplica, close_opts: dict[str, str]) -> None:
    """Set size, mtime and status of a replica opened for writing; stale the others.

    As ``close_replica`` (``server/api/src/rsDataObjClose.cpp``, 4.3.4): a write clears the
    checksum, recomputed only with ``regChksum``/``verifyChksum``; a size in the vault
    that differs from the open's ``dataSize`` (> 0, no ``noChkCopyLen``) leaves the
    replica stale with that size and its siblings as they were, and the close still
    succeeds (``update_replica_size_and_throw_on_failure`` throws the byte count)."""
    cat = session.state.catalog
    rep.finalized = True
    if not rep.write:
        return
    size = os.fstat(rep.fd).st_size
    opts = {**rep.opts, **close_opts}
    row = cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? AND data_repl_num = ?",
        (rep.data_id, rep.repl_num),
    ).fetchone()
    if row is None:  # removed while open
        return
    changed = rep.written or rep.truncated
    checksum = str(row["data_checksum"]) if not changed else ""
    if kw.NO_CHK_COPY_LEN_KW not in opts and 0 < rep.declared_size != size:
        unlock_siblings(session.state, rep, stale=False)
        cat.db.execute(
            "UPDATE r_data_main SET data_size = ?, data_is_dirty = ?, data_checksum = ?"
            " WHERE data_id = ? AND data_repl_num = ?",
            (size, STALE, checksum, rep.data_id, rep.repl_num),
        )
        return
    unlock_siblings(session.state, rep, stale=changed)
    if kw.REG_CHKSUM_KW in opts or kw.VERIFY_CHKSUM_KW in opts:
        wanted = opts.get(kw.VERIFY_CHKSUM_KW) or opts.get(kw.CHKSUM_KW, "")
        checksum = session.state.checksum(rep.phys, wanted)
        if kw.VERIFY_CHKSUM_KW in opts and wanted and wanted != checksum:
            # as iRODS: size and checksum recorded, the replica left stale
            cat.db.execute(
                "UPDATE r_data_main SET data_size = ?, data_is_dirty = ?, data_checksum = ?,"
                " modify_ts = ? WHERE data_id = ? AND data_repl_num = ?",
                (size, STALE, checksum, now(), rep.data_id, rep.repl_num),
            )
            raise IrodsError("USER_CHKSUM_MISMATCH", "checksum mismatch")
    ts = now() if changed else str(row["modify_ts"])
    cat.db.execute(
        "UPDATE r_data_main SET data_size = ?, data_is_dirty = ?, data_checksum = ?, modify_ts = ?"
        " WHERE data_id = ? AND data_repl_num = ?",
        (size, GOOD, checksum, ts, rep.data_id, rep.repl_num),
    )
    if changed:
        _replicate_within_root(session, rep)


def _replicate_within_root(session: Session, rep: OpenReplica) -> None:
    """A replication resource keeps a good copy on every leaf below its root."""
    cat = session.state.catalog
    root = cat.root_of(rep.resc_id)
    if root["resc_type_name"] != "replication":
        return
    src = cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? AND data_repl_num = ?",
        (rep.data_id, rep.repl_num),
    ).fetchone()
    for leaf in _leaves(session, int(root["resc_id"])):
        if int(leaf["resc_id"]) != rep.resc_id:
            replicate_to(session, src, leaf)


def _leaves(session: Session, resc_id: int) -> list[sqlite3.Row]:
    cat = session.state.catalog
    kids = cat.children(resc_id)
    if not kids:
        row = cat.resource_by_id(resc_id)
        return [row] if row is not None else []
    out: list[sqlite3.Row] = []
    for kid in kids:
        out.extend(_leaves(session, int(kid["resc_id"])))
    return out


def close_descriptor(
    session: Session, fd: int, close_opts: dict[str, str], *, finalize: bool
) -> None:
    handle = handle_of(session, fd)
    _fds(session).pop(fd, None)
    handle.closed = True
    rep = handle.rep
    try:
        if finalize and not rep.finalized:
            _finalize(session, rep, close_opts)
    finally:
        _drop_ref(rep)
        if rep.refs <= 0:
            session.state.replica_tokens.pop(rep.token, None)
            if rep.write and not rep.finalized:
                unlock_siblings(session.state, rep, stale=False)


@api(673)
async def data_obj_close(session: Session, req: Request) -> Reply:
    inp = req.parse(OpenedDataObjRequest)
    handle = handle_of(session, inp.l1descInx)
    close_descriptor(session, int(inp.l1descInx), kv_of(inp), finalize=handle.primary)
    return Reply()


@api(20004)
async def replica_close(session: Session, req: Request) -> Reply:
    """As ``plugins/api/src/replica_close.cpp`` (4.3.4): a write descriptor, whichever stream
    it is, is finalized with the defaults (``update_size`` and ``update_status`` true:
    size, good, mtime, checksum cleared, siblings stale); ``update_size`` alone updates size
    and mtime and clears the checksum, the replica staying intermediate and locked;
    ``update_status`` alone makes it good (its old status if nothing was written to an
    existing replica) and its siblings stale; neither: the stream is closed and nothing
    else (the last stream's close decides).
    ``compute_checksum`` computes one after. A bad descriptor is ``BAD_INPUT_DESC_INDEX``."""
    doc = json_in(req)
    try:
        handle = handle_of(session, doc.get("fd"))
    except IrodsError:
        raise IrodsError("BAD_INPUT_DESC_INDEX", f"bad descriptor {doc.get('fd')}") from None
    fd = int(doc["fd"])
    size, status = bool(doc.get("update_size", True)), bool(doc.get("update_status", True))
    rep = handle.rep
    if rep.write and size and not status and not rep.finalized:
        _update_size(session, rep)
    if rep.write and status and not size and not rep.finalized:
        _update_status(session, rep)
    close_descriptor(session, fd, {}, finalize=rep.write and size and status)
    if rep.write and doc.get("compute_checksum") and rep.finalized:
        cat = session.state.catalog
        cat.db.execute(
            "UPDATE r_data_main SET data_checksum = ? WHERE data_id = ? AND data_repl_num = ?",
            (session.state.checksum(rep.phys), rep.data_id, rep.repl_num),
        )
    return Reply()


def _update_status(session: Session, rep: OpenReplica) -> None:
    """``update_replica_status``: good (or as before when nothing changed), siblings stale."""
    rep.finalized = True
    size = os.fstat(rep.fd).st_size
    row = session.state.catalog.db.execute(
        "SELECT data_size FROM r_data_main WHERE data_id = ? AND data_repl_num = ?",
        (rep.data_id, rep.repl_num),
    ).fetchone()
    unchanged = not rep.written and not rep.created and row is not None
    status = GOOD
    if unchanged and int(row["data_size"]) == size:
        status = rep.original_status
    unlock_siblings(session.state, rep, stale=True)
    session.state.catalog.db.execute(
        "UPDATE r_data_main SET data_is_dirty = ? WHERE data_id = ? AND data_repl_num = ?",
        (status, rep.data_id, rep.repl_num),
    )


def _update_size(session: Session, rep: OpenReplica) -> None:
    """``update_replica_size``: the vault's size and now, the checksum cleared."""
    session.state.catalog.db.execute(
        "UPDATE r_data_main SET data_size = ?, modify_ts = ?, data_checksum = ''"
        " WHERE data_id = ? AND data_repl_num = ?",
        (os.fstat(rep.fd).st_size, now(), rep.data_id, rep.repl_num),
    )


# -- descriptor and resource info ----------------------------------------------------------


def _json_out(doc: Any) -> BinBytesBuf:
    out = BinBytesBuf()
    data = json.dumps(doc).encode()
    out.buf = data
    out.buflen = len(data)
    return out


CREATE_TYPE, OPEN_FOR_READ_TYPE, OPEN_FOR_WRITE_TYPE = 1, 2, 3  # l1desc openType (objDesc.hpp)


@api(20000)
async def get_file_descriptor_info(session: Session, req: Request) -> Reply:
    """The L1 descriptor as JSON, in the shape and with the names of
    ``plugins/api/src/get_file_descriptor_info.cpp`` (4.3.4) ``to_json(l1desc)``; what this
    server does not keep (remote zones, special collections, plugin data) is ``null``/0."""
    doc = json_in(req)
    handle = handle_of(session, doc.get("fd"))
    rep = handle.rep
    cat = session.state.catalog
    row = cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? AND data_repl_num = ?",
        (rep.data_id, rep.repl_num),
    ).fetchone()
    leaf = cat.resource_by_id(rep.resc_id)
    status = int(row["data_is_dirty"]) if row is not None else INTERMEDIATE
    size = int(row["data_size"]) if row is not None else 0
    checksum = str(row["data_checksum"] or "") if row is not None else ""

    def col(name: str) -> str:
        return "" if row is None or row[name] is None else str(row[name])

    info = {
        "object_path": rep.logical_path,
        "resource_name": str(leaf["resc_name"]) if leaf is not None else "",
        "resource_hierarchy": hier_of(session, rep.resc_id),
        "data_type": col("data_type_name"),
        "data_size": size,
        "checksum": checksum,
        "version": col("data_version"),
        "file_path": rep.phys,
        "data_owner_name": col("data_owner_name"),
        "data_owner_zone": col("data_owner_zone"),
        "replica_number": rep.repl_num,
        "is_replica_current": status == GOOD,
        "replica_status": status,
        "status_string": col("data_status"),
        "data_id": rep.data_id,
        "collection_id": int(row["coll_id"]) if row is not None else 0,
        "data_map_id": 0,
        "flags": 0,
        "data_comments": col("r_comment"),
        "data_mode": col("data_mode"),
        "data_expiry": col("data_expiry_ts"),
        "data_create": col("create_ts"),
        "data_modify": col("modify_ts"),
        "data_access": "",
        "data_access_index": 0,
        "write_flag": 1 if rep.write else 0,
        "destination_resource_name": "",
        "backup_resource_name": "",
        "sub_path": "",
        "special_collection": None,
        "registering_user_id": 0,
        "other_flags": 0,
        "condition_input": [],
        "in_pdmo": "",
        "next": None,
        "resource_id": rep.resc_id,
    }
    out = {
        "l3descInx": rep.fd,
        "in_use": True,
        "operation_type": rep.opr_type,
        "open_type": CREATE_TYPE
        if rep.created
        else (OPEN_FOR_WRITE_TYPE if rep.write else OPEN_FOR_READ_TYPE),
        "operation_status": 0,
        "data_object_input_replica_flag": 0,
        "data_object_input": {
            "object_path": rep.logical_path,
            "create_mode": 0o644,
            "open_flags": rep.flags,
            "offset": 0,
            "data_size": rep.declared_size,
            "number_of_threads": 0,
            "operation_type": rep.opr_type,
            "special_collection": None,
            "condition_input": [{"key": k, "value": v} for k, v in rep.opts.items()],
        },
        "data_object_info": info,
        "other_data_object_info": None,
        "copies_needed": 0,
        "bytes_written": handle.bytes_written,
        "data_size": rep.declared_size,
        "replica_status": status,
        "checksum_flag": 0,
        "source_l1_descriptor_index": 0,
        "checksum": checksum,
        "remote_l1_descriptor_index": 0,
        "stage_flag": 0,
        "purge_cache_flag": 0,
        "lock_file_descriptor": 0,
        "plugin_data": None,
        "replication_data_object_info": None,
        "remote_zone_host": None,
        "in_pdmo": "",
        "replica_token": rep.token,
    }
    return Reply(msg=_json_out(out))


@api(10220)
async def get_resource_info_for_operation(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = abs_path(inp.objPath)
    opts = kv_of(inp)
    op = opts.get(kw.GET_RESOURCE_INFO_OP_TYPE_KW, "OPEN")
    reps = namespace.data_replicas(session.state.catalog, path)
    picked = pick_replica(session, reps, opts, for_write=op == "CREATE") if reps else None
    if picked is not None:
        resc_id = int(picked["resc_id"])
    else:
        if op != "CREATE":
            raise IrodsError("OBJ_PATH_DOES_NOT_EXIST", f"no data object {path}")
        name = requested_resc(opts, write=True) or session.state.default_resource
        resc_id = int(dest_leaf(session, name, direct_ok=";" in name)["resc_id"])
    leaf = session.state.catalog.resource_by_id(resc_id)
    host = str(leaf["resc_net"]) if leaf is not None else "localhost"
    return Reply(
        msg=str_out(json.dumps({"host": host, "resource_hierarchy": hier_of(session, resc_id)}))
    )
