"""Marks its working directory as started, then sleeps: a module that is still running
when the runner is terminated (see test_conformance.py)."""

from __future__ import annotations

import time
import unittest
from pathlib import Path


class Sleeps(unittest.TestCase):
    def test_sleeps(self) -> None:
        Path("started").write_text("")
        time.sleep(50)
