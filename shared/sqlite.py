"""SQLite settings for a job store that several processes share (the API's, ingest's).

Applied on every new DBAPI connection (``sqlalchemy.event.listen(engine.sync_engine,
"connect", apply_pragmas)``). The busy timeout comes first: switching a database to WAL
takes a lock, and processes that start together (four ingest workers on one store) wait
for it up to that timeout instead of the driver's default 5 s, after which a worker died
at start-up with "database is locked".
"""

from __future__ import annotations

from typing import Any

#: how long a statement waits for another process's lock before "database is locked"
BUSY_TIMEOUT_MS = 30_000


def apply_pragmas(dbapi_conn: Any, _record: Any = None) -> None:
    """Busy timeout, then WAL (readers never block the writer), then ``synchronous=NORMAL``
    (durable at each checkpoint; safe with WAL)."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()
