"""Retry policy: exponential backoff, cap, last attempt archives, permanent errors stop."""

from __future__ import annotations

import pytest

from services.worker.retries import RetryPolicy


def test_backoff_grows_and_is_capped() -> None:
    p = RetryPolicy(max_attempts=6, base_delay=10, factor=3, max_delay=200)
    assert [p.delay(n) for n in range(1, 6)] == [10, 30, 90, 200, 200]
    assert p.delays() == [10, 30, 90, 200, 200]


def test_default_is_five_attempts() -> None:
    p = RetryPolicy()
    assert [p.should_retry(n) for n in range(1, 6)] == [True, True, True, True, False]


def test_permanent_errors_are_not_retried() -> None:
    assert RetryPolicy().should_retry(1, permanent=True) is False


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base_delay": 0}, {"factor": 0.5}, {"max_delay": 1}]
)
def test_bad_policies_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
