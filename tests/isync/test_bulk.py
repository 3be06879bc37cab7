"""New small files put 50 per request (689 BULK_DATA_OBJ_PUT) against the test server:
requests counted on the wire for 10,000 files, per-file outcomes and checksums, and the
ways back to one request per file (a server without the API, a collection the user may
write but not delete in, a failure in the middle of a bundle)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from irods.access import iRODSAccess
from pydantic import SecretStr

from bench._wiretap import WireTap
from services.isync import bulk, hashing, put, single_buffer
from services.isync.engine import transfer
from services.isync.models import TransferOptions
from services.isync.progress import RecordingSink
from shared.irods import IrodsAccount
from tests.conftest import DEFAULT_USER_PASSWORD
from tests.isync.conftest import run_cli_via

LOGIN = {"RODS_CONNECT": 1, "AUTHENTICATION_APN": 2, "RODS_DISCONNECT": 1}


def per_connection(connections: int) -> Counter[str]:
    return Counter({k: v * connections for k, v in LOGIN.items()})


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def make_files(root: Path, n: int, size: int = 4096, prefix: str = "f") -> dict[str, bytes]:
    root.mkdir(parents=True, exist_ok=True)
    files = {f"{prefix}{i:05}.dat": os.urandom(size) for i in range(n)}
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


def delta(before: dict[str, int], now: dict[str, int]) -> dict[str, int]:
    return {k: v - before[k] for k, v in now.items()}


def misread_checksum_of(monkeypatch: Any, bad: bytes) -> None:
    """isync computes a wrong checksum for the file holding ``bad`` (as after a bad read)."""
    real = hashing.checksum_of
    monkeypatch.setattr(
        hashing,
        "checksum_of",
        lambda data, scheme: sha2(b"x") if data == bad else real(data, scheme),
    )


def test_10000_files_go_in_200_requests(tmp_path, isync_environ, irods_session, coll, tap):
    src = tmp_path / "src"
    files = make_files(src, 10_000)
    proc = run_cli_via(["-r", "--json", f"{src}/", f"i:{coll}"], isync_environ, tap.port)
    assert proc.returncode == 0, proc.stderr
    tap.wait_closed()
    counts = tap.counts()
    assert counts == per_connection(tap.connections()) + Counter(
        {
            "GEN_QUERY_AN": 4,  # objects in and below DST, collections at and below DST
            "COLL_CREATE_AN": 1,
            "BULK_DATA_OBJ_PUT_AN": 200,  # 50 files each
        }
    ), counts
    assert tap.connections() <= 8  # -p 8 workers on one pooled session
    assert tap.payload_bytes() == 10_000 * 4096
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    done = {line["src"] for line in lines if line["type"] == "file"}
    assert done == {str(src / name) for name in files}
    assert all(line["outcome"] == "transferred" for line in lines if line["type"] == "file")
    assert lines[-1]["files_transferred"] == 10_000
    objs = {o.name: o for o in irods_session.collections.get(coll).data_objects}
    assert len(objs) == 10_000 and {o.size for o in objs.values()} == {4096}
    for name in ("f00000.dat", "f04999.dat", "f09999.dat"):
        with irods_session.data_objects.open(f"{coll}/{name}", "r") as fh:
            assert fh.read() == files[name]


def test_bundles_keep_per_file_outcomes_checksums_and_progress(
    tmp_path, account, irods_session, coll
):
    src = tmp_path / "src"
    files = {f"a/{k}": v for k, v in make_files(src / "a", 120, 3000).items()}
    files |= {f"b/{k}": v for k, v in make_files(src / "b", 3, 10).items()}
    files["b/empty"] = b""
    (src / "b" / "empty").write_bytes(b"")
    files["lonely"] = b"one file alone in its directory"
    (src / "lonely").write_bytes(files["lonely"])
    before, single = bulk.totals(), single_buffer.totals()
    sink = RecordingSink()
    opts = TransferOptions(recursive=True, verify_checksum=True, parallel_files=3)
    report = transfer(f"{src}/", f"irods:{coll}", account, opts, sink)
    assert report.exit_status == 0 and report.files_transferred == len(files)
    # in the plan's order: a/ 50, a/ 50, then a/ 20 + b/ 4 + lonely in one bundle
    assert delta(before, bulk.totals()) == {"bundles": 3, "files": 125, "recoveries": 0}
    assert delta(single, single_buffer.totals())["puts"] == 0
    assert {o.dst: o.checksum for o in report.outcomes} == {
        f"{coll}/{rel}": sha2(data) for rel, data in files.items()
    }
    assert sink.events[-1].bytes_sent == sum(len(d) for d in files.values())
    assert {f.dst for f in sink.outcomes} == {f"{coll}/{rel}" for rel in files}
    for rel, data in files.items():
        obj = irods_session.data_objects.get(f"{coll}/{rel}")
        assert (obj.size, obj.checksum, obj.replicas[0].status) == (len(data), sha2(data), "1")


def test_existing_destinations_and_no_bulk_take_one_request_each(
    tmp_path, account, irods_session, coll
):
    src = tmp_path / "src"
    files = make_files(src, 10, 100)
    opts = TransferOptions(recursive=True)
    assert transfer(f"{src}/", f"irods:{coll}", account, opts, RecordingSink()).exit_status == 0
    for name in files:
        (src / name).write_bytes(os.urandom(100))
    before, single = bulk.totals(), single_buffer.totals()
    forced = TransferOptions(recursive=True, force=True)
    report = transfer(f"{src}/", f"irods:{coll}", account, forced, RecordingSink())
    assert report.exit_status == 0 and report.files_transferred == 10
    assert delta(before, bulk.totals())["bundles"] == 0  # iRODS refuses forceFlag on 689
    assert delta(single, single_buffer.totals())["puts"] == 10
    before, single = bulk.totals(), single_buffer.totals()
    off = TransferOptions(recursive=True, bulk=False)
    assert transfer(f"{src}/", f"irods:{coll}/new", account, off, RecordingSink()).exit_status == 0
    assert delta(before, bulk.totals())["bundles"] == 0
    assert delta(single, single_buffer.totals())["puts"] == 10


def test_a_server_without_the_api_is_tried_once(tmp_path, isync_environ, irods_server, coll):
    """The proxy forwards 689 as an API number the server does not have: it answers
    SYS_UNMATCHED_API_NUM itself, and isync sends every file as a single-buffer put."""
    src = tmp_path / "src"
    files = make_files(src, 120, 500)
    with WireTap(irods_server.host, irods_server.port, renumber={bulk.API: 9689}) as tap:
        args = ["-r", "-p", "1", f"{src}/", f"i:{coll}"]
        proc = run_cli_via(args, isync_environ, tap.port)
        assert proc.returncode == 0, proc.stderr
        tap.wait_closed()
        counts = tap.counts()
    assert counts["BULK_DATA_OBJ_PUT_AN"] == 1
    assert counts["DATA_OBJ_PUT_AN"] == 120
    with irods_server.session() as s:
        for name, data in list(files.items())[::37]:
            with s.data_objects.open(f"{coll}/{name}", "r") as fh:
                assert fh.read() == data


def test_a_checksum_failure_mid_bundle_is_redone_per_file(
    tmp_path, account, irods_session, coll, monkeypatch: Any
):
    """The bundle's 4th checksum is wrong (a bad read): the server stores 3 files, leaves
    the 4th stale and stops; isync finds that out with one query, removes the stale
    replica and puts the 4th and the rest one by one (their checksums right this time)."""
    src = tmp_path / "src"
    files = make_files(src, 10, 700)
    bad = files["f00003.dat"]
    misread_checksum_of(monkeypatch, bad)
    before, single = bulk.totals(), single_buffer.totals()
    opts = TransferOptions(recursive=True, verify_checksum=True, parallel_files=1)
    report = transfer(f"{src}/", f"irods:{coll}", account, opts, RecordingSink())
    assert report.exit_status == 0 and report.files_transferred == 10, report.outcomes
    assert delta(before, bulk.totals()) == {"bundles": 0, "files": 0, "recoveries": 1}
    assert delta(single, single_buffer.totals())["puts"] == 7
    for name, data in files.items():
        obj = irods_session.data_objects.get(f"{coll}/{name}")
        assert (obj.size, obj.checksum, len(obj.replicas)) == (len(data), sha2(data), 1)
        assert obj.replicas[0].status == "1"


def test_a_failure_in_a_bundle_across_directories_is_found_per_directory(
    tmp_path, account, irods_session, coll, monkeypatch: Any
):
    """One bundle of x/ (3 files) and y/ (3 files) fails at y's 2nd file: one query per
    directory finds x's 3 and y's 1st stored; the remaining 2 go one request each."""
    src = tmp_path / "src"
    files = {f"x/{k}": v for k, v in make_files(src / "x", 3, 300).items()}
    files |= {f"y/{k}": v for k, v in make_files(src / "y", 3, 301).items()}
    bad = files["y/f00001.dat"]
    misread_checksum_of(monkeypatch, bad)
    before, single = bulk.totals(), single_buffer.totals()
    opts = TransferOptions(recursive=True, verify_checksum=True, parallel_files=1)
    report = transfer(f"{src}/", f"irods:{coll}", account, opts, RecordingSink())
    assert report.exit_status == 0 and report.files_transferred == 6, report.outcomes
    assert delta(before, bulk.totals()) == {"bundles": 0, "files": 0, "recoveries": 1}
    assert delta(single, single_buffer.totals())["puts"] == 2
    for rel, data in files.items():
        obj = irods_session.data_objects.get(f"{coll}/{rel}")
        assert (obj.checksum, obj.replicas[0].status) == (sha2(data), "1")


def test_a_file_that_fails_mid_bundle_fails_alone(
    tmp_path, account, irods_session, coll, monkeypatch: Any
):
    src = tmp_path / "src"
    files = make_files(src, 10, 700)
    bad = files["f00003.dat"]
    real = hashing.checksum_of

    def corrupt(data: Any, scheme: Any) -> str:
        return sha2(b"x") if bytes(data) == bad else real(data, scheme)

    monkeypatch.setattr(hashing, "checksum_of", corrupt)
    monkeypatch.setattr(put, "checksum_of", corrupt)
    opts = TransferOptions(recursive=True, verify_checksum=True, parallel_files=1)
    report = transfer(f"{src}/", f"irods:{coll}", account, opts, RecordingSink())
    assert report.exit_status == 1
    failed = [o for o in report.outcomes if o.outcome == "failed"]
    assert [o.dst for o in failed] == [f"{coll}/f00003.dat"]
    assert "checksum mismatch after upload" in (failed[0].error or "")
    assert report.files_transferred == 9
    assert not irods_session.data_objects.exists(f"{coll}/f00003.dat")
    assert irods_session.data_objects.get(f"{coll}/f00009.dat").size == 700


def test_write_without_delete_object_goes_one_by_one(
    tmp_path, irods_user, irods_server, irods_session
):
    """iRODS wants delete_object on the collection for a bulk put, modify_object for a
    single put: a user with write only gets its files in, one request each."""
    owner_name, owner = irods_user()
    writer, _ = irods_user()
    shared = f"/{irods_server.zone}/home/{owner_name}/shared"
    owner.collections.create(shared)
    owner.acls.set(iRODSAccess("write", shared, writer))
    src = tmp_path / "src"
    files = make_files(src, 60, 100)
    account = IrodsAccount(
        host=irods_server.host,
        port=irods_server.port,
        user=writer,
        zone=irods_server.zone,
        password=SecretStr(DEFAULT_USER_PASSWORD),
    )
    before, single = bulk.totals(), single_buffer.totals()
    opts = TransferOptions(recursive=True, parallel_files=1)
    report = transfer(f"{src}/", f"irods:{shared}", account, opts, RecordingSink())
    assert report.exit_status == 0 and report.files_transferred == 60, report.outcomes
    assert delta(before, bulk.totals())["bundles"] == 0
    assert delta(single, single_buffer.totals())["puts"] == 60
    names = {o.name for o in irods_session.collections.get(shared).data_objects}
    assert names == set(files)


def test_a_name_that_is_not_utf8_goes_the_one_file_way(tmp_path, account, coll):
    """A local name with bytes that are not UTF-8 cannot go in a request's XML: it is left
    out of bundles (and reported by the one-file way), the others still go bundled."""
    src = tmp_path / "src"
    make_files(src, 5, 10)
    odd = os.path.join(os.fsencode(src), b"bad-\xff.dat")
    with open(odd, "wb") as fh:
        fh.write(b"x")
    before = bulk.totals()
    report = transfer(
        f"{src}/", f"irods:{coll}", account, TransferOptions(recursive=True), RecordingSink()
    )
    assert delta(before, bulk.totals())["files"] == 5
    assert report.files_total == 6
    assert {o.outcome for o in report.outcomes if "bad-" not in o.src} == {"transferred"}
