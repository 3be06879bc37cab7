"""The conformance runner: skip list, per-test results, the summary line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import unittest
from pathlib import Path

import pytest

from devtools.irods_server import conformance
from devtools.irods_server.launcher import REPO_ROOT


def test_skip_list_entries_all_have_reasons() -> None:
    skips = conformance.load_skips()
    assert skips, "the skip list should not be empty"
    for test_id, reason in skips.items():
        assert test_id.split(".")[0] in conformance.MODULES
        assert len(reason) > 10


def test_skip_list_without_reason_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "skips.toml"
    bad.write_text('[skip]\n"file_test.X.test_y" = ""\n')
    with pytest.raises(ValueError, match="reason"):
        conformance.load_skips(bad)


def test_apply_skips_and_json_results(tmp_path: Path) -> None:
    class Sample(unittest.TestCase):  # defined here so that pytest does not collect it
        def test_a(self) -> None:
            pass

        def test_b(self) -> None:
            self.fail("boom")

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(Sample)
    first = next(conformance._iter_tests(suite))
    tid = conformance.short_id(first)
    conformance.apply_skips(suite, {tid: "listed on purpose"})
    out = tmp_path / "r.jsonl"
    with open(out, "w") as f:
        suite.run(conformance.JsonResult(f, timeout=30))
    rows = {r["id"].rsplit(".", 1)[1]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["test_a"]["outcome"] == "skipped"
    assert rows["test_a"]["detail"] == "listed on purpose"
    assert rows["test_b"]["outcome"] == "failed"


def test_runs_a_prc_module_against_a_fresh_server() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "devtools.irods_server.conformance", "--modules", "file_test"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"file_test: \d+ passed, 0 failed, \d+ skipped \(\d+s\)", lines[0])
    m = re.fullmatch(r"(\d+) passed, (\d+) failed, (\d+) skipped", lines[-1])
    assert m is not None and int(m.group(1)) >= 4 and m.group(2) == "0"
    assert proc.returncode == 0
