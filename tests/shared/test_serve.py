"""shared.serve: how every service process starts and refuses bad settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "amqp://svc:hunter2-secret@127.0.0.1:5672/"


@pytest.mark.parametrize(
    ("module", "bad"),
    [
        ("services.api", {"STAGER_PORT": "not-a-port"}),
        ("services.worker", {"STAGER_HTTP_PORT": "not-a-port"}),
        ("services.ingest", {"STAGER_HTTP_PORT": "not-a-port"}),
    ],
)
def test_invalid_settings_are_one_line_exit_2_and_echo_no_value(
    module: str, bad: dict[str, str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGER_")}
    env.update(bad, STAGER_BROKER__URL=SECRET, STAGER_BROKER__CONFIRM_TIMEOUT=SECRET)
    proc = subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    name = module.rsplit(".", 1)[1]
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"{name}: invalid settings: ")
    assert "port" in proc.stderr and "confirm_timeout" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout and "not-a-port" not in proc.stderr
