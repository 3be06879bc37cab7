"""API 702 GEN_QUERY (with continuation-index paging). Specific queries (722) are
``api_specific_query.py``, GenQuery2 (10221) ``api_genquery2.py``.

A query's rows are computed once and held as an open statement of *this connection*
(``statements.py``: 50 slots, ``CAT_STATEMENT_TABLE_FULL``, a continuation on another
connection drops that connection as a real agent dies), paged exactly as
``plugins/database/src/general_query.cpp`` ``chlGenQuery`` pages: ``continueInx`` stays
> 0 after a full page, the continuation after the last full page is
``CAT_NO_ROWS_FOUND``, ``totalRowCount`` comes with the first page only, ``AUTO_CLOSE``
answers -1. A query with no rows is ``CAT_NO_ROWS_FOUND`` and opens nothing.
"""

from __future__ import annotations

from typing import Any

from irods.message import GenQueryRequest, GenQueryResponse, GenQueryResponseColumn

from . import statements, tickets
from .dispatch import Reply, Request, Session, api
from .errors import IrodsError
from .genquery import AUTO_CLOSE, RETURN_TOTAL_ROW_COUNT, Access, GenQuery, run
from .statements import Statement

GEN_QUERY_AN = 702


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


def _fetch(
    session: Session, inx: int, max_rows: int, options: int, asked: list[int], total: int = 0
) -> Reply:
    """Fetch up to ``max_rows`` rows of the statement in slot ``inx - 1``, as
    ``chlGenQuery`` does: a full page keeps the statement open, a short page frees it
    (``continueInx`` 0), no row left is ``CAT_NO_ROWS_FOUND`` (freed), ``AUTO_CLOSE``
    frees it and answers -1. The reply numbers the columns as *this* request selects
    them (``sqlResult[j].attriInx = selectInp.inx[j]``), so a continuation that names
    another query's slot gets that query's values under its own column numbers."""
    stmt, page, inx = statements.next_page(session, inx, max_rows)
    if inx and options & AUTO_CLOSE:
        statements.free(session, inx)
        inx = -1
    width = len(stmt.columns)
    columns = asked[:width] if len(asked) >= width else stmt.columns
    return response(columns, page, inx, total)


@api(GEN_QUERY_AN)
async def gen_query(session: Session, req: Request) -> Reply:
    """Run a query, or continue / close one this connection opened before."""
    user = session.require_user()
    inp = req.parse(GenQueryRequest)
    max_rows = int(inp.maxRows or 0)
    continue_inx = int(inp.continueInx or 0)
    query = parse(inp)
    asked = [n for n, _ in query.select]
    if continue_inx > 0:
        if max_rows <= 0:  # the caller closes the query
            statements.free(session, continue_inx)
            return response([], [], 0, 0)
        return _fetch(session, continue_inx, max_rows, query.options, asked)
    _check_zone(session, query.keywords)
    catalog = session.state.catalog
    access = None
    if not user.is_admin:
        access = Access(catalog.group_ids(user.id), tickets.active_string(), user.id)
    rows = run(catalog.db, query, access)
    if max_rows <= 0:
        return response([], [], 0, 0)
    total = len(rows) + query.offset if query.options & RETURN_TOTAL_ROW_COUNT else 0
    inx = statements.open_statement(session, Statement(asked, rows))
    return _fetch(session, inx, max_rows, query.options, asked, total)
