"""Credential envelope: RSA-OAEP (SHA-256) wraps a fresh AES-256-GCM key.

Format (one ASCII string, safe in JSON, URLs and logs-free by construction)::

    stgenv1.<kid>.<wrapped key>.<nonce>.<ciphertext+tag>

* ``kid``: first 16 hex digits of SHA-256 over the public key's DER SubjectPublicKeyInfo;
  it names the key pair, so keys can rotate (workers hold several private keys).
* ``wrapped key``: the 32-byte AES key encrypted with RSA-OAEP, MGF1-SHA-256, SHA-256.
* ``nonce``: 12 random bytes; ``ciphertext+tag``: AES-256-GCM of the UTF-8 secret, with
  ``stgenv1.<kid>`` as associated data (the key id cannot be swapped).
* Binary parts are base64url without padding.

Public keys seal (ui-backend, api); private keys open (workers only).  ``check`` lets a
holder of public keys reject malformed, truncated or unknown-key envelopes up front; a
bit-flipped envelope is caught when a worker opens it (GCM tag).

Operators make a key pair with ``stager genkey DIR``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from shared.errors import DecryptError, EnvelopeError

PREFIX = "stgenv1"
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_SECRET_BYTES = 4096
_KID_RE = re.compile(r"^[0-9a-f]{16}$")
_B64_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str, what: str) -> bytes:
    if not _B64_RE.match(text):
        raise EnvelopeError(f"credential envelope: {what} is not base64url; send it unchanged")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise EnvelopeError(f"credential envelope: {what} is not base64url") from e


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """Key id of a public key (16 hex digits)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def generate_keypair(bits: int = 3072) -> tuple[bytes, bytes]:
    """A new RSA key pair as (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """Parse a PEM public key (or take the public half of a private PEM)."""
    if b"PRIVATE KEY" in pem:
        return load_private_key(pem).public_key()
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Parse an unencrypted PEM RSA private key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def _split(envelope: str) -> tuple[str, bytes, bytes, bytes]:
    parts = envelope.split(".")
    if len(parts) != 5 or parts[0] != PREFIX:
        raise EnvelopeError(
            "credential envelope must look like stgenv1.<kid>.<key>.<nonce>.<data>; "
            "send drPass as produced by the sealer, or as plaintext"
        )
    kid = parts[1]
    if not _KID_RE.match(kid):
        raise EnvelopeError("credential envelope: key id must be 16 lowercase hex digits")
    wrapped = _b64d(parts[2], "wrapped key")
    nonce = _b64d(parts[3], "nonce")
    data = _b64d(parts[4], "data")
    if len(nonce) != NONCE_BYTES:
        raise EnvelopeError(f"credential envelope: nonce must be {NONCE_BYTES} bytes")
    if len(data) < TAG_BYTES + 1 or len(data) > MAX_SECRET_BYTES + TAG_BYTES:
        raise EnvelopeError("credential envelope: data has an impossible length (truncated?)")
    return kid, wrapped, nonce, data


def is_envelope(value: str) -> bool:
    """True when ``value`` claims to be an envelope (starts with the prefix)."""
    return value.startswith(PREFIX + ".")


class Sealer:
    """Seals secrets with the first public key; checks envelopes against all of them."""

    def __init__(self, public_keys: Iterable[rsa.RSAPublicKey]) -> None:
        keys = list(public_keys)
        if not keys:
            raise ValueError("Sealer needs at least one public key")
        self._current = keys[0]
        self._kid = key_id(keys[0])
        self._keys = {key_id(k): k for k in keys}

    @classmethod
    def from_pem(cls, pems: Iterable[bytes]) -> Sealer:
        """Build from PEM texts (public or private)."""
        return cls(load_public_key(p) for p in pems)

    @property
    def kid(self) -> str:
        """Key id new envelopes are sealed for."""
        return self._kid

    def seal(self, secret: str | SecretStr) -> str:
        """Seal ``secret`` into an envelope string."""
        plain = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        data = plain.encode("utf-8")
        if len(data) > MAX_SECRET_BYTES:
            raise EnvelopeError(f"secret longer than {MAX_SECRET_BYTES} bytes")
        aes_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        aad = f"{PREFIX}.{self._kid}".encode()
        ct = AESGCM(aes_key).encrypt(nonce, data, aad)
        wrapped = self._current.encrypt(aes_key, _oaep())
        return ".".join((PREFIX, self._kid, _b64e(wrapped), _b64e(nonce), _b64e(ct)))

    def check(self, envelope: str) -> str:
        """Reject a malformed, truncated or unknown-key envelope; return it unchanged."""
        kid, wrapped, _nonce, _data = _split(envelope)
        key = self._keys.get(kid)
        if key is None:
            raise EnvelopeError(
                f"credential envelope is sealed for unknown key id {kid}; "
                "seal drPass with the stager's current public key"
            )
        if len(wrapped) != (key.key_size + 7) // 8:
            raise EnvelopeError("credential envelope: wrapped key has the wrong length (tampered?)")
        if int.from_bytes(wrapped, "big") >= key.public_numbers().n:
            raise EnvelopeError("credential envelope: wrapped key is invalid (tampered?)")
        return envelope


class Opener:
    """Opens envelopes with any of several private keys (rotation)."""

    def __init__(self, private_keys: Iterable[rsa.RSAPrivateKey]) -> None:
        self._keys = {key_id(k.public_key()): k for k in private_keys}
        if not self._keys:
            raise ValueError("Opener needs at least one private key")

    @classmethod
    def from_pem(cls, pems: Iterable[bytes]) -> Opener:
        """Build from PEM private keys."""
        return cls(load_private_key(p) for p in pems)

    def open(self, envelope: str) -> SecretStr:
        """Decrypt an envelope; raises DecryptError (message carries no secret)."""
        try:
            kid, wrapped, nonce, data = _split(envelope)
        except EnvelopeError as e:
            raise DecryptError(str(e)) from None
        key = self._keys.get(kid)
        if key is None:
            raise DecryptError(f"no private key for key id {kid}")
        try:
            aes_key = key.decrypt(wrapped, _oaep())
            plain = AESGCM(aes_key).decrypt(nonce, data, f"{PREFIX}.{kid}".encode())
        except (ValueError, InvalidTag):
            raise DecryptError("credential envelope fails its integrity check") from None
        return SecretStr(plain.decode("utf-8", errors="strict"))
