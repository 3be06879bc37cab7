"""Issue 13 items 3 and 6: the job's log options and the anchor's handler helpers.

Automated ingest 0.7.0 handlers build their logger with
``sync_logging.get_sync_logger(meta["config"]["log"])``, count with
``get_redis(meta["config"])`` and read the job through ``sync_job.from_meta(meta)``
(``from ...sync_job import sync_job``); its ``meta`` carries ``src_path``, the three
queue names and ``config``, and ``pre_job`` gets ``meta["path"]`` (the root). Its
``--log_filename`` alone writes a plain file (no rotation); ``--log_when`` and
``--log_interval`` rotate it (``TimedRotatingFileHandler``); ``--log_level`` is the job's
threshold.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
from pathlib import Path
from typing import Any

import pytest

from services.ingest import joblog
from services.ingest.store import JobState

HANDLER = """
from services.ingest.compat.core import Core
from services.ingest.compat.utils import Operation
from services.ingest.compat import sync_logging
from services.ingest.compat.sync_job import sync_job
from services.ingest.compat.redis_utils import get_redis


class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation.REGISTER_SYNC

    @staticmethod
    def pre_job(hdlr_mod, logger, meta):
        log = sync_logging.get_sync_logger(meta["config"]["log"])
        log.info(
            "pre_job_meta",
            path=meta["path"],
            src_path=meta["src_path"],
            queues=[meta["restart_queue"], meta["path_queue"], meta["file_queue"]],
            config=sorted(meta["config"]),
        )
        get_redis(meta["config"]).set("seen", 0)
        logger.debug("pre_job_debug")

    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        get_redis(meta["config"]).incr("seen")

    @staticmethod
    def post_job(hdlr_mod, logger, meta):
        job = sync_job.from_meta(meta)
        log = sync_logging.get_sync_logger(meta["config"]["log"])
        log.info(
            "post_job_state",
            name=job.name(),
            seen=int(get_redis(meta["config"]).get("seen")),
            failures=job.failures_handle().get_value(),
            entry=job.asdict(),
        )
"""


def _lines(path: Path) -> dict[str, dict[str, Any]]:
    return {
        line["event"]: line
        for line in (json.loads(t) for t in path.read_text().splitlines() if t.strip())
    }


async def test_anchor_helpers_and_meta_keys_in_hooks(ingest, tmp_path):
    """pre_job gets the root in ``path`` and ``src_path``, the queue names and ``config``;
    sync_logging writes to the job's --log_filename; get_redis counts across hooks in the
    job store; sync_job reads the job's name and its anchor-style entry; --log_level INFO
    drops the hook logger's debug line."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / str(i)).write_text("x" * i)
    ingest.give(src)
    log = tmp_path / "job.log"
    job = ingest.job(src, files_per_task=1, log_filename=str(log), log_level="INFO")
    job.handler, job.handler_label = HANDLER, "helpers.py"
    await ingest.start(1)
    done = await ingest.run(job)
    assert done.state is JobState.COMPLETED, done.error
    assert done.counters["files_created"] == 3, done.counters
    lines = _lines(log)
    pre = lines["pre_job_meta"]
    assert pre["path"] == pre["src_path"] == str(src)
    assert pre["queues"] == ["restart", "path", "file"]
    assert {"log", "profile"} <= set(pre["config"])
    assert "pre_job_debug" not in lines
    post = lines["post_job_state"]
    assert post["name"] == job.name and post["seen"] == 3
    assert post["failures"] in (None, 0)
    entry = post["entry"]
    assert entry["job_name"] == job.name
    assert entry["total_tasks"] >= 4  # the root directory and 3 one-file batches
    assert {"remaining_tasks", "failed_tasks", "retried_tasks", "elapsed_time"} <= set(entry)


def _handler_of(logger: Any) -> logging.Handler:
    std = logger._logger if hasattr(logger, "_logger") else logger
    (handler,) = std.handlers
    return handler


@pytest.fixture
def fresh_loggers():
    joblog.close_all()
    yield
    joblog.close_all()


def test_log_filename_alone_is_never_rotated(tmp_path, fresh_loggers):
    """The anchor's default: --log_filename without --log_when is a plain file."""
    path = tmp_path / "plain.log"
    logger = joblog.job_logger(joblog.log_config(str(path), None, None, "INFO"))
    handler = _handler_of(logger)
    assert type(handler) is logging.FileHandler
    logger.info("one")
    assert json.loads(path.read_text())["event"] == "one"


def test_the_jobs_level_holds_whatever_the_process_level_is(tmp_path, fresh_loggers):
    """A worker configured at warning still writes a job's info lines to its file (the
    process's structlog level must not filter the job's log)."""
    from shared.logging import configure

    configure("warning", json=True, stream=io.StringIO())
    try:
        path = tmp_path / "job.log"
        logger = joblog.job_logger(joblog.log_config(str(path), None, None, "INFO"))
        logger.info("kept")
        logger.debug("dropped")
        events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
        assert events == ["kept"]
    finally:
        configure("info", json=True, stream=io.StringIO())


def test_log_when_and_interval_rotate_the_file(tmp_path, fresh_loggers):
    """--log_when M --log_interval 2: TimedRotatingFileHandler(when, interval)."""
    path = tmp_path / "rotated.log"
    logger = joblog.job_logger(joblog.log_config(str(path), "M", 2, "INFO"))
    handler = _handler_of(logger)
    assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
    assert handler.when == "M" and handler.interval == 120
    default = joblog.job_logger(joblog.log_config(str(tmp_path / "d.log"), "midnight", None, None))
    rotating = _handler_of(default)
    assert isinstance(rotating, logging.handlers.TimedRotatingFileHandler)
    assert rotating.interval == 24 * 3600  # --log_interval defaults to 1


def test_log_level_is_the_jobs_threshold(tmp_path, fresh_loggers):
    path = tmp_path / "level.log"
    logger = joblog.job_logger(joblog.log_config(str(path), None, None, "WARNING"))
    logger.info("quiet")
    logger.warning("loud", key="value")
    events = [json.loads(t) for t in path.read_text().splitlines()]
    assert [(e["event"], e["level"], e["logger"]) for e in events] == [
        ("loud", "warning", "irods_sync")
    ]
    assert events[0]["key"] == "value" and "@timestamp" in events[0]


def test_bad_log_options_are_refused():
    for args, message in [
        (("hourly", None, None), "--log_when 'hourly'"),
        ((None, 0, None), "--log_interval must be at least 1"),
        ((None, None, "LOUD"), "--log_level 'LOUD'"),
    ]:
        with pytest.raises(ValueError, match=message):
            joblog.check_options(*args)
