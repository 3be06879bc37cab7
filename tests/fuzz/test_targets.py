"""The coverage-guided fuzz targets (``fuzz/targets``): every checked-in input (seeds and
the inputs of earlier findings) replays clean, and each target survives a short atheris
run from its corpus (the long runs are ``make fuzz``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.run import CORPUS, REPO, replay
from fuzz.targets import TARGETS

#: inputs per target in the short run (about 10 s each on this machine)
RUNS = 3000


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_checked_in_inputs_replay_clean(target: str) -> None:
    inputs = list((CORPUS / target).glob("*"))
    assert len(inputs) >= 4, f"fuzz/corpus/{target} has no seeds: run python -m fuzz.seeds"
    assert replay(target) == []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzzing_run_finds_nothing(target: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fuzz.run", target, "--runs", str(RUNS), "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert target in done.stdout and not list((tmp_path / target).glob("crash-*"))


def test_replay_reports_a_finding_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """With isync's reply-length limits undone, the checked-in inputs of that finding
    fail the replay again: a regression would be seen."""
    from services.isync import wire

    monkeypatch.setattr(wire, "MAX_HEADER", 2**31)
    monkeypatch.setattr(wire, "MAX_BUF", 2**31)
    failing = {path.name for path, _tb in replay("isync_reply")}
    assert {"finding-huge-header-length", "finding-huge-message-length"} <= failing
