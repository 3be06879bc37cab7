"""Per-job time limits the API fills in at submit: every task gets a finite ``timeout``
and ``timeout_noprogress`` unless the operator allows unlimited ones.

A job may leave either out, send ``null`` or ``0``: it then gets the default.  Only with
``jobs.allow_unlimited`` does an explicit ``0`` keep its old meaning, "no limit".  The
worker enforces what is stored (``services/worker/time_limit.py``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

#: Longest ``timeout`` / ``timeout_noprogress`` a job may ask for (as the task model).
TIMEOUT_MAX = 30 * 86400


class JobLimits(BaseModel):
    """Defaults for the per-job limits (``STAGER_JOBS__…``)."""

    default_timeout: int = Field(
        default=24 * 3600, ge=1, le=TIMEOUT_MAX, description="seconds per attempt"
    )
    default_timeout_noprogress: int = Field(
        default=2 * 3600,
        ge=1,
        le=TIMEOUT_MAX,
        description="seconds without bytes or files advancing",
    )
    allow_unlimited: bool = Field(
        default=False, description="an explicit 0 means no limit (otherwise: the default)"
    )

    def timeout(self, asked: int | None) -> int:
        """The ``timeout`` to store for what the job asked."""
        return self._pick(asked, self.default_timeout)

    def timeout_noprogress(self, asked: int | None) -> int:
        """The ``timeout_noprogress`` to store for what the job asked."""
        return self._pick(asked, self.default_timeout_noprogress)

    def _pick(self, asked: int | None, default: int) -> int:
        if asked is None:
            return default
        if asked == 0:
            return 0 if self.allow_unlimited else default
        return asked
