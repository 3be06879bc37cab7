"""A name taken by the other kind of entry (a data object where a collection must go, a
collection where a file goes, a local file where a directory goes) fails that entry with
a line saying what clashes and what to do; the rest of the run goes on, the exit code is 1.
Only the destination root itself clashing stops the run (nothing could be copied)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WHAT_TO_DO = "rename or remove it, or copy to another destination"


def make_tree(base: Path) -> Path:
    tree = base / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_text("below the clash")
    (tree / "a.txt").write_text("a")
    (tree / "z.txt").write_text("z")
    return tree


def test_put_subdirectory_onto_a_data_object(
    tmp_path: Path, run_isync: Any, irods_session: Any, coll: str
) -> None:
    tree = make_tree(tmp_path)
    irods_session.collections.create(f"{coll}/tree")
    irods_session.data_objects.create(f"{coll}/tree/sub")

    result = run_isync("-r", str(tree), f"i:{coll}")

    assert result.code == 1, result.stderr
    assert (
        f"isync: failed: irods:{coll}/tree/sub is a data object but a collection goes there: "
        f"{WHAT_TO_DO}" in result.stderr
    )
    assert f"{tree}/sub/f.txt: not copied: its directory irods:{coll}/tree/sub" in result.stderr
    assert "Traceback" not in result.stderr and "-834000" not in result.stderr
    assert irods_session.data_objects.get(f"{coll}/tree/a.txt").size == 1
    assert irods_session.data_objects.get(f"{coll}/tree/z.txt").size == 1
    assert irods_session.data_objects.get(f"{coll}/tree/sub").size == 0  # left alone


def test_put_file_onto_a_collection(
    tmp_path: Path, run_isync: Any, irods_session: Any, coll: str
) -> None:
    tree = make_tree(tmp_path)
    irods_session.collections.create(f"{coll}/tree/a.txt")

    result = run_isync("-r", str(tree), f"i:{coll}")

    assert result.code == 1, result.stderr
    assert (
        f"irods:{coll}/tree/a.txt is a collection but a data object goes there: {WHAT_TO_DO}"
        in result.stderr
    )
    assert irods_session.data_objects.get(f"{coll}/tree/sub/f.txt").size == 15
    assert irods_session.data_objects.get(f"{coll}/tree/z.txt").size == 1


def test_root_onto_a_data_object_stops_with_one_line(
    tmp_path: Path, run_isync: Any, irods_session: Any, coll: str
) -> None:
    tree = make_tree(tmp_path)
    irods_session.collections.create(coll)
    irods_session.data_objects.create(f"{coll}/tree")

    result = run_isync("-r", str(tree), f"i:{coll}")

    assert result.code == 1
    assert result.stderr == (
        f"isync: error: irods:{coll}/tree is a data object but a collection goes there: "
        f"{WHAT_TO_DO}\n"
    )


def test_get_directory_onto_a_local_file(
    tmp_path: Path, run_isync: Any, irods_session: Any, coll: str
) -> None:
    irods_session.collections.create(f"{coll}/sub")
    irods_session.data_objects.create(f"{coll}/sub/x")
    with irods_session.data_objects.open(f"{coll}/y", "w") as fh:
        fh.write(b"y")
    name = coll.rsplit("/", 1)[1]
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    (out / name / "sub").write_text("a local file")

    result = run_isync("-r", f"i:{coll}", str(out))

    assert result.code == 1, result.stderr
    assert f"{out}/{name}/sub is a file but a directory goes there: {WHAT_TO_DO}" in result.stderr
    assert f"irods:{coll}/sub/x: not copied: its directory {out}/{name}/sub" in result.stderr
    assert (out / name / "y").read_bytes() == b"y"
    assert (out / name / "sub").read_text() == "a local file"


def test_each_failed_entry_carries_its_kind(
    tmp_path: Path, run_isync: Any, irods_session: Any, coll: str
) -> None:
    """In ``--json`` lines: the clashing directory is ``name_taken``, the file below it
    ``parent_failed``, a file that exists and differs ``name_taken``; copied ones no kind."""
    import json

    tree = make_tree(tmp_path)
    irods_session.collections.create(f"{coll}/tree")
    irods_session.data_objects.create(f"{coll}/tree/sub")
    with irods_session.data_objects.open(f"{coll}/tree/z.txt", "w") as fh:
        fh.write(b"differs")

    result = run_isync("-r", "--json", str(tree), f"i:{coll}")

    assert result.code == 1, result.stderr
    files = [json.loads(x) for x in result.stdout.splitlines()]
    kinds = {
        (x["src"] or x["dst"]).rsplit("/", 1)[-1]: x["kind"] for x in files if x["type"] == "file"
    }
    assert kinds == {
        "sub": "name_taken",
        "f.txt": "parent_failed",
        "z.txt": "name_taken",
        "a.txt": None,
    }
