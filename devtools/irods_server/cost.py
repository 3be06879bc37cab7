"""Per-operation cost: slow the test server down to a real zone's per-request cost.

The test server answers a small-file put 7-20x faster than a real iRODS zone (issue 14
measured about 21 ms of agent CPU plus 19 ms of PostgreSQL CPU per file on a real 5.0.2
zone), which hides per-file and round-trip costs from every benchmark. With a cost set,
every API request waits ``agent_ms`` before it is answered, and a request that wrote the
catalog waits ``catalog_ms`` more (its transaction is committed first, so the wait never
holds the catalog). The wait is an ``asyncio.sleep``: connections pay it in parallel, as
a real zone's one-agent-per-connection processes do. A handler that does the work of
several requests in one (689 bulk put: one ``rsDataObjPut`` per file) sets
``session.scratch["cost_units"]`` and is charged that many times.

Off by default. Set it with ``python -m devtools.irods_server --cost AGENT_MS,CATALOG_MS``
(``--cost real-zone`` for the measured preset), the ``IRODS_TEST_SERVER_COST`` environment
variable (same syntax; the flag wins), or ``ServerProcess(..., cost="real-zone")``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .dispatch import HANDLERS, Handler, Reply, Request, Session
from .errors import IrodsError

ENV_VAR = "IRODS_TEST_SERVER_COST"


@dataclass(frozen=True)
class OpCost:
    """Milliseconds added to each agent request, and to each request that wrote the catalog."""

    agent_ms: float = 0.0
    catalog_ms: float = 0.0

    @property
    def active(self) -> bool:
        return self.agent_ms > 0 or self.catalog_ms > 0

    def __str__(self) -> str:
        return f"{self.agent_ms:g} ms per request + {self.catalog_ms:g} ms per catalog write"


#: A small-file put through python-irodsclient costs a real zone ~21 ms of agent CPU over
#: the 3 requests of open/write/close (7 ms each) and ~19 ms of PostgreSQL for the one
#: catalog write of the close: the measured ~40 ms per file.
PRESETS = {"off": OpCost(), "real-zone": OpCost(agent_ms=7.0, catalog_ms=19.0)}


def parse_cost(text: str) -> OpCost:
    """``"real-zone"``, ``"off"`` or ``"AGENT_MS,CATALOG_MS"`` (ms, >= 0) -> :class:`OpCost`."""
    text = text.strip()
    if text in PRESETS:
        return PRESETS[text]
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        agent, catalog = (float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"cost {text!r}: expected 'real-zone', 'off' or 'AGENT_MS,CATALOG_MS' (e.g. '7,19')"
        ) from None
    if not (0 <= agent < 10_000 and 0 <= catalog < 10_000):
        raise ValueError(f"cost {text!r}: each delay must be between 0 and 10000 ms")
    return OpCost(agent_ms=agent, catalog_ms=catalog)


def from_environment(environ: dict[str, str] | None = None) -> OpCost:
    """The cost named by ``IRODS_TEST_SERVER_COST`` (off when unset or empty)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return parse_cost(value) if value.strip() else OpCost()


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def costed(
    handler: Handler, cost: OpCost, wait: Callable[[float], Awaitable[None]] = _sleep
) -> Handler:
    """``handler`` followed by the cost's waits (an unexpected exception is not delayed:
    the connection loop rolls its transaction back at once). ``wait`` pays a wait of that
    many seconds (default: an ``asyncio.sleep``)."""
    agent_s, catalog_s = cost.agent_ms / 1000, cost.catalog_ms / 1000

    async def with_cost(session: Session, req: Request) -> Reply:
        catalog = session.state.catalog
        before = catalog.db.total_changes
        session.scratch.pop("cost_units", None)
        try:
            reply = await handler(session, req)
        except IrodsError:
            wrote = catalog.db.total_changes != before
            catalog.commit()  # the loop commits on an iRODS error too; do it before waiting
            units = max(int(session.scratch.pop("cost_units", 1)), 1)
            await wait(units * (agent_s + (catalog_s if wrote else 0.0)))
            raise
        wrote = catalog.db.total_changes != before
        catalog.commit()
        units = max(int(session.scratch.pop("cost_units", 1)), 1)
        await wait(units * (agent_s + (catalog_s if wrote else 0.0)))
        return reply

    with_cost.__wrapped__ = handler  # type: ignore[attr-defined]
    return with_cost


def install(cost: OpCost) -> None:
    """Wrap every registered handler with ``cost`` (load the handlers first). Idempotent
    per handler; an inactive cost changes nothing, so the default path pays nothing."""
    if not cost.active:
        return
    for number, handler in list(HANDLERS.items()):
        original = getattr(handler, "__wrapped__", handler)
        HANDLERS[number] = costed(original, cost)
