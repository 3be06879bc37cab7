"""Replicas, checksums and registration: 695 replicate, 632 trim, 629 checksum (compute,
force, verify), 630 PHY_PATH_REG (register a file or a directory tree, or a file as a new
replica with ``regRepl``).
"""

from __future__ import annotations

import json
import os
import sqlite3

import irods.keywords as kw
from irods.message import FileOpenRequest

from . import acl, leniency, namespace, vault
from .api_streams import is_open_for_write
from .catalog import now
from .dataobj import (
    BUSY,
    GOOD,
    UNREG_OPR,
    abs_path,
    authorized_replicas,
    check_locks,
    check_new_name,
    dest_leaf,
    ensure_colls,
    good_source,
    insert_replica,
    kv_of,
    next_repl_num,
    on_resc,
    parent_coll,
    pick_replica,
    remove_object,
    replicate_to,
    requested_resc,
    set_good_and_others_stale,
    str_out,
)
from .dispatch import Reply, Request, Session, api
from .errors import IrodsError, code_of

DEFAULT_MIN_COPIES = 2
#: ``PATH_REG_NOT_ALLOWED`` (``lib/core/include/irods/rodsErrorTable.h``); python-irodsclient
#: 3.3 has no class for it (a client sees ``KeyError(-129000)``, as from a real zone)
PATH_REG_NOT_ALLOWED = -129000
USER_FILE_SIZE_MISMATCH, SYS_NO_GOOD_REPLICA = -401000, -166000  # rodsErrorTable.h; no PRC class


# -- replicate / trim ----------------------------------------------------------------------


@api(695)
async def data_obj_repl(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = abs_path(inp.objPath, "USER_INPUT_PATH_ERR")
    opts = kv_of(inp)
    cat = session.state.catalog
    reps = authorized_replicas(session, path, acl.READ)
    if is_open_for_write(session, int(reps[0]["data_id"])):
        raise IrodsError("LOCKED_DATA_OBJECT_ACCESS", f"{path} is open for writing")
    source = good_source(session, reps, opts)
    if kw.ALL_KW in opts or (kw.UPDATE_REPL_KW in opts and not opts.get(kw.DEST_RESC_NAME_KW)):
        for rep in reps:
            if int(rep["data_is_dirty"]) != GOOD:
                leaf = cat.resource_by_id(int(rep["resc_id"]))
                if leaf is not None:
                    replicate_to(session, source, leaf)
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
        below = [r for r in reps if on_resc(session, r, name)]
        if below:
            good = [r for r in below if int(r["data_is_dirty"]) == GOOD]
            if good:
                return Reply()
            leaf = cat.resource_by_id(int(below[0]["resc_id"]))
            assert leaf is not None
        else:
            leaf = dest_leaf(session, name, direct_ok=True)
    else:
        leaf = dest_leaf(session, name, direct_ok=True)
    if int(leaf["resc_id"]) == int(source["resc_id"]):
        return Reply()
    replicate_to(session, source, leaf)
    return Reply()


@api(632)
async def data_obj_trim(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = abs_path(inp.objPath, "USER_INPUT_PATH_ERR")
    opts = kv_of(inp)
    cat = session.state.catalog
    reps = authorized_replicas(session, path, acl.DELETE_OBJECT)
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
        candidates = [r for r in reps if on_resc(session, r, opts[kw.RESC_NAME_KW])]
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


# -- checksums -----------------------------------------------------------------------------


@api(629)
async def data_obj_chksum(session: Session, req: Request) -> Reply:
    inp = req.parse(FileOpenRequest)
    path = abs_path(inp.objPath, "USER_INPUT_PATH_ERR")
    opts = kv_of(inp)
    cat = session.state.catalog
    reps = authorized_replicas(session, path, acl.READ)
    if kw.VERIFY_CHKSUM_KW in opts:
        return _verify(session, reps, opts)
    every = kw.CHKSUM_ALL_KW in opts
    if not every and not opts.get(kw.RESC_NAME_KW):  # the hierarchy is voted for open
        reps = check_locks(session, path, reps, opts, write=False, create=False)
    targets = reps if every else [pick_replica(session, reps, opts, for_write=False) or reps[0]]
    if any(int(r["data_is_dirty"]) in BUSY for r in targets):  # check_replica_accessibility
        raise IrodsError("SYS_REPLICA_INACCESSIBLE", f"{path}: a replica is being written")
    if (
        opts.get(kw.RESC_NAME_KW)
        and not every
        and not any(on_resc(session, r, opts[kw.RESC_NAME_KW]) for r in reps)
    ):
        raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", "no replica on that resource")
    result = ""
    for rep in targets:
        checksum = str(rep["data_checksum"])
        if not checksum or kw.FORCE_CHKSUM_KW in opts:
            checksum = session.state.checksum(str(rep["data_path"]), checksum)
            cat.db.execute(
                "UPDATE r_data_main SET data_checksum = ? WHERE data_id = ? AND data_repl_num = ?",
                (checksum, int(rep["data_id"]), int(rep["data_repl_num"])),
            )
        result = result or checksum
    return Reply(msg=str_out(result))


def _verify(session: Session, reps: list[sqlite3.Row], opts: dict[str, str]) -> Reply:
    """``do_verification`` (``server/api/src/rsDataObjChksum.cpp``, 4.3.4): nothing stored,
    findings answered as ``CHECK_VERIFICATION_RESULTS`` (-407000) with a JSON list of
    ``{severity, error_code, message}``: skipped non-good replicas ("info"), a vault size
    that differs from the catalog's ("error", ``USER_FILE_SIZE_MISMATCH``), replicas
    without a checksum ("warning", ``CAT_NO_CHECKSUM_FOR_REPLICA``), a checksum that does
    not match ("error", ``USER_CHKSUM_MISMATCH``) and good replicas whose checksums differ
    ("warning"). A replica named by number or resource is checked alone (stale allowed)."""
    one = opts.get(kw.REPL_NUM_KW, "") != "" or kw.RESC_NAME_KW in opts
    if (
        kw.FORCE_CHKSUM_KW in opts
        or (kw.REPL_NUM_KW in opts and kw.RESC_NAME_KW in opts)
        or (one and kw.CHKSUM_ALL_KW in opts)
    ):
        raise IrodsError("USER_INCOMPATIBLE_PARAMS", "incompatible verification options")
    results: list[dict[str, object]] = []

    def add(severity: str, code: int, message: str) -> None:
        results.append({"severity": severity, "error_code": code, "message": message})

    def size_ok(rep: sqlite3.Row) -> None:
        if vault.size(str(rep["data_path"])) != int(rep["data_size"]):
            add(
                "error",
                USER_FILE_SIZE_MISMATCH,
                "ERROR: Physical size does not match size in catalog for replica"
                f" [{rep['data_repl_num']}].",
            )

    def sum_ok(rep: sqlite3.Row) -> None:
        stored = str(rep["data_checksum"])
        if session.state.checksum(str(rep["data_path"]), stored) != stored:
            add(
                "error",
                code_of("USER_CHKSUM_MISMATCH"),
                "ERROR: Computed checksum does not match what is in the catalog for replica"
                f" [{rep['data_repl_num']}].",
            )

    def no_sum(rep: sqlite3.Row) -> None:
        add(
            "warning",
            code_of("CAT_NO_CHECKSUM_FOR_REPLICA"),
            f"WARNING: No checksum available for replica [{rep['data_repl_num']}].",
        )

    if one:
        picked = pick_replica(session, reps, opts, for_write=False)
        if picked is None:
            raise IrodsError("SYS_REPLICA_DOES_NOT_EXIST", "no replica on that resource")
        if int(picked["data_is_dirty"]) in BUSY:
            raise IrodsError("SYS_REPLICA_INACCESSIBLE", "the replica is being written")
        size_ok(picked)
        if not picked["data_checksum"]:
            no_sum(picked)
        elif kw.NO_COMPUTE_KW not in opts:
            sum_ok(picked)
        return _verification_reply(results)
    good = [r for r in reps if int(r["data_is_dirty"]) == GOOD]
    if not good:
        raise IrodsError(SYS_NO_GOOD_REPLICA, "no good replica to verify")
    if len(reps) > len(good):
        add("info", 0, f"INFO: Number of replicas skipped: {len(reps) - len(good)}")
    for rep in good:
        size_ok(rep)
    if any(not r["data_checksum"] for r in good):
        for rep in good:
            if not rep["data_checksum"]:
                no_sum(rep)
        return _verification_reply(results)
    if kw.NO_COMPUTE_KW not in opts:
        for rep in good:
            sum_ok(rep)
    if len({str(r["data_checksum"]) for r in good}) > 1:
        add(
            "warning",
            code_of("USER_CHKSUM_MISMATCH"),
            "WARNING: Data object has replicas with different checksums.",
        )
    return _verification_reply(results)


def _verification_reply(results: list[dict[str, object]]) -> Reply:
    if not results:
        return Reply()
    return Reply(int_info=code_of("CHECK_VERIFICATION_RESULTS"), msg=str_out(json.dumps(results)))


# -- register ------------------------------------------------------------------------------


#: The resource type whose physical paths are S3 objects (``/bucket/key``), as iRODS's S3
#: plugin names it. Registering there stats no local file (a real zone asks the bucket).
S3_RESOURCE_TYPE = "s3"


def is_s3(leaf: sqlite3.Row) -> bool:
    """Whether ``leaf`` is an S3 resource: its replicas are objects in a bucket."""
    return str(leaf["resc_type_name"]).lower() == S3_RESOURCE_TYPE


def register_file(session: Session, phys: str, path: str, opts: dict[str, str]) -> None:
    """Register one physical file at ``path`` (or as a new replica with ``regRepl``).

    As ``filePathReg`` (``plugins/api/src/register_physical_path.cpp``, 4.3.4): the size is
    ``dataSize`` if given, else the file's; the modify time is ``dataModify`` exactly as
    given, else now. A new replica (``filePathRegRepl`` → ``rsRegReplica.cpp``
    ``verify_and_update_replica``) copies the source replica's row (type, owner, status,
    checksum) stamped now; when ``dataSize`` was given, or the size or (the source having
    one) the checksum differs from the source's, it becomes good and every other replica
    stale (modDataObjMeta with ``allReplStatus``)."""
    cat = session.state.catalog
    user = session.require_user()
    name = requested_resc(opts, write=True) or session.state.default_resource
    leaf = dest_leaf(session, name, direct_ok=True)
    # an S3 resource's physical path is /bucket/key, not a local file: nothing to stat
    s3 = is_s3(leaf)
    local_size = 0
    if not s3:
        try:
            local_size = os.stat(phys).st_size
        except OSError:
            raise IrodsError("UNIX_FILE_STAT_ERR", f"cannot stat {phys}") from None
    size = (
        int(opts[kw.DATA_SIZE_KW])
        if opts.get(kw.DATA_SIZE_KW, "").lstrip("-").isdigit() and int(opts[kw.DATA_SIZE_KW]) >= 0
        else local_size
    )
    checksum = ""
    # (the test server cannot read a bucket: no checksum on an S3 register)
    if not s3 and (kw.REG_CHKSUM_KW in opts or kw.VERIFY_CHKSUM_KW in opts):
        checksum = session.state.checksum(phys, opts.get(kw.CHKSUM_KW))
        if (
            kw.VERIFY_CHKSUM_KW in opts
            and opts.get(kw.CHKSUM_KW)
            and opts[kw.CHKSUM_KW] != checksum
        ):
            raise IrodsError("USER_CHKSUM_MISMATCH", "checksum mismatch")
    mtime = opts.get(kw.DATA_MODIFY_KW) or now()
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
            _register_replica(session, reps, leaf, phys, opts, size)
            return
    parent = parent_coll(session, path)
    check_new_name(session, path)
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


def check_path_permission(session: Session, opts: dict[str, str]) -> None:
    """Who may register a physical path, as a default 4.3.4 zone decides.

    ``noChkFilePerm`` from a proxy that is not a rodsadmin is ``SYS_NO_API_PRIV``
    (``rs_register_physical_path``, ``plugins/api/src/register_physical_path.cpp``); from a
    rodsadmin proxy it skips the check. A rodsadmin client needs no check
    (``getchkPathPerm``, ``server/core/src/physPath.cpp``); everyone else meets the shipped
    ``acSetChkFilePathPerm`` policy ``disallowPathReg`` (``packaging/core.re.template``),
    so ``chkFilePathPerm`` (``server/core/src/fileOpr.cpp``) answers
    ``PATH_REG_NOT_ALLOWED``, unless the server runs with the ``path-registration``
    leniency.
    """
    user = session.require_user()
    if kw.NO_CHK_FILE_PERM_KW in opts:
        if not session.proxy_is_admin:
            raise IrodsError("SYS_NO_API_PRIV", "only a rodsadmin may bypass the path check")
        return
    if user.is_admin or not session.state.strict(leniency.PATH_REGISTRATION):
        return
    raise IrodsError(
        PATH_REG_NOT_ALLOWED,
        f"{user.name} may not register physical paths (acSetChkFilePathPerm: disallowPathReg);"
        " a rodsadmin, or a rodsadmin proxy sending noChkFilePerm, may",
    )


def _register_replica(
    session: Session,
    reps: list[sqlite3.Row],
    leaf: sqlite3.Row,
    phys: str,
    opts: dict[str, str],
    size: int,
) -> None:
    """The ``regRepl`` half of :func:`register_file`."""
    good = [r for r in reps if int(r["data_is_dirty"]) == GOOD]
    source = (good or reps)[0]
    data_id = int(source["data_id"])
    num = next_repl_num(session, data_id)
    checksum = str(source["data_checksum"] or "")
    differs = kw.DATA_SIZE_KW in opts or size != int(source["data_size"])
    if checksum and is_s3(leaf):
        checksum = ""  # an S3 object cannot be read here to compare
    elif checksum:
        mine = session.state.checksum(phys, checksum)
        differs = differs or mine != checksum
        checksum = mine
    insert_replica(
        session,
        data_id=data_id,
        coll_id=int(source["coll_id"]),
        name=str(source["data_name"]),
        repl_num=num,
        leaf=leaf,
        phys=phys,
        size=size,
        status=int(source["data_is_dirty"]),
        checksum=checksum,
        data_type=str(source["data_type_name"]),
        owner=(str(source["data_owner_name"]), str(source["data_owner_zone"])),
    )
    if differs:
        set_good_and_others_stale(session, data_id, [num])


def _register(session: Session, path: str, opts: dict[str, str]) -> None:
    check_path_permission(session, opts)
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
    _register(session, abs_path(inp.objPath, "USER_INPUT_PATH_ERR"), kv_of(inp))
    return Reply()
