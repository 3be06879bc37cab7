"""The job stores' SQLite settings: a process that opens a store while another holds its
lock waits (as four ingest workers starting together do) instead of failing after 5 s."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from shared.sqlite import BUSY_TIMEOUT_MS, apply_pragmas


def test_settings_are_applied(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db")
    apply_pragmas(conn)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    conn.close()


def test_switching_to_wal_waits_for_another_process_lock(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # what another process switching the mode holds
    released = threading.Event()

    def release() -> None:
        time.sleep(1.5)
        holder.execute("COMMIT")
        released.set()

    threading.Thread(target=release, daemon=True).start()
    # timeout=1: the driver alone would give up after 1 s, before the lock is released
    conn = sqlite3.connect(db, timeout=1.0)
    apply_pragmas(conn)  # waits on the busy timeout set first
    assert released.is_set()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    holder.close()
