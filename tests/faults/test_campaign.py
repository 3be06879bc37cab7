"""The fault campaign's short form against the real stack (``python -m faults --form ci``):
its own RabbitMQ node, the iRODS test server, PostgreSQL, the API and two workers behind
the TCP proxies, 16 jobs, one fault of each transfer kind while jobs are in flight, then
then the ingest phase (4,000 files while the ingest worker is SIGKILLed and the iRODS
server restarted), then every check of :mod:`faults.verify`. Bounded to 240 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 240.0
TRANSFER_KINDS = {
    "worker SIGKILL",
    "transfer child SIGKILL",
    "RabbitMQ restart",
    "API restart (SIGKILL)",
    "iRODS restart",
    "cut worker-broker",
    "cut worker-iRODS",
}
INGEST_KINDS = {"ingest worker SIGKILL", "iRODS restart (ingest)"}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the campaign makes a Unix user (root only)"),
    pytest.mark.skipif(shutil.which("rabbitmq-server") is None, reason="needs rabbitmq-server"),
    pytest.mark.timeout(BUDGET + 60),
]


def test_short_campaign_keeps_every_invariant(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    argv = [sys.executable, "-m", "faults", "--form", "ci", "--seed", "11"]
    argv += ["--deadline", str(BUDGET), "--summary", str(summary), "--logs", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUDGET + 45
    )
    seconds = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "OK: every check passed" in out, out
    body = json.loads(summary.read_text())
    assert body["violations"] == []
    faults = body["faults"]
    assert {f["kind"] for f in faults} == TRANSFER_KINDS | INGEST_KINDS, out
    for f in faults:
        assert f["in_flight"] >= 1, f"{f['kind']} at {f['at']} s hit no job in flight\n{out}"
    child = next(f for f in faults if f["kind"] == "transfer child SIGKILL")
    assert child["target"].startswith("pid "), f"no transfer child was killed\n{out}"
    assert all(states[-1] == "completed" for states in body["jobs"].values()), body["jobs"]
    assert len(body["jobs"]) == 16
    assert body["ingest"] == "completed", out
    assert seconds <= BUDGET, f"took {seconds:.0f} s (budget {BUDGET:g} s)"
