"""Single-buffer transfers: 606 DATA_OBJ_PUT and 608 DATA_OBJ_GET for small files.

As iRODS 4.3 (rsDataObjPut / rsDataObjGet): a put carrying ``dataIncluded`` has the whole
file in the request's ``bs`` and is answered with status 0 and no message; a get of a
replica no larger than the single-buffer limit is answered with status 0, a
``PortalOprOut_PI`` (numThreads 0, ``chksum`` set when ``verifyChksum`` was asked) and the
file in ``bs``. Neither needs an OPR_COMPLETE. The parallel (portal) path is not offered:
those requests get ``SYS_NOT_SUPPORTED`` so a client falls back to open/write/close.
"""

from __future__ import annotations

import os

import irods.keywords as kw
from irods.message import (
    FileOpenRequest,
    IntegerProperty,
    Message,
    StringProperty,
    SubmessageProperty,
)

from . import namespace, vault
from .api_streams import O_CREAT, O_RDWR, O_TRUNC, close_descriptor, handle_of, open_object
from .dataobj import PUT_OPR, STALE, abs_path, kv_of, touch_parents
from .dispatch import Reply, Request, Session, api
from .errors import IrodsError

MAX_SZ_FOR_SINGLE_BUF = (
    32 * 1024 * 1024
)  # iRODS default maximum_size_for_single_buffer_in_megabytes
O_RDONLY = 0


class PortList_PI(Message):
    _name = "PortList_PI"
    portNum = IntegerProperty()
    cookie = IntegerProperty()
    sock = IntegerProperty()
    windowSize = IntegerProperty()
    hostAddr = StringProperty()


class PortalOprOut_PI(Message):
    _name = "PortalOprOut_PI"
    status = IntegerProperty()
    l1descInx = IntegerProperty()
    numThreads = IntegerProperty()
    chksum = StringProperty()
    PortList_PI = SubmessageProperty(PortList_PI)


def _no_portal(what: str) -> IrodsError:
    return IrodsError(
        "SYS_NOT_SUPPORTED",
        f"{what}: parallel (portal) transfer is not offered by this server;"
        " use open/read/write/close",
    )


def _inputs(req: Request) -> tuple[str, dict[str, str], int]:
    """Logical path, keywords and dataSize of a DataObjInp_PI."""
    inp = req.parse(FileOpenRequest)
    opts = kv_of(inp)
    opts.pop(kw.REPLICA_TOKEN_KW, None)  # a put/get is never a second stream of an open
    return abs_path(inp.objPath), opts, int(inp.dataSize or 0)


def _check_overwrite(session: Session, path: str, opts: dict[str, str]) -> None:
    """OVERWRITE_WITHOUT_FORCE_FLAG / HIERARCHY_ERROR as rsDataObjPut decides them."""
    reps = namespace.data_replicas(session.state.catalog, path)
    if not reps:
        return
    if kw.FORCE_FLAG_KW not in opts:
        raise IrodsError("OVERWRITE_WITHOUT_FORCE_FLAG", f"{path} exists; forceFlag not given")
    dest = opts.get(kw.DEST_RESC_NAME_KW, "")
    if dest:
        cat = session.state.catalog
        roots = {cat.resc_hier(int(r["resc_id"])).split(";")[0] for r in reps}
        if dest not in roots:
            raise IrodsError("HIERARCHY_ERROR", f"cannot force put {path} to a new resource {dest}")


@api(606)
async def data_obj_put(session: Session, req: Request) -> Reply:
    path, opts, wanted = _inputs(req)
    if kw.DATA_INCLUDED_KW not in opts:
        raise _no_portal(path)
    if len(req.bs) > MAX_SZ_FOR_SINGLE_BUF:
        raise _no_portal(path)
    put_buffer(session, path, opts, req.bs, wanted)
    return Reply()


def put_buffer(
    session: Session, path: str, opts: dict[str, str], data: bytes | memoryview, wanted: int
) -> None:
    """One object created (or, with ``forceFlag``, overwritten) from ``data`` and finalised,
    as ``rsDataObjPut`` with ``dataIncluded`` does; also each file of a bulk put (689)."""
    if kw.METADATA_INCLUDED_KW in opts or kw.ACL_INCLUDED_KW in opts:
        raise IrodsError("SYS_NOT_SUPPORTED", "metadataIncluded/aclIncluded are not supported")
    session.require_user()
    _check_overwrite(session, path, opts)
    fd = open_object(
        session, path, opts, O_CREAT | O_RDWR | O_TRUNC, create_api=False, opr_type=PUT_OPR
    )
    rep = handle_of(session, fd).rep
    try:
        written = vault.pwrite(rep.fd, data, 0)
        if kw.NO_CHK_COPY_LEN_KW not in opts and wanted > 0 and written != wanted:
            raise IrodsError("SYS_COPY_LEN_ERR", f"{written} bytes sent, dataSize {wanted}")
    except IrodsError:
        close_descriptor(session, fd, {}, finalize=False)
        session.state.catalog.db.execute(  # as iRODS: the replica left stale, its size kept
            "UPDATE r_data_main SET data_is_dirty = ?, data_size = ?"
            " WHERE data_id = ? AND data_repl_num = ?",
            (STALE, len(data), rep.data_id, rep.repl_num),
        )
        raise
    rep.written = True
    close_descriptor(session, fd, {}, finalize=True)  # size, checksum, status good, stale others
    touch_parents(session, path)


@api(608)
async def data_obj_get(session: Session, req: Request) -> Reply:
    path, opts, _ = _inputs(req)
    if kw.RESC_NAME_KW in opts and kw.RECURSIVE_OPR__KW in opts:
        raise IrodsError("USER_INCOMPATIBLE_PARAMS", "rescName and recursiveOpr together")
    cat = session.state.catalog
    fd = open_object(session, path, opts, O_RDONLY, create_api=False)
    rep = handle_of(session, fd).rep
    try:
        row = cat.db.execute(
            "SELECT data_size, data_checksum FROM r_data_main"
            " WHERE data_id = ? AND data_repl_num = ?",
            (rep.data_id, rep.repl_num),
        ).fetchone()
        if row is None or int(row["data_size"]) > MAX_SZ_FOR_SINGLE_BUF:
            raise _no_portal(path)
        checksum = ""
        if kw.VERIFY_CHKSUM_KW in opts:
            checksum = str(row["data_checksum"] or "")
            if not checksum:
                checksum = session.state.checksum(rep.phys)
                cat.db.execute(
                    "UPDATE r_data_main SET data_checksum = ?"
                    " WHERE data_id = ? AND data_repl_num = ?",
                    (checksum, rep.data_id, rep.repl_num),
                )
        size = min(os.fstat(rep.fd).st_size, MAX_SZ_FOR_SINGLE_BUF)
        data = vault.pread(rep.fd, size, 0) if size else b""
    finally:
        close_descriptor(session, fd, {}, finalize=False)
    out = PortalOprOut_PI(
        status=0,
        l1descInx=0,
        numThreads=0,
        chksum=checksum,
        PortList_PI=PortList_PI(portNum=0, cookie=0, sock=0, windowSize=0, hostAddr=""),
    )
    return Reply(msg=out, bs=data)
