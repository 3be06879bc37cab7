"""The iRODS checksum forms (``shared.checksums``), against digests computed independently."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from shared import checksums
from shared.checksums import MD5, SHA256, checksum_of, file_checksum, same, scheme_of

DATA = b"landing zone\n" * 1000


def test_sha256_form_is_sha2_prefix_and_base64_of_the_raw_digest() -> None:
    """SHA256Strategy.cpp: ``sha2:`` + base64 of the 32-byte digest."""
    expected = "sha2:" + base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    assert checksum_of(DATA) == checksum_of(DATA, SHA256) == expected
    assert scheme_of(expected) == SHA256


def test_md5_form_is_32_hex_digits_without_prefix() -> None:
    """MD5Strategy.cpp: the hex digest, no prefix."""
    expected = hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert checksum_of(DATA, MD5) == expected
    assert scheme_of(expected) == MD5 and scheme_of(expected.upper()) == MD5


@pytest.mark.parametrize("text", [None, "", "sha512:abc", "adler32:1234", "abc", "x" * 32])
def test_schemes_we_cannot_compute_are_none(text: str | None) -> None:
    assert scheme_of(text) is None


@pytest.mark.parametrize("scheme", [SHA256, MD5])
def test_file_checksum_reads_past_one_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    monkeypatch.setattr(checksums, "CHUNK", 1000)  # several reads of the 13,000 bytes
    f = tmp_path / "f"
    f.write_bytes(DATA)
    assert file_checksum(str(f), scheme=scheme) == checksum_of(DATA, scheme)


def test_file_checksum_stops_when_cancelled(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(DATA)
    with pytest.raises(InterruptedError):
        file_checksum(str(f), cancelled=lambda: True)


def test_same_compares_md5_hex_in_either_case_and_sha2_exactly() -> None:
    md5 = checksum_of(DATA, MD5)
    assert same(md5, md5.upper()) and not same(md5, checksum_of(b"other", MD5))
    sha = checksum_of(DATA)
    assert same(sha, sha) and not same(sha.lower(), sha.upper())
