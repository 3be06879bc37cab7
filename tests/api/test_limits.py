"""Finite per-job limits: a job that asks for no limit (or says nothing) gets the
operator's default, unless the operator allows unlimited jobs."""

from __future__ import annotations

from typing import Any

import pytest

from services.api.dispatcher import DispatchSettings
from services.api.limits import JobLimits
from shared.messaging.messages import TaskMessage
from tests.api.conftest import Api, job


def test_defaults_are_finite() -> None:
    limits = JobLimits()
    assert limits.timeout(None) == limits.timeout(0) == 24 * 3600
    assert limits.timeout_noprogress(None) == limits.timeout_noprogress(0) == 2 * 3600
    assert limits.timeout(60) == 60 and limits.timeout_noprogress(5) == 5
    free = JobLimits(allow_unlimited=True)
    assert free.timeout(0) == 0 and free.timeout(None) == 24 * 3600


#: No worker finishes these jobs: each user's cap must not hold the next one back.
UNCAPPED = DispatchSettings(max_in_flight_per_user=100)


async def _stored_limits(api: Api, **fields: Any) -> tuple[int, int]:
    r = await api.client.post("/v1/job", json=job(**fields), headers=api.basic())
    assert r.status == 200, await r.text()
    data = (await r.json())["data"]
    [msg] = await api.queued()
    task = TaskMessage.model_validate_json(msg.body).task
    assert (task.timeout, task.timeout_noprogress) == (data["timeout"], data["timeout_noprogress"])
    return task.timeout, task.timeout_noprogress


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_asking_for_no_limit_gets_the_default(make_api: Any) -> None:
    api = await make_api(dispatch=UNCAPPED)
    assert await _stored_limits(api, timeout=0, timeout_noprogress=0) == (86400, 7200)
    assert await _stored_limits(api, timeout=..., timeout_noprogress=...) == (86400, 7200)
    assert await _stored_limits(api, timeout=None, timeout_noprogress=None) == (86400, 7200)
    assert await _stored_limits(api, timeout=3600, timeout_noprogress=60) == (3600, 60)
    r = await api.client.post("/v1/job", json=job(timeout=31 * 86400), headers=api.basic())
    assert r.status == 400 and "timeout" in (await r.json())["errorMessage"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_operator_settings(make_api: Any) -> None:
    api = await make_api(
        jobs=JobLimits(default_timeout=600, default_timeout_noprogress=30, allow_unlimited=True),
        dispatch=UNCAPPED,
    )
    assert await _stored_limits(api, timeout=..., timeout_noprogress=...) == (600, 30)
    assert await _stored_limits(api, timeout=0, timeout_noprogress=0) == (0, 0)


def test_docs_say_how_timeouts_are_retried() -> None:
    """docs/api.md states that a timed-out attempt is retried, and with the real default
    number of attempts (the worker's policy)."""
    from pathlib import Path

    from services.worker.retries import RetryPolicy

    text = " ".join((Path(__file__).parents[2] / "docs" / "api.md").read_text().split())
    assert "Both limits are **per attempt**" in text
    assert f"`retry.max_attempts` attempts in all (default {RetryPolicy().max_attempts}," in text
