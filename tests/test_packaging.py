"""The package builds without setuptools' deprecation warnings and with an SPDX licence.

``license = { text = ... }`` made setuptools warn that such builds stop working after
2027-02-18 (PEP 639); the project now declares ``license = "MIT"`` with ``LICENSE``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tracked_copy(dest: Path) -> Path:
    """The committed files only: setuptools writes ``build/`` into the tree it builds."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_wheel_builds_without_deprecation_warnings(tmp_path: Path) -> None:
    src = _tracked_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Deprecat" not in out.stdout + out.stderr
    (wheel,) = wheels.glob("data_stager-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(name).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in zf.namelist())
    assert "License-Expression: MIT" in metadata.splitlines()
