"""Data-acquisition collection (DAC) of a project: static map, then an iRODS query.

The query finds collections carrying the AVU ``<project_attr> = <number>`` and keeps
those that also carry ``<type_attr> = <type_value>``.  Results are cached for ``ttl``
seconds (misses too, shorter).  python-irodsclient is blocking, so queries run in a
bounded thread pool.
"""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, Field

from shared import irods as irods_session
from shared.errors import Conflict, InvalidInput, NotFound, Unavailable
from shared.settings import IrodsSettings


class DacSettings(BaseModel):
    """Where DACs are found."""

    static: dict[str, str] = Field(default_factory=dict, description="project → collection")
    project_attr: str = "projectID"
    type_attr: str = "collectionType"
    type_value: str = "DAC"
    project_re: str = r"^[0-9]{7}\.[0-9]{2}$"
    ttl: float = Field(default=300.0, ge=0)
    miss_ttl: float = Field(default=30.0, ge=0)
    threads: int = Field(default=4, ge=1, le=64)


def _query(irods: IrodsSettings, dac: DacSettings, number: str) -> list[str]:
    from irods.models import Collection, CollectionMeta

    with irods_session.connect(irods.account(), timeout=irods.timeout) as session:
        rows = (
            session.query(Collection.name)
            .filter(CollectionMeta.name == dac.project_attr)
            .filter(CollectionMeta.value == number)
            .all()
        )
        found: list[str] = []
        for name in sorted({r[Collection.name] for r in rows}):
            typed = (
                session.query(CollectionMeta.value)
                .filter(Collection.name == name)
                .filter(CollectionMeta.name == dac.type_attr)
                .all()
            )
            if any(r[CollectionMeta.value] == dac.type_value for r in typed):
                found.append(name)
        return found


class DacResolver:
    """Resolves a project number to its DAC path."""

    def __init__(self, settings: DacSettings, irods: IrodsSettings) -> None:
        self.settings = settings
        self.irods = irods
        self._pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="dac")
        self._cache: dict[str, tuple[float, list[str]]] = {}

    def close(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def resolve(self, number: str) -> str:
        """The DAC of ``number``; NotFound (none), Conflict (several), Unavailable."""
        if not re.fullmatch(self.settings.project_re, number):
            raise InvalidInput(f"project number {number!r} is malformed: use the form 3010000.01")
        if number in self.settings.static:
            return self.settings.static[number]
        now = time.monotonic()
        cached = self._cache.get(number)
        if cached and cached[0] > now:
            colls = cached[1]
        else:
            if not self.irods.enabled:
                raise NotFound(f"no data-acquisition collection known for project {number}")
            loop = asyncio.get_running_loop()
            try:
                colls = await asyncio.wait_for(
                    loop.run_in_executor(self._pool, _query, self.irods, self.settings, number),
                    self.irods.timeout * 3,
                )
            except TimeoutError as e:
                raise Unavailable("the repository did not answer in time; try again") from e
            except Exception as e:  # PRC raises many types; none may leak to the client
                raise Unavailable(
                    f"cannot query the repository ({type(e).__name__}); try again later"
                ) from e
            ttl = self.settings.ttl if colls else self.settings.miss_ttl
            self._cache[number] = (now + ttl, colls)
        if not colls:
            raise NotFound(f"no data-acquisition collection found for project {number}")
        if len(colls) > 1:
            raise Conflict(
                f"project {number} has {len(colls)} data-acquisition collections "
                f"({', '.join(colls)}); ask a data manager to fix the metadata"
            )
        return colls[0]
