"""The statement table of one connection: the open GenQuery (702) and specific-query
(722) cursors, as a real agent keeps them.

Follows iRODS 4.3.4:

- ``plugins/database/src/low_level_odbc.cpp`` ``cllExecSqlWithResult``: an agent holds at
  most ``MAX_NUM_OF_CONCURRENT_STMTS`` (50) statements; a new one takes the lowest free
  slot, and none free is ``CAT_STATEMENT_TABLE_FULL`` (-860000).
- ``plugins/database/src/general_query.cpp`` ``chlGenQuery``: the continuation index is
  ``slot + 1``; a continuation fetches from ``icss->stmtPtr[continueInx - 1]`` with no
  check (``cllGetRow``), so a continuation whose slot is empty on *this* connection
  dereferences NULL and the agent dies: the client sees its connection dropped (a real
  5.0.2 zone did exactly that); a continuation that names another query's slot reads
  that query's rows. ``maxRows`` <= 0 frees the slot (an empty slot: nothing to free,
  success). A page that fills ``maxRows`` keeps the statement open even when no row is
  left (the cursor cannot know): the next continuation gets ``CAT_NO_ROWS_FOUND`` and
  frees it; a short page frees it and answers ``continueInx`` 0.

The table lives in the connection's :class:`~devtools.irods_server.dispatch.Session`, so
nothing is shared between connections (the test server used to keep one table per user
for the whole server, which hid every client that continues a query on another
connection of its pool).
"""

from __future__ import annotations

from dataclasses import dataclass

from .dispatch import Session
from .errors import AgentCrash, IrodsError

MAX_STATEMENTS = 50  # MAX_NUM_OF_CONCURRENT_STMTS (lib/core/include/irods/icatDefines.h)
_KEY = "_statement_table"


@dataclass
class Statement:
    """An open cursor: the rows of one query not yet fetched."""

    columns: list[int]
    rows: list[list[str]]
    position: int = 0

    def fetch(self, count: int) -> list[list[str]]:
        page = self.rows[self.position : self.position + count]
        self.position += len(page)
        return page


def _table(session: Session) -> list[Statement | None]:
    table = session.scratch.get(_KEY)
    if table is None:
        table = session.scratch[_KEY] = [None] * MAX_STATEMENTS
    return table


def open_statement(session: Session, stmt: Statement) -> int:
    """Put ``stmt`` in the lowest free slot; returns its continuation index (slot + 1)."""
    table = _table(session)
    for slot, held in enumerate(table):
        if held is None:
            table[slot] = stmt
            return slot + 1
    raise IrodsError("CAT_STATEMENT_TABLE_FULL", "too many concurrent statements")


def continued(session: Session, continue_inx: int) -> Statement:
    """The statement a continuation names; an empty slot kills the agent (see above)."""
    table = _table(session)
    slot = continue_inx - 1
    held = table[slot] if 0 <= slot < MAX_STATEMENTS else None
    if held is None:
        raise AgentCrash(f"continuation {continue_inx} names an empty statement slot")
    return held


def free(session: Session, continue_inx: int) -> None:
    """Free a statement's slot (an empty or out-of-range slot: nothing to do)."""
    table = _table(session)
    slot = continue_inx - 1
    if 0 <= slot < MAX_STATEMENTS:
        table[slot] = None


def next_page(
    session: Session, continue_inx: int, max_rows: int
) -> tuple[Statement, list[list[str]], int]:
    """The next ``max_rows`` rows of a continued statement and the ``continueInx`` to
    answer, as ``chlGenQuery`` pages: no row left is ``CAT_NO_ROWS_FOUND`` (freed), a short
    page frees the statement (0), a full page keeps it open (the same index)."""
    stmt = continued(session, continue_inx)
    page = stmt.fetch(max_rows)
    if not page:
        free(session, continue_inx)
        raise IrodsError("CAT_NO_ROWS_FOUND", "no more rows")
    if len(page) < max_rows:
        free(session, continue_inx)
        continue_inx = 0
    return stmt, page, continue_inx


def open_count(session: Session) -> int:
    return sum(held is not None for held in _table(session))
