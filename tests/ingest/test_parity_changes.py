"""Change detection and directory hooks against automated ingest 0.7.0 (the anchor).

The anchor keeps a sync time per path and re-syncs a file whose mtime *or* ctime is not
older than it (``filesystem_sync_entry``): data when the mtime moved, the modify hooks
alone (``sync_file_meta``) when only the ctime did; a directory gets ``coll_modify`` only
when it changed the same way (``sync_data_from_dir``). Ours records size, mtime_ns,
ctime_ns and inode per entry in the job store, so a same-size rewrite within the same
second is caught too, and a symbolic link is compared by its target.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

from services.ingest.store import JobState
from tests.ingest.conftest import make_tree


def events(log: Path) -> Counter[str]:
    if not log.exists():
        return Counter()
    return Counter(line.split()[0] for line in log.read_text().splitlines())


def read(session, path: str) -> bytes:
    with session.data_objects.open(path, "r") as f:
        return f.read()


async def test_same_size_rewrite_in_the_same_second_is_put_again(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 3)
    f = src / "2"  # "ii"
    second = int(time.time()) - 100
    os.utime(f, ns=(second * 10**9 + 100_000_000,) * 2)
    await ingest.start(1)
    job = ingest.configured(src, op="PUT_SYNC")
    first = await ingest.run(job)
    assert first.counters["files_created"] == 3
    f.write_bytes(b"jj")  # same size, and the same whole second of mtime
    os.utime(f, ns=(second * 10**9 + 900_000_000,) * 2)
    again = await ingest.rerun(job)
    assert again.counters["files_modified"] == 1 and again.counters["files_skipped"] == 2
    assert read(irods_session, f"{ingest.collection}/2") == b"jj"
    third = await ingest.rerun(job)
    assert third.counters["files_modified"] == 0 and third.counters["files_skipped"] == 3


async def test_a_symlink_is_not_put_again_every_pass(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 2)
    (tmp_path / "outside").write_bytes(b"target bytes")
    (src / "link").symlink_to(tmp_path / "outside")
    ingest.allowed_roots = [str(tmp_path)]
    await ingest.start(1)
    job = ingest.configured(src, op="PUT_SYNC")
    assert (await ingest.run(job)).counters["files_created"] == 3
    for _ in range(2):
        again = await ingest.rerun(job)
        assert again.counters["files_modified"] == 0, again.counters
        assert again.counters["files_skipped"] == 3
    (tmp_path / "outside").write_bytes(b"new target bytes")  # the target changed
    changed = await ingest.rerun(job)
    assert changed.counters["files_modified"] == 1
    assert read(irods_session, f"{ingest.collection}/link") == b"new target bytes"


async def test_modify_hooks_follow_the_anchors_sync_time(ingest, irods_session, tmp_path):
    """Directories: coll_modify only for one that changed; coll_create never for the
    target's ancestors. Files: a ctime-only change fires the modify hooks, moves no data."""
    src = make_tree(tmp_path / "src", 3)
    make_tree(src / "sub", 2)
    log = tmp_path / "hooks.log"
    ingest.give(src)
    nested = f"{ingest.collection}/deeper/still"
    await ingest.start(1)
    job = ingest.configured(src, op="REGISTER_SYNC", log=str(log), target=None)
    job.target = nested
    first = await ingest.run(job)
    assert first.state is JobState.COMPLETED, first.error
    created = [line.split()[1] for line in log.read_text().splitlines() if "coll_create" in line]
    assert sorted(set(created)) == [nested, f"{nested}/sub"]  # not /deeper, not the zone
    log.unlink()
    quiet = await ingest.rerun(job)
    assert quiet.counters["files_skipped"] == 5
    assert events(log)["pre_coll_modify"] == 0 and events(log)["pre_data_obj_modify"] == 0
    (src / "sub" / "new").write_text("n")  # sub changed, the top did not
    os.chmod(src / "1", 0o644 if (os.stat(src / "1").st_mode & 0o777) != 0o644 else 0o640)
    changed = await ingest.rerun(job)
    e = events(log)
    assert e["pre_coll_modify"] == e["post_coll_modify"] == 1
    assert f"pre_coll_modify {nested}/sub" in log.read_text()
    assert e["pre_data_obj_modify"] == 1  # the chmod: hooks, no transfer
    assert changed.counters["files_created"] == 1 and changed.counters["files_modified"] == 0


async def test_a_renamed_directory_gets_the_character_map_avu(ingest, irods_session, tmp_path):
    """As the anchor's renamed data objects: the collection of a directory the
    character_map renamed carries irods::automated_ingest::character_map = base64 of
    the directory's original full path."""
    import base64

    src = tmp_path / "src"
    (src / "odd dir@x").mkdir(parents=True)
    (src / "odd dir@x" / "f").write_text("x")
    (src / "plain").mkdir()
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "put_using_char_map"))
    assert job.counters["files_created"] == 1, job.counters
    subs = {c.name: c for c in irods_session.collections.get(ingest.collection).subcollections}
    mapped = [n for n in subs if n.startswith("odd_dir_x")]
    assert len(mapped) == 1
    avu = subs[mapped[0]].metadata.get_one("irods::automated_ingest::character_map")
    assert base64.b64decode(avu.value) == os.fsencode(src / "odd dir@x")
    assert not subs["plain"].metadata.items()
