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
