"""API 702 GEN_QUERY (with continuation-index paging). Specific queries (722) are
``api_specific_query.py``, GenQuery2 (10221) ``api_genquery2.py``.

A query's rows are computed once; the rows beyond ``maxRows`` wait under a continuation
index (``continueInx`` > 0 in the reply while rows remain). The client pages with that
index, or closes the query by sending it with ``maxRows`` 0. Unlike iRODS (one statement
table per agent) the open queries are kept per *user* for the whole server, so a client
whose connection pool continues a query on another connection still gets its rows.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from irods.message import GenQueryRequest, GenQueryResponse, GenQueryResponseColumn

from . import tickets
from .dispatch import Reply, Request, Session, UserInfo, api
from .errors import IrodsError
from .genquery import AUTO_CLOSE, RETURN_TOTAL_ROW_COUNT, Access, GenQuery, run

GEN_QUERY_AN = 702
MAX_OPEN_PER_USER = 50  # as iRODS's statement table; a user's oldest is dropped beyond it
MAX_OPEN = 1000  # all users together


@dataclass
class _Pending:
    """Rows of an open query not yet sent."""

    owner: str
    columns: list[int]
    rows: list[list[str]]
    total: int


@dataclass
class _OpenQueries:
    """The open queries of every connection, by continuation index (oldest first)."""

    table: OrderedDict[int, _Pending] = field(default_factory=OrderedDict)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def take(self, inx: int, owner: str) -> _Pending | None:
        pending = self.table.get(inx)
        if pending is None or pending.owner != owner:
            return None
        return self.table.pop(inx)

    def put(self, pending: _Pending, inx: int = 0) -> int:
        mine = [k for k, p in self.table.items() if p.owner == pending.owner]
        for k in mine[: max(len(mine) - MAX_OPEN_PER_USER + 1, 0)]:
            del self.table[k]
        while len(self.table) >= MAX_OPEN:
            self.table.popitem(last=False)
        if inx <= 0:
            inx = next(self.counter)
            if inx >= 0x7FFFFFFF:  # an int32 on the wire
                self.counter = itertools.count(2)
                inx = 1
        self.table[inx] = pending
        return inx


_OPEN = _OpenQueries()


def _owner(user: UserInfo) -> str:
    return f"{user.name}#{user.zone}"


def _pairs(keys: list[Any] | None, values: list[Any] | None) -> list[tuple[Any, Any]]:
    keys, values = keys or [], values or []
    if len(keys) != len(values):
        raise IrodsError("CAT_INVALID_ARGUMENT", "malformed GenQuery input")
    return list(zip(keys, values, strict=True))


def parse(inp: GenQueryRequest) -> GenQuery:
    """The engine's view of a ``GenQueryInp_PI`` message."""
    sel, cond, kv = inp.InxIvalPair_PI, inp.InxValPair_PI, inp.KeyValPair_PI
    try:
        return GenQuery(
            select=[(int(i), int(v)) for i, v in _pairs(sel.inx, sel.ivalue)],
            conditions=[(int(i), str(v)) for i, v in _pairs(cond.inx, cond.svalue)],
            options=int(inp.options or 0),
            offset=max(int(inp.partialStartIndex or 0), 0),
            keywords={str(k): str(v) for k, v in _pairs(kv.keyWord, kv.svalue)},
        )
    except (TypeError, ValueError) as exc:
        raise IrodsError("CAT_INVALID_ARGUMENT", "malformed GenQuery input") from exc


def response(columns: list[int], rows: list[list[str]], continue_inx: int, total: int) -> Reply:
    """A ``GenQueryOut_PI`` reply: one ``SqlResult_PI`` per column."""
    results = []
    for i, number in enumerate(columns):
        values = [row[i] for row in rows]
        reslen = max([len(v.encode()) for v in values] + [49]) + 1
        results.append(GenQueryResponseColumn(attriInx=number, reslen=reslen, value=values))
    out = GenQueryResponse(
        rowCnt=len(rows),
        attriCnt=len(columns) if rows else 0,
        continueInx=continue_inx,
        totalRowCount=total,
        SqlResult_PI=results if rows else [],
    )
    return Reply(msg=out)


def _check_zone(session: Session, keywords: dict[str, str]) -> None:
    hint = keywords.get("zone")
    if hint:
        zone = hint.strip("'").lstrip("/").split("/")[0]
        if zone.lower() != session.state.zone.lower():
            raise IrodsError("SYS_INVALID_ZONE_NAME", f"unknown zone {zone!r}")


def _page(pending: _Pending, max_rows: int, options: int, inx: int = 0) -> Reply:
    """Send the next ``max_rows`` rows; keep the rest under the (same) continuation index."""
    page, rest = pending.rows[:max_rows], pending.rows[max_rows:]
    if rest and not options & AUTO_CLOSE:
        inx = _OPEN.put(_Pending(pending.owner, pending.columns, rest, pending.total), inx)
    else:
        inx = 0
    total = pending.total if options & RETURN_TOTAL_ROW_COUNT else 0
    return response(pending.columns, page, inx, total)


@api(GEN_QUERY_AN)
async def gen_query(session: Session, req: Request) -> Reply:
    """Run a query, or continue / close one this user opened before."""
    user = session.require_user()
    inp = req.parse(GenQueryRequest)
    max_rows = int(inp.maxRows or 0)
    continue_inx = int(inp.continueInx or 0)
    query = parse(inp)
    if continue_inx > 0:
        pending = _OPEN.take(continue_inx, _owner(user))
        if max_rows <= 0:
            return response([], [], 0, 0)
        if pending is None or not pending.rows:
            raise IrodsError("CAT_NO_ROWS_FOUND", "no more rows")
        return _page(pending, max_rows, query.options, continue_inx)
    _check_zone(session, query.keywords)
    catalog = session.state.catalog
    access = None
    if not user.is_admin:
        access = Access(catalog.group_ids(user.id), tickets.active_string(), user.id)
    rows = run(catalog.db, query, access)
    if max_rows <= 0:
        return response([], [], 0, 0)
    columns = [n for n, _ in query.select]
    return _page(
        _Pending(_owner(user), columns, rows, len(rows) + query.offset), max_rows, query.options
    )
