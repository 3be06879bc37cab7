"""isync against zones of either ``default_hash_scheme`` (the test server's
``--hash-scheme``, ``devtools/irods_server/hash_scheme.py``): on an MD5 zone iRODS
checksums are plain md5 hex (``lib/hasher/src/MD5Strategy.cpp``), so -K verification,
the skip policy and the detection of a corrupted object hash locally in md5; and skip
checks of objects whose checksum a real zone cleared (an overwrite clears it,
``procChksumForClose``/finalize in ``server/api/src/rsDataObjClose.cpp``) decide by
modification time without making the server hash each object (API 629)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.irods_server.launcher import ServerProcess
from tests.isync.conftest import CliResult

DATA_OBJ_CHKSUM_AN = 629
HOME = "/tempZone/home/rods"
LARGE = 3 * 1024 * 1024  # above --large-threshold 1M: ranges, ChasingHasher, _verify
THRESHOLD = ["--large-threshold", "1M"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(scope="module", params=["MD5", "SHA256"])
def zone(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A private server of each hash scheme that logs every request's API number."""
    data = tmp_path_factory.mktemp(f"zone_{request.param}") / "data"
    with ServerProcess(data, hash_scheme=request.param, request_log=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def md5_zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("md5") / "data", hash_scheme="MD5") as srv:
        yield srv


def runner(srv: ServerProcess, run_isync: Callable[..., CliResult]) -> Callable[..., CliResult]:
    env = {"IRODS_HOST": srv.host, "IRODS_PORT": str(srv.port)}
    return lambda *args: run_isync(*args, environ=env)


def tree(root: Path) -> dict[str, bytes]:
    # even: 8 bytes (606 with --single-buffer-max 8), odd: 16 (open/write/close)
    files = {f"f{i}.txt": f"file {i:03d}".encode() * (1 + i % 2) for i in range(12)}
    files["big.bin"] = os.urandom(LARGE)
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


def outcomes(report: Path) -> dict[str, tuple[str, str | None]]:
    doc = json.loads(report.read_text())
    return {Path(o["src"]).name: (o["outcome"], o.get("reason")) for o in doc["outcomes"]}


def catalog_checksums(srv: ServerProcess, coll: str) -> dict[str, str | None]:
    with srv.session() as s:
        return {o.name: o.checksum for o in s.collections.get(coll).data_objects}


def test_put_K_skip_and_get_K_on_an_md5_zone(
    md5_zone: ServerProcess, run_isync: Callable[..., CliResult], tmp_path: Path, unique_name: str
) -> None:
    """-K puts (single-buffer, open/write/close and ranges) leave md5 checksums; a rerun
    skips every file by comparing local md5 with them; a -K get verifies in md5."""
    run = runner(md5_zone, run_isync)
    files = tree(tmp_path / "src")
    coll = f"{HOME}/{unique_name}"
    put = run("-r", "-K", *THRESHOLD, "--single-buffer-max", "8", f"{tmp_path}/src/", f"i:{coll}")
    assert put.code == 0, put.stderr
    assert catalog_checksums(md5_zone, coll) == {n: md5(d) for n, d in files.items()}

    report = tmp_path / "again.json"
    again = run("-r", "-K", *THRESHOLD, "--report", str(report), f"{tmp_path}/src/", f"i:{coll}")
    assert again.code == 0, again.stderr
    assert set(outcomes(report).values()) == {("skipped", "unchanged")}

    down = tmp_path / "down"
    got = run("-r", "-K", *THRESHOLD, f"i:{coll}/", str(down))
    assert got.code == 0, got.stderr
    assert {p.name: p.read_bytes() for p in down.iterdir()} == files


def test_a_corrupted_object_is_detected_on_an_md5_zone(
    md5_zone: ServerProcess, run_isync: Callable[..., CliResult], tmp_path: Path, unique_name: str
) -> None:
    run = runner(md5_zone, run_isync)
    tree(tmp_path / "src")
    coll = f"{HOME}/{unique_name}"
    assert run("-r", "-K", *THRESHOLD, f"{tmp_path}/src/", f"i:{coll}").code == 0
    with md5_zone.session() as s:
        for name in ("f3.txt", "big.bin"):
            vault = Path(s.data_objects.get(f"{coll}/{name}").replicas[0].path)
            data = bytearray(vault.read_bytes())
            data[5] ^= 0xFF  # same size, other bytes
            vault.write_bytes(bytes(data))
    got = run("-r", "-K", *THRESHOLD, f"i:{coll}/", str(tmp_path / "down"))
    assert got.code == 1
    assert got.stderr.count("checksum mismatch after download") == 2, got.stderr
    assert not (tmp_path / "down" / "f3.txt").exists()
    assert not (tmp_path / "down" / "big.bin").exists()
    assert (tmp_path / "down" / "f4.txt").read_bytes() == b"file 004"


def test_skip_checks_of_cleared_checksums_do_not_make_the_server_hash(
    zone: ServerProcess, run_isync: Callable[..., CliResult], tmp_path: Path, unique_name: str
) -> None:
    """An overwrite clears the catalog checksum (as a real zone); a rerun then decides by
    modification time: no 629 for an object written after the local file last changed,
    one 629 only for a file changed since (same size), which is then seen to differ."""
    run = runner(zone, run_isync)
    files = tree(tmp_path / "src")
    past = time.time() - 3600
    for name in files:
        os.utime(tmp_path / "src" / name, (past, past))
    coll = f"{HOME}/{unique_name}"
    assert run("-r", "-K", *THRESHOLD, f"{tmp_path}/src/", f"i:{coll}").code == 0
    with zone.session() as s:
        for name, data in files.items():
            with s.data_objects.open(f"{coll}/{name}", "w") as f:  # same bytes, rewritten
                f.write(data)
    assert set(catalog_checksums(zone, coll).values()) == {None}

    before = zone.api_counts()[DATA_OBJ_CHKSUM_AN]
    report = tmp_path / "again.json"
    again = run("-r", *THRESHOLD, "--report", str(report), f"{tmp_path}/src/", f"i:{coll}")
    assert again.code == 0, again.stderr
    assert set(outcomes(report).values()) == {("skipped", "unchanged")}
    assert zone.api_counts()[DATA_OBJ_CHKSUM_AN] == before

    (tmp_path / "src" / "f5.txt").write_bytes(b"FILE 005" * 2)  # same size, changed now
    refused = run("-r", *THRESHOLD, f"{tmp_path}/src/", f"i:{coll}")
    assert refused.code == 1 and "exists and differs" in refused.stderr
    assert zone.api_counts()[DATA_OBJ_CHKSUM_AN] == before + 1


def test_get_skip_of_cleared_checksums_does_not_make_the_server_hash(
    zone: ServerProcess, run_isync: Callable[..., CliResult], tmp_path: Path, unique_name: str
) -> None:
    run = runner(zone, run_isync)
    tree(tmp_path / "src")
    coll = f"{HOME}/{unique_name}"
    assert run("-r", *THRESHOLD, f"{tmp_path}/src/", f"i:{coll}").code == 0  # no checksums
    assert set(catalog_checksums(zone, coll).values()) == {None}
    time.sleep(1.1)  # the download lands in a later second than the upload
    assert run("-r", *THRESHOLD, f"i:{coll}/", str(tmp_path / "down")).code == 0
    before = zone.api_counts()[DATA_OBJ_CHKSUM_AN]
    report = tmp_path / "again.json"
    again = run("-r", *THRESHOLD, "--report", str(report), f"i:{coll}/", str(tmp_path / "down"))
    assert again.code == 0, again.stderr
    assert set(outcomes(report).values()) == {("skipped", "unchanged")}
    assert zone.api_counts()[DATA_OBJ_CHKSUM_AN] == before


def test_scheme_of_and_the_forms(tmp_path: Path) -> None:
    from services.isync import hashing

    data = b"abcd" * 1000
    f = tmp_path / "f"
    f.write_bytes(data)
    assert hashing.scheme_of(md5(data)) == hashing.MD5
    assert hashing.scheme_of(hashing.checksum_of(data)) == hashing.SHA256
    assert hashing.scheme_of("sha512:xyz") is None and hashing.scheme_of(None) is None
    assert hashing.scheme_of("abc") is None  # hex, but not an md5's 32 digits
    assert hashing.file_checksum(str(f), scheme=hashing.MD5) == md5(data)
    assert hashing.checksum_of(data, hashing.MD5) == md5(data)


def test_zone_scheme_from_client_hints_and_its_fallback(md5_zone: ServerProcess) -> None:
    from services.isync import hashing

    class NoHints:
        @property
        def client_hints(self) -> dict[str, str]:
            raise RuntimeError("SYS_UNMATCHED_API_NUM")

    with md5_zone.session() as s:
        assert hashing.zone_scheme(s) == hashing.MD5
    assert hashing.zone_scheme(NoHints()) == hashing.SHA256
