"""The package builds without setuptools' deprecation warnings and with an SPDX licence.

``license = { text = ... }`` made setuptools warn that such builds stop working after
2027-02-18 (PEP 639); the project now declares ``license = "MIT"`` with ``LICENSE``.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_builds_without_deprecation_warnings(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Deprecat" not in out.stdout + out.stderr
    (wheel,) = tmp_path.glob("data_stager-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(name).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in zf.namelist())
    assert "License-Expression: MIT" in metadata.splitlines()
