"""Small files in one request (606 put / 608 get) against the test server, and the fallbacks."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from services.isync import put, single_buffer
from services.isync.engine import transfer
from services.isync.models import TransferOptions
from services.isync.progress import RecordingSink

MiB = 1024 * 1024


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def small_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "empty": b"",
        "sub dir/ünï cødé.bin": os.urandom(4096),
        "sub dir/deeper/x": os.urandom(70_000),
    }
    files.update({f"many/f{i:02}": os.urandom(100 + i) for i in range(20)})
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def delta(before: dict[str, int]) -> dict[str, int]:
    return {k: v - before[k] for k, v in single_buffer.totals().items()}


def test_small_tree_round_trip_in_one_request_each(tmp_path, account, irods_session, coll):
    src, back = tmp_path / "src", tmp_path / "back"
    src.mkdir()
    files = small_tree(src)
    # bulk off: new files of one directory would otherwise go 50 per request (test_bulk.py)
    opts = TransferOptions(recursive=True, verify_checksum=True, parallel_files=4, bulk=False)
    before = single_buffer.totals()
    sink = RecordingSink()
    report = transfer(f"{src}/", f"irods:{coll}", account, opts, sink)
    assert report.exit_status == 0 and report.files_transferred == len(files)
    assert delta(before) == {"puts": len(files), "gets": 0, "fallbacks": 0}
    assert sink.events[-1].bytes_sent == sum(len(d) for d in files.values())
    obj = irods_session.data_objects.get(f"{coll}/sub dir/ünï cødé.bin")
    assert obj.checksum == sha2(files["sub dir/ünï cødé.bin"])  # -K: iRODS verified and kept it
    assert {o.checksum for o in report.outcomes} == {sha2(d) for d in files.values()}

    before = single_buffer.totals()
    report = transfer(f"irods:{coll}/", str(back), account, opts, RecordingSink())
    assert report.exit_status == 0 and report.files_transferred == len(files)
    assert delta(before) == {"puts": 0, "gets": len(files), "fallbacks": 0}
    assert read_tree(back) == files
    assert not list(back.rglob("*.isync-part*"))


def test_disabled_uses_open_write_close(tmp_path, run_isync, coll):
    src, back = tmp_path / "src", tmp_path / "back"
    src.mkdir()
    files = small_tree(src)
    before = single_buffer.totals()
    assert run_isync("-r", "-K", "--single-buffer-max", "0", f"{src}/", f"i:{coll}").code == 0
    assert run_isync("-r", "-K", "--single-buffer-max", "0", f"i:{coll}/", str(back)).code == 0
    assert delta(before) == {"puts": 0, "gets": 0, "fallbacks": 0}
    assert read_tree(back) == files


def test_server_refusal_falls_back_once_per_run(tmp_path, account, irods_session, coll):
    """The test server refuses a single buffer above 32 MiB (SYS_NOT_SUPPORTED): the file
    goes by open/write/close instead and the rest of the run no longer tries."""
    src, back = tmp_path / "src", tmp_path / "back"
    src.mkdir()
    big = os.urandom(33 * MiB)
    (src / "big.bin").write_bytes(big)
    opts = TransferOptions(
        recursive=True,
        parallel_files=1,
        single_buffer_max=40 * MiB,
        large_file_threshold=64 * MiB,
        buffer_size=64 * MiB,
    )
    for direction in ((f"{src}/", f"irods:{coll}"), (f"irods:{coll}/", str(back))):
        before = single_buffer.totals()
        report = transfer(*direction, account, opts, RecordingSink())
        assert report.exit_status == 0, report.outcomes
        assert delta(before) == {"puts": 0, "gets": 0, "fallbacks": 1}
    assert (back / "big.bin").read_bytes() == big
    assert irods_session.data_objects.get(f"{coll}/big.bin").size == len(big)


@pytest.mark.parametrize("single", [True, False])
def test_put_checksum_mismatch_leaves_no_object(
    tmp_path, run_isync, irods_session, coll, monkeypatch: Any, single
):
    f = tmp_path / "data.bin"
    f.write_bytes(os.urandom(5000))
    wrong = sha2(b"something else")
    monkeypatch.setattr(put, "checksum_of", lambda data, scheme: wrong)  # a corrupt read
    before = single_buffer.totals()
    off = [] if single else ["--single-buffer-max", "0"]
    result = run_isync("-K", *off, str(f), f"i:{coll}/")
    assert result.code == 1
    assert "checksum mismatch after upload" in result.stderr
    assert delta(before) == {"puts": 0, "gets": 0, "fallbacks": 0}
    assert not irods_session.data_objects.exists(f"{coll}/data.bin")


@pytest.mark.parametrize("verify", [True, False])
def test_get_checksum_mismatch_detected_from_the_reply(
    tmp_path, run_isync, irods_server, coll, verify
):
    f = tmp_path / "data.bin"
    f.write_bytes(os.urandom(5000))
    assert run_isync("-K", str(f), f"i:{coll}/").code == 0  # the catalog has its sha256
    (vault_file,) = [
        p for p in Path(irods_server.data_dir).rglob("data.bin") if coll.split("/")[-1] in str(p)
    ]
    with open(vault_file, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\0corrupt\0")
    dst = tmp_path / "out" / "data.bin"
    before = single_buffer.totals()
    result = run_isync(*(["-K"] if verify else []), f"i:{coll}/data.bin", str(dst))
    assert delta(before)["gets"] == 1
    if verify:
        assert result.code == 1
        assert "checksum mismatch after download" in result.stderr
        assert not dst.exists()
        assert not list(dst.parent.glob("data.bin.isync-part*"))
    else:
        assert result.code == 0
        assert dst.read_bytes() == vault_file.read_bytes()
