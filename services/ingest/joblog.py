"""Per-job logging: a job's handler and worker output goes where its log options say.

``--log_filename``, ``--log_when``, ``--log_interval`` and ``--log_level`` are the job's
(stored with it, as the anchor keeps them in ``meta["config"]["log"]``) and apply in the
owner's child, which runs the job's scans, operations and hooks: the ``logger`` every hook
gets and the child's own lines about that job (failed files, retries, unreadable paths)
go to the job's log file, opened as the job's owner. As in automated ingest 0.7.0:

- no ``--log_filename``: the lines go with the child's other output (the worker's log);
- ``--log_filename`` alone: a plain file, **never rotated** (the anchor's default);
- with ``--log_when`` (``S``, ``M``, ``H``, ``D``, ``midnight``, ``W0``-``W6``): rotated by
  ``TimedRotatingFileHandler(when, interval)``, ``--log_interval`` defaulting to 1;
- ``--log_level`` (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``): the job's threshold;
  without it the worker's own level applies (the anchor: the Celery worker's).

Each line is one JSON object as the anchor's ``sync_logging`` writes it: the event text in
``event``, the keyword arguments, ``logger``, ``level`` and ``@timestamp`` (local time
with its UTC offset, milliseconds), plus ``ingest_job``. Secrets are redacted as in every
other log of the project.
"""

from __future__ import annotations

import datetime
import logging
import logging.handlers
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

from services.ingest.errors import HandlerError
from shared.logging import redact_secrets

LOGGER_NAME = "irods_sync"
WHEN = ("S", "M", "H", "D", "MIDNIGHT", *(f"W{i}" for i in range(7)))
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_lock = threading.Lock()
_loggers: dict[tuple[Any, ...], tuple[Any, logging.Handler | None]] = {}


def check_options(when: str | None, interval: int | None, level: str | None) -> None:
    """Refuse log options the anchor's logging would not take (raises ``ValueError``)."""
    if when is not None and when.upper() not in WHEN:
        raise ValueError(f"--log_when {when!r}: use one of S, M, H, D, midnight, W0-W6")
    if interval is not None and interval < 1:
        raise ValueError("--log_interval must be at least 1")
    if level is not None and level.upper() not in LEVELS:
        raise ValueError(f"--log_level {level!r}: use DEBUG, INFO, WARNING or ERROR")


def log_config(
    filename: str | None, when: str | None, interval: int | None, level: str | None
) -> dict[str, Any]:
    """The anchor's ``config["log"]`` dict."""
    return {"filename": filename, "when": when, "interval": interval, "level": level}


def _timestamp(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    now = datetime.datetime.now().astimezone()
    event_dict["@timestamp"] = now.isoformat(timespec="milliseconds")
    return event_dict


def _handler(filename: str, when: str | None, interval: int | None) -> logging.Handler:
    try:
        if when:
            return logging.handlers.TimedRotatingFileHandler(
                filename, when=when, interval=interval or 1, encoding="utf-8"
            )
        return logging.FileHandler(filename, encoding="utf-8")
    except OSError as e:
        raise HandlerError(f"cannot open the job's log file {filename}: {e.strerror}") from None


def job_logger(config: dict[str, Any], default_level: str = "info") -> Any:
    """The structlog logger for a job's ``config["log"]`` (one per file and level)."""
    filename = config.get("filename")
    when, interval = config.get("when"), config.get("interval")
    level = (config.get("level") or default_level).upper()
    key = (filename, when, interval, level)
    with _lock:
        cached = _loggers.get(key)
        if cached is not None:
            return cached[0]
        std = logging.getLogger(f"{LOGGER_NAME}/{filename or ''}/{level}")
        std.propagate = filename is None  # no file: with the process's other output
        std.setLevel(logging.getLevelName(level))
        handler = None
        if filename is not None:
            handler = _handler(filename, when, interval)
            handler.setFormatter(logging.Formatter("%(message)s"))
            std.addHandler(handler)
            processors: list[Any] = [
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.filter_by_level,
                _add_logger_name,
                structlog.stdlib.add_log_level,
                _timestamp,
                redact_secrets,
                structlog.processors.JSONRenderer(default=str),
            ]
            # filtered by the job's level alone (filter_by_level on ``std``), never by the
            # process's: the global wrapper class drops what is below the service's level
            logger = structlog.wrap_logger(
                std, processors=processors, wrapper_class=structlog.stdlib.BoundLogger
            )
        else:
            logger = structlog.get_logger(LOGGER_NAME)
        _loggers[key] = (logger, handler)
        return logger


def _add_logger_name(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict["logger"] = LOGGER_NAME
    return event_dict


def close_all() -> None:
    """Close every job log file (the child at exit; tests)."""
    with _lock:
        entries = list(_loggers.values())
        _loggers.clear()
    for _, handler in entries:
        if handler is not None:
            handler.close()
