"""Specific queries: API 722 SPECIFIC_QUERY, and ``iadmin asq``/``rsq`` (API 701, in
``api_admin.py``), run as SQL against the catalog, whose tables mirror iRODS's.

Follows iRODS 4.3.4 ``plugins/database/src/db_plugin.cpp``:

- ``db_add_specific_query_op``: rodsadmin only; an SQL string shorter than 5 characters
  is ``CAT_INVALID_ARGUMENT``; a duplicate alias ``CAT_INVALID_ARGUMENT`` with the message
  "Alias is not unique".
- ``db_del_specific_query_op``: by SQL string first, then by alias; neither found is
  ``CAT_SUCCESS_BUT_WITH_NO_INFO``.
- ``db_specific_query_op``: the request's ``sql`` is a registered SQL string or an alias
  (else ``CAT_UNKNOWN_SPECIFIC_QUERY``); ``arg1``..``arg10`` bind the ``?`` placeholders;
  rows come back as ``GenQueryOut_PI`` pages of ``maxRows`` with a continuation index,
  an open statement of the connection's table (``statements.py``, shared with GenQuery
  as the agent's ``icss`` is); ``maxRows`` <= 0 closes it;
  no rows is ``CAT_NO_ROWS_FOUND``. Any authenticated user may run a registered query.

The built-in queries of a fresh install (``icatSysInserts.sql``: ``ls``, ``lsl``,
``ShowCollAcls``) are seeded by ``schema.sql``. A query runs with SQLite's
``query_only`` on: a registered statement cannot change the catalog (a difference: a real
zone would run an ``update`` registered by an admin).
"""

from __future__ import annotations

import sqlite3

from irods.message import SpecificQueryRequest

from . import statements
from .api_query import response
from .catalog import Catalog, now
from .dispatch import Reply, Request, Session, api
from .errors import IrodsError
from .statements import Statement

SPECIFIC_QUERY_AN = 722


def add(cat: Catalog, sql: str, alias: str) -> None:
    """``iadmin asq SQL [ALIAS]`` (the caller is a rodsadmin: API 701 checks)."""
    if len(sql) < 5:
        raise IrodsError("CAT_INVALID_ARGUMENT", "sql string is invalid")
    if (
        alias
        and cat.db.execute("SELECT 1 FROM r_specific_query WHERE alias = ?", (alias,)).fetchone()
    ):
        raise IrodsError("CAT_INVALID_ARGUMENT", "Alias is not unique", sends_text=True)
    cat.db.execute(
        "INSERT INTO r_specific_query (alias, sqlstr, create_ts) VALUES (?, ?, ?)",
        (alias or None, sql, now()),
    )


def remove(cat: Catalog, sql_or_alias: str) -> None:
    """``iadmin rsq SQL_OR_ALIAS``."""
    gone = cat.db.execute("DELETE FROM r_specific_query WHERE sqlstr = ?", (sql_or_alias,))
    if gone.rowcount == 0:
        gone = cat.db.execute("DELETE FROM r_specific_query WHERE alias = ?", (sql_or_alias,))
    if gone.rowcount == 0:
        raise IrodsError("CAT_SUCCESS_BUT_WITH_NO_INFO", f"no specific query {sql_or_alias!r}")


def lookup(cat: Catalog, sql_or_alias: str) -> str:
    """The registered SQL for an SQL string or an alias."""
    if cat.db.execute(
        "SELECT 1 FROM r_specific_query WHERE sqlstr = ?", (sql_or_alias,)
    ).fetchone():
        return sql_or_alias
    row = cat.db.execute(
        "SELECT sqlstr FROM r_specific_query WHERE alias = ?", (sql_or_alias,)
    ).fetchone()
    if row is None:
        raise IrodsError("CAT_UNKNOWN_SPECIFIC_QUERY", f"unknown query {sql_or_alias!r}")
    return str(row[0])


def run(cat: Catalog, sql: str, args: list[str]) -> tuple[int, list[list[str]]]:
    """Column count and rows of a registered query, read-only."""
    wanted = sql.count("?")
    if wanted > len(args):
        raise IrodsError("CAT_INVALID_ARGUMENT", f"the query takes {wanted} arguments")
    cat.db.execute("PRAGMA query_only = ON")
    try:
        cur = cat.db.execute(sql, args[:wanted])
        rows = cur.fetchall()
        width = len(cur.description or ())
    except sqlite3.Error as exc:
        raise IrodsError("CAT_SQL_ERR", f"specific query failed: {exc}") from exc
    finally:
        cat.db.execute("PRAGMA query_only = OFF")
    return width, [["" if v is None else str(v) for v in row] for row in rows]


def _fetch(session: Session, inx: int, max_rows: int) -> Reply:
    """The next page of the statement in slot ``inx - 1`` (paged as GenQuery pages)."""
    stmt, page, inx = statements.next_page(session, inx, max_rows)
    return response(stmt.columns, page, inx, 0)


@api(SPECIFIC_QUERY_AN)
async def specific_query(session: Session, req: Request) -> Reply:
    session.require_user()
    inp = req.parse(SpecificQueryRequest)
    max_rows = int(inp.maxRows or 0)
    continue_inx = int(inp.continueInx or 0)
    if continue_inx > 0:
        if max_rows <= 0:
            statements.free(session, continue_inx)
            return response([], [], 0, 0)
        return _fetch(session, continue_inx, max_rows)
    cat = session.state.catalog
    sql = lookup(cat, str(inp.sql or ""))
    args = [str(getattr(inp, f"arg{i}") or "") for i in range(1, 11)]
    width, rows = run(cat, sql, args)
    if not rows:
        raise IrodsError("CAT_NO_ROWS_FOUND", "no rows found")
    offset = max(int(inp.rowOffset or 0), 0)
    if max_rows <= 0:
        return response([], [], 0, 0)
    inx = statements.open_statement(session, Statement(list(range(width)), rows[offset:]))
    return _fetch(session, inx, max_rows)
