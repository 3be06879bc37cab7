"""Data-acquisition collection (DAC) of a project: static map, then an iRODS query.

The query finds collections carrying the AVU ``<project_attr> = <number>`` and keeps
those that also carry ``<type_attr> = <type_value>``: two GenQueries, each paged by
:func:`services.isync.catalog.all_rows` on one connection.  Every query runs in a
bounded thread pool on one long-lived session, so however many numbers are asked for,
at most ``threads`` iRODS connections are open.  Only an authenticated principal may
look up (the handler authenticates), and the lookups that reach iRODS are throttled per
principal (a token bucket: ``rate`` a second, ``burst`` at once; a 429 with
``Retry-After`` beyond it).  Results are cached for ``ttl`` seconds (misses for
``miss_ttl``) in an LRU of at most ``max_entries`` numbers.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, Field

from services.api.throttle import BoundedLru, Buckets, Throttled
from services.isync.catalog import all_rows
from shared import irods as irods_session
from shared.errors import Conflict, InvalidInput, NotFound, Unavailable
from shared.settings import IrodsSettings


class DacSettings(BaseModel):
    """Where DACs are found, and how often one principal may ask iRODS."""

    static: dict[str, str] = Field(default_factory=dict, description="project → collection")
    project_attr: str = "projectID"
    type_attr: str = "collectionType"
    type_value: str = "DAC"
    project_re: str = r"^[0-9]{7}\.[0-9]{2}$"
    ttl: float = Field(default=300.0, ge=0)
    miss_ttl: float = Field(default=30.0, ge=0)
    max_entries: int = Field(default=10_000, ge=1, description="numbers cached at most")
    threads: int = Field(default=2, ge=1, le=64, description="queries (connections) at once")
    rate: float = Field(default=0.5, gt=0, description="iRODS lookups a second per principal")
    burst: int = Field(default=30, ge=1, description="iRODS lookups at once per principal")


def _query(session: Any, dac: DacSettings, number: str) -> list[str]:
    from irods.column import In
    from irods.models import Collection, CollectionMeta

    tagged = (
        session.query(Collection.name)
        .filter(CollectionMeta.name == dac.project_attr)
        .filter(CollectionMeta.value == number)
    )
    names = sorted({r[Collection.name] for r in all_rows(session, tagged)})
    if not names:
        return []
    typed = (
        session.query(Collection.name, CollectionMeta.value)
        .filter(In(Collection.name, names))
        .filter(CollectionMeta.name == dac.type_attr)
    )
    return sorted(
        {
            r[Collection.name]
            for r in all_rows(session, typed)
            if r[CollectionMeta.value] == dac.type_value
        }
    )


class DacResolver:
    """Resolves a project number to its DAC path."""

    def __init__(self, settings: DacSettings, irods: IrodsSettings) -> None:
        self.settings = settings
        self.irods = irods
        self._pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="dac")
        self._cache: BoundedLru[str, tuple[float, list[str]]] = BoundedLru(settings.max_entries)
        self._buckets = Buckets(settings.rate, settings.burst)
        self._session: Any = None
        self._session_lock = threading.Lock()

    def close(self) -> None:
        """Stop the thread pool and close the session."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._session_lock:
            if self._session is not None:
                self._session.cleanup()
                self._session = None

    @property
    def cached(self) -> int:
        """Numbers in the cache now."""
        return len(self._cache)

    def _lookup(self, number: str) -> list[str]:
        """In a pool thread: the shared session (opened once), one query."""
        with self._session_lock:
            if self._session is None:
                self._session = irods_session.connect(
                    self.irods.account(), timeout=self.irods.timeout
                )
            session = self._session
        return _query(session, self.settings, number)

    async def resolve(self, number: str, principal: str = "") -> str:
        """The DAC of ``number`` for ``principal`` (its throttle key); NotFound (none),
        Conflict (several), Unavailable, Throttled (too many lookups)."""
        if not re.fullmatch(self.settings.project_re, number):
            raise InvalidInput("project number is malformed: use the form 3010000.01")
        if number in self.settings.static:
            return self.settings.static[number]
        now = time.monotonic()
        cached = self._cache.get(number)
        if cached and cached[0] > now:
            colls = cached[1]
        else:
            if not self.irods.enabled:
                raise NotFound(f"no data-acquisition collection known for project {number}")
            wait = self._buckets.take(principal)
            if wait > 0:
                raise Throttled("too many project lookups", wait)
            loop = asyncio.get_running_loop()
            try:
                colls = await asyncio.wait_for(
                    loop.run_in_executor(self._pool, self._lookup, number),
                    self.irods.timeout * 3,
                )
            except TimeoutError as e:
                raise Unavailable("the repository did not answer in time; try again") from e
            except Exception as e:  # PRC raises many types; none may leak to the client
                raise Unavailable(
                    f"cannot query the repository ({type(e).__name__}); try again later"
                ) from e
            ttl = self.settings.ttl if colls else self.settings.miss_ttl
            self._cache.put(number, (now + ttl, colls))
        if not colls:
            raise NotFound(f"no data-acquisition collection found for project {number}")
        if len(colls) > 1:
            raise Conflict(
                f"project {number} has {len(colls)} data-acquisition collections "
                f"({', '.join(colls)}); ask a data manager to fix the metadata"
            )
        return colls[0]
