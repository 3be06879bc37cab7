"""The seed's operations on one file or directory, run in a worker thread.

Every operation goes through the handler's ``on_*`` wrapper so ``pre_``/``post_`` hooks
fire around it.  The operation functions have the seed's signatures
``(hdlr_mod, logger, session, meta, [op], **options)``; ``options`` are
python-irodsclient keywords (``destRescName``, ``regRepl`` ...).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import irods.keywords as kw
from irods.api_number import api_number
from irods.exception import SYS_NO_API_PRIV, NetworkException, iRODSException
from irods.message import JSON_Message, iRODSMessage

from services.ingest.diff import Action, Replica
from services.ingest.errors import IngestError
from services.ingest.handlers import EventHandler
from services.isync import single_buffer
from services.isync.catalog import all_rows
from shared.ingest.utils import PUT_OPERATIONS, DeleteMode, Operation

#: Files at least this large go through python-irodsclient's parallel put.
PARALLEL_THRESHOLD = 32 * 1024 * 1024
BUFFER = 4 * 1024 * 1024
#: Files up to this size go in one request (DATA_OBJ_PUT with the data, as iput does).
SINGLE_BUFFER_MAX = 4 * 1024 * 1024
#: This process's switch: off for good once the server will not take one-request puts.
SINGLE = single_buffer.SingleBuffer(SINGLE_BUFFER_MAX)
#: Special files a put would block on or cannot read (registering them is fine).
UNPUTTABLE = frozenset({"pipe", "character", "block", "socket"})
AVU_UNITS = "python3.base64.b64encode(full_path_of_source_file)"
#: PATH_REG_NOT_ALLOWED: python-irodsclient 3.3 has no class for it (a KeyError(-129000))
PATH_REG_NOT_ALLOWED = -129000
_TOUCH = api_number["TOUCH_APN"]


@dataclass
class Outcome:
    """What one file's sync did."""

    action: str  # "created" | "modified" | "skipped" | "noop"
    bytes: int = 0


def register_path(meta: dict[str, Any]) -> str:
    """The physical path to register: the file, or the seed's placeholder for a bad name."""
    if meta.get("unicode_error_filename"):
        return os.path.join(os.path.dirname(meta["path"]), meta["unicode_error_filename"])
    return str(meta["path"])


# --- operation bodies (called through the handler's on_* wrappers) --------------------


def no_op(
    hdlr_mod: Any, logger: Any, session: Any, meta: dict[str, Any], *a: Any, **o: Any
) -> None:
    """``Operation.NO_OP``: hooks fire, nothing changes."""


def register_file(
    hdlr_mod: Any, logger: Any, session: Any, meta: dict[str, Any], **options: Any
) -> None:
    """Register the file in place (API 630) with its size and modify time.

    A default zone lets only a rodsadmin client register physical paths; for ``as_user``
    the rodsadmin proxy skips that check with ``noChkFilePerm``. A new replica
    (``regRepl``) gets no ``dataSize`` (with it a zone stales the other replicas even when
    the file matches them) and no ``dataModify`` (a zone ignores it there and stamps the
    registration time): its mtime is set to the file's afterwards."""
    replica = kw.REG_REPL_KW in options
    if not replica:
        options[kw.DATA_SIZE_KW] = str(meta["size"])
        options[kw.DATA_MODIFY_KW] = str(int(meta["mtime"]))
    if _proxied(session):
        options[kw.NO_CHK_FILE_PERM_KW] = ""
    try:
        session.data_objects.register(meta["physical_path"], meta["target"], **options)
    except KeyError as e:
        if e.args != (PATH_REG_NOT_ALLOWED,):
            raise
        raise IngestError(
            f"the zone refuses to let {session.username} register physical paths"
            " (PATH_REG_NOT_ALLOWED): register with a rodsadmin iRODS account"
            " (the handler's as_user for other owners)"
        ) from None
    if replica:
        obj = session.data_objects.get(meta["target"])
        number = next(r.number for r in obj.replicas if r.path == meta["physical_path"])
        _set_mtime(session, meta["target"], meta["mtime"], replica_number=number)


def _proxied(session: Any) -> bool:
    """Whether ``session`` acts for another user (``as_user``, through a rodsadmin proxy)."""
    account = getattr(getattr(session, "pool", None), "account", None)
    return account is not None and account.client_user != account.proxy_user


def update_metadata(
    hdlr_mod: Any, logger: Any, session: Any, meta: dict[str, Any], **options: Any
) -> None:
    """Update a registered replica's size and modify time (API 622)."""
    info: dict[str, Any] = {"objPath": meta["target"]}
    if meta.get("repl_num") is not None:
        info["replNum"] = meta["repl_num"]
    try:
        session.data_objects.modDataObjMeta(
            info,
            {"dataSize": int(meta["size"]), "dataModify": int(meta["mtime"]), "allReplStatus": 1},
            **options,
        )
    except SYS_NO_API_PRIV:
        raise IngestError(
            f"the zone lets only rodsadmin clients update a registered replica's size (API 622"
            f' modDataObjMeta), not {session.username}: set "client_api_allowlist_policy":'
            ' "disabled" in the zone\'s server_config.json, or register without as_user'
        ) from None


def _set_mtime(session: Any, logical: str, mtime: float, replica_number: int | None = None) -> None:
    """Stamp the local file's mtime on the object (API 20007 touch: any user with write
    access may, where 622 modDataObjMeta is for rodsadmin clients only).

    One request: ``logical`` was just written or registered, so it is a data object, and
    python-irodsclient's ``touch`` would first ask the catalog (two GenQueries) whether
    it is a collection."""
    options: dict[str, Any] = {"seconds_since_epoch": int(mtime), "no_create": True}
    if replica_number is not None:
        options["replica_number"] = replica_number
    with session.pool.get_connection() as conn:
        body = JSON_Message({"logical_path": logical, "options": options}, conn.server_version)
        conn.send(iRODSMessage("RODS_API_REQ", msg=body, int_info=_TOUCH))
        conn.recv()


def _write_from(
    session: Any, source: str, logical: str, offset: int, options: dict[str, Any]
) -> int:
    mode = "a" if offset else "w"
    sent = 0
    with open(source, "rb") as src:
        src.seek(offset)
        with session.data_objects.open(logical, mode, allow_redirect=False, **options) as dst:
            if offset:
                dst.seek(offset)
            while chunk := src.read(BUFFER):
                dst.write(chunk)
                sent += len(chunk)
    return sent


class ObjectExists(IngestError):
    """A new file's data object already exists: a put that creates never overwrites."""


def upload_file(
    hdlr_mod: Any, logger: Any, session: Any, meta: dict[str, Any], op: Operation, **options: Any
) -> None:
    """Copy the whole file over the target (PUT_SYNC and PUT_APPEND of a changed file)."""
    _upload(session, meta, op, options, overwrite=True)


def create_file(
    hdlr_mod: Any, logger: Any, session: Any, meta: dict[str, Any], op: Operation, **options: Any
) -> None:
    """Copy a new file into a new data object (PUT, PUT_SYNC, PUT_APPEND); never overwrite.

    With ``--initial_ingest`` the diff did not look at the catalog, so an object that
    exists already fails this file, as automated ingest's put without force does.
    """
    _upload(session, meta, op, options, overwrite=False)


def refuse_existing_on_initial_ingest(session: Any, meta: dict[str, Any]) -> None:
    """With ``--initial_ingest`` the diff did not look at the catalog: a new file whose
    data object exists already fails (ObjectExists) instead of overwriting it."""
    if meta.get("initial_ingest") and session.data_objects.exists(meta["target"]):
        raise ObjectExists(
            f"data object {meta['target']} already exists and is not overwritten "
            "(--initial_ingest never overwrites: run the job without it to sync changes)"
        )


def _upload(
    session: Any, meta: dict[str, Any], op: Operation, options: dict[str, Any], overwrite: bool
) -> None:
    source, logical = meta["path"], meta["target"]
    if meta.get("file_type") in UNPUTTABLE:
        raise IngestError(f"a {meta['file_type']} file has no data to put: {logical}")
    size = int(meta["size"])
    sent = _put_whole(session, meta, options, overwrite) if SINGLE.applies(size) else None
    if sent is not None:
        meta["bytes_sent"] = sent
    elif size >= PARALLEL_THRESHOLD:
        if not overwrite:
            refuse_existing_on_initial_ingest(session, meta)
        # without the force flag python-irodsclient refuses an existing object
        force = {kw.FORCE_FLAG_KW: ""} if overwrite else {}
        session.data_objects.put(source, logical, **{**options, **force})
        meta["bytes_sent"] = size
    else:
        if not overwrite:
            refuse_existing_on_initial_ingest(session, meta)
        _write_from(session, source, logical, 0, options)
        meta["bytes_sent"] = size
    if op is not Operation.PUT:  # PUT never looks at an existing object again
        _set_mtime(session, logical, meta["mtime"])


def _put_whole(
    session: Any, meta: dict[str, Any], options: dict[str, Any], overwrite: bool
) -> int | None:
    """Put a small file in one request (DATA_OBJ_PUT with the data included, as iput
    does); returns the bytes sent, or ``None`` when the file must go by open/write/close
    (it grew past the limit, the server will not take it this way, or a forced put would
    move the object to another resource).

    The server creates, writes and finalises the replica in that one call.  Without
    ``overwrite`` no force flag is sent, so the server itself refuses an object that
    exists (:class:`ObjectExists`): no separate look before the put. An existing object
    that holds exactly the file's bytes (the put of a task redelivered after its worker
    died) counts as put, and is not written again.  A new object a
    failed put left behind (iRODS keeps it as a stale replica) is removed, so that a later
    PUT pass does not skip it as present."""
    logical = meta["target"]
    with open(meta["path"], "rb") as src:  # buffered: read() goes on until EOF or the size
        data = src.read(SINGLE.limit + 1)
    if len(data) > SINGLE.limit:
        return None
    opts = {k: str(v) for k, v in options.items()}
    if _RESOURCE_KEYWORDS.isdisjoint(opts):  # as python-irodsclient's open: its default
        default = getattr(session, "default_resource", None)
        if default:
            opts[kw.DEST_RESC_NAME_KW] = default
    if overwrite:
        opts[kw.FORCE_FLAG_KW] = ""
    conn = session.pool.get_connection()
    ok = False
    try:
        single_buffer.put_object(conn, logical, memoryview(data), opts, None)
        ok = True
    except NetworkException:
        raise  # the connection failed: the caller retries on a new one and looks first
    except iRODSException as e:
        name = type(e).__name__
        if single_buffer.is_unsupported(e):
            SINGLE.disable(name)
            return None
        if name == "HIERARCHY_ERROR":  # forced onto another resource: open/write/close
            return None
        if name == "OVERWRITE_WITHOUT_FORCE_FLAG":
            if _holds(session, logical, data):  # an earlier attempt's (a task redelivered
                return len(data)  # after its worker died): already what this put makes
            raise ObjectExists(
                f"data object {logical} already exists and is not overwritten "
                "(a put that creates never overwrites"
                + (
                    "; --initial_ingest: run the job without it to sync changes)"
                    if meta.get("initial_ingest")
                    else ")"
                )
            ) from None
        if not overwrite:
            _discard(session, logical)
        raise
    except single_buffer.Unsupported as e:
        SINGLE.disable(str(e))
        return None
    finally:
        conn.release(destroy=not ok)
    SINGLE.count(put=True)
    return len(data)


_RESOURCE_KEYWORDS = frozenset({kw.RESC_NAME_KW, kw.DEST_RESC_NAME_KW, kw.RESC_HIER_STR_KW})


def _holds(session: Any, logical: str, data: bytes) -> bool:
    """Whether the existing object ``logical`` has exactly ``data`` (a small file: one read).

    A task redelivered after its worker died meets the object that worker's put made; that
    is the object this put would make, so the file counts as put. Anything else in the
    object is someone else's, and is never overwritten. Unreadable counts as different."""
    try:
        with session.data_objects.open(logical, "r") as f:
            return bool(f.read(len(data) + 1) == data)
    except Exception:
        return False


def _discard(session: Any, logical: str) -> None:
    """Remove what a failed put of a new object left (best effort: it may be nothing)."""
    with contextlib.suppress(Exception):  # the put's own error is the one reported
        session.data_objects.unlink(logical, force=True)


def sync_file(
    hdlr_mod: Any, logger: Any, session: Any, meta: dict[str, Any], op: Operation, **options: Any
) -> None:
    """Bring an existing object up to date: PUT_APPEND sends only the new bytes."""
    old = int(meta.get("irods_size") or 0)
    if op is Operation.PUT_APPEND and 0 < old <= int(meta["size"]):
        meta["bytes_sent"] = _write_from(session, meta["path"], meta["target"], old, options)
        _set_mtime(session, meta["target"], meta["mtime"])
    else:
        upload_file(hdlr_mod, logger, session, meta, op, **options)


def create_collection(
    hdlr_mod: Any, logger: Any, session: Any, meta: dict[str, Any], **options: Any
) -> None:
    session.collections.create(meta["target"], recurse=True)


def unregister_data_object(
    hdlr_mod: Any, session: Any, meta: dict[str, Any], **options: Any
) -> None:
    session.data_objects.unregister(meta["target"], **options)


def trash_data_object(hdlr_mod: Any, session: Any, meta: dict[str, Any], **options: Any) -> None:
    session.data_objects.unlink(meta["target"], **options)


def unlink_data_object(hdlr_mod: Any, session: Any, meta: dict[str, Any], **options: Any) -> None:
    session.data_objects.unlink(meta["target"], force=True, **options)


def unregister_collection(
    hdlr_mod: Any, session: Any, meta: dict[str, Any], **options: Any
) -> None:
    """Unregister an (already emptied) collection."""
    session.collections.unregister(meta["target"], recurse=False, force=False)


def remove_collection(hdlr_mod: Any, session: Any, meta: dict[str, Any], **options: Any) -> None:
    """Remove an (already emptied) collection from the catalog."""
    session.collections.remove(meta["target"], recurse=False, force=True)


DELETE_FUNCTIONS: dict[DeleteMode, Callable[..., None]] = {
    DeleteMode.UNREGISTER: unregister_data_object,
    DeleteMode.TRASH: trash_data_object,
    DeleteMode.NO_TRASH: unlink_data_object,
}


# --- per-entry drivers ---------------------------------------------------------------


def _annotate(session: Any, meta: dict[str, Any]) -> None:
    """The seed's AVUs: original path of a renamed file, link target, socket."""
    avus: list[tuple[str, str, str]] = []
    reason = meta.get("b64_reason")
    if reason:
        avus.append((f"irods::automated_ingest::{reason}", meta["b64_path_str"], AVU_UNITS))
    if meta.get("is_socket"):
        avus.append(("socket_target", "socket", "automated_ingest"))
    elif meta.get("is_link"):
        path = meta["path"]
        target = os.path.join(os.path.dirname(path), os.readlink(path))
        avus.append(("link_target", target, "automated_ingest"))
    if not avus:
        return
    obj = session.data_objects.get(meta["target"])
    present = set(obj.metadata.keys())
    for name, value, units in avus:
        if name not in present:
            obj.metadata.add(name, value, units)


def annotate_collection(session: Any, collection: str, reason: str, b64: str) -> None:
    """A renamed directory's collection gets the seed's AVU with its original path."""
    coll = session.collections.get(collection)
    name = f"irods::automated_ingest::{reason}"
    if name not in set(coll.metadata.keys()):
        coll.metadata.add(name, b64, AVU_UNITS)


def sync_entry(
    handler: EventHandler,
    logger: Any,
    session: Any,
    meta: dict[str, Any],
    action: Action,
    replicas: list[Replica],
    checksum: bool = False,
    source: Any = None,
) -> Outcome:
    """Apply the handler's operation to one file whose ``action`` the diff decided.

    ``source``: where a put reads from when not the local file (an
    :class:`services.ingest.s3.S3Reader`, with ``create_object``/``sync_object`` in the
    operations' signatures and ``annotate``).
    """
    create = create_file if source is None else source.create_object
    update = sync_file if source is None else source.sync_object
    op = handler.operation(session, meta)
    exists = action is not Action.CREATE
    if action is Action.META:  # only the ctime changed: the anchor's metadata-only sync
        handler.call("data_obj_modify", no_op, logger, session, meta)
        return Outcome("skipped")
    if op is Operation.NO_OP:
        handler.call(
            "data_obj_modify" if exists else "data_obj_create", no_op, logger, session, meta
        )
        return Outcome("noop")
    options: dict[str, Any] = {}
    resource = handler.to_resource(session, meta)
    if resource:
        options[kw.DEST_RESC_NAME_KW] = resource
    custom = handler.target_path(session, meta)
    meta["physical_path"] = custom or register_path(meta)
    if replicas:
        meta["irods_size"] = replicas[0].size
    result = "created"
    if not exists:
        if op in PUT_OPERATIONS:
            handler.call("data_obj_create", create, logger, session, meta, op, **options)
        else:
            handler.call("data_obj_create", register_file, logger, session, meta, **options)
    elif op is Operation.PUT:
        return Outcome("skipped")
    elif op in PUT_OPERATIONS:
        handler.call("data_obj_modify", update, logger, session, meta, op, **options)
        result = "modified"
    else:
        result = _sync_registered(handler, logger, session, meta, op, replicas, resource, options)
    if checksum:
        session.data_objects.chksum(meta["target"])
    if source is None:
        _annotate(session, meta)
    else:
        source.annotate(session, meta)
    return Outcome(result, int(meta.get("bytes_sent", 0)))


def _sync_registered(
    handler: EventHandler,
    logger: Any,
    session: Any,
    meta: dict[str, Any],
    op: Operation,
    replicas: list[Replica],
    resource: str | None,
    options: dict[str, Any],
) -> str:
    physical = meta["physical_path"]
    if op is Operation.REGISTER_AS_REPLICA_SYNC:
        if not resource:
            raise IngestError(
                "REGISTER_AS_REPLICA_SYNC needs to_resource: no resource name defined"
            )
        under = [r for r in replicas if r.under(resource)]
        if not under:
            options[kw.REG_REPL_KW] = ""
            handler.call("data_obj_create", register_file, logger, session, meta, **options)
            return "created"
        mine = [r for r in under if r.path == physical]
        if not mine:
            raise IngestError(
                f"data object {meta['target']} has a replica under resource {resource}, "
                f"but none with physical path {physical}"
            )
        meta["repl_num"] = mine[0].number
    else:
        mine = [r for r in replicas if r.path == physical]
        if mine:
            meta["repl_num"] = mine[0].number
    handler.call("data_obj_modify", update_metadata, logger, session, meta, **options)
    return "modified"


def ensure_collection(
    handler: EventHandler,
    logger: Any,
    session: Any,
    meta: dict[str, Any],
    exists: bool,
    changed: bool = True,
) -> bool:
    """Create the directory's collection (coll_create hooks) or fire coll_modify hooks.

    As the anchor: the hooks fire only for a directory that ``changed`` (its mtime or
    ctime) since the job last synced it; a missing collection is created regardless.
    Returns whether the collection existed before.
    """
    op = handler.operation(session, meta)
    if op is Operation.NO_OP:
        if changed:
            handler.call("coll_modify" if exists else "coll_create", no_op, logger, session, meta)
    elif not exists:
        handler.call("coll_create", create_collection, logger, session, meta)
    elif changed:
        handler.call("coll_modify", no_op, logger, session, meta)
    return exists


def delete_data_object(
    handler: EventHandler, logger: Any, session: Any, meta: dict[str, Any], mode: DeleteMode
) -> None:
    """Remove one data object whose file is gone, per the delete mode."""
    func = DELETE_FUNCTIONS.get(mode)
    if func is None:
        return
    handler.call("data_obj_delete", func, session, meta)


def delete_collection_tree(
    handler: EventHandler, logger: Any, session: Any, meta: dict[str, Any], mode: DeleteMode
) -> int:
    """Remove a collection whose directory is gone: its objects, then it, bottom-up.

    Returns the number of data objects removed.
    """
    from irods.column import Like
    from irods.models import Collection, DataObject

    root = meta["target"]
    removed = 0
    below = session.query(Collection.name).filter(Like(Collection.name, root + "/%"))
    colls = [root, *(row[Collection.name] for row in all_rows(session, below))]
    for coll in sorted(colls, key=len, reverse=True):
        query = session.query(DataObject.name).filter(Collection.name == coll)
        for name in sorted({row[DataObject.name] for row in all_rows(session, query)}):
            delete_data_object(handler, logger, session, {**meta, "target": f"{coll}/{name}"}, mode)
            removed += 1
        remover = unregister_collection if mode is DeleteMode.UNREGISTER else remove_collection
        handler.call("coll_delete", remover, session, {**meta, "target": coll})
    return removed
