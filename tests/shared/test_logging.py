"""The redacting log processor."""

from __future__ import annotations

import io
import json

from pydantic import SecretStr

from shared.logging import configure, get_logger


def test_secrets_are_redacted() -> None:
    out = io.StringIO()
    configure("debug", json=True, stream=out)
    log = get_logger("t")
    log.info(
        "login",
        password="p1-secret",
        drPass="p2-secret",
        nested={"Authorization": "Basic cDM=", "ok": "visible"},
        value=SecretStr("p4-secret"),
        note="url amqp://guest:p5-secret@host/ and Bearer p6.secret.token password=p7-secret",
    )
    text = out.getvalue()
    for s in ("p1-secret", "p2-secret", "cDM=", "p4-secret", "p5-secret", "p6.secret", "p7-secret"):
        assert s not in text, s
    line = json.loads(text.strip().splitlines()[-1])
    assert line["nested"]["ok"] == "visible" and line["event"] == "login"


def test_stdlib_records_are_json_with_bound_context() -> None:
    """python-irodsclient, aiohttp and handler code log through stdlib: the same JSON lines,
    the same redaction, and the context bound around them (an ingest job's id)."""
    import logging

    import structlog

    out = io.StringIO()
    configure("info", json=True, stream=out)
    with structlog.contextvars.bound_contextvars(ingest_job="j1"):
        logging.getLogger("irods.connection").warning("lost %s password=p8-secret", "conn")
        get_logger("stager.ingest").info("pass started")
    logging.getLogger("quiet").debug("below the level")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["event"], x["ingest_job"], x["level"]) for x in lines] == [
        ("lost conn password=**********", "j1", "warning"),
        ("pass started", "j1", "info"),
    ]
    assert lines[0]["logger"] == "irods.connection" and "timestamp" in lines[0]
