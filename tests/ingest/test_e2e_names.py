"""Names: non-UTF-8 file names and character_map, with the seed's AVUs."""

from __future__ import annotations

import base64
import os

from irods.models import Collection, DataObject

from services.ingest.store import JobState
from tests.ingest.conftest import append, make_tree

BAD = b"test_register_with_unicode_encode_error_path_" + "\u1000".encode()[:-1]


def names_in(session, coll):
    return {
        r[DataObject.name] for r in session.query(DataObject.name).filter(Collection.name == coll)
    }


async def test_non_utf8_name_put(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 2)
    bad = os.path.join(os.fsencode(src), BAD)
    append(bad, b"Test_irods_sync_UnicodeEncodeError", later=None)
    await ingest.start(1)
    job = await ingest.run(ingest.configured(src, op="PUT"))
    assert job.state is JobState.COMPLETED and job.counters["files_failed"] == 0
    b64 = base64.b64encode(bad).decode()
    logical = f"{ingest.collection}/irods_UnicodeEncodeError_{b64.replace('/', '_')}"
    obj = irods_session.data_objects.get(logical)
    with obj.open("r") as f:
        assert f.read() == b"Test_irods_sync_UnicodeEncodeError"
    avu = obj.metadata.get_one("irods::automated_ingest::UnicodeEncodeError")
    assert avu.value == b64
    # a second pass finds it unchanged
    again = await ingest.rerun(job)
    assert again.counters["files_skipped"] == 3


async def test_non_utf8_name_register(ingest, irods_session, tmp_path):
    src = make_tree(tmp_path / "src", 1)
    bad = os.path.join(os.fsencode(src), BAD)
    append(bad, b"abc", later=None)
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "register"))
    b64 = base64.b64encode(bad).decode()
    name = f"irods_UnicodeEncodeError_{b64.replace('/', '_')}"
    logical = f"{ingest.collection}/{name}"
    assert job.state is JobState.COMPLETED
    assert irods_session.data_objects.exists(f"{ingest.collection}/0")
    # As the seed does, the catalog gets a placeholder physical path (the real one cannot
    # travel in the protocol's UTF-8 XML) and the AVU holds the real one.  A server that
    # stats the path on register (as our test server does) refuses it: counted, not fatal.
    if job.counters["files_failed"]:
        assert job.counters["files_failed"] == 1
        assert not irods_session.data_objects.exists(logical)
    else:
        obj = irods_session.data_objects.get(logical)
        assert obj.replicas[0].path == os.path.join(str(src), name)
        assert obj.metadata.get_one("irods::automated_ingest::UnicodeEncodeError").value == b64


async def test_character_map_renames_and_annotates(ingest, irods_session, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "test-file~with@5!non.alphas").write_text("mapped")
    (src / "plain").write_text("plain")
    await ingest.start(1)
    job = await ingest.run(ingest.job(src, "put_using_char_map"))
    assert job.counters["files_created"] == 2, job.counters
    names = names_in(irods_session, ingest.collection)
    assert "plain" in names
    mapped = [n for n in names if n.startswith("test_file_with_5_non_alphas")]
    assert len(mapped) == 1 and mapped[0] != "test_file_with_5_non_alphas"  # with suffix
    obj = irods_session.data_objects.get(f"{ingest.collection}/{mapped[0]}")
    avu = obj.metadata.get_one("irods::automated_ingest::character_map")
    assert base64.b64decode(avu.value) == os.fsencode(src / "test-file~with@5!non.alphas")
    assert not irods_session.data_objects.get(f"{ingest.collection}/plain").metadata.items()
    again = await ingest.rerun(job)
    assert again.counters["files_skipped"] == 2
