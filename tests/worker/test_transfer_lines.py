"""What a transfer child sends and keeps does not grow with the number of files: progress
lines come at most once per ``progress_interval`` and one ``report`` line at the end,
never a line per file, and the isync report it holds keeps no outcome per transferred
file. The real job function (the isync core) against the iRODS test server, its output
recorded."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from services.isync import TransferReport
from services.worker.forkserver.child import ChildOutput
from services.worker.jobs import transfer as transfer_job
from services.worker.jobs.transfer import run_child


class RecordingOutput(ChildOutput):
    """The child's output pipe, kept as a list of lines instead."""

    def __init__(self) -> None:
        super().__init__(-1)
        self.lines: list[dict[str, Any]] = []

    def send(self, obj: Mapping[str, Any]) -> None:
        self.lines.append(dict(obj))


def _tree(root: Path, n: int) -> None:
    for i in range(n):
        d = root / f"d{i // 50}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}.dat").write_bytes(os.urandom(100 + i % 300))


def _lines(irods_server: Any, src: Path, coll: str, **options: Any) -> list[dict[str, Any]]:
    params = {
        "src": f"{src}/",
        "dst": f"irods:{coll}",
        "account": {
            "host": irods_server.host,
            "port": irods_server.port,
            "zone": irods_server.zone,
            "user": irods_server.admin_user,
        },
        # one interval longer than the run: only the forced snapshots go out
        "options": {
            "recursive": True,
            "verify_checksum": True,
            "progress_interval": 600,
            **options,
        },
    }
    out = RecordingOutput()
    result = run_child(params, irods_server.admin_password, out, threading.Event())
    if not options.get("dry_run"):
        assert result["summary"]["files_transferred"] == sum(1 for p in src.rglob("*.dat"))
    return out.lines


@pytest.mark.parametrize("n", [20, 400])
def test_child_lines_do_not_grow_with_the_number_of_files(
    n: int, irods_server: Any, tmp_path: Path, unique_name: str
) -> None:
    src = tmp_path / "tree"
    _tree(src, n)
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    lines = _lines(irods_server, src, coll)
    kinds = [line["type"] for line in lines]
    assert "file" not in kinds, "a line per file"
    assert kinds[-1] == "report" and kinds.count("report") == 1
    # the start, the totals and the end: the same few lines for 20 files as for 400
    assert 1 <= kinds.count("progress") <= 4, kinds
    last = [line for line in lines if line["type"] == "progress"][-1]
    assert last["files_done"] == n and last["files_total"] == n


def _keeping_reports(monkeypatch: pytest.MonkeyPatch) -> list[TransferReport]:
    """The isync reports the job function gets back, kept for the test."""
    reports: list[TransferReport] = []
    real = transfer_job.transfer

    def recording(*args: Any, **kwargs: Any) -> TransferReport:
        reports.append(real(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(transfer_job, "transfer", recording)
    return reports


def test_the_child_keeps_no_outcome_per_transferred_file(
    irods_server: Any, tmp_path: Path, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report holds failed files only; the checksum result is still counted over every
    file (from the sink), and a dry run still plans every file."""
    reports = _keeping_reports(monkeypatch)
    src = tmp_path / "tree"
    _tree(src, 120)
    coll = f"/{irods_server.zone}/home/{irods_server.admin_user}/{unique_name}"
    lines = _lines(irods_server, src, coll)
    [report] = reports
    assert report.files_transferred == 120 and report.outcomes == []
    [summary] = [line for line in lines if line["type"] == "report"]
    assert summary["checksum"] == "verified" and summary["checksum_files"] == 120
    # a dry run of the same tree (now all unchanged): the plan counts every file
    _tree(src / "more", 5)
    dry = _lines(irods_server, src, coll, dry_run=True)
    [plan] = [line["plan"] for line in dry if line["type"] == "report"]
    assert plan["entries_total"] == 125 and plan["transfer_files"] == 5, plan
    assert plan["skip_files"] == 120
