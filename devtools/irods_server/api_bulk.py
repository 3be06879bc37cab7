"""689 BULK_DATA_OBJ_PUT: up to 50 small files in one request, as ``iput -b`` sends them.

As iRODS 5.0 (``server/api/src/rsBulkDataObjPut.cpp``, ``lib/api/src/rcBulkDataObjPut.cpp``,
``initAttriArrayOfBulkOprInp`` in ``lib/core/src/rcMisc.cpp``): the request is a
``BulkOprInp_PI`` (``objPath`` = the target collection, a ``GenQueryOut_PI`` of per-file
columns, ``KeyValPair_PI`` keywords for every file) and the files' bytes concatenated in
``bs``. The columns: ``COL_DATA_NAME`` (403, each object's full path), ``COL_DATA_MODE``
(421), ``OFFSET_INX`` (999998, each file's *end* offset in ``bs``: sizes s1, s2 give s1,
s1+s2) and, with ``verifyChksum`` or ``regChksum``, ``COL_D_DATA_CHECKSUM`` (415). As the
C unpacker does for ``struct SqlResult_PI[MAX_SQL_ATTR]``, all 50 ``SqlResult_PI`` must be
present (the unused ones empty).

What the server does, in its order:

1. ``forceFlag`` is refused (``USER_INCOMPATIBLE_PARAMS``, "Force flag keyword is not
   allowed for bulk puts.", since 5.0.0, irods/irods#7110): a bulk put only creates.
2. ``chkCollForExtAndReg``: the collection is made if missing (``rsMkCollR``), and the
   client user needs ``delete_object`` on it; without it the access-checked GenQuery of
   ``checkCollAccessPerm`` finds no row, so the answer is ``CAT_NO_ROWS_FOUND``.
3. ``unbunBulkBuf``: ``UNMATCHED_KEY_OR_INDEX`` without the name or offset column (or the
   checksum column under ``verifyChksum``), ``SYS_REQUESTED_BUF_TOO_LARGE`` above 50 rows;
   then, file by file in row order, the parent collection made (``rsMkCollR``) and the
   file put exactly as a single-buffer put (``rsDataObjPut`` with ``dataIncluded`` and the
   request's keywords; ``verifyChksum`` set to that row's checksum): a new replica,
   finalised good, with the checksum registered when asked. The first file that fails ends
   the request with its error; the files before it stay put, the ones after it are not
   tried (the client learns which by looking).

Stricter than iRODS: an offset that is not a number, goes backwards or points past the
bytes sent is refused before anything is written (``SYS_INVALID_INPUT_PARAM``; the C
server would read past its buffer). With ``--cost`` each stored file is charged as one
request (``session.scratch["cost_units"]``): a real agent runs one ``rsDataObjPut``, with
its catalog transaction, per file.
"""

from __future__ import annotations

import irods.keywords as kw
from irods.message import (
    GenQueryResponse,
    Message,
    StringProperty,
    StringStringMap,
    SubmessageProperty,
)

from . import acl, namespace
from .api_single_buffer import put_buffer
from .dataobj import abs_path, ensure_colls, kv_of
from .dispatch import Reply, Request, Session, api
from .errors import IrodsError

COL_DATA_NAME = 403
COL_D_DATA_CHECKSUM = 415
COL_DATA_MODE = 421
OFFSET_INX = 999998
MAX_NUM_BULK_OPR_FILES = 50
MAX_SQL_ATTR = 50
SYS_REQUESTED_BUF_TOO_LARGE = -113000  # rodsErrorTable.h; python-irodsclient has no class


class BulkOprInp_PI(Message):
    _name = "BulkOprInp_PI"
    objPath = StringProperty()
    GenQueryOut_PI = SubmessageProperty(GenQueryResponse)
    KeyValPair_PI = SubmessageProperty(StringStringMap)


def _columns(attri: GenQueryResponse | None) -> tuple[int, dict[int, list[str]]]:
    """Row count and the values of each column (by attribute index) of ``attriArray``."""
    if attri is None:
        raise IrodsError("USER_PACKSTRUCT_INPUT_ERR", "BulkOprInp_PI without GenQueryOut_PI")
    results = list(attri.SqlResult_PI or [])
    if len(results) != MAX_SQL_ATTR:
        raise IrodsError(
            "USER_PACKSTRUCT_INPUT_ERR",
            f"GenQueryOut_PI has {len(results)} SqlResult_PI, the packing wants {MAX_SQL_ATTR}",
        )
    rows = int(attri.rowCnt or 0)
    cols: dict[int, list[str]] = {}
    for res in results[: max(int(attri.attriCnt or 0), 0)]:
        values = ["" if v is None else str(v) for v in (res.value or [])]
        if len(values) != rows:
            raise IrodsError(
                "USER_PACKSTRUCT_INPUT_ERR",
                f"column {res.attriInx}: {len(values)} values for rowCnt {rows}",
            )
        cols[int(res.attriInx)] = values
    return rows, cols


def _slices(offsets: list[str], sent: int) -> list[tuple[int, int]]:
    """(start, end) in ``bs`` of each file, from the cumulative end offsets."""
    out: list[tuple[int, int]] = []
    start = 0
    for i, raw in enumerate(offsets):
        try:
            end = int(raw)
        except ValueError:
            raise IrodsError("SYS_INVALID_INPUT_PARAM", f"row {i}: offset {raw!r}") from None
        if not start <= end <= sent:
            raise IrodsError(
                "SYS_INVALID_INPUT_PARAM",
                f"row {i}: end offset {end} outside {start}..{sent} (bytes sent: {sent})",
            )
        out.append((start, end))
        start = end
    return out


def _make_colls(session: Session, path: str, known: set[str]) -> None:
    """``rsMkCollR``: ``path`` and its missing parents, the nearest existing one writable."""
    if path in known:
        return
    cat = session.state.catalog
    user = session.require_user()
    ancestor = path
    while (row := namespace.coll(cat, ancestor)) is None:
        if namespace.data_replicas(cat, ancestor):
            raise IrodsError("CAT_NAME_EXISTS_AS_DATAOBJ", f"{ancestor} is a data object")
        ancestor = namespace.split(ancestor)[0]
    if ancestor != path:
        acl.require(cat, user, int(row["coll_id"]), acl.WRITE, ancestor)
        ensure_colls(session, path)
    known.add(path)


@api(689)
async def bulk_data_obj_put(session: Session, req: Request) -> Reply:
    inp = req.parse(BulkOprInp_PI)
    opts = kv_of(inp)
    if kw.FORCE_FLAG_KW in opts:
        raise IrodsError(
            "USER_INCOMPATIBLE_PARAMS",
            "Force flag keyword is not allowed for bulk puts.",
            sends_text=True,
        )
    user = session.require_user()
    cat = session.state.catalog
    coll = abs_path(inp.objPath)
    known: set[str] = set()
    _make_colls(session, coll, known)
    row = namespace.coll(cat, coll)
    assert row is not None
    if not acl.allowed(cat, user, int(row["coll_id"]), acl.DELETE_OBJECT):
        raise IrodsError("CAT_NO_ROWS_FOUND", f"{user.name} lacks delete_object on {coll}")
    rows, cols = _columns(inp.GenQueryOut_PI)
    names, offsets = cols.get(COL_DATA_NAME), cols.get(OFFSET_INX)
    if names is None or offsets is None:
        raise IrodsError("UNMATCHED_KEY_OR_INDEX", "no COL_DATA_NAME or OFFSET_INX column")
    checksums = cols.get(COL_D_DATA_CHECKSUM)
    if kw.VERIFY_CHKSUM_KW in opts and checksums is None:
        raise IrodsError("UNMATCHED_KEY_OR_INDEX", "verifyChksum without COL_D_DATA_CHECKSUM")
    if rows > MAX_NUM_BULK_OPR_FILES:
        raise IrodsError(SYS_REQUESTED_BUF_TOO_LARGE, f"{rows} files, at most 50")
    slices = _slices(offsets, len(req.bs))
    paths = [abs_path(name) for name in names]
    file_opts = {**opts, kw.DATA_INCLUDED_KW: ""}
    for i, (path, (start, end)) in enumerate(zip(paths, slices, strict=True)):
        session.scratch["cost_units"] = i + 1
        _make_colls(session, namespace.split(path)[0], known)
        if checksums is not None and kw.VERIFY_CHKSUM_KW in opts:
            file_opts[kw.VERIFY_CHKSUM_KW] = checksums[i]
        put_buffer(session, path, file_opts, req.bs[start:end], 0)
    return Reply()
