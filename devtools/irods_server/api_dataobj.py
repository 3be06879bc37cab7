"""Data-object APIs: open/create, read/write/lseek/close, parallel streams, unlink, rename,
copy, replicate, trim, truncate, checksum, register, modDataObjMeta and touch.

Every open gets an :class:`OpenReplica` registered under a replica token in
``state.replica_tokens``; further opens presenting the token (parallel streams) share its
OS file descriptor and write at arbitrary offsets with ``os.pwrite``. The catalog row
exists from the create-open on (replica status 2, intermediate); the finalizing close sets
size, mtime, status 1 and marks the object's other replicas stale.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import uuid
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import irods.keywords as kw
from irods.message import (
    BinBytesBuf,
    DataObjInfo_for_session,
    FileOpenRequest,
    FileSeekResponse,
    Message,
    OpenedDataObjRequest,
    StringProperty,
    StringStringMap,
)

from . import acl, namespace, vault
from .catalog import now
from .dispatch import Reply, Request, Session, api, on_disconnect
from .errors import IrodsError, code_of

if TYPE_CHECKING:
    from .state import ServerState

O_ACCMODE, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND = 3, 1, 2, 64, 512, 1024
STALE, GOOD, INTERMEDIATE = 0, 1, 2
UNREG_OPR = 26
DEFAULT_MIN_COPIES = 2
MAX_READ = 64 * 1024 * 1024


class STR_PI(Message):
    _name = "STR_PI"
    myStr = StringProperty()


class _VersionHint:
    server_version = (4, 3, 4)


DataObjInfo = DataObjInfo_for_session(_VersionHint())


# -- open replicas and descriptors ----------------------------------------------------------


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


def _pairs(pairs: Any) -> dict[str, str]:
    """A parsed KeyValPair_PI as a dict."""
    if pairs is None or not pairs.ssLen:
        return {}
    keys, values = pairs.keyWord, pairs.svalue
    return {str(k): "" if v is None else str(v) for k, v in zip(keys, values, strict=False)}


def _kv(m: Any) -> dict[str, str]:
    """The KeyValPair_PI of a parsed message as a dict."""
    return _pairs(getattr(m, "KeyValPair_PI", None))


def _path(raw: str | None, error: str = "SYS_INVALID_FILE_PATH") -> str:
    if not raw or not raw.startswith("/"):
        raise IrodsError(error, f"not an absolute logical path: {raw!r}")
    return namespace.normalize(raw)


def _two_inputs(req: Request) -> tuple[FileOpenRequest, FileOpenRequest]:
    """The source and destination DataObjInp_PI of a DataObjCopyInp_PI request."""
    root = ET.fromstring(req.msg.replace(b"\0", b""))  # noqa: S314 - same trust as Request.parse
    found = root.findall("DataObjInp_PI")
    if len(found) != 2:
        raise IrodsError("SYS_INVALID_INPUT_PARAM", "expected two DataObjInp_PI")
    src, dest = FileOpenRequest(), FileOpenRequest()
    src.unpack(found[0])
    dest.unpack(found[1])
    return src, dest


def _json_in(req: Request) -> dict[str, Any]:
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


def _json_out(doc: Any) -> BinBytesBuf:
    out = BinBytesBuf()
    data = json.dumps(doc).encode()
    out.buf = data
    out.buflen = len(data)
    return out


def _str_out(text: str) -> STR_PI:
    return STR_PI(myStr=text)


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
    session.fds[fd] = handle
    return fd


@on_disconnect
def release_session(session: Session) -> None:
    """Drop every stream a closing connection still has open (call at disconnect)."""
    _release(_fds(session), session.state)


def _release(fds: dict[int, Handle], state: ServerState) -> None:
    """Streams left open by a lost connection: close them; a replica being written that
    no stream holds any more is left stale (status 0), not intermediate."""
    cat = state.catalog
    for handle in list(fds.values()):
        if handle.closed:
            continue
        handle.closed = True
        rep = handle.rep
        _drop_ref(rep)
        if rep.refs <= 0:
            state.replica_tokens.pop(rep.token, None)
            if rep.write and not rep.finalized:
                rep.finalized = True
                with contextlib.suppress(Exception):
                    cat.db.execute(
                        "UPDATE r_data_main SET data_is_dirty = ?, data_size = ?, modify_ts = ?"
                        " WHERE data_id = ? AND data_repl_num = ? AND data_is_dirty = ?",
                        (
                            STALE,
                            vault.size(rep.phys),
                            now(),
                            rep.data_id,
                            rep.repl_num,
                            INTERMEDIATE,
                        ),
                    )
                    cat.commit()
    fds.clear()


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


# -- resources -------------------------------------------------------------------------------


def _leaf(session: Session, name: str, *, direct_ok: bool = False) -> sqlite3.Row:
    """The leaf to write to for a resource name or hierarchy string."""
    cat = session.state.catalog
    if ";" not in name:
        row = cat.resource(name)
        if row is None:
            raise IrodsError("SYS_RESC_DOES_NOT_EXIST", f"no resource {name!r}")
        if row["resc_parent"] and not direct_ok:
            raise IrodsError("DIRECT_CHILD_ACCESS", f"{name} is not a root resource")
    return cat.leaf_for(name)


def _requested_resc(opts: dict[str, str], *, write: bool) -> str:
    for key in (kw.RESC_HIER_STR_KW, kw.RESC_NAME_KW) + (
        (kw.DEST_RESC_NAME_KW, kw.DEF_RESC_NAME_KW) if write else ()
    ):
        if opts.get(key):
            return opts[key]
    return ""


def _on_resc(session: Session, rep: sqlite3.Row, name: str) -> bool:
    """Whether replica ``rep`` lives at/under the resource (name or hierarchy) ``name``."""
    hier = session.state.catalog.resc_hier(int(rep["resc_id"]))
    if ";" in name:
        return hier == name
    return name in hier.split(";")


def _hier(session: Session, resc_id: int) -> str:
    return session.state.catalog.resc_hier(resc_id)


def _vault_of(session: Session, leaf: sqlite3.Row) -> str:
    path = str(leaf["resc_def_path"])
    if not path:
        path = str(session.state.vault_root / str(leaf["resc_name"]))
    return path


# -- catalog helpers ------------------------------------------------------------------------


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


def _next_repl_num(session: Session, data_id: int) -> int:
    row = session.state.catalog.db.execute(
        "SELECT max(data_repl_num) FROM r_data_main WHERE data_id = ?", (data_id,)
    ).fetchone()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def _parent_coll(session: Session, path: str) -> sqlite3.Row:
    parent, _ = namespace.split(path)
    row = namespace.coll(session.state.catalog, parent)
    if row is None:
        raise IrodsError("CAT_UNKNOWN_COLLECTION", f"no collection {parent}")
    return row


def _check_new_name(session: Session, path: str) -> None:
    if namespace.coll(session.state.catalog, path) is not None:
        raise IrodsError("CAT_NAME_EXISTS_AS_COLLECTION", f"{path} is a collection")


def _is_open_for_write(session: Session, data_id: int, except_token: str = "") -> bool:
    for token, rep in list(session.state.replica_tokens.items()):
        if not isinstance(rep, OpenReplica):
            continue
        if not rep.alive():
            session.state.replica_tokens.pop(token, None)
            continue
        if rep.data_id == data_id and rep.write and token != except_token:
            return True
    return False


def _require_object(session: Session, path: str) -> list[sqlite3.Row]:
    reps = namespace.data_replicas(session.state.catalog, path)
    if not reps:
        raise IrodsError("OBJ_PATH_DOES_NOT_EXIST", f"no data object {path}")
    return reps


def _authorized_replicas(session: Session, path: str, needed: int) -> list[sqlite3.Row]:
    """The object's replicas, once the caller is known to hold ``needed`` access to it."""
    user = session.require_user()
    reps = _require_object(session, path)
    acl.require(session.state.catalog, user, int(reps[0]["data_id"]), needed, path)
    return reps


def _pick_replica(
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
    name = _requested_resc(opts, write=for_write)
    candidates = [r for r in reps if _on_resc(session, r, name)] if name else list(reps)
    if not candidates:
        return None
    good = [r for r in candidates if int(r["data_is_dirty"]) == GOOD]
    return (good or candidates)[0]


# -- open / create ----------------------------------------------------------------------------


def _create_object(
    session: Session, path: str, opts: dict[str, str], leaf: sqlite3.Row
) -> tuple[sqlite3.Row, str]:
    """A new data object's first replica (status intermediate) and its physical file."""
    cat = session.state.catalog
    user = session.require_user()
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
    phys = vault.replica_path(_vault_of(session, leaf), cat.zone, path)
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
    row = namespace.replicas_by_id(cat, data_id)[0]
    return row, phys


def _new_replica_row(
    session: Session, first: sqlite3.Row, leaf: sqlite3.Row, status: int
) -> sqlite3.Row:
    cat = session.state.catalog
    data_id = int(first["data_id"])
    path = namespace.data_path(cat, data_id) or ""
    num = _next_repl_num(session, data_id)
    insert_replica(
        session,
        data_id=data_id,
        coll_id=int(first["coll_id"]),
        name=str(first["data_name"]),
        repl_num=num,
        leaf=leaf,
        phys=vault.replica_path(_vault_of(session, leaf), cat.zone, path),
        status=status,
        data_type=str(first["data_type_name"]),
        owner=(str(first["data_owner_name"]), str(first["data_owner_zone"])),
    )
    row = cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? AND data_repl_num = ?", (data_id, num)
    ).fetchone()
    assert row is not None
    return row


async def _open(session: Session, req: Request, *, create_api: bool) -> Reply:
    inp = req.parse(FileOpenRequest)
    fd = open_object(
        session, _path(inp.objPath), _kv(inp), int(inp.openFlags or 0), create_api=create_api
    )
    return Reply(int_info=fd)


def open_object(
    session: Session, path: str, opts: dict[str, str], flags: int, *, create_api: bool
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
        name = _requested_resc(opts, write=True) or session.state.default_resource
        target, phys = _create_object(
            session, path, opts, _leaf(session, name, direct_ok=";" in name)
        )
        created = truncate = True
    else:
        data_id = int(reps[0]["data_id"])
        acl.require(cat, user, data_id, acl.WRITE if write else acl.READ, path)
        if write and _is_open_for_write(session, data_id):
            raise IrodsError("LOCKED_DATA_OBJECT_ACCESS", f"{path} is open for writing")
        if create_api:
            truncate = True
        picked = _pick_replica(session, reps, opts, for_write=write)
        if picked is None:
            name = _requested_resc(opts, write=write)
            if not write:
                raise IrodsError("SYS_REPLICA_INACCESSIBLE", f"no replica of {path} on {name}")
            picked = _new_replica_row(
                session, reps[0], _leaf(session, name, direct_ok=";" in name), INTERMEDIATE
            )
            created = truncate = True
        target = picked
        phys = str(target["data_path"])
    data_id = int(target["data_id"])
    fd = vault.open_file(phys, create=write, write=write, truncate=truncate)
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
    )
    session.state.replica_tokens[rep.token] = rep
    handle = Handle(rep, write=write, append=bool(flags & O_APPEND))
    return _new_fd(session, handle)


@api(601)
async def data_obj_create(session: Session, req: Request) -> Reply:
    return await _open(session, req, create_api=True)


@api(602)
async def data_obj_open(session: Session, req: Request) -> Reply:
    return await _open(session, req, create_api=False)


# -- I/O --------------------------------------------------------------------------------------


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


def _finalize(session: Session, rep: OpenReplica, close_opts: dict[str, str]) -> None:
    """Set size, mtime and status of a replica opened for writing; stale the others."""
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
    if (
        kw.REG_CHKSUM_KW in opts
        or kw.VERIFY_CHKSUM_KW in opts
        or (changed and row["data_checksum"])
    ):
        checksum = vault.sha256_checksum(rep.phys)
        wanted = opts.get(kw.VERIFY_CHKSUM_KW) or opts.get(kw.CHKSUM_KW, "")
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
        cat.db.execute(
            "UPDATE r_data_main SET data_is_dirty = ? WHERE data_id = ? AND data_repl_num != ?",
            (STALE, rep.data_id, rep.repl_num),
        )
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
            _replicate_to(session, src, leaf)


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
    session.fds.pop(fd, None)
    handle.closed = True
    rep = handle.rep
    try:
        if finalize and not rep.finalized:
            _finalize(session, rep, close_opts)
    finally:
        _drop_ref(rep)
        if rep.refs <= 0:
            session.state.replica_tokens.pop(rep.token, None)


@api(673)
async def data_obj_close(session: Session, req: Request) -> Reply:
    inp = req.parse(OpenedDataObjRequest)
    handle = handle_of(session, inp.l1descInx)
    close_descriptor(session, int(inp.l1descInx), _kv(inp), finalize=handle.primary)
    return Reply()


@api(20004)
async def replica_close(session: Session, req: Request) -> Reply:
    doc = _json_in(req)
    handle = handle_of(session, doc.get("fd"))
    fd = int(doc["fd"])
    finalize = bool(doc.get("update_size", True) or doc.get("update_status", True))
    close_descriptor(session, fd, {}, finalize=finalize and handle.primary)
    return Reply()


@api(20000)
async def get_file_descriptor_info(session: Session, req: Request) -> Reply:
    doc = _json_in(req)
    handle = handle_of(session, doc.get("fd"))
    rep = handle.rep
    cat = session.state.catalog
    row = cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? AND data_repl_num = ?",
        (rep.data_id, rep.repl_num),
    ).fetchone()
    leaf = cat.resource_by_id(rep.resc_id)
    info = {
        "object_path": rep.logical_path,
        "resource_hierarchy": _hier(session, rep.resc_id),
        "resource_name": str(leaf["resc_name"]) if leaf is not None else "",
        "replica_number": rep.repl_num,
        "replica_status": int(row["data_is_dirty"]) if row is not None else INTERMEDIATE,
        "data_id": rep.data_id,
        "data_size": int(row["data_size"]) if row is not None else 0,
        "file_path": rep.phys,
        "checksum": str(row["data_checksum"]) if row is not None else "",
    }
    out = {
        "l3descInx": rep.fd,
        "in_use": True,
        "operation_type": 1 if rep.write else 2,
        "open_type": 1 if rep.write else 0,
        "oper_status": 0,
        "data_size": info["data_size"],
        "replica_token": rep.token,
        "data_object_input": {"obj_path": rep.logical_path, "key_value_pairs": rep.opts},
        "data_object_info": info,
    }
    return Reply(msg=_json_out(out))


@api(10220)
async def get_resource_info_for_operation(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = _path(inp.objPath)
    opts = _kv(inp)
    op = opts.get(kw.GET_RESOURCE_INFO_OP_TYPE_KW, "OPEN")
    reps = namespace.data_replicas(session.state.catalog, path)
    picked = _pick_replica(session, reps, opts, for_write=op == "CREATE") if reps else None
    if picked is not None:
        resc_id = int(picked["resc_id"])
    else:
        if op != "CREATE":
            raise IrodsError("OBJ_PATH_DOES_NOT_EXIST", f"no data object {path}")
        name = _requested_resc(opts, write=True) or session.state.default_resource
        resc_id = int(_leaf(session, name, direct_ok=";" in name)["resc_id"])
    leaf = session.state.catalog.resource_by_id(resc_id)
    host = str(leaf["resc_net"]) if leaf is not None else "localhost"
    return Reply(
        msg=_str_out(json.dumps({"host": host, "resource_hierarchy": _hier(session, resc_id)}))
    )


# -- unlink / rename / copy ---------------------------------------------------------------------


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


def _unique_trash(session: Session, path: str) -> str:
    cat = session.state.catalog
    candidate, n = path, 0
    while namespace.data_replicas(cat, candidate) or namespace.coll(cat, candidate):
        n += 1
        candidate = f"{path}.{n}"
    return candidate


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
    found = namespace.coll(cat, path)
    assert found is not None
    return found


def move_object(session: Session, reps: list[sqlite3.Row], dest: str) -> None:
    """Rename a data object to ``dest`` (parent must exist), moving vault files along."""
    cat = session.state.catalog
    parent = _parent_coll(session, dest)
    data_id = int(reps[0]["data_id"])
    cat.db.execute(
        "UPDATE r_data_main SET coll_id = ?, data_name = ? WHERE data_id = ?",
        (int(parent["coll_id"]), namespace.split(dest)[1], data_id),
    )
    for rep in reps:
        leaf = cat.resource_by_id(int(rep["resc_id"]))
        if leaf is None:
            continue
        old = str(rep["data_path"])
        root = _vault_of(session, leaf).rstrip("/") + "/"
        if not old.startswith(root) or not os.path.exists(old):
            continue
        new = vault.replica_path(_vault_of(session, leaf), cat.zone, dest)
        try:
            vault.move(old, new)
        except OSError:
            continue
        cat.db.execute(
            "UPDATE r_data_main SET data_path = ? WHERE data_id = ? AND data_repl_num = ?",
            (new, data_id, int(rep["data_repl_num"])),
        )


@api(615)
async def data_obj_unlink(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = _path(inp.objPath, "USER_INPUT_PATH_ERR")
    opts = _kv(inp)
    cat = session.state.catalog
    user = session.require_user()
    reps = namespace.data_replicas(cat, path)
    if not reps:
        raise IrodsError("CAT_NO_ROWS_FOUND", f"no data object {path}")
    data_id = int(reps[0]["data_id"])
    acl.require(cat, user, data_id, acl.DELETE_OBJECT, path)
    if _is_open_for_write(session, data_id):
        raise IrodsError("LOCKED_DATA_OBJECT_ACCESS", f"{path} is open for writing")
    unreg = int(inp.oprType or 0) == UNREG_OPR
    in_trash = namespace.is_within(path, f"/{cat.zone}/trash")
    if unreg or kw.FORCE_FLAG_KW in opts or in_trash:
        remove_object(session, reps, keep_files=unreg)
        return Reply()
    dest = _unique_trash(session, namespace.trash_path(cat.zone, user.name, path))
    ensure_colls(session, namespace.split(dest)[0])
    move_object(session, reps, dest)
    return Reply()


def _rename_data(session: Session, src: str, dest: str) -> None:
    cat = session.state.catalog
    user = session.require_user()
    reps = _require_object(session, src)
    acl.require(cat, user, int(reps[0]["data_id"]), acl.DELETE_OBJECT, src)
    if namespace.data_replicas(cat, dest):
        raise IrodsError("CAT_NAME_EXISTS_AS_DATAOBJ", f"{dest} exists")
    _check_new_name(session, dest)
    parent = _parent_coll(session, dest)
    acl.require(cat, user, int(parent["coll_id"]), acl.WRITE, str(parent["coll_name"]))
    move_object(session, reps, dest)


@api(627)
async def data_obj_rename(session: Session, req: Request) -> Reply:
    src_inp, dest_inp = _two_inputs(req)
    src = _path(src_inp.objPath, "USER_INPUT_PATH_ERR")
    dest = _path(dest_inp.objPath, "USER_INPUT_PATH_ERR")
    if src == dest:
        return Reply()
    kind = int(src_inp.oprType or 0)
    cat = session.state.catalog
    if kind == 12 or (
        kind != 11 and not namespace.data_replicas(cat, src) and namespace.coll(cat, src)
    ):
        from .api_collection import rename_collection

        rename_collection(session, src, dest)
    else:
        _rename_data(session, src, dest)
    return Reply()


def _replicate_to(session: Session, src: sqlite3.Row, leaf: sqlite3.Row) -> sqlite3.Row:
    """Make (or refresh) a good replica of ``src`` on ``leaf``."""
    cat = session.state.catalog
    data_id = int(src["data_id"])
    existing = cat.db.execute(
        "SELECT * FROM r_data_main WHERE data_id = ? AND resc_id = ?",
        (data_id, int(leaf["resc_id"])),
    ).fetchone()
    if existing is None:
        existing = _new_replica_row(session, src, leaf, INTERMEDIATE)
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


def _good_source(session: Session, reps: list[sqlite3.Row], opts: dict[str, str]) -> sqlite3.Row:
    if opts.get(kw.REPL_NUM_KW, "") != "" or opts.get(kw.RESC_NAME_KW):
        picked = _pick_replica(
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


@api(696)
async def data_obj_copy(session: Session, req: Request) -> Reply:
    src_inp, dest_inp = _two_inputs(req)
    src = _path(src_inp.objPath, "USER_INPUT_PATH_ERR")
    dest = _path(dest_inp.objPath, "USER_INPUT_PATH_ERR")
    cat = session.state.catalog
    for p in (src, dest):
        if p.split("/")[1] != cat.zone:
            raise IrodsError("USER_INPUT_PATH_ERR", f"{p} is not in zone {cat.zone}")
    opts = _kv(dest_inp)
    user = session.require_user()
    reps = _require_object(session, src)
    acl.require(cat, user, int(reps[0]["data_id"]), acl.READ, src)
    source = _good_source(session, reps, _kv(src_inp))
    existing = namespace.data_replicas(cat, dest)
    name = _requested_resc(opts, write=True) or session.state.default_resource
    leaf = _leaf(session, name, direct_ok=";" in name)
    if existing:
        if kw.FORCE_FLAG_KW not in opts:
            raise IrodsError("OVERWRITE_WITHOUT_FORCE_FLAG", f"{dest} exists")
        acl.require(cat, user, int(existing[0]["data_id"]), acl.WRITE, dest)
        remove_object(session, existing)
    target, phys = _create_object(session, dest, opts, leaf)
    vault.copy(str(source["data_path"]), phys)
    checksum = str(source["data_checksum"])
    if kw.REG_CHKSUM_KW in opts or kw.VERIFY_CHKSUM_KW in opts:
        checksum = vault.sha256_checksum(phys)
    cat.db.execute(
        "UPDATE r_data_main SET data_size = ?, data_is_dirty = ?, data_checksum = ?,"
        " data_type_name = ? WHERE data_id = ? AND data_repl_num = 0",
        (vault.size(phys), GOOD, checksum, str(source["data_type_name"]), int(target["data_id"])),
    )
    return Reply()


# -- replicas: replicate / trim / truncate ---------------------------------------------------------


@api(695)
async def data_obj_repl(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = _path(inp.objPath, "USER_INPUT_PATH_ERR")
    opts = _kv(inp)
    cat = session.state.catalog
    reps = _authorized_replicas(session, path, acl.READ)
    if _is_open_for_write(session, int(reps[0]["data_id"])):
        raise IrodsError("LOCKED_DATA_OBJECT_ACCESS", f"{path} is open for writing")
    source = _good_source(session, reps, opts)
    if kw.ALL_KW in opts or (kw.UPDATE_REPL_KW in opts and not opts.get(kw.DEST_RESC_NAME_KW)):
        for rep in reps:
            if int(rep["data_is_dirty"]) != GOOD:
                leaf = cat.resource_by_id(int(rep["resc_id"]))
                if leaf is not None:
                    _replicate_to(session, source, leaf)
        if kw.ALL_KW in opts and not opts.get(kw.DEST_RESC_NAME_KW):
            return Reply()
    name = (
        opts.get(kw.DEST_RESC_HIER_STR_KW)
        or opts.get(kw.DEST_RESC_NAME_KW)
        or opts.get(kw.DEF_RESC_NAME_KW)
    )
    name = name or session.state.default_resource
    if ";" not in name:
        row = cat.resource(name)
        if row is None:
            raise IrodsError("SYS_RESC_DOES_NOT_EXIST", f"no resource {name!r}")
        # a replica anywhere below the named root counts as "on" it
        below = [r for r in reps if _on_resc(session, r, name)]
        if below:
            good = [r for r in below if int(r["data_is_dirty"]) == GOOD]
            if good:
                return Reply()
            leaf = cat.resource_by_id(int(below[0]["resc_id"]))
            assert leaf is not None
        else:
            leaf = _leaf(session, name, direct_ok=True)
    else:
        leaf = _leaf(session, name, direct_ok=True)
    if int(leaf["resc_id"]) == int(source["resc_id"]):
        return Reply()
    _replicate_to(session, source, leaf)
    return Reply()


@api(632)
async def data_obj_trim(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = _path(inp.objPath, "USER_INPUT_PATH_ERR")
    opts = _kv(inp)
    cat = session.state.catalog
    reps = _authorized_replicas(session, path, acl.DELETE_OBJECT)
    try:
        copies = int(opts.get(kw.COPIES_KW) or DEFAULT_MIN_COPIES)
    except ValueError:
        raise IrodsError("SYS_INVALID_INPUT_PARAM", "bad copies value") from None
    copies = max(copies, 1)
    candidates = list(reps)
    if opts.get(kw.REPL_NUM_KW, "") != "":
        candidates = [r for r in reps if str(r["data_repl_num"]) == opts[kw.REPL_NUM_KW].strip()]
        if not candidates:
            raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", "no such replica")
    elif opts.get(kw.RESC_NAME_KW):
        candidates = [r for r in reps if _on_resc(session, r, opts[kw.RESC_NAME_KW])]
        if not candidates:
            raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", "no replica on that resource")
    keep_files = int(inp.oprType or 0) == UNREG_OPR
    # stale replicas go first; good ones only while enough good copies remain
    remaining = list(reps)
    trimmed = 0
    for rep in sorted(candidates, key=lambda r: int(r["data_is_dirty"]) == GOOD):
        good_left = [r for r in remaining if int(r["data_is_dirty"]) == GOOD]
        is_good = int(rep["data_is_dirty"]) == GOOD
        if len(remaining) <= copies and (is_good or len(remaining) <= 1):
            continue
        if is_good and len(good_left) <= 1:
            continue
        if not keep_files:
            vault.unlink(str(rep["data_path"]))
        cat.db.execute(
            "DELETE FROM r_data_main WHERE data_id = ? AND data_repl_num = ?",
            (int(rep["data_id"]), int(rep["data_repl_num"])),
        )
        remaining = [r for r in remaining if r is not rep]
        trimmed += 1
    return Reply(int_info=trimmed)


@api(652)
async def data_obj_truncate(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = _path(inp.objPath, "USER_INPUT_PATH_ERR")
    size = int(inp.dataSize or 0)
    if size < 0:
        raise IrodsError(code_of("UNIX_FILE_TRUNCATE_ERR") - errno.EINVAL, "negative size")
    reps = _authorized_replicas(session, path, acl.WRITE)
    target = _pick_replica(session, reps, _kv(inp), for_write=False) or reps[0]
    _truncate_replica(session, target, size)
    return Reply()


def _truncate_replica(session: Session, target: sqlite3.Row, size: int) -> None:
    cat = session.state.catalog
    vault.truncate(str(target["data_path"]), size)
    cat.db.execute(
        "UPDATE r_data_main SET data_size = ?, data_checksum = '', data_is_dirty = ?, modify_ts = ?"
        " WHERE data_id = ? AND data_repl_num = ?",
        (size, GOOD, now(), int(target["data_id"]), int(target["data_repl_num"])),
    )
    cat.db.execute(
        "UPDATE r_data_main SET data_is_dirty = ? WHERE data_id = ? AND data_repl_num != ?",
        (STALE, int(target["data_id"]), int(target["data_repl_num"])),
    )


@api(802)
async def replica_truncate(session: Session, req: Request) -> Reply:
    """Truncate one replica; errors carry a JSON body too, as iRODS 4.3 answers them."""
    try:
        return _replica_truncate(session, req)
    except IrodsError as e:
        doc = {"replica_number": None, "resource_hierarchy": None, "message": e.message}
        e.reply_msg = _str_out(json.dumps(doc))
        raise


def _replica_truncate(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = _path(inp.objPath, "USER_INPUT_PATH_ERR")
    size = int(inp.dataSize or 0)
    reps = _authorized_replicas(session, path, acl.WRITE)
    opts = _kv(inp)
    target = _pick_replica(session, reps, opts, for_write=False)
    if target is None:
        raise IrodsError("SYS_REPLICA_INACCESSIBLE", "no replica on that resource")
    if size < 0:
        raise IrodsError(code_of("UNIX_FILE_TRUNCATE_ERR") - errno.EINVAL, "negative size")
    _truncate_replica(session, target, size)
    doc = {
        "replica_number": int(target["data_repl_num"]),
        "resource_hierarchy": _hier(session, int(target["resc_id"])),
        "message": "",
    }
    return Reply(msg=_str_out(json.dumps(doc)))


# -- checksums ---------------------------------------------------------------------------------


@api(629)
async def data_obj_chksum(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = _path(inp.objPath, "USER_INPUT_PATH_ERR")
    opts = _kv(inp)
    cat = session.state.catalog
    reps = _authorized_replicas(session, path, acl.READ)
    if kw.VERIFY_CHKSUM_KW in opts:
        return _verify(session, reps, opts)
    every = kw.CHKSUM_ALL_KW in opts
    targets = reps if every else [_pick_replica(session, reps, opts, for_write=False) or reps[0]]
    if (
        opts.get(kw.RESC_NAME_KW)
        and not every
        and not any(_on_resc(session, r, opts[kw.RESC_NAME_KW]) for r in reps)
    ):
        raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", "no replica on that resource")
    result = ""
    for rep in targets:
        checksum = str(rep["data_checksum"])
        if not checksum or kw.FORCE_CHKSUM_KW in opts:
            checksum = vault.sha256_checksum(str(rep["data_path"]))
            cat.db.execute(
                "UPDATE r_data_main SET data_checksum = ? WHERE data_id = ? AND data_repl_num = ?",
                (checksum, int(rep["data_id"]), int(rep["data_repl_num"])),
            )
        result = result or checksum
    return Reply(msg=_str_out(result))


def _verify(session: Session, reps: list[sqlite3.Row], opts: dict[str, str]) -> Reply:
    """Compare stored checksums with the files; report replicas that have none."""
    name = opts.get(kw.RESC_NAME_KW)
    if opts.get(kw.REPL_NUM_KW, "") != "" or name:
        picked = _pick_replica(session, reps, opts, for_write=False)
        reps = [picked] if picked is not None else []
    missing = []
    for rep in reps:
        stored = str(rep["data_checksum"])
        if not stored:
            missing.append(
                {
                    "error_code": code_of("CAT_NO_CHECKSUM_FOR_REPLICA"),
                    "message": f"No checksum available for replica [{rep['data_repl_num']}].",
                }
            )
            continue
        if vault.sha256_checksum(str(rep["data_path"])) != stored:
            raise IrodsError(
                "USER_CHKSUM_MISMATCH",
                f"replica {rep['data_repl_num']} does not match its checksum",
            )
    if missing:
        return Reply(
            int_info=code_of("CHECK_VERIFICATION_RESULTS"), msg=_str_out(json.dumps(missing))
        )
    return Reply()


# -- register / modDataObjMeta / touch / stat ------------------------------------------------------


def register_file(session: Session, phys: str, path: str, opts: dict[str, str]) -> None:
    """Register one physical file at ``path`` (or as a new replica with ``regRepl``)."""
    cat = session.state.catalog
    user = session.require_user()
    try:
        st = os.stat(phys)
    except OSError:
        raise IrodsError("UNIX_FILE_STAT_ERR", f"cannot stat {phys}") from None
    name = _requested_resc(opts, write=True) or session.state.default_resource
    leaf = _leaf(session, name, direct_ok=True)
    size = (
        int(opts[kw.DATA_SIZE_KW])
        if opts.get(kw.DATA_SIZE_KW, "").lstrip("-").isdigit() and int(opts[kw.DATA_SIZE_KW]) >= 0
        else st.st_size
    )
    checksum = ""
    if kw.REG_CHKSUM_KW in opts or kw.VERIFY_CHKSUM_KW in opts:
        checksum = vault.sha256_checksum(phys)
        if (
            kw.VERIFY_CHKSUM_KW in opts
            and opts.get(kw.CHKSUM_KW)
            and opts[kw.CHKSUM_KW] != checksum
        ):
            raise IrodsError("USER_CHKSUM_MISMATCH", "checksum mismatch")
    mtime = f"{int(st.st_mtime):011d}"
    reps = namespace.data_replicas(cat, path)
    if reps:
        if kw.REG_REPL_KW not in opts:
            if kw.FORCE_FLAG_KW in opts:
                acl.require(cat, user, int(reps[0]["data_id"]), acl.WRITE, path)
                remove_object(session, reps, keep_files=True)
                reps = []
            else:
                raise IrodsError("OVERWRITE_WITHOUT_FORCE_FLAG", f"{path} exists")
        else:
            acl.require(cat, user, int(reps[0]["data_id"]), acl.WRITE, path)
            if any(int(r["resc_id"]) == int(leaf["resc_id"]) for r in reps):
                raise IrodsError("SYS_COPY_ALREADY_IN_RESC", f"{path} already has a replica there")
            insert_replica(
                session,
                data_id=int(reps[0]["data_id"]),
                coll_id=int(reps[0]["coll_id"]),
                name=str(reps[0]["data_name"]),
                repl_num=_next_repl_num(session, int(reps[0]["data_id"])),
                leaf=leaf,
                phys=phys,
                size=size,
                status=GOOD,
                checksum=checksum,
                data_type=str(reps[0]["data_type_name"]),
                owner=(str(reps[0]["data_owner_name"]), str(reps[0]["data_owner_zone"])),
                modify_ts=mtime,
            )
            return
    parent = _parent_coll(session, path)
    _check_new_name(session, path)
    acl.require(cat, user, int(parent["coll_id"]), acl.WRITE, str(parent["coll_name"]))
    data_id = cat.next_id()
    insert_replica(
        session,
        data_id=data_id,
        coll_id=int(parent["coll_id"]),
        name=namespace.split(path)[1],
        repl_num=0,
        leaf=leaf,
        phys=phys,
        size=size,
        status=GOOD,
        checksum=checksum,
        data_type=opts.get(kw.DATA_TYPE_KW, "generic"),
        modify_ts=mtime,
    )
    acl.set_initial(cat, data_id, user.id, int(parent["coll_id"]))


def _register(session: Session, path: str, opts: dict[str, str]) -> None:
    phys = opts.get(kw.FILE_PATH_KW, "")
    if not phys.startswith("/"):
        raise IrodsError("SYS_INVALID_FILE_PATH", "filePath must be an absolute physical path")
    phys = os.path.normpath(phys)
    if kw.COLLECTION_KW not in opts:
        if os.path.isdir(phys):
            raise IrodsError("SYS_INVALID_FILE_PATH", f"{phys} is a directory")
        register_file(session, phys, path, opts)
        return
    if not os.path.isdir(phys):
        raise IrodsError("UNIX_FILE_STAT_ERR", f"{phys} is not a directory")
    for dirpath, dirnames, filenames in os.walk(phys):
        dirnames.sort()
        rel = os.path.relpath(dirpath, phys)
        coll_path = path if rel == "." else namespace.join(path, rel.replace(os.sep, "/"))
        ensure_colls(session, coll_path)
        for fname in sorted(filenames):
            target = namespace.join(coll_path, fname)
            register_file(session, os.path.join(dirpath, fname), target, opts)


@api(630)
async def phy_path_reg(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    _register(session, _path(inp.objPath, "USER_INPUT_PATH_ERR"), _kv(inp))
    return Reply()


_META_COLUMNS = {
    "dataSize": "data_size",
    "dataModify": "modify_ts",
    "dataCreate": "create_ts",
    "chksum": "data_checksum",
    "replStatus": "data_is_dirty",
    "dataComments": "r_comment",
    "dataExpiry": "data_expiry_ts",
    "dataType": "data_type_name",
    "dataMode": "data_mode",
    "filePath": "data_path",
    "dataOwner": "data_owner_name",
    "dataOwnerZone": "data_owner_zone",
    "statusString": "data_status",
    "version": "data_version",
    "dataMapId": "data_map_id",
}
_TIME_FIELDS = {"dataModify", "dataCreate", "dataExpiry"}


@api(622)
async def mod_data_obj_meta(session: Session, req: Request) -> Reply:
    root = ET.fromstring(req.msg.replace(b"\0", b""))  # noqa: S314 - as Request.parse
    info_el, param_el = root.find("DataObjInfo_PI"), root.find("KeyValPair_PI")
    if info_el is None:
        raise IrodsError("SYS_INVALID_INPUT_PARAM", "no DataObjInfo_PI")
    info = DataObjInfo()
    info.unpack(info_el)
    param_pairs = StringStringMap()
    if param_el is not None:
        param_pairs.unpack(param_el)
    params = _pairs(param_pairs)
    path = _path(info.objPath, "USER_INPUT_PATH_ERR")
    cat = session.state.catalog
    reps = _authorized_replicas(session, path, acl.WRITE)
    if kw.ALL_KW in params:
        targets = reps
    else:
        sel: dict[str, str] = {}
        if info.rescHier:
            sel[kw.RESC_HIER_STR_KW] = str(info.rescHier)
        elif info.rescName:
            sel[kw.RESC_NAME_KW] = str(info.rescName)
        else:
            sel[kw.REPL_NUM_KW] = str(info.replNum or 0)
        picked = _pick_replica(session, reps, sel, for_write=False)
        if picked is None:
            raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", "no such replica")
        targets = [picked]
    sets: list[str] = []
    values: list[Any] = []
    for key, value in params.items():
        column = _META_COLUMNS.get(key)
        if column is None:
            continue
        if key in _TIME_FIELDS and value.lstrip("-").isdigit():
            value = f"{int(value):011d}"
        sets.append(f"{column} = ?")
        values.append(
            int(value) if column in ("data_size", "data_is_dirty", "data_map_id") else value
        )
    if not sets:
        return Reply()
    for rep in targets:
        cat.db.execute(
            f"UPDATE r_data_main SET {', '.join(sets)} WHERE data_id = ? AND data_repl_num = ?",
            (*values, int(rep["data_id"]), int(rep["data_repl_num"])),
        )
    return Reply()


def _mtime_of(session: Session, path: str) -> str:
    cat = session.state.catalog
    reps = namespace.data_replicas(cat, path)
    if reps:
        return str(reps[0]["modify_ts"])
    row = namespace.coll(cat, path)
    if row is None:
        raise IrodsError("OBJ_PATH_DOES_NOT_EXIST", f"reference {path} does not exist")
    return str(row["modify_ts"])


@api(20007)
async def touch(session: Session, req: Request) -> Reply:
    doc = _json_in(req)
    raw = doc.get("logical_path")
    path = _path(raw if isinstance(raw, str) else None, "SYS_INVALID_INPUT_PARAM")
    options = doc.get("options") or {}
    if not isinstance(options, dict):
        raise IrodsError("SYS_INVALID_INPUT_PARAM", "options must be an object")
    if "seconds_since_epoch" in options and "reference" in options:
        raise IrodsError("USER_INCOMPATIBLE_PARAMS", "seconds_since_epoch and reference both given")
    if "replica_number" in options and "leaf_resource_name" in options:
        raise IrodsError(
            "USER_INCOMPATIBLE_PARAMS", "replica_number and leaf_resource_name both given"
        )
    if "seconds_since_epoch" in options:
        try:
            ts = f"{int(options['seconds_since_epoch']):011d}"
        except (TypeError, ValueError):
            raise IrodsError("SYS_INVALID_INPUT_PARAM", "bad seconds_since_epoch") from None
    elif "reference" in options:
        ts = _mtime_of(session, _path(str(options["reference"]), "SYS_INVALID_INPUT_PARAM"))
    else:
        ts = now()
    cat = session.state.catalog
    user = session.require_user()
    reps = namespace.data_replicas(cat, path)
    if not reps:
        row = namespace.coll(cat, path)
        if row is not None:
            if "replica_number" in options or "leaf_resource_name" in options:
                raise IrodsError(
                    "SYS_INVALID_INPUT_PARAM", "replica options do not apply to a collection"
                )
            acl.require(cat, user, int(row["coll_id"]), acl.WRITE, path)
            cat.db.execute(
                "UPDATE r_coll_main SET modify_ts = ? WHERE coll_id = ?", (ts, int(row["coll_id"]))
            )
            return Reply()
        if options.get("no_create"):
            return Reply()
        if "replica_number" in options:
            raise IrodsError("SYS_INVALID_INPUT_PARAM", "replica_number cannot create an object")
        name = str(options.get("leaf_resource_name") or session.state.default_resource)
        target, phys = _create_object(session, path, {}, _leaf(session, name, direct_ok=True))
        fd = vault.open_file(phys, create=True, write=True, truncate=True)
        os.close(fd)
        cat.db.execute(
            "UPDATE r_data_main SET data_is_dirty = ?, modify_ts = ? WHERE data_id = ?",
            (GOOD, ts, int(target["data_id"])),
        )
        return Reply()
    acl.require(cat, user, int(reps[0]["data_id"]), acl.WRITE, path)
    if "replica_number" in options:
        sel = {kw.REPL_NUM_KW: str(options["replica_number"])}
    elif options.get("leaf_resource_name"):
        sel = {kw.RESC_NAME_KW: str(options["leaf_resource_name"])}
    else:
        sel = {}
    picked = _pick_replica(session, reps, sel, for_write=False)
    if picked is None:
        raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", "no such replica")
    cat.db.execute(
        "UPDATE r_data_main SET modify_ts = ? WHERE data_id = ? AND data_repl_num = ?",
        (ts, int(picked["data_id"]), int(picked["data_repl_num"])),
    )
    return Reply()
