"""``sync_logging.get_sync_logger(config["log"])``: a job's logger (:mod:`..joblog`)."""

from __future__ import annotations

from typing import Any

from services.ingest.joblog import LOGGER_NAME, job_logger

irods_sync_logger = LOGGER_NAME


def get_sync_logger(logging_config: dict[str, Any]) -> Any:
    return job_logger(logging_config)


def create_sync_logger(logging_config: dict[str, Any]) -> Any:
    return job_logger(logging_config)
