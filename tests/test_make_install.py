"""A first ``make up`` installs quietly: pip's output goes to ``$(VENV)/install.log`` and the
terminal gets one line; a failing install shows the log's tail and exits non-zero.

The Makefile's own install recipe runs, with a ``VENV`` whose ``pip`` is a stand-in that
prints 120 lines (about what a real first install printed before the banner)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _venv(tmp_path: Path, *, fail: bool) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name, body in {
        "python": "#!/bin/sh\nexit 0\n",
        "pip": (
            "#!/bin/sh\n"
            'i=0; while [ $i -lt 40 ]; do echo "Collecting thing-$i"; i=$((i+1)); done\n'
            + ("echo 'ERROR: no matching distribution' >&2; exit 1\n" if fail else "exit 0\n")
        ),
    }.items():
        path = venv / "bin" / name
        path.write_text(body)
        path.chmod(0o755)
    return venv


def _make(venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "venv", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MAKEFLAGS": ""},
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_install_prints_one_line_and_keeps_pips_output_in_the_log(tmp_path: Path) -> None:
    venv = _venv(tmp_path, fail=False)
    done = _make(venv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"installing Python dependencies into {venv} (log: {venv}/install.log)"
    ]
    assert done.stderr == ""
    log = (venv / "install.log").read_text()
    assert log.count("Collecting thing-") == 120  # three pip runs, 40 lines each
    assert (venv / ".installed").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_failed_install_shows_the_logs_tail_and_fails(tmp_path: Path) -> None:
    venv = _venv(tmp_path, fail=True)
    done = _make(venv)
    assert done.returncode != 0
    assert "ERROR: no matching distribution" in done.stderr
    assert f"pip install failed; full log: {venv}/install.log" in done.stderr
    assert len(done.stderr.splitlines()) <= 30
    assert not (venv / ".installed").exists()
