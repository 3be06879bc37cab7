"""The cleanup ledger's local side: directories a run made go once empty (after the part
files and journals in them), never one that holds anything else, never a link, never one
away from the task's local side."""

from __future__ import annotations

from pathlib import Path

from services.isync import leftovers


def _ledger(tmp_path: Path, *entries: tuple[leftovers.Kind, str]) -> Path:
    path = tmp_path / "state" / "ledger.jsonl"
    ledger = leftovers.Ledger(path)
    for kind, where in entries:
        ledger.note(kind, where)
    return path


def test_made_directories_go_deepest_first_with_unnoted_parts_but_not_other_files(
    tmp_path: Path,
) -> None:
    root = tmp_path / "down" / "new"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "x.bin.isync-part").write_bytes(b"\0" * 10)  # a killed child's
    (root / "a" / "b" / "x.bin.isync-partial").write_text("{}")
    (root / "kept").mkdir()
    (root / "kept" / "arrived.txt").write_text("done\n")
    path = _ledger(
        tmp_path,
        ("dir", str(root)),
        ("dir", str(root / "a")),
        ("dir", str(root / "a" / "b")),
        ("dir", str(root / "kept")),
    )
    done = leftovers.clean(path, None, None, local_root=str(root))
    assert not (root / "a").exists()
    assert (root / "kept" / "arrived.txt").exists()
    assert str(root / "kept") in done.kept and str(root) in done.kept
    assert not path.exists() and done.errors == []


def test_directories_away_from_the_local_side_or_links_are_refused(tmp_path: Path) -> None:
    side = tmp_path / "down" / "new"
    side.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = side / "link"
    link.symlink_to(elsewhere)
    path = _ledger(tmp_path, ("dir", str(elsewhere)), ("dir", str(link)))
    done = leftovers.clean(path, None, None, local_root=str(side))
    assert elsewhere.is_dir() and link.is_symlink()
    assert sorted(done.kept) == sorted([str(elsewhere), str(link)])
    # without a local side no directory is removed at all
    path = _ledger(tmp_path, ("dir", str(side)))
    link.unlink()
    leftovers.clean(path, None, None)
    assert side.is_dir()
    # a parent of the side that the run made (``down/``) goes too once empty
    path = _ledger(tmp_path, ("dir", str(side)), ("dir", str(side.parent)))
    leftovers.clean(path, None, None, local_root=str(side))
    assert not side.parent.exists()


def test_a_completed_run_keeps_its_directories(tmp_path: Path) -> None:
    made = tmp_path / "tree" / "empty"
    made.mkdir(parents=True)
    path = _ledger(tmp_path, ("dir", str(made)))
    leftovers.clean(path, None, None, collections=False, local_root=str(made.parent))
    assert made.is_dir() and not path.exists()
