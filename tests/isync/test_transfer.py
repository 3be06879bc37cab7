"""Round trips against the iRODS test server, through the CLI and the library."""

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest

from services.isync import RecordingSink, TransferOptions, transfer
from services.isync.errors import AuthenticationError

MiB = 1024 * 1024


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def make_tree(root: Path, big: int = 40 * MiB) -> None:
    (root / "empty dir").mkdir(parents=True)
    deep = root / "sub dir" / "ünï cödé"
    deep.mkdir(parents=True)
    (root / "zero").write_bytes(b"")
    (deep / "naïve file.txt").write_bytes("é".encode() * 1000)
    (root / "a b.txt").write_bytes(os.urandom(100_000))
    (root / "big.bin").write_bytes(os.urandom(big))
    (root / "link").symlink_to("a b.txt")


def files_of(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


def dirs_of(root: Path) -> set[str]:
    return {str(Path(d).relative_to(root)) for d, _s, _f in os.walk(root)}


def test_tree_round_trip_is_byte_identical(tmp_path, run_isync, irods_session, coll):
    src = tmp_path / "src"
    make_tree(src)
    report = tmp_path / "report.json"
    put = run_isync("-r", "-K", "--report", str(report), f"{src}/", f"irods:{coll}")
    assert put.code == 0, put.stderr
    assert "link: symlink skipped" in put.stderr
    data = json.loads(report.read_text())
    by_name = {Path(o["src"]).name: o for o in data["outcomes"]}
    assert by_name["link"]["outcome"] == "skipped"
    assert by_name["big.bin"]["outcome"] == "transferred"
    assert by_name["zero"]["checksum"] == sha2(b"")
    assert data["files_transferred"] == 4 and data["files_failed"] == 0

    names = {o.name for o in irods_session.collections.get(coll).data_objects}
    assert names == {"zero", "a b.txt", "big.bin"}  # no .isync-part left behind
    assert irods_session.collections.exists(f"{coll}/empty dir")
    obj = irods_session.data_objects.get(f"{coll}/sub dir/ünï cödé/naïve file.txt")
    assert obj.size == 2000
    assert obj.checksum == sha2("é".encode() * 1000)
    assert irods_session.data_objects.get(f"{coll}/big.bin").size == 40 * MiB

    back = tmp_path / "back"
    get = run_isync("-r", "-K", f"i:{coll}/", str(back))
    assert get.code == 0, get.stderr
    assert files_of(back) == files_of(src)
    assert dirs_of(back) == dirs_of(src)
    assert not list(back.rglob("*.isync-part*"))

    again = run_isync("-r", "--json", f"{src}/", f"irods:{coll}")
    summary = json.loads(again.stdout.splitlines()[-1])
    assert summary["type"] == "summary"
    assert summary["files_skipped"] == 5 and summary["bytes_sent"] == 0


def test_changed_file_needs_force_and_checksum_policy_sees_it(tmp_path, run_isync, coll):
    src = tmp_path / "d"
    src.mkdir()
    f = src / "f.txt"
    f.write_bytes(b"one")
    assert run_isync("-r", str(src), f"i:{coll}").code == 0
    f.write_bytes(b"two")  # same size, other content
    assert run_isync("-r", "--size-only", str(src), f"i:{coll}").code == 0
    refused = run_isync("-r", str(src), f"i:{coll}")
    assert refused.code == 1
    assert "exists and differs (use -f" in refused.stderr
    assert run_isync("-r", "-f", str(src), f"i:{coll}").code == 0
    out = tmp_path / "out.txt"
    assert run_isync(f"i:{coll}/d/f.txt", str(out)).code == 0
    assert out.read_bytes() == b"two"


def test_single_files_missing_parents_and_follow_symlinks(tmp_path, run_isync, irods_session, coll):
    f = tmp_path / "one.txt"
    f.write_bytes(b"x" * 10)
    assert run_isync(str(f), f"i:{coll}/new/parents/renamed.txt").code == 0
    assert irods_session.data_objects.get(f"{coll}/new/parents/renamed.txt").size == 10
    assert run_isync(str(f), f"i:{coll}/new/").code == 0
    assert irods_session.data_objects.exists(f"{coll}/new/one.txt")
    dst = tmp_path / "deep" / "er"
    assert run_isync(f"i:{coll}/new/one.txt", f"{dst}/").code == 0
    assert (dst / "one.txt").read_bytes() == b"x" * 10

    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "target").write_bytes(b"t")
    (tree / "ln").symlink_to("target")
    assert run_isync("-r", "--follow-symlinks", f"{tree}/", f"i:{coll}/t").code == 0
    assert irods_session.data_objects.exists(f"{coll}/t/ln")


def test_filters_and_dry_run(tmp_path, run_isync, irods_session, coll):
    src = tmp_path / "s"
    (src / "skipme").mkdir(parents=True)
    (src / "a.dat").write_bytes(b"a")
    (src / "b.txt").write_bytes(b"b")
    (src / "skipme" / "c.dat").write_bytes(b"c")
    dry = run_isync(
        "-r",
        "--json",
        "--dry-run",
        "--include",
        "*.dat",
        "--exclude",
        "skipme",
        f"{src}/",
        f"i:{coll}",
    )
    assert dry.code == 0
    lines = [json.loads(x) for x in dry.stdout.splitlines()]
    planned = [x for x in lines if x["type"] == "file"]
    assert [(Path(x["src"]).name, x["outcome"]) for x in planned] == [("a.dat", "dry-run")]
    assert not irods_session.collections.exists(coll)
    assert (
        run_isync("-r", "--include", "*.dat", "--exclude", "skipme", f"{src}/", f"i:{coll}").code
        == 0
    )
    assert {o.name for o in irods_session.collections.get(coll).data_objects} == {"a.dat"}
    assert not irods_session.collections.exists(f"{coll}/skipme")


def test_library_call_reports_progress(tmp_path, account, irods_session, coll):
    src = tmp_path / "lib"
    src.mkdir()
    for i in range(30):
        (src / f"f{i:02}").write_bytes(os.urandom(1000 + i))
    sink = RecordingSink()
    opts = TransferOptions(recursive=True, parallel_files=4, progress_interval=0.01)
    report = transfer(f"{src}/", f"irods:{coll}", account, opts, sink)
    assert report.exit_status == 0
    assert report.files_transferred == 30
    assert len(sink.outcomes) == 30
    final = sink.events[-1]
    assert final.bytes_done == final.bytes_total == sum(1000 + i for i in range(30))
    assert final.files_done == 30
    done = [e.bytes_done for e in sink.events]
    assert done == sorted(done)


def test_wrong_password_exits_3(tmp_path, run_isync, coll):
    f = tmp_path / "f"
    f.write_bytes(b"1")
    result = run_isync(str(f), f"i:{coll}", environ={"IRODS_PASSWORD": "wrong"})
    assert result.code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(f"iRODS authentication failed: {AuthenticationError.hint}")
    assert "Traceback" not in result.stderr and "wrong" not in result.stderr


@pytest.mark.parametrize("which", ["local", "irods"])
def test_missing_source_exits_4(tmp_path, run_isync, coll, which):
    if which == "local":
        result = run_isync(str(tmp_path / "nope"), f"i:{coll}")
    else:
        result = run_isync("-r", f"i:{coll}/nope", str(tmp_path / "x"))
    assert result.code == 4
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no such" in result.stderr


def test_directory_without_r_is_usage(tmp_path, run_isync, coll):
    assert run_isync(str(tmp_path), f"i:{coll}").code == 2


def test_tls_when_the_environment_asks(tmp_path, tls_irods_server, run_isync, unique_name):
    opts = tls_irods_server.tls_options()
    environ = {
        "IRODS_PORT": str(tls_irods_server.port),
        "IRODS_CLIENT_SERVER_POLICY": "CS_NEG_REQUIRE",
        "IRODS_SSL_CA_CERTIFICATE_FILE": opts["irods_ssl_ca_certificate_file"],
        "IRODS_SSL_VERIFY_SERVER": "cert",
    }
    dst = f"i:/tempZone/home/rods/{unique_name}/"
    for size, extra in (
        (5000, []),
        (3 * MiB + 7, ["--large-threshold", "1M", "--buffer-size", "64k", "-N", "3", "-K"]),
    ):
        f = tmp_path / f"secret{size}.bin"
        f.write_bytes(os.urandom(size))
        put = run_isync(*extra, str(f), dst, environ=environ)
        assert put.code == 0, put.stderr
        back = tmp_path / f"back{size}.bin"
        result = run_isync(*extra, f"{dst}{f.name}", str(back), environ=environ)
        assert result.code == 0, result.stderr
        assert back.read_bytes() == f.read_bytes()


@pytest.mark.parametrize("size", [5000, 40 * MiB])
def test_corrupted_replica_fails_verification_and_leaves_no_file(
    tmp_path, run_isync, irods_server, coll, size
):
    f = tmp_path / "data.bin"
    f.write_bytes(os.urandom(size))
    assert run_isync("-K", str(f), f"i:{coll}/").code == 0  # the catalog now has its sha256
    (vault_file,) = [
        p for p in Path(irods_server.data_dir).rglob("data.bin") if coll.split("/")[-1] in str(p)
    ]
    with open(vault_file, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\0corrupt\0")
    dst = tmp_path / "out" / "data.bin"
    result = run_isync("-K", f"i:{coll}/data.bin", str(dst))
    assert result.code == 1
    assert "checksum mismatch after download" in result.stderr
    assert not dst.exists()
    assert not list(dst.parent.glob("data.bin.isync-part*"))
    assert run_isync(f"i:{coll}/data.bin", str(dst)).code == 0  # without -K it is copied as is
