"""``sync_job``: the anchor's view of one job (name, counters, done), from the job store."""

from __future__ import annotations

import datetime
import time
from typing import Any

from services.ingest.compat import redis_key, transport
from services.ingest.compat.redis_utils import JobStoreRedis, get_redis


class sync_job:
    def __init__(self, job_name: str, redis_handle: JobStoreRedis | None = None) -> None:
        self.job_name = job_name
        self.r = redis_handle if redis_handle is not None else JobStoreRedis(job_name)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> sync_job:
        return cls(meta["job_name"], get_redis(meta["config"]))

    def name(self) -> str:
        return self.job_name

    def failures_handle(self) -> redis_key.failures_key_handle:
        return redis_key.failures_key_handle(self.r, self.job_name)

    def retries_handle(self) -> redis_key.retries_key_handle:
        return redis_key.retries_key_handle(self.r, self.job_name)

    def tasks_handle(self) -> redis_key.tasks_key_handle:
        return redis_key.tasks_key_handle(self.r, self.job_name)

    def count_handle(self) -> redis_key.count_key_handle:
        return redis_key.count_key_handle(self.r, self.job_name)

    def done(self) -> bool:
        """No task of the pass left (as the anchor's ``done``)."""
        return not self.tasks_handle().get_value()

    def periodic(self) -> bool:
        return self._job().get("interval") is not None

    def _job(self) -> dict[str, Any]:
        return dict(transport.call(self.job_name, "job").counters or {})

    def asdict(self) -> dict[str, Any]:
        """The anchor's ``list`` entry for this job."""
        j = self._job()
        start = float(j.get("started_at") or 0.0)
        end = float(j.get("finished_at") or 0.0) or time.time()
        elapsed = end - start if start else 0.0
        return {
            "job_name": self.job_name,
            "total_tasks": int(j.get("tasks_total") or 0),
            "remaining_tasks": int(j.get("pending") or 0),
            "failed_tasks": int(j.get("files_failed") or 0) + int(j.get("tasks_failed") or 0),
            "retried_tasks": int(j.get("retries") or 0),
            "elapsed_time": str(datetime.timedelta(seconds=elapsed)),
            "start_time": datetime.datetime.fromtimestamp(start, tz=datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
        }
