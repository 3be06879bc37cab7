"""The isync command keeps a record per file only where it writes them out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.isync import engine


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every report the real transfer engine returns to the CLI."""
    seen: list[Any] = []
    real = engine.transfer

    def spy(*args: Any, **kw: Any) -> Any:
        report = real(*args, **kw)
        seen.append(report)
        return report

    monkeypatch.setattr(engine, "transfer", spy)
    return seen


def _tree(root: Path, n: int) -> Path:
    root.mkdir()
    for i in range(n):
        (root / f"f{i:03d}").write_bytes(b"x" * (i + 1))
    return root


def test_a_plain_put_keeps_no_record_per_transferred_file(
    run_isync: Any, reports: list[Any], coll: str, tmp_path: Path
) -> None:
    src = _tree(tmp_path / "src", 30)
    res = run_isync("-r", str(src), f"irods:{coll}")
    assert res.code == 0, res.stderr
    (report,) = reports
    assert report.files_transferred == 30
    assert report.outcomes == []


def test_report_and_json_still_have_every_file(
    run_isync: Any, reports: list[Any], coll: str, tmp_path: Path
) -> None:
    src = _tree(tmp_path / "src", 30)
    out = tmp_path / "report.json"
    res = run_isync("-r", "--json", "--report", str(out), str(src), f"irods:{coll}")
    assert res.code == 0, res.stderr
    assert len(json.loads(out.read_text())["outcomes"]) == 30
    lines = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert sum(1 for ln in lines if ln.get("type") == "file") == 30


def test_a_failed_file_is_kept_and_sets_the_exit_status(
    run_isync: Any, reports: list[Any], irods_session: Any, coll: str, tmp_path: Path
) -> None:
    src = _tree(tmp_path / "src", 5)
    irods_session.collections.create(f"{coll}/src/f002")  # a collection where a file goes
    res = run_isync("-r", str(src), f"irods:{coll}")
    (report,) = reports
    assert [(Path(o.src).name, o.outcome) for o in report.outcomes] == [("f002", "failed")]
    assert report.files_transferred == 4
    assert res.code != 0
