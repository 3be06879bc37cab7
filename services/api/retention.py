"""Retention: purge completed tasks after 48 h and archived ones after 90 days."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from services.api.store import TaskStore
from shared.logging import get_logger
from shared.messaging.messages import utcnow

log = get_logger("stager.retention")


class RetentionSettings(BaseModel):
    """How long finished tasks stay visible."""

    completed_hours: float = Field(default=48.0, gt=0)
    archived_days: float = Field(default=90.0, gt=0)
    interval: float = Field(default=600.0, gt=0, description="seconds between sweeps")


async def purge_once(
    store: TaskStore, settings: RetentionSettings, now: datetime | None = None
) -> int:
    """Delete tasks past their retention; returns how many went."""
    now = now or utcnow()
    n = await store.purge(
        completed_before=now - timedelta(hours=settings.completed_hours),
        archived_before=now - timedelta(days=settings.archived_days),
    )
    if n:
        log.info("purged finished tasks", count=n)
    return n


async def run(store: TaskStore, settings: RetentionSettings) -> None:
    """Sweep forever."""
    while True:
        try:
            await purge_once(store, settings)
        except Exception as e:  # a failed sweep is retried at the next interval
            log.error("retention sweep failed", error=type(e).__name__)
        await asyncio.sleep(settings.interval)
