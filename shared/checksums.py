"""Checksums in the iRODS forms, for every process that compares a file with its object.

A zone hashes in its ``default_hash_scheme``: SHA256 (``sha2:`` + base64 of the raw
digest, ``lib/hasher/src/SHA256Strategy.cpp``) or MD5 (32 hex digits with no prefix,
``MD5Strategy.cpp``); a checksum already in the catalog keeps its own scheme (policy
``compatible``). So a local file is hashed in the scheme of the checksum it is compared
with (:func:`scheme_of`), and in the zone's scheme (:func:`zone_scheme`, from the
server's client hints) when one is sent to be verified.

Used by isync (``services.isync.hashing`` adds the hasher that follows a transfer) and by
the ingest landing zone (``services.ingest.examples.landing_zone``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

CHUNK = 8 * 1024 * 1024
SHA256 = "SHA256"
MD5 = "MD5"
SHA256_PREFIX = "sha2:"
_HEX = frozenset("0123456789abcdefABCDEF")

log = logging.getLogger(__name__)


def irods_sha256(digest: bytes) -> str:
    """The iRODS text of a raw SHA-256 digest (``sha2:`` + base64)."""
    return SHA256_PREFIX + base64.b64encode(digest).decode("ascii")


def scheme_of(checksum: str | None) -> str | None:
    """The scheme of an iRODS checksum, as ``get_hash_scheme_from_checksum`` reads it
    (``lib/hasher/src/irods_hasher_factory.cpp``): SHA256 for ``sha2:``, MD5 for plain hex;
    None for an empty checksum or one we cannot compute (sha512:, adler32:, ...)."""
    if not checksum:
        return None
    if checksum.startswith(SHA256_PREFIX):
        return SHA256
    if len(checksum) == 32 and not set(checksum) - _HEX:
        return MD5
    return None


def new_hash(scheme: str) -> Any:
    """A fresh hashlib object for ``scheme``."""
    return hashlib.md5(usedforsecurity=False) if scheme == MD5 else hashlib.sha256()


def irods_form(h: Any, scheme: str) -> str:
    """The iRODS text of a finished hash of ``scheme``."""
    return h.hexdigest() if scheme == MD5 else irods_sha256(h.digest())


def checksum_of(data: bytes | memoryview, scheme: str = SHA256) -> str:
    """The iRODS-form checksum of bytes in memory."""
    h = new_hash(scheme)
    h.update(data)
    return irods_form(h, scheme)


def same(local: str, remote: str) -> bool:
    """Whether two iRODS-form checksums agree (MD5's hex digits in either case)."""
    if scheme_of(remote) == MD5:
        return local.lower() == remote.lower()
    return local == remote


_ZONE_SCHEMES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def zone_scheme(session: Any) -> str:
    """The zone's ``default_hash_scheme`` from its client hints (API 10215, asked once per
    session); SHA256, a fresh zone's default, when the server will not say."""
    try:
        return _ZONE_SCHEMES[session]
    except (KeyError, TypeError):
        pass
    scheme = SHA256
    try:
        said = str(session.client_hints.get("hash_scheme", "")).strip().upper()
    except Exception as e:  # an old server or a refused API: assume the default
        log.debug("no client hints (%s); assuming SHA256", type(e).__name__)
    else:
        scheme = MD5 if said == MD5 else SHA256
    with contextlib.suppress(TypeError):  # a session that cannot be weakly referenced
        _ZONE_SCHEMES[session] = scheme
    return scheme


def file_checksum(
    path: str, cancelled: Callable[[], bool] = lambda: False, scheme: str = SHA256
) -> str:
    """The iRODS-form checksum (``scheme``: SHA256 or MD5) of a whole local file."""
    h = new_hash(scheme)
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(mv[:n])
            if cancelled():
                raise InterruptedError
    return irods_form(h, scheme)


def remote_checksum(session: Any, path: str) -> str:
    """Ask iRODS for the object's checksum (629: it computes and stores one, in the zone's
    scheme, when the catalog has none: a whole read of the object on the server)."""
    return str(session.data_objects.chksum(path))
