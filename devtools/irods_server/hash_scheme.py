"""The zone's checksum scheme: ``default_hash_scheme`` of a real ``server_config.json``.

A real server hashes a replica with ``default_hash_scheme`` (``SHA256`` or ``MD5``; read
in ``server/api/src/rsFileChksum.cpp``, ``file_checksum``) unless the replica already has a
checksum (or the client sent one): then, under the default ``match_hash_policy``
``compatible``, that checksum's own scheme wins (``get_hash_scheme_from_checksum``,
``lib/hasher/src/irods_hasher_factory.cpp``), so an md5 catalog entry is re-verified with
md5 on a SHA256 zone and the other way round. The forms are those of the hashers:

- SHA256 (``lib/hasher/src/SHA256Strategy.cpp``): ``sha2:`` + base64 of the raw digest;
- MD5 (``lib/hasher/src/MD5Strategy.cpp``): 32 lowercase hex digits, no prefix.

Set it with ``python -m devtools.irods_server --hash-scheme MD5``,
``IRODS_TEST_SERVER_HASH_SCHEME=MD5`` (the flag wins) or ``ServerProcess(...,
hash_scheme="MD5")``; the default is ``SHA256``, as a fresh iRODS 4.3 install. The
``strict`` policy (``USER_HASH_TYPE_MISMATCH`` when the schemes differ) is not modelled.
"""

from __future__ import annotations

import os

ENV_VAR = "IRODS_TEST_SERVER_HASH_SCHEME"
SHA256 = "SHA256"
MD5 = "MD5"
SCHEMES = (SHA256, MD5)
DEFAULT = SHA256
SHA256_PREFIX = "sha2:"
_HEX = frozenset("0123456789abcdefABCDEF")


def parse(text: str) -> str:
    """``"md5"``/``"SHA256"`` (any case) -> the scheme; ``ValueError`` for anything else."""
    scheme = text.strip().upper()
    if scheme not in SCHEMES:
        raise ValueError(f"hash scheme {text!r}: expected one of {', '.join(SCHEMES)}")
    return scheme


def from_environment(environ: dict[str, str] | None = None) -> str:
    """The scheme ``IRODS_TEST_SERVER_HASH_SCHEME`` names (SHA256 when unset or empty)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return parse(value) if value.strip() else DEFAULT


def scheme_of(checksum: str | None) -> str | None:
    """The scheme a stored checksum is in (``get_hash_scheme_from_checksum``): ``sha2:``
    anywhere is SHA256, all-hex is MD5; None for an empty or unrecognised string."""
    if not checksum:
        return None
    if SHA256_PREFIX in checksum:
        return SHA256
    if not set(checksum) - _HEX:
        return MD5
    return None


def choose(default: str, original: str | None = None) -> str:
    """The scheme a checksum is computed with: ``original``'s when it has one (policy
    ``compatible``), else the zone's ``default``."""
    return scheme_of(original) or default
