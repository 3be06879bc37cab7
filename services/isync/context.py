"""What every file transfer needs: the session, options, progress, limits, cancellation."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.isync.bulk import Bulk
from services.isync.bwlimit import NoLimit, TokenBucket
from services.isync.errors import Interrupted
from services.isync.leftovers import Ledger
from services.isync.models import TransferOptions
from services.isync.progress import ProgressTracker
from services.isync.single_buffer import SingleBuffer


@dataclass
class Context:
    session: Any
    options: TransferOptions
    tracker: ProgressTracker
    cancel: threading.Event
    state_dir: Path
    bucket: TokenBucket | NoLimit = field(default_factory=NoLimit)
    single: SingleBuffer = field(default_factory=lambda: SingleBuffer(0))
    bulk: Bulk = field(default_factory=Bulk)
    #: where what the run leaves behind until it finishes is noted (a no-op by default)
    leftovers: Ledger = field(default_factory=lambda: Ledger(None))
    _local: threading.local = field(default_factory=threading.local)

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Interrupted("interrupted")

    def buffer(self, second: bool = False) -> memoryview:
        """This thread's reusable transfer buffer (or its second one, for read-ahead)."""
        name = "buf2" if second else "buf"
        buf = getattr(self._local, name, None)
        if buf is None:
            buf = memoryview(bytearray(self.options.buffer_size))
            setattr(self._local, name, buf)
        return buf

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled, logged-in connection; dropped instead of reused after an error."""
        conn = self.session.pool.get_connection()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            conn.release(destroy=not ok)

    def resource_options(self) -> dict[str, str]:
        from irods import keywords as kw

        try:
            resc = self.session.default_resource
        except AttributeError:
            resc = None
        return {kw.DEST_RESC_NAME_KW: resc} if resc else {}
