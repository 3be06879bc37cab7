"""Data objects as a whole: 615 unlink (to the trash, or for good), 627 rename (collections
too: see ``api_collection.rename_collection``), 696 copy, 652 truncate and 802
REPLICA_TRUNCATE, 622 MOD_DATA_OBJ_META, 20007 TOUCH.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import xml.etree.ElementTree as ET
from typing import Any

import irods.keywords as kw
from irods.message import DataObjInfo_for_session, FileOpenRequest, StringStringMap

from . import acl, namespace, vault
from .api_streams import is_open_for_write
from .catalog import now
from .dataobj import (
    GOOD,
    STALE,
    UNREG_OPR,
    abs_path,
    authorized_replicas,
    check_new_name,
    create_object,
    dest_leaf,
    ensure_colls,
    good_source,
    hier_of,
    json_in,
    kv_dict,
    kv_of,
    parent_coll,
    pick_replica,
    remove_object,
    requested_resc,
    require_object,
    set_good_and_others_stale,
    str_out,
    touch_parents,
    vault_of,
)
from .dispatch import Reply, Request, Session, api
from .errors import IrodsError, code_of


class _VersionHint:
    server_version = (4, 3, 4)


DataObjInfo = DataObjInfo_for_session(_VersionHint())


# -- unlink / rename / copy ----------------------------------------------------------------


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


def _unique_trash(session: Session, path: str) -> str:
    cat = session.state.catalog
    candidate, n = path, 0
    while namespace.data_replicas(cat, candidate) or namespace.coll(cat, candidate):
        n += 1
        candidate = f"{path}.{n}"
    return candidate


def move_object(session: Session, reps: list[sqlite3.Row], dest: str) -> None:
    """Rename a data object to ``dest`` (parent must exist), moving vault files along."""
    cat = session.state.catalog
    parent = parent_coll(session, dest)
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
        root = vault_of(session, leaf).rstrip("/") + "/"
        if not old.startswith(root) or not os.path.exists(old):
            continue
        new = vault.replica_path(vault_of(session, leaf), cat.zone, dest)
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
    path = abs_path(inp.objPath, "USER_INPUT_PATH_ERR")
    opts = kv_of(inp)
    cat = session.state.catalog
    user = session.require_user()
    reps = namespace.data_replicas(cat, path)
    if not reps:
        raise IrodsError("CAT_NO_ROWS_FOUND", f"no data object {path}")
    data_id = int(reps[0]["data_id"])
    acl.require(cat, user, data_id, acl.DELETE_OBJECT, path)
    if is_open_for_write(session, data_id):
        raise IrodsError("LOCKED_DATA_OBJECT_ACCESS", f"{path} is open for writing")
    unreg = int(inp.oprType or 0) == UNREG_OPR
    # as rsDataObjUnlink (4.3.4): only force, unregister or irmtrash's keyword delete; any
    # other unlink moves the object to the trash, from inside the trash too
    # (/zone/trash/home/u/trash/home/u/..., as a 5.0.2 zone did)
    rmtrash = kw.RMTRASH_KW in opts or kw.ADMIN_RMTRASH_KW in opts
    if rmtrash and not namespace.is_within(path, f"/{cat.zone}/trash"):
        raise IrodsError("SYS_INVALID_FILE_PATH", f"{path} is not in the trash")
    if unreg or kw.FORCE_FLAG_KW in opts or rmtrash:
        remove_object(session, reps, keep_files=unreg)
    else:
        dest = _unique_trash(session, namespace.trash_path(cat.zone, user.name, path))
        ensure_colls(session, namespace.split(dest)[0])
        move_object(session, reps, dest)
    touch_parents(session, path)
    return Reply()


def _rename_data(session: Session, src: str, dest: str) -> None:
    cat = session.state.catalog
    user = session.require_user()
    reps = require_object(session, src)
    # own on the object, modify_object on the target collection (db_rename_object_op,
    # db_move_object_op in plugins/database/src/db_plugin.cpp)
    acl.require(cat, user, int(reps[0]["data_id"]), acl.OWN, src)
    if namespace.data_replicas(cat, dest):
        raise IrodsError("CAT_NAME_EXISTS_AS_DATAOBJ", f"{dest} exists")
    check_new_name(session, dest)
    parent = parent_coll(session, dest)
    acl.require(cat, user, int(parent["coll_id"]), acl.WRITE, str(parent["coll_name"]))
    move_object(session, reps, dest)


@api(627)
async def data_obj_rename(session: Session, req: Request) -> Reply:
    src_inp, dest_inp = _two_inputs(req)
    src = abs_path(src_inp.objPath, "USER_INPUT_PATH_ERR")
    dest = abs_path(dest_inp.objPath, "USER_INPUT_PATH_ERR")
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
    touch_parents(session, src, dest)
    return Reply()


@api(696)
async def data_obj_copy(session: Session, req: Request) -> Reply:
    src_inp, dest_inp = _two_inputs(req)
    src = abs_path(src_inp.objPath, "USER_INPUT_PATH_ERR")
    dest = abs_path(dest_inp.objPath, "USER_INPUT_PATH_ERR")
    cat = session.state.catalog
    for p in (src, dest):
        if p.split("/")[1] != cat.zone:
            raise IrodsError("USER_INPUT_PATH_ERR", f"{p} is not in zone {cat.zone}")
    opts = kv_of(dest_inp)
    user = session.require_user()
    reps = require_object(session, src)
    acl.require(cat, user, int(reps[0]["data_id"]), acl.READ, src)
    source = good_source(session, reps, kv_of(src_inp))
    existing = namespace.data_replicas(cat, dest)
    name = requested_resc(opts, write=True) or session.state.default_resource
    leaf = dest_leaf(session, name, direct_ok=";" in name)
    if existing:
        if kw.FORCE_FLAG_KW not in opts:
            raise IrodsError("OVERWRITE_WITHOUT_FORCE_FLAG", f"{dest} exists")
        acl.require(cat, user, int(existing[0]["data_id"]), acl.WRITE, dest)
        remove_object(session, existing)
    target, phys = create_object(session, dest, opts, leaf)
    vault.copy(str(source["data_path"]), phys)
    checksum = str(source["data_checksum"])
    if kw.REG_CHKSUM_KW in opts or kw.VERIFY_CHKSUM_KW in opts:
        checksum = session.state.checksum(phys, checksum)
    cat.db.execute(
        "UPDATE r_data_main SET data_size = ?, data_is_dirty = ?, data_checksum = ?,"
        " data_type_name = ? WHERE data_id = ? AND data_repl_num = 0",
        (vault.size(phys), GOOD, checksum, str(source["data_type_name"]), int(target["data_id"])),
    )
    return Reply()


# -- truncate ------------------------------------------------------------------------------


@api(652)
async def data_obj_truncate(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = abs_path(inp.objPath, "USER_INPUT_PATH_ERR")
    size = int(inp.dataSize or 0)
    if size < 0:
        raise IrodsError(code_of("UNIX_FILE_TRUNCATE_ERR") - errno.EINVAL, "negative size")
    reps = authorized_replicas(session, path, acl.WRITE)
    target = pick_replica(session, reps, kv_of(inp), for_write=False) or reps[0]
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
        e.reply_msg = str_out(json.dumps(doc))
        raise


def _replica_truncate(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = abs_path(inp.objPath, "USER_INPUT_PATH_ERR")
    size = int(inp.dataSize or 0)
    reps = authorized_replicas(session, path, acl.WRITE)
    opts = kv_of(inp)
    target = pick_replica(session, reps, opts, for_write=False)
    if target is None:
        raise IrodsError("SYS_REPLICA_INACCESSIBLE", "no replica on that resource")
    if size < 0:
        raise IrodsError(code_of("UNIX_FILE_TRUNCATE_ERR") - errno.EINVAL, "negative size")
    _truncate_replica(session, target, size)
    doc = {
        "replica_number": int(target["data_repl_num"]),
        "resource_hierarchy": hier_of(session, int(target["resc_id"])),
        "message": "",
    }
    return Reply(msg=str_out(json.dumps(doc)))


# -- modDataObjMeta / touch ----------------------------------------------------------------


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


_TIME_FIELDS = {"dataModify", "dataExpiry"}  # zero-padded (dataCreate is not)


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
    params = kv_dict(param_pairs)
    path = abs_path(info.objPath, "USER_INPUT_PATH_ERR")
    cat = session.state.catalog
    reps = authorized_replicas(session, path, acl.WRITE)
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
        picked = pick_replica(session, reps, sel, for_write=False)
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
    for rep in targets if sets else []:
        cat.db.execute(
            f"UPDATE r_data_main SET {', '.join(sets)} WHERE data_id = ? AND data_repl_num = ?",
            (*values, int(rep["data_id"]), int(rep["data_repl_num"])),
        )
    if kw.ALL_REPL_STATUS_KW in params:  # this replica good, the others stale
        set_good_and_others_stale(
            session, int(reps[0]["data_id"]), [int(r["data_repl_num"]) for r in targets]
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
    doc = json_in(req)
    raw = doc.get("logical_path")
    path = abs_path(raw if isinstance(raw, str) else None, "SYS_INVALID_INPUT_PARAM")
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
        ts = _mtime_of(session, abs_path(str(options["reference"]), "SYS_INVALID_INPUT_PARAM"))
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
        target, phys = create_object(session, path, {}, dest_leaf(session, name, direct_ok=True))
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
    picked = pick_replica(session, reps, sel, for_write=False)
    if picked is None:
        raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", "no such replica")
    cat.db.execute(
        "UPDATE r_data_main SET modify_ts = ? WHERE data_id = ? AND data_repl_num = ?",
        (ts, int(picked["data_id"]), int(picked["data_repl_num"])),
    )
    return Reply()
